"""Shareable links: the page's URL holds its settings, so that a link reproduces the run its sender saw.

A link's query names every setting (model, digits, digit, guidance, steps, seed, sampler) and the open tab, and
with the duel open the duel's own settings too (`link_query`): all of them, not only those that differ from
the defaults, so that a link keeps its meaning when a server's defaults change. Opening a link restores them
and runs them at once (`LinkHandlers.restore`); a seeded run is reproducible, so it is the sender's run. A bad
value (out of range, unknown, not a number) is told in one line per field, checked by the functions that
check typed values (`app.params`, `app.duel.parse_duel`); the good ones are restored and nothing runs until
Generate is pressed. The page keeps its URL current as the settings change (`history.replaceState`, from the
query the server writes, so the encoding exists once), and "Copy link" copies it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import gradio as gr

from app.duel import DUEL_FIELDS, parse_duel
from app.duel_layout import DUEL_TAB, DuelPanel
from app.handlers import GENERATED, Handlers, Views, _invalid
from app.params import ModelMenu, echo, parse_settings

SETTINGS = ("model", "digits", "digit", "guidance", "steps", "seed", "sampler")  # the page's settings, in widget order
FIELDS = (*SETTINGS, *DUEL_FIELDS)
TAB = "tab"
GRADIO_KEYS = frozenset({"__theme", "deep_link", "view", "page"})  # Gradio's own query parameters: not ours to judge
MAX_UNKNOWN = 5  # unknown keys a message names
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&:])")  # ASCII punctuation that Markdown or HTML may read

# The server writes the query; the page puts it in its address bar (without a new history entry) ...
REPLACE_URL_JS = """
(query) => { if (query) history.replaceState(history.state, "", "?" + query); }
"""
# ... and "Copy link" copies the whole address too where the browser allows (on plain http only localhost may),
# saying so on the button for a moment, and returns it for the box below the button, from which it can always
# be copied by hand.
COPY_JS = """
(query) => {
  const url = `${location.origin}${location.pathname}?${query}`;
  history.replaceState(history.state, "", url);
  const button = document.querySelector("#copy-link-btn");
  navigator.clipboard?.writeText(url).then(() => {
    if (!button || button.dataset.copied) return;
    button.dataset.copied = button.textContent;
    button.textContent = "Link copied ✓";
    setTimeout(() => { button.textContent = button.dataset.copied; delete button.dataset.copied; }, 1500);
  }).catch(() => {});
  return url;
}
"""


def _text(value: Any) -> str:
    """A setting as a link writes it: floats as the shortest text that reads back as the same float (3, 1.8)."""
    return repr(value).removesuffix(".0") if isinstance(value, float) else str(value)


def link_query(values: Mapping[str, Any], tab: str) -> str:
    """The query of a link to the settings `values` (by field name) with `tab` open."""
    keys = SETTINGS + (DUEL_FIELDS if tab == DUEL_TAB else ())
    return urlencode([(key, _text(values[key])) for key in keys] + [(TAB, tab)])


def check(values: Mapping[str, Any], menu: ModelMenu) -> dict[str, Any]:
    """Raw values of every field → the same checked and typed, or `ValueError` naming the first bad one."""
    s = parse_settings(*(values[k] for k in SETTINGS), menu=menu)
    left, right = parse_duel(s.model, s.digits, s.digit, s.guidance, s.seed, *(values[k] for k in DUEL_FIELDS), menu=menu)
    typed = {key: getattr(s, key) for key in SETTINGS}
    for side, run in (("left", left), ("right", right)):
        typed |= {f"{side}_sampler": run.sampler, f"{side}_steps": run.steps}
    return typed


@dataclass(frozen=True)
class Link:
    """What a page's query asks for.

    Attributes:
        values: every field, checked and typed: the link's value where it gave a good one, else the default.
        tab: the tab to open; None where the link names none (or a bad one).
        problems: one message per bad value, in field order.
        named: whether the query names any field or the tab (a bare URL restores and runs nothing).
    """

    values: dict[str, Any]
    tab: str | None
    problems: tuple[str, ...]
    named: bool

    @property
    def runs(self) -> bool:
        """A link with settings, all good, runs them at once."""
        return self.named and not self.problems


def read_link(query: Mapping[str, str], defaults: Mapping[str, Any], tabs: Sequence[str], menu: ModelMenu) -> Link:
    """A page's query → the `Link` it asks for; `defaults` stand in for the fields it lacks or gets wrong.

    Each field the query names is checked with all the others, as the run would check it (a digit must be one
    the models know, whatever the digits mode), and kept where that passes."""
    values, problems = dict(defaults), []
    for key in FIELDS:
        if key in query:
            trial = {**values, key: query[key]}
            try:
                check(trial, menu)
            except ValueError as e:
                problems.append(str(e))
                continue
            values = trial
    tab = query.get(TAB)
    if tab is not None and tab not in tabs:
        problems.append(f"{TAB} must be one of {', '.join(repr(t) for t in tabs)}; got {echo(tab)}")
        tab = None
    unknown = sorted(set(query) - set(FIELDS) - {TAB} - GRADIO_KEYS)
    if unknown:
        named = ", ".join(echo(k) for k in unknown[:MAX_UNKNOWN]) + (", …" if len(unknown) > MAX_UNKNOWN else "")
        problems.append(f"{named}: not a setting of this page (a link holds {', '.join((*FIELDS, TAB))})")
    return Link(check(values, menu), tab, tuple(problems), any(k in query for k in (*FIELDS, TAB)))


def _literal(text: str) -> str:
    """`text` as Markdown that shows it as it is: a link's values are anyone's, and the status must not turn
    them into links, pictures fetched from elsewhere, or markup."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def problems_message(problems: Sequence[str]) -> str:
    """The status line (Markdown) for a link with bad values, the values quoted literally."""
    return ("**This link's settings were not all usable**, so nothing ran: " + "; ".join(map(_literal, problems))
            + ". The other settings are restored; press **Generate** to run them.")  # fmt: skip


class LinkHandlers:
    """The link events: the query of the settings on show, and a page opened from a link."""

    def __init__(self, handlers: Handlers, duel: DuelPanel, defaults: Mapping[str, Any], tabs: Sequence[str]):
        self.handlers, self.duel, self.menu = handlers, duel.handlers, handlers.menu
        self.duel_outputs = len(duel.outputs)
        self.defaults, self.tabs = dict(defaults), tuple(tabs)

    def _query(self, values: Sequence[Any]) -> str:
        *fields, tab = values
        return link_query(check(dict(zip(FIELDS, fields)), self.menu), tab if tab in self.tabs else self.tabs[0])

    def query(self, *values: Any) -> Any:
        """The query of the settings `values` (every field, then the open tab); while they are not valid (a
        value being typed) the address keeps its last good query."""
        try:
            return self._query(values)
        except ValueError:
            return gr.skip()

    def copy(self, *values: Any) -> tuple[str, gr.Textbox]:
        """As `query`, for "Copy link": settings that are not valid are told (there is no link to copy)."""
        try:
            return self._query(values), gr.Textbox(visible=True)
        except ValueError as e:
            raise _invalid(e) from None

    def restore(self, request: gr.Request) -> Iterator[list]:
        """The page was opened: restore the settings its link names, then stream the run they make (a duel when
        the link opens the duel) into the outputs `wire_links` gives this event."""
        link = read_link(request.query_params, self.defaults, self.tabs, self.menu)
        skip_generated = self.handlers.outputs(Views(), GENERATED)
        skip_duel = [gr.skip()] * self.duel_outputs
        if not link.named:
            yield [gr.skip()] * (len(FIELDS) + 2) + skip_generated + skip_duel
            return
        widgets = [link.values[k] for k in FIELDS] + ([gr.Tabs(selected=link.tab), link.tab] if link.tab else [gr.skip()] * 2)
        if link.problems:
            yield widgets + self.handlers.outputs(Views(status=problems_message(link.problems)), GENERATED) + skip_duel
            return
        yield widgets + skip_generated + skip_duel
        keep = [gr.skip()] * len(widgets)
        v = link.values
        if link.tab == DUEL_TAB:
            shared = [v[k] for k in SETTINGS if k not in ("steps", "sampler")]
            for update in self.duel.duel(*shared, *(v[k] for k in DUEL_FIELDS), request):
                yield keep + skip_generated + update
        else:
            for update in self.handlers.generate(*(v[k] for k in SETTINGS), request):
                yield keep + update + skip_duel


def link_controls() -> tuple[gr.Button, gr.Textbox]:
    """The "Copy link" button and the box that shows the link it copied (hidden until then), where called."""
    button = gr.Button("Copy link", size="sm", elem_id="copy-link-btn")
    box = gr.Textbox(label="Link to these settings", interactive=False, visible=False, buttons=["copy"], elem_id="share-link")
    return button, box


def wire_links(
    handlers: Handlers, demo: gr.Blocks, settings: Sequence[gr.components.Component], generated: Sequence[gr.components.Component],
    duel: DuelPanel, tabs: gr.Tabs, controls: tuple[gr.Button, gr.Textbox],
) -> LinkHandlers:  # fmt: skip
    """Wire the links of the open Blocks `demo`: its URL follows `settings` (the page's, in `SETTINGS` order),
    the duel's and the open tab of `tabs`; a page opened from a link restores them and streams its run to
    `generated` (/generate's outputs) or the duel's."""
    tab_items = [tab for tab in tabs.children if isinstance(tab, gr.Tab) and tab.id is not None]
    fields = [*settings, *duel.inputs]
    links = LinkHandlers(handlers, duel, {k: c.value for k, c in zip(FIELDS, fields)}, [tab.id for tab in tab_items])
    open_tab = gr.Textbox(value=tabs.selected or links.tabs[0], visible="hidden", elem_id="open-tab")
    query = gr.Textbox(visible="hidden", elem_id="link-query")
    quiet = dict(queue=False, api_visibility="private", show_progress="hidden")
    for tab in tab_items:
        tab.select(None, js=f"() => {json.dumps(tab.id)}", outputs=open_tab, **quiet)
    gr.on([c.change for c in (*fields, open_tab)], links.query, inputs=[*fields, open_tab], outputs=query, trigger_mode="always_last", **quiet)
    query.change(None, inputs=query, js=REPLACE_URL_JS, **quiet)
    button, box = controls
    button.click(links.copy, inputs=[*fields, open_tab], outputs=[query, box], **quiet).then(None, inputs=query, outputs=box, js=COPY_JS, **quiet)
    demo.load(
        links.restore, outputs=[*fields, tabs, open_tab, *generated, *duel.outputs], api_visibility="private",
        show_progress="minimal", show_progress_on=[generated[0], duel.outputs[0]],  # the statuses, not every widget
        concurrency_limit=handlers.max_concurrent, concurrency_id="generate",
    )  # fmt: skip
    return links

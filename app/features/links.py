"""Shareable links: the page's URL holds its settings, so that a link reproduces the run its sender saw.

What a link holds is what features register on the page (`app.ui.context.Linked`): the generation's settings
(model, digits, digit, guidance, steps, seed, sampler) in every link, and with the duel open the duel's own
settings too, then the open tab (`link_query`): all of them, not only those that differ from the defaults, so
that a link keeps its meaning when a server's defaults change. Opening a link restores them (each as its feature
shows it, `Linked.show`: a two-digit number with the picker that offers it) and runs them at once
(`LinkHandlers.restore`): the run registered for the link's tab, else the generation; a seeded run is
reproducible, so it is the sender's run. A bad value (out of range, unknown, not a number) is told in one line
per field, checked by the registering features' own checks; the good ones are restored and nothing runs until
Generate is pressed. The page keeps its URL current as the settings change (`history.replaceState`, from the
query the server writes, so the encoding exists once), and "Copy link" copies it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import gradio as gr

from app.core.settings import echo
from app.ui.assets import script
from app.ui.context import Context, Linked, Page
from app.ui.views import invalid

TAB = "tab"
GRADIO_KEYS = frozenset({"__theme", "deep_link", "view", "page"})  # Gradio's own query parameters: not ours to judge
MAX_UNKNOWN = 5  # unknown keys a message names
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&:])")  # ASCII punctuation that Markdown or HTML may read


def _text(value: Any) -> str:
    """A setting as a link writes it: floats as the shortest text that reads back as the same float (3, 1.8)."""
    return repr(value).removesuffix(".0") if isinstance(value, float) else str(value)


def fields(linked: Sequence[Linked]) -> tuple[str, ...]:
    """Every field a link may hold, in the order links write them."""
    return tuple(key for entry in linked for key in entry.fields)


def link_query(values: Mapping[str, Any], tab: str, linked: Sequence[Linked]) -> str:
    """The query of a link to the settings `values` (by field name) with `tab` open: the fields of every
    registration for every tab or for `tab`."""
    keys = [key for entry in linked if entry.tab in (None, tab) for key in entry.fields]
    return urlencode([(key, _text(values[key])) for key in keys] + [(TAB, tab)])


def check(values: Mapping[str, Any], linked: Sequence[Linked]) -> dict[str, Any]:
    """Raw values of every field → the same checked and typed, or `ValueError` naming the first bad one."""
    typed: dict[str, Any] = {}
    for entry in linked:
        typed |= entry.check(values)
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


def read_link(query: Mapping[str, str], defaults: Mapping[str, Any], tabs: Sequence[str], linked: Sequence[Linked]) -> Link:
    """A page's query → the `Link` it asks for; `defaults` stand in for the fields it lacks or gets wrong, except
    where a registration implies them from the fields it names (`Linked.implied`).

    Each field the query names is checked with all the others, as the run would check it (a digit must be one
    the models know, whatever the digits mode), and kept where that passes."""
    names = fields(linked)
    values, problems = dict(defaults), []
    for key in names:
        if key in query:
            trial = {**values, key: query[key]}
            try:
                check(trial, linked)
            except ValueError as e:
                problems.append(str(e))
                continue
            values = trial
    for entry in linked:  # fields left out that follow from those named: a two-digit link's guidance is its model's
        for key, implies in (entry.implied or {}).items():
            if key in query and values[key] == query[key]:  # named, and good
                values |= {k: v for k, v in implies(values).items() if k not in query}
    tab = query.get(TAB)
    if tab is not None and tab not in tabs:
        problems.append(f"{TAB} must be one of {', '.join(repr(t) for t in tabs)}; got {echo(tab)}")
        tab = None
    unknown = sorted(set(query) - set(names) - {TAB} - GRADIO_KEYS)
    if unknown:
        named = ", ".join(echo(k) for k in unknown[:MAX_UNKNOWN]) + (", …" if len(unknown) > MAX_UNKNOWN else "")
        problems.append(f"{named}: not a setting of this page (a link holds {', '.join((*names, TAB))})")
    return Link(check(values, linked), tab, tuple(problems), any(k in query for k in (*names, TAB)))


def _literal(text: str) -> str:
    """`text` as Markdown that shows it as it is: a link's values are anyone's, and the status must not turn
    them into links, pictures fetched from elsewhere, or markup."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def problems_message(problems: Sequence[str]) -> str:
    """The status line (Markdown) for a link with bad values, the values quoted literally."""
    return ("**This link's settings were not all usable**, so nothing ran: " + "; ".join(map(_literal, problems))
            + ". The other settings are restored; press **Generate** to run them.")  # fmt: skip


class LinkHandlers:
    """The link events: the query of the settings on show, and a page opened from a link.

    Args:
        linked: what the features registered (`Page.linked`); the one for no tab runs when a link's tab has none.
        defaults: every field's value as the page opens.
        tabs: the ids of the views' tabs, the first open by default.
    """

    def __init__(self, linked: Sequence[Linked], defaults: Mapping[str, Any], tabs: Sequence[str]):
        self.linked, self.fields = tuple(linked), fields(linked)
        self.defaults, self.tabs = dict(defaults), tuple(tabs)

    def _query(self, values: Sequence[Any]) -> str:
        *given, tab = values
        return link_query(check(dict(zip(self.fields, given)), self.linked), tab if tab in self.tabs else self.tabs[0], self.linked)

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
            raise invalid(e) from None

    def _runner(self, tab: str | None) -> Linked:
        """The registration whose run a link of `tab` makes: that tab's own, else the one of every tab."""
        return next((entry for entry in self.linked if entry.tab == tab and tab is not None),
                    next(entry for entry in self.linked if entry.tab is None))  # fmt: skip

    def restore(self, request: gr.Request) -> Iterator[list]:
        """The page was opened: restore the settings its link names, then stream the run they make into the outputs
        `build` gives this event: every field, the tabs and the open tab, then each registration's outputs."""
        link = read_link(request.query_params, self.defaults, self.tabs, self.linked)
        skips = {id(entry): [gr.skip()] * len(entry.outputs) for entry in self.linked}

        def outputs(entry: Linked | None = None, update: list | None = None) -> list:
            """Every registration's outputs left as they are, but `entry`'s: `update`."""
            return [v for e in self.linked for v in (update if e is entry else skips[id(e)])]

        if not link.named:
            yield [gr.skip()] * (len(self.fields) + 2) + outputs()
            return
        shown = {key: value for entry in self.linked for key, value in entry.shown(link.values).items()}
        widgets = [shown[k] for k in self.fields] + ([gr.Tabs(selected=link.tab), link.tab] if link.tab else [gr.skip()] * 2)
        runner = self._runner(link.tab)
        if link.problems:  # told in the status of the run of every tab (the first of its outputs)
            default = self._runner(None)
            yield widgets + outputs(default, [problems_message(link.problems), *skips[id(default)][1:]])
            return
        yield widgets + outputs()
        keep = [gr.skip()] * len(widgets)
        for update in runner.run(link.values, request):
            yield keep + outputs(runner, update)


def build(ctx: Context, page: Page) -> LinkHandlers:
    """Wire the links of the page: its URL follows every registered field (`page.linked`) and the open tab of the
    views; a page opened from a link restores them and streams its run; "Copy link" (`page.link_controls`)
    copies the address."""
    tab_items = [tab for tab in page.tabs.children if isinstance(tab, gr.Tab) and tab.id is not None]
    components = [c for entry in page.linked for c in entry.fields.values()]
    links = LinkHandlers(page.linked, {k: c.value for k, c in zip(fields(page.linked), components)}, [tab.id for tab in tab_items])
    open_tab = gr.Textbox(value=page.tabs.selected or links.tabs[0], visible="hidden", elem_id="open-tab")
    query = gr.Textbox(visible="hidden", elem_id="link-query")
    quiet = dict(queue=False, api_visibility="private", show_progress="hidden")
    for tab in tab_items:
        tab.select(None, js=script("constant", tab.id), outputs=open_tab, **quiet)
    inputs = [*components, open_tab]
    raw = dict(inputs=inputs, preprocess=False, **quiet)  # raw values: the features' own checks say what is wrong
    gr.on([c.change for c in inputs], links.query, outputs=query, trigger_mode="always_last", **raw)
    query.change(None, inputs=query, js=script("replaceAddress"), **quiet)
    button, box = page.link_controls
    button.click(links.copy, outputs=[query, box], **raw).then(None, inputs=query, outputs=box, js=script("copyLink"), **quiet)
    runs = [entry.outputs for entry in page.linked]
    page.demo.load(
        links.restore, outputs=[*components, page.tabs, open_tab, *(c for out in runs for c in out)], api_visibility="private",
        show_progress="minimal", show_progress_on=[out[0] for out in runs],  # the statuses, not every widget
        concurrency_limit=ctx.max_concurrent, concurrency_id="generate",
    )  # fmt: skip
    return links

"""What every feature gets: the `Context` of the app's services, the `Page` it builds on, and how a tab is named.

A feature never holds another feature's handlers. It reads the loaded models, the store of sessions and runs
and the stream budget from its `Context`; it places its components in the open Blocks and reads the page's
shared components (the generation's settings and views, the views' tabs) from the `Page`; and a run that a
link can restore is registered on the page as a `Linked` (the links feature restores any of them).

Adding a tab among the views is a `Tab` (a title, an id, and a function that builds it) in a feature of its own,
and one entry in `app.page.TABS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from app.core.models import ModelBank
from app.core.runs import Run
from app.core.store import Session, SessionStore
from app.ui.pace import StreamBudget, stream
from app.ui.views import session_id

MAX_CONCURRENT_RUNS = 8  # generations sampling at once, taking turns on the CPU; more wait in the queue (position shown)
STREAM_INTERVAL_S = 0.1  # at most ~10 image updates per second per session
PLOT_INTERVAL_S = 0.5  # the Plotly figures, heavier for the browser, at most ~2 per second while live


class Context:
    """The app's services, shared by every feature: the models, the one store of sessions and runs, and one
    budget of stream updates with its pace.

    Args:
        bank: the loaded models (`app.core.models.ModelBank`).
        store: every session's runs and state (a fresh one by default).
        stream_interval, plot_interval: a stream's pause between updates and between figures, alone.
        max_concurrent: the most generations (and restored links) sampling at once; more wait in the queue.
    """

    def __init__(self, bank: ModelBank, store: SessionStore | None = None, *, stream_interval: float = STREAM_INTERVAL_S,
                 plot_interval: float = PLOT_INTERVAL_S, max_concurrent: int = MAX_CONCURRENT_RUNS):
        self.bank = bank
        self.menu = bank.menu
        self.store = store or SessionStore()
        self.streams = StreamBudget()  # every stream of views (generations, duels, completions) paces within it
        self.stream_interval, self.plot_interval, self.max_concurrent = stream_interval, plot_interval, max_concurrent
        self._forget: list[Callable[[str], object]] = []
        self._close: list[Callable[[], object]] = []

    def session(self, request: gr.Request | None, *, create: bool = False) -> Session:
        """The caller's session. Only a call that keeps something in it asks to `create` it: for any other caller
        new to the store this is an empty session that is not stored (no run, nothing kept), so that a flood of
        cheap calls from fresh sessions makes nothing and evicts nobody (`app.core.store`)."""
        sid = session_id(request)
        return self.store.get(sid) if create else (self.store.find(sid) or Session())

    def stream(self, runs: Sequence[Run], draw: Callable[[bool, float | None], list], unstarted: Callable[[], list]) -> Iterator[list]:
        """Stream `runs` (`app.ui.pace.stream`: `draw` each update, `unstarted` if they ended before their first
        step) as one stream of the budget; runs still going when the stream ends early (the client went away,
        or the event was cancelled) are stopped."""
        try:
            with self.streams.stream():
                yield from stream(runs, self.streams.pace(self.stream_interval, self.plot_interval), draw, unstarted)
        finally:
            for run in runs:
                if run.running:
                    run.stop()

    def on_forget(self, forget: Callable[[str], object]) -> None:
        """Call `forget(session_id)` when a session goes (besides dropping its runs and state from the store)."""
        self._forget.append(forget)

    def on_close(self, close: Callable[[], object]) -> None:
        """Call `close()` when the server goes (after every run has stopped)."""
        self._close.append(close)

    def forget(self, request: gr.Request) -> None:
        """The tab was closed: stop and drop the session's runs and state, and what features keep elsewhere."""
        sid = session_id(request)
        self.store.drop(sid)
        for forget in self._forget:
            forget(sid)

    def close(self) -> None:
        """The server is going away: stop every run, then let each feature clean up."""
        self.store.close()
        for close in self._close:
            close()


@dataclass(frozen=True)
class Linked:
    """Settings a link holds and the run they make, as a feature registers them on the `Page` for the links.

    Attributes:
        fields: name → the component that holds it, in the order a link writes them.
        tab: the tab with which these fields are in a link and their run is what a link of that tab makes; None:
            in every link, and the run of any tab that registers none.
        check: every linked field's raw value by name → this registration's fields checked and typed, or
            `ValueError` naming the first bad one (it may read the other registrations' fields).
        run: the checked values of every field, and the caller's request → the run's streamed outputs.
        outputs: the components `run` streams to.
        show: the checked values of every field → this registration's fields as the page shows them (a value, or
            a component update where a value needs more than itself: a number 42 needs a picker that offers
            it); None: the values as they are.
        implied: a field → what a link that names it implies for the fields it leaves out (the checked values →
            those fields' values: a model's own recommended guidance); elsewhere the page's defaults stand for them.
    """

    fields: Mapping[str, Any]
    tab: str | None
    check: Callable[[Mapping[str, Any]], dict[str, Any]]
    run: Callable[[Mapping[str, Any], gr.Request], Iterator[list]]
    outputs: Sequence[Any]
    show: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    implied: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]] | None = None

    def shown(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """This registration's fields as the page shows the checked `values` (`show`)."""
        return self.show(values) if self.show is not None else {key: values[key] for key in self.fields}


@dataclass
class Page:
    """The page being built: the open Blocks, and what features share of it.

    Attributes:
        demo: the Blocks.
        settings: the generation's settings by name (model, digits, digit, guidance, steps, seed, sampler).
        views: the generation's view components (its `Views`: status, images, step slider, figures).
        tabs: the views' tabs (a feature that is a tab lives in one).
        link_controls: the "Copy link" button and the box that shows the link it copied, where the generation
            placed them beside Generate (the links feature wires them).
        linked: what links restore (`Linked`), in the order of their fields in a link.
    """

    demo: gr.Blocks
    settings: dict[str, Any] = field(default_factory=dict)
    views: Any = None
    tabs: gr.Tabs | None = None
    link_controls: tuple[gr.Button, gr.Textbox] | None = None
    linked: list[Linked] = field(default_factory=list)


@dataclass(frozen=True)
class Tab:
    """A feature that is a tab among the views: its title, its id (links name it) and what builds it inside the
    open tab, given the context and the page."""

    title: str
    id: str
    build: Callable[[Context, Page], object]

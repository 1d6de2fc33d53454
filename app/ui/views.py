"""What an event shows, said one way by every feature: a `ViewSet` of named views, laid out in the order of
the components the layout wired to that event; the status line of a run; and the small pieces every handler
needs (the caller's session id, a caller's mistake as an error message, a figure for gr.Plot).

A feature's views are a dataclass deriving from `ViewSet`, one field per view; `ViewSet.outputs` lays a set
out in the order of the components the layout wired to the event, with every view it leaves unset sent as
`gr.skip()` (unchanged in the browser). The layout builds its component lists with the same method, from a
set of components, so the two orders cannot drift apart, and adding a view is one field.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import field
from typing import Any, TypeVar

import gradio as gr
from gradio.components.plot import PlotData

from app.core.runs import Run, RunState
from app.core.settings import plural
from app.ui import figures

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_COLOURS = {
    RunState.RUNNING: "#4f46e5", RunState.DONE: "#16a34a", RunState.STOPPED: "#b45309", RunState.FAILED: "#dc2626",
}  # fmt: skip


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # a view the event leaves as it is in the browser


def per_model(width: int) -> Any:
    """A view with `width` components per model: its value maps a model's name to them (a tuple if width > 1)."""
    return field(default=UNSET, metadata={"per_model": width})


class ViewSet:
    """The base of a feature's views (a dataclass, one field per view; `per_model` fields hold one entry per
    model)."""

    def outputs(self, names: Sequence[str], fields: Sequence[str]) -> list:
        """The values of `fields`, in that order, models in the order of `names`; unset ones as gr.skip()."""
        widths = {f.name: f.metadata.get("per_model") for f in dataclasses.fields(self)}
        out: list = []
        for name in fields:
            value, width = getattr(self, name), widths[name]
            if width is None:
                out.append(gr.skip() if value is UNSET else value)
                continue
            for model in names:
                if value is UNSET:
                    parts = (UNSET,) * width
                else:
                    parts = value[model] if width > 1 else (value[model],)
                out += [gr.skip() if part is UNSET else part for part in parts]
        return out


def plot(fig: figures.Figure) -> PlotData:
    """A figure dict for gr.Plot, serialised once here (typed arrays, no plotly validation)."""
    return PlotData(type="plotly", plot=figures.figure_json(fig))


def session_id(request: gr.Request | None) -> str:
    """The caller's Gradio session (one browser tab), the key of its state in the store."""
    return (request.session_hash if request is not None else None) or "anonymous"


def invalid(error: ValueError) -> gr.Error:
    """The caller's mistake, told to the caller; logged in one line (the message quotes values only cut short,
    `app.core.settings.echo`), not as a server traceback."""
    log.info("invalid input: %s", error)
    return gr.Error(str(error), title="Invalid input", print_exception=False)


def parsed(parse: Callable[..., T], *args: Any) -> T:
    """`parse(*args)` (a check of a caller's value), its `ValueError` told to the caller (`invalid`)."""
    try:
        return parse(*args)
    except ValueError as e:
        raise invalid(e) from None


def raise_if_failed(run: Run) -> None:
    """Report a failed producer at once, even while the run's other models are still sampling."""
    if run.error:
        raise gr.Error(f"Sampling failed: {run.error}", title="Sampling failed")


def state_mark(run: Run) -> str:
    """A dot in the colour of the run's state."""
    return f'<span style="color:{STATE_COLOURS[run.state]}">●</span>'


def elapsed(run: Run) -> float:
    """Seconds from the run's start to its end, or to now while it runs."""
    return (run.ended or time.monotonic()) - run.started


def ran_for(run: Run) -> str:
    """"40 steps in 1.2 s": the updates recorded for every model so far (state 0 is the prior) and the time taken."""
    return f"{plural(max(run.latest, 0), 'step')} in {elapsed(run):.1f} s"


def status(run: Run, line: str, details: str) -> str:
    """A run's status line as every view words it: its state, `line`, and `details` in small print below."""
    return f"{state_mark(run)} **{run.state.value.capitalize()}** — {line}  \n<small>{details}</small>"


NOTHING_SAMPLED = "before its first step: nothing was sampled"  # what a run stopped at once shows (it has no step)

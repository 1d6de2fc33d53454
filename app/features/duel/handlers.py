"""The sampler duel: one model, the same digits, guidance and seed through two samplers (say the paper's `bfn` at
100 steps and the few-step `solver` at 20), side by side, on one clock.

The two runs take different steps, so they are compared at a time t, not at a step: each side shows its latest
recorded step at or before t (`step_at`) and says which step and which t that is. Each side is the very run
/generate makes of its settings (`app.core.runs.generation`), kept in the session's slot for that side
(`SLOTS`), so the store's memory budget bounds them with every other run and its idle stop frees the CPU of a
duel nobody watches; their frames are drawn as a generation's are. There is no maths here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from app.core.menu import ModelMenu
from app.core.runs import Run, RunTooLarge, generation
from app.core.settings import MIN_STEPS, RunSettings, parse_float, parse_settings, plural
from app.features.duel.figures import Side, timeline
from app.ui.context import Context
from app.ui.images import output_image, theta_image
from app.ui.views import UNSET, ViewSet, invalid, parsed, per_model, plot, ran_for, session_id, state_mark

SIDES = ("left", "right")
SLOTS = {side: f"duel-{side}" for side in SIDES}  # each side's slot in the session (`app.core.store.Session.runs`)
DUEL_FIELDS = ("left_sampler", "left_steps", "right_sampler", "right_steps")  # the duel's own settings, in order
FEW_STEPS = 20  # the right side's default step count: a short run, where the few-step samplers are meant to shine
T_TOLERANCE = 1e-6  # a step at t + this still counts as "at t": the slider's value is a rounded decimal


def duel_defaults(menu: ModelMenu) -> dict[str, Any]:
    """The duel's own settings at first: the paper's sampler at the models' recommended steps against their
    few-step sampler at `FEW_STEPS`."""
    rec = menu.recommended
    return {"left_sampler": "bfn", "left_steps": rec.steps, "right_sampler": rec.few_steps_sampler, "right_steps": FEW_STEPS}


def parse_duel(
    model: Any, digits: Any, digit: Any, guidance: Any, seed: Any,
    left_sampler: Any, left_steps: Any, right_sampler: Any, right_steps: Any, *, menu: ModelMenu,
) -> tuple[RunSettings, RunSettings]:  # fmt: skip
    """Raw values → the settings of the left and right runs, or `ValueError` naming the first bad field (a side's
    own field with the side: "right steps must be …")."""
    shared = parse_settings(model, digits, digit, guidance, MIN_STEPS, seed, menu=menu)  # what both sides share
    sides = []
    for side, sampler, steps in (("left", left_sampler, left_steps), ("right", right_sampler, right_steps)):
        try:
            sides.append(parse_settings(shared.model, shared.digits, shared.digit, shared.guidance, steps, shared.seed, sampler, menu=menu))
        except ValueError as e:
            raise ValueError(f"{side} {e}") from None
    return sides[0], sides[1]


def check(values: Mapping[str, Any], menu: ModelMenu) -> dict[str, Any]:
    """A link's duel settings (with the page's settings they share) checked and typed as the widgets hold them."""
    left, right = parse_duel(*(values[k] for k in ("model", "digits", "digit", "guidance", "seed")),
                             *(values[k] for k in DUEL_FIELDS), menu=menu)  # fmt: skip
    return {"left_sampler": left.sampler, "left_steps": left.steps, "right_sampler": right.sampler, "right_steps": right.steps}


def _times(run: Run) -> np.ndarray:
    """The times of the steps of `run` recorded by now (every model of a run steps at the same times)."""
    return next(iter(run.frames.values())).t[: run.latest + 1]


def step_at(run: Run, t: float) -> int:
    """The latest step of `run` recorded by now whose time is at most `t` (step 0 if t comes before them all)."""
    return max(0, int(np.searchsorted(_times(run), t + T_TOLERANCE, side="right")) - 1)


def live_t(runs: Sequence[Run]) -> float | None:
    """The latest time both runs have reached (None before either has its first step): what a live duel shows."""
    if any(run.latest < 0 for run in runs):
        return None
    return min(float(_times(run)[-1]) for run in runs)


@dataclass
class DuelViews(ViewSet):
    """What an event of the duel shows (or, in the layout, its components), one field per view.

    Attributes:
        status: the Markdown line above the duel.
        left, right: each side's caption: its sampler and steps, and which step and t it shows.
        images: per model (left θ, left output, right θ, right output).
        groups: per model (its left group, its right group), shown when the model is in the duel.
        slider: the t scrubber; timeline: both runs' step times with the steps on show.
    """

    status: Any = UNSET
    left: Any = UNSET
    right: Any = UNSET
    images: Any = per_model(4)
    groups: Any = per_model(2)
    slider: Any = UNSET
    timeline: Any = UNSET


DUELED = ("status", "left", "right", "images", "groups", "slider", "timeline")  # /duel: every view
SHOWN = tuple(name for name in DUELED if name != "groups")  # /duel_scrub, /duel_stop


class DuelHandlers:
    """The duel's handlers, on the app's `Context`."""

    def __init__(self, ctx: Context):
        self.ctx, self.bank, self.menu = ctx, ctx.bank, ctx.menu

    def outputs(self, views: DuelViews, fields: Sequence[str] = SHOWN) -> list:
        return views.outputs(self.menu.names, fields)

    def runs(self, request: gr.Request | None) -> tuple[Run, Run] | None:
        """This session's two runs, or None before a duel (or once the store dropped either side)."""
        runs = self.ctx.session(request).runs
        left, right = (runs.get(SLOTS[side]) for side in SIDES)
        return None if left is None or right is None else (left, right)

    # ------------------------------------------------------------------------------------------ views
    def _sampler(self, settings: RunSettings) -> str:
        """A side's sampler and steps as its caption names them ("recommended" says which sampler that was)."""
        used = sorted({settings.sampler_for(self.bank.models[name]) for name in settings.models})
        name = settings.sampler if used == [settings.sampler] else f"{settings.sampler} ({', '.join(used)})"
        return f"{name} · {settings.steps} steps"

    def _caption(self, run: Run, step: int) -> str:
        shown = f"step {step} of {run.num_steps}, t = {float(_times(run)[step]):.3f}"
        return f"{state_mark(run)} **{self._sampler(run.settings)}** — {shown}"

    def _status(self, runs: Sequence[Run], t: float | None, note: str = "") -> str:
        """The line above the duel: the t both sides show (None: neither has a step) and how far each ran."""
        parts = [f"Both at t = {t:.3f}" if t is not None else "Both stopped before their first step: nothing was sampled"]
        parts += [f"{side}: {ran_for(run)} ({run.state.value})" for side, run in zip(SIDES, runs)]
        if note:
            parts.append(note)
        s = runs[0].settings
        shared = f"{s.menu.choices[s.model]} · {plural(len(s.labels), 'image')} · guidance {s.guidance:g} · seed {s.seed}"
        return f"{' · '.join(parts)}  \n<small>Both sides: {shared}</small>"

    def _views(self, runs: Sequence[Run], t: float, *, plots: bool = True, slider: bool = True, note: str = "") -> DuelViews:
        """Both sides at time `t`: each at its latest recorded step at or before t."""
        steps = [step_at(run, t) for run in runs]
        views = DuelViews(status=self._status(runs, t, note), left=self._caption(runs[0], steps[0]), right=self._caption(runs[1], steps[1]))
        views.images = {name: (None,) * 4 for name in self.menu.names}
        for name in runs[0].frames:
            views.images[name] = tuple(
                picture(run.frames[name], step) for run, step in zip(runs, steps) for picture in (theta_image, output_image)
            )
        if slider:
            views.slider = gr.Slider(value=round(t, 3))
        if plots:
            sides = [Side(self._sampler(run.settings), _times(run), step) for run, step in zip(runs, steps)]
            views.timeline = plot(timeline(sides, t))
        return views

    # --------------------------------------------------------------------------------------- handlers
    def duel(
        self, model: Any, digits: Any, digit: Any, guidance: Any, seed: Any,
        left_sampler: Any, left_steps: Any, right_sampler: Any, right_steps: Any, request: gr.Request,
    ) -> Iterator[list]:  # fmt: skip
        """Run both sides at once and stream them at the latest t both have reached; the last update is t = 1."""
        try:
            settings = parse_duel(model, digits, digit, guidance, seed, left_sampler, left_steps, right_sampler, right_steps, menu=self.menu)
            changed = threading.Condition()  # one wait serves both sides (`app.core.runs.wait_for_news`)
            runs = tuple(generation(s, self.bank.models, changed=changed) for s in settings)  # both sides or neither
        except (ValueError, RunTooLarge) as e:
            raise invalid(e) from None
        self.ctx.store.start(session_id(request), dict(zip(SLOTS.values(), runs)))
        groups: Any = {name: (gr.Column(visible=name in runs[0].frames),) * 2 for name in self.menu.names}

        def draw(plots: bool, rate: float | None) -> list:
            nonlocal groups
            t = live_t(runs)
            if runs[0].follow_live:
                views = self._views(runs, t, plots=plots)
            else:
                views = DuelViews(status=self._status(runs, t, "viewing another t — drag to the end to follow"))
            views.groups, groups = groups, UNSET  # sent once, with the first update
            return self.outputs(views, DUELED)

        def unstarted() -> list:
            return self.outputs(DuelViews(status=self._status(runs, None), groups=groups), DUELED)

        yield from self.ctx.stream(runs, draw, unstarted)

    def scrub(self, t: Any, request: gr.Request) -> list:
        """Both sides at time `t` (each at its latest step at or before t, of those recorded so far); a t beyond
        what both reached shows them where both reached, and says so (the slider goes back there)."""
        t = parsed(parse_float, "t", t, 0.0, 1.0)
        runs = self.runs(request)
        if runs is None or live_t(runs) is None:
            return self.outputs(DuelViews(status="Press **Run the duel** first: there is no duel to scrub through yet."))
        for run in runs:
            run.touch()
        reached = live_t(runs)
        runs[0].follow_live = t >= reached  # dragging to the newest t follows the live duel again
        if t <= reached:
            return self.outputs(self._views(runs, t, slider=False))
        why = "not sampled yet" if any(run.running for run in runs) else "never sampled: the duel ended before it"
        return self.outputs(self._views(runs, reached, note=f"t = {t:.3f} was {why}"))

    def stop(self, request: gr.Request) -> list:
        """Stop both sides and show them at the latest t both reached."""
        runs = self.runs(request)
        if runs is None:
            return self.outputs(DuelViews(status="No duel is running."))
        for run in runs:
            run.stop(wait=2.0)
        runs[0].follow_live = True
        t = live_t(runs)
        if t is None:
            return self.outputs(DuelViews(status=self._status(runs, None)))
        return self.outputs(self._views(runs, t))

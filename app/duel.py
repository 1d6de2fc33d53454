"""The sampler duel: one model, the same digits, guidance and seed through two samplers (say the paper's `bfn` at
100 steps and the few-step `solver` at 20), side by side, on one clock.

The two runs take different steps, so they are compared at a time t, not at a step: each side shows its latest
recorded step at or before t (`step_at`) and says which step and which t that is. The sides are ordinary
`app.session.Run`s, kept in the app's one `SessionStore` under a key of their own per session and side
(`side_key`), so the store's memory budget bounds them with every other run and its idle stop frees the CPU
of a duel nobody watches; their frames are drawn by `app.render` as a generation's are. Like `app.handlers`,
there is no maths here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from app import render
from app.duel_render import Side, timeline
from app.handlers import STATE_COLOURS, UNSET, Handlers, Views, _invalid, _per_model, _raise_if_failed, _session_id, plot
from app.params import MIN_STEPS, ModelMenu, RunSettings, parse_float, parse_settings, plural
from app.session import Run, RunTooLarge

SIDES = ("left", "right")
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


def side_key(session_id: str, side: str) -> str:
    """The store's key for one side of a session's duel (beside the session's own generation, under its id)."""
    return f"{session_id}\x00duel-{side}"


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
class DuelViews:
    """What an event of the duel shows (or, in the layout, its components), as `app.handlers.Views`.

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
    images: Any = _per_model(4)
    groups: Any = _per_model(2)
    slider: Any = UNSET
    timeline: Any = UNSET

    outputs = Views.outputs


DUELED = ("status", "left", "right", "images", "groups", "slider", "timeline")  # /duel: every view
SHOWN = tuple(name for name in DUELED if name != "groups")  # /duel_scrub, /duel_stop


class DuelHandlers:
    """The duel's handlers, on the app's models and session store (`Handlers`)."""

    def __init__(self, handlers: Handlers):
        self.handlers = handlers
        self.bank, self.menu, self.store = handlers.bank, handlers.menu, handlers.store

    def outputs(self, views: DuelViews, fields: Sequence[str] = SHOWN) -> list:
        return views.outputs(self.menu.names, fields)

    def _runs(self, request: gr.Request | None) -> tuple[Run, Run] | None:
        """This session's two runs, or None before a duel (or once the store dropped either side)."""
        sid = _session_id(request)
        runs = tuple(self.store.get(side_key(sid, side)).run for side in SIDES)
        if any(run is None for run in runs):
            return None
        return runs[0], runs[1]

    # ------------------------------------------------------------------------------------------ views
    def _sampler(self, settings: RunSettings) -> str:
        """A side's sampler and steps as its caption names them ("recommended" says which sampler that was)."""
        used = sorted({settings.sampler_for(self.bank.models[name]) for name in settings.models})
        name = settings.sampler if used == [settings.sampler] else f"{settings.sampler} ({', '.join(used)})"
        return f"{name} · {settings.steps} steps"

    def _caption(self, run: Run, step: int) -> str:
        state = f'<span style="color:{STATE_COLOURS[run.state]}">●</span>'
        shown = f"step {step} of {run.num_steps}, t = {float(_times(run)[step]):.3f}"
        return f"{state} **{self._sampler(run.settings)}** — {shown}"

    def _status(self, runs: Sequence[Run], t: float, note: str = "") -> str:
        parts = [f"Both at t = {t:.3f}"]
        for side, run in zip(SIDES, runs):
            elapsed = (run.ended or time.monotonic()) - run.started
            done = max(run.latest, 0)  # state 0 is the prior: step k is the k-th update
            parts.append(f"{side}: {plural(done, 'step')} in {elapsed:.1f} s ({run.state.value})")
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
                picture(run.frames[name], step) for run, step in zip(runs, steps) for picture in (render.theta_image, render.output_image)
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
        except ValueError as e:
            raise _invalid(e) from None
        sid = _session_id(request)
        started: list[Run] = []
        try:
            for side, s in zip(SIDES, settings):
                started.append(self.store.start_run(side_key(sid, side), s, self.bank.models))
        except RunTooLarge as e:
            for run in started:  # a duel runs both sides or neither
                run.stop()
            raise _invalid(e) from None
        runs = tuple(started)
        groups: Any = {name: (gr.Column(visible=name in runs[0].frames),) * 2 for name in self.menu.names}
        try:
            with self.handlers.streams.stream():
                yield from self._stream(runs, groups)
        finally:
            for run in runs:
                if run.running:  # the client went away or the event was cancelled
                    run.stop()

    def _stream(self, runs: tuple[Run, Run], groups: Any) -> Iterator[list]:
        """Both sides' views while they sample, paced by the app's stream budget; the last is where they ended."""
        shown, pace = None, self.handlers.streams.pace(self.handlers.stream_interval, self.handlers.plot_interval)
        while True:
            for run in runs:
                _raise_if_failed(run)
                run.touch()
            ended = not any(run.running for run in runs)
            t = live_t(runs)
            state = (t, tuple(run.latest for run in runs), ended)
            if t is not None and state != shown:
                plots = pace.update(ended)
                if runs[0].follow_live:
                    views = self._views(runs, t, plots=plots)
                else:
                    views = DuelViews(status=self._status(runs, t, "viewing another t — drag to the end to follow"))
                views.groups = groups
                yield self.outputs(views, DUELED)
                groups, shown = UNSET, state
            if ended:
                break
            pace.poll()  # the runs move on meanwhile
        for run in runs:
            _raise_if_failed(run)

    def scrub(self, t: Any, request: gr.Request) -> list:
        """Both sides at time `t` (each at its latest step at or before t, of those recorded so far)."""
        try:
            t = parse_float("t", t, 0.0, 1.0)
        except ValueError as e:
            raise _invalid(e) from None
        runs = self._runs(request)
        if runs is None or live_t(runs) is None:
            return self.outputs(DuelViews(status="Press **Run the duel** first: there is no duel to scrub through yet."))
        for run in runs:
            run.touch()
        reached = live_t(runs)
        runs[0].follow_live = t >= reached  # dragging to the newest t follows the live duel again
        return self.outputs(self._views(runs, t, slider=False))

    def stop(self, request: gr.Request) -> list:
        """Stop both sides and show them at the latest t both reached."""
        runs = self._runs(request)
        if runs is None:
            return self.outputs(DuelViews(status="No duel is running."))
        for run in runs:
            run.stop(wait=2.0)
        runs[0].follow_live = True
        t = live_t(runs)
        if t is None:
            return self.outputs(DuelViews(status="Stopped before the first step."))
        return self.outputs(self._views(runs, t))

    def forget(self, request: gr.Request) -> None:
        """The tab was closed: stop and drop both sides."""
        sid = _session_id(request)
        for side in SIDES:
            self.store.drop(side_key(sid, side))

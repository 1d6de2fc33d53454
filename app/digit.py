"""The handlers of "Your digit through the BFN": a drawing (or a digit just generated) through every loaded model.

A digit comes from the sketchpad (made MNIST-like by `bfn.digits.to_field`: one MNIST digit, or one per digit
of a two-digit model's numbers) or is the final sample of an image
of this session's last generation, and becomes each model's data through `bfn.completion.known_data` (the seed
fixes any random draw, e.g. a binarisation). Then, per model:

* /score: the bound L_y(x) = L∞ + Lʳ under every label (`bfn.scoring.score_images`: S stratified times, common
  random numbers) and Bayes' rule over them (`bfn.scoring.predictions`), beside the digit classifier's answer;
  the loss's curve over t (a second call, on a grid of times); and the training view below at t.
* /flow_at: what the network sees in training at time t: θ ~ p_F(θ | x; t) (seeded, so moving t moves one
  draw) and its output distribution given a label, with the generation views' heatmap.
* /complete: the sampler told the known pixels (`run_sampler(..., known=)`), each model with its recommended
  sampler and steps, streamed into `Frames` like a generation; /complete_scrub shows any recorded step.

Like `app.handlers`, there is no maths here and nothing asks which kind a flow is: numbers come from bfn/,
pictures and figures from `app.render` and `app.digit_render`, words from the flows' `display`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np
import torch

from app import render
from app.digit_render import BoundRows, CostCurve, bound_summary, bound_table, cost_figure, label_name, posterior_figure
from app.frames import Frames
from app.handlers import UNSET, Handlers, Views, _invalid, _per_model, _session_id, plot
from app.params import MAX_GUIDANCE, MAX_SEED, MIN_GUIDANCE, LabelSet, echo, parse_float, parse_int
from bfn.classifier import digits_of
from bfn.completion import RESAMPLE, UNKNOWN_GREY, completed_images, known_data, known_view
from bfn.digits import HALVES, INK_LEVEL, half_mask, to_field
from bfn.flow import NllUnit
from bfn.images import to_uint8, to_unit
from bfn.model import BFNModel
from bfn.objective import LabelBounds, network_output
from bfn.sampling import StepState, get_sampler
from bfn.scoring import predictions, score_images

SAMPLES = 32  # S: draws per label; 2·S·11 network passes per model, ~0.35 s on one core of the 2-core dev host
# The curve over t is a second, smaller call on a grid of times (one θ draw each, all labels). Its mean is not the
# L∞ that Bayes' rule reads: on a grid the continuous model classified 17 of 30 MNIST test digits right, with S
# stratified random times 28 (the binarised one all 30 either way), so the bounds keep the random times.
CURVE_POINTS = 24
STROKES = "strokes"  # keep the ink pixels of the digit itself
KEEPS = (*HALVES, STROKES)
KEEP_LABELS = {"top": "Top half", "bottom": "Bottom half", "left": "Left half", "right": "Right half", STROKES: "My strokes (the ink)"}
SOURCES = ("drawing", "generated")
PREDICTED = "predicted"  # the label choice that follows each model's own prediction
NONE = "none"  # completion towards no digit in particular
MAX_SESSIONS = 256  # digit sessions kept (a completion records ≤ 0.4 MB); the least recently used go first
BITS = NllUnit("bits", per_dim=False, per_bit=True)
STATE_COLOURS = {"running": "#4f46e5", "done": "#16a34a", "stopped": "#b45309"}


@dataclass
class DigitViews:
    """What an event of the digit view shows (or, in the layout, its components), as `app.handlers.Views`.

    Attributes:
        status: the Markdown line of the scoring; prepared: the MNIST-like digit (the models' input).
        data: per model, the digit as that model's data; posterior: the bar chart of p(y | x).
        costs: the loss curves; tables, bounds: per model, the bounds per label (a table) and in one line.
        flow_images: per model (θ, output distribution) at t; flow_heatmaps: per model, their heatmap;
        flow_status: the line above them.
        completion: per model (known pixels, θ, output distribution, completion) at the step on show;
        completion_slider (t), completion_heatmaps (per model), completion_status.
    """

    status: Any = UNSET
    prepared: Any = UNSET
    data: Any = _per_model(1)
    posterior: Any = UNSET
    costs: Any = UNSET
    tables: Any = _per_model(1)
    bounds: Any = _per_model(1)
    flow_images: Any = _per_model(2)
    flow_heatmaps: Any = _per_model(1)
    flow_status: Any = UNSET
    completion: Any = _per_model(4)
    completion_slider: Any = UNSET
    completion_heatmaps: Any = _per_model(1)
    completion_status: Any = UNSET

    outputs = Views.outputs


FLOW = ("costs", "bounds", "flow_images", "flow_heatmaps", "flow_status")  # /flow_at
SCORED = ("status", "prepared", "data", "posterior", "tables", *FLOW)  # /score
COMPLETED = ("completion", "completion_slider", "completion_heatmaps", "completion_status")  # /complete, its scrub and stop


@dataclass
class Scored:
    """One model's verdict on the digit: its bounds, Bayes' rule over them, and what that cost."""

    x: torch.Tensor  # the digit as the model's data (1, C, H, W)
    bounds: LabelBounds  # from S stratified times: what Bayes' rule reads
    curve: LabelBounds  # from the grid of CURVE_POINTS times: its `curve` is drawn
    posterior: np.ndarray  # (digits,)
    predicted: int
    seconds: float  # for the bounds
    curve_seconds: float


class Completion:
    """One completion: per model, the sampler's states recorded into `Frames` as they come, models advanced in turn
    (the one furthest behind first, so that both reach t = 1 together), in the caller's thread."""

    def __init__(self, models: Mapping[str, BFNModel], titles: Mapping[str, str], image: np.ndarray, mask: np.ndarray,
                 label: int | None, guidance: float, seed: int):
        self.mask, self.label, self.guidance, self.seed = mask, label, guidance, seed
        known = torch.from_numpy(mask)[None, None]
        self.frames: dict[str, Frames] = {}
        self.data: dict[str, torch.Tensor] = {}
        self.samplers: dict[str, str] = {}
        self.completed: dict[str, np.ndarray] = {}  # the final completions in [0, 1] (H, W)
        self._states: dict[str, Iterator[StepState]] = {}
        for name, model in models.items():
            steps = model.sampling.steps
            self.samplers[name] = model.sampling.sampler_for(steps)
            self.data[name] = x = known_data(model.flow, image[None], seed)
            self.frames[name] = Frames(model.flow, 1, steps, title=titles[name], labels=LabelSet.of(model))
            self._states[name] = get_sampler(self.samplers[name])(
                model, [label], steps=steps, guidance=guidance, seed=seed, known=(x, known), resample=RESAMPLE,
                rescaled_phi=model.sampling.rescaled_phi,
            )  # fmt: skip
        self._stop = threading.Event()
        self.started, self.ended = time.monotonic(), None

    @property
    def state(self) -> str:
        if all(fr.finished for fr in self.frames.values()):
            return "done"
        return "stopped" if self._stop.is_set() or self.ended is not None else "running"

    def advance(self) -> Iterator[str]:
        """Record the next state of the model furthest behind, until every model is done or `stop` is called;
        yields the name of the model that moved."""
        try:
            while self._states and not self._stop.is_set():
                name = min(self._states, key=lambda n: self.frames[n].count / (self.frames[n].num_steps + 1))
                state = next(self._states[name], None)
                if state is None:
                    del self._states[name]
                    continue
                self.frames[name].record(state)
                if state.is_final:
                    flow = self.frames[name].flow
                    self.completed[name] = completed_images(flow, state, self.data[name], torch.from_numpy(self.mask))[0]
                yield name
        finally:
            self._states.clear()
            self.ended = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def step_at(self, name: str, t: float) -> int:
        """The recorded step of model `name` whose time is nearest to t."""
        fr = self.frames[name]
        return int(np.abs(fr.t[: fr.count] - t).argmin()) if fr.count else 0


@dataclass
class DigitSession:
    """A session's digit: where it came from, each model's verdict, and its latest completion."""

    image: np.ndarray | None = None  # (H, W) in [0, 1], the models' image size
    source: str = ""
    seed: int = 0
    scores: dict[str, Scored] = field(default_factory=dict)
    classifier: np.ndarray | None = None
    completion: Completion | None = None


class DigitStore:
    """Session id → `DigitSession`, at most `max_sessions` of them (least recently used dropped first)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS):
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, DigitSession] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> DigitSession:
        with self._lock:
            session = self._sessions.setdefault(session_id, DigitSession())
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > self.max_sessions:
                _, old = self._sessions.popitem(last=False)
                if old.completion is not None:
                    old.completion.stop()
            return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None and session.completion is not None:
            session.completion.stop()


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {echo(value)}")
    return value


def _label(name: str, value: Any, num_labels: int, other: str) -> int | None:
    """A digit 0 … num_labels−1 (int or numeric string), or `other` (→ None)."""
    if value == other:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_labels:
        raise ValueError(f"{name} must be a digit from 0 to {num_labels - 1} or {other!r}; got {echo(value)}")
    return value


def drawing_image(drawing: Any) -> np.ndarray:
    """The sketchpad's value (its preprocessed dict, or an image array) → the drawing as an array `to_field` takes."""
    if isinstance(drawing, dict):
        image = drawing.get("composite")
        if image is None and drawing.get("layers"):
            image = drawing["layers"][0]
        drawing = image
    if drawing is None:
        raise ValueError("the drawing is empty: draw a digit on the sketchpad first (or take a generated one)")
    if not isinstance(drawing, np.ndarray):
        raise ValueError(f"the drawing must be an image; got {type(drawing).__name__}")
    return drawing


def known_mask(keep: str, digit: np.ndarray) -> np.ndarray:
    """Which pixels a completion keeps: a half, or the digit's ink (the strokes); refuses none and all."""
    mask = half_mask(keep, digit.shape) if keep in HALVES else digit >= INK_LEVEL
    if not mask.any():
        raise ValueError("the mask keeps no pixel: there is nothing to complete from (draw more ink, or keep a half)")
    if mask.all():
        raise ValueError("the mask keeps every pixel: there is nothing left to complete (keep a half instead)")
    return mask


@torch.inference_mode()
def flow_state(model: BFNModel, x: torch.Tensor, t: float, label: int, seed: int) -> StepState:
    """What the network sees in training at time t: θ ~ p_F(θ | x; t), drawn from `seed` (so that every t uses the
    same noise), and its output distribution given `label`, as a one-step state for `Frames`."""
    flow = model.flow
    times = torch.full((x.shape[0],), float(t))
    theta = flow.bayesian_flow(x, times, torch.Generator().manual_seed(seed))
    raw = network_output(model, flow.network_input(theta), times, torch.full((x.shape[0],), label, dtype=torch.long))
    precision = flow.precision_view(theta)
    return StepState(
        step=0, num_steps=0, t=float(t), theta=flow.theta_view(theta)[:, 0], precision=precision,
        output=flow.output_view(flow.output(raw, theta, times))[:, 0], value_range=flow.display.value_range,
    )  # fmt: skip


def picture(values: np.ndarray) -> np.ndarray:
    """uint8 images (B, H, W) as the views show them: a grid with the generation views' padding."""
    return render.GridLayout(values.shape[0], values.shape[-1]).draw(values)


class DigitHandlers:
    """The digit view's handlers, next to (and reading the last generation of) the app's `Handlers`."""

    def __init__(self, handlers: Handlers, *, samples: int = SAMPLES, curve_points: int = CURVE_POINTS, store: DigitStore | None = None):
        self.handlers = handlers
        self.bank = handlers.bank
        self.menu = handlers.menu
        # One drawing is one input of one shape: the section runs the models that share the first one's labels
        # and image size (`ModelMenu.side_by_side`); a model of other labels is left to the generation above.
        self.names = self.menu.side_by_side
        self.models = {name: self.bank.models[name] for name in self.names}
        self.labels = self.menu.labels[self.names[0]]
        self.samples, self.curve_points = samples, curve_points
        self.store = store or DigitStore()

    def outputs(self, views: DigitViews, fields: tuple[str, ...]) -> list:
        return views.outputs(self.names, fields)

    # ------------------------------------------------------------------------------------------ inputs
    def _digit(self, drawing: Any, source: Any, generated_by: Any, image: Any, request: gr.Request | None) -> tuple[np.ndarray, str]:
        """(the models' input in [0, 1]: an MNIST-like digit, or one per digit of a number; what it is) from the
        chosen source; ValueError with what is wrong."""
        if _choice("source", source, SOURCES) == "drawing":
            return to_field(drawing_image(drawing), self.labels.shape, max(1, self.labels.digit_parts)), "your drawing"
        run = self.handlers.store.get(_session_id(request)).run
        if run is None:
            raise ValueError("no digit has been generated in this session yet: press Generate above first, or use your drawing")
        name = _choice("generated_by", generated_by, self.names)
        frames = run.frames.get(name)
        if frames is None:
            raise ValueError(f"the last generation did not run the {self.menu.titles[name]} model; it ran: "
                             f"{', '.join(self.menu.titles[n] for n in run.frames)}")  # fmt: skip
        if frames.sample is None:
            raise ValueError("the last generation has no final sample yet (still running, or stopped): let it finish, or generate again")
        k = parse_int("image", image, 0, frames.batch - 1)
        label = run.labels[k]
        what = f"image {k} of the last generation ({frames.title}, {'unconditional' if label is None else f'digit {label}'})"
        return to_unit(frames.sample[k].astype(np.float32), frames.value_range), what

    def _session(self, request: gr.Request | None) -> DigitSession:
        return self.store.get(_session_id(request))

    # ------------------------------------------------------------------------------------------ views
    def _labels(self, session: DigitSession, label: int | None) -> dict[str, int]:
        """The label each model's curve and training view use: the one chosen, else the model's prediction."""
        return {name: s.predicted if label is None else label for name, s in session.scores.items()}

    def _rows(self, model: BFNModel, scored: Scored) -> BoundRows:
        b = scored.bounds
        units = {BITS.name: b.in_unit(BITS)[0].numpy()}
        if model.flow.nll_unit.per_dim:  # a per-dimension unit (bits/dim) says something the per-image ones do not
            units[model.flow.nll_unit.name] = b.in_unit(model.flow.nll_unit)[0].numpy()
        return BoundRows(b.loss[0].numpy(), b.reconstruction[0].numpy(), b.total[0].numpy(), units, scored.posterior,
                         self.labels)

    def _flow_views(self, session: DigitSession, t: float, label: int | None) -> DigitViews:
        """The training view at t, and the cost curves and bounds for the labels on show."""
        labels = self._labels(session, label)
        frames, curves, bounds, heatmaps = {}, [], {}, {}
        for name, scored in session.scores.items():
            model, title = self.models[name], self.menu.titles[name]
            fr = frames[name] = Frames(model.flow, 1, 0, title=title, labels=self.labels)
            fr.record(flow_state(model, scored.x, t, labels[name], session.seed))
            heatmap = render.pixel_heatmap({name: fr}, 0, 0, (), [labels[name]])
            given = label_name(labels[name], self.menu.num_labels, self.labels.names)
            heatmap["layout"]["title"]["text"] = f"θ ~ p_F(θ | x; t = {t:.3f}); hover: θ and the output given digit {given}"
            heatmaps[name] = plot(heatmap)
            curves.append(CostCurve(title, scored.curve.times.numpy(), scored.curve.curve[0].numpy(), labels[name],
                                    self.labels))
            bounds[name] = bound_summary(title, self._rows(model, scored), labels[name])
        n = self.menu.num_labels
        given = ", ".join(f"{self.menu.titles[name]}: {label_name(y, n, self.labels.names)}" for name, y in labels.items())
        accuracy = " · ".join(
            f"{fr.title} β(t) = {fr.flow.accuracy(t):.4g}"
            + ("" if fr.precision is None else f", ρ = {float(fr.precision[0].mean()):.4g}")  # θ with a precision: how sure
            for fr in frames.values()
        )
        status = (f"{session.source[0].upper()}{session.source[1:]} at t = {t:.3f} · {accuracy} · θ drawn with seed "
                  f"{session.seed} · the output distribution is the network's prediction given the digit ({given})")  # fmt: skip
        return DigitViews(
            costs=plot(cost_figure(curves, t)), bounds=bounds, flow_heatmaps=heatmaps, flow_status=status,
            flow_images={name: (render.theta_image(fr, 0), render.output_image(fr, 0)) for name, fr in frames.items()},
        )  # fmt: skip

    def _completion_views(self, completion: Completion, t: float | None = None, *, plots: bool = True, note: str = "") -> DigitViews:
        """The completion at time t (None: the latest step of each model)."""
        views = DigitViews(completion={}, completion_heatmaps={})
        parts, shown_t = [], []
        for name, fr in completion.frames.items():
            if fr.count == 0:
                views.completion[name] = (None, None, None, None)
                views.completion_heatmaps[name] = UNSET
                continue
            step = fr.latest if t is None else completion.step_at(name, t)
            shown_t.append(float(fr.t[step]))
            vr = fr.value_range
            seen = to_uint8(known_view(fr.flow, completion.data[name]), vr)
            known = picture(np.where(completion.mask, seen, UNKNOWN_GREY).astype(np.uint8))
            done = completion.completed.get(name)
            views.completion[name] = (
                known, render.theta_image(fr, step), render.output_image(fr, step), None if done is None else picture(to_uint8(done[None])),
            )  # fmt: skip
            if plots:
                heatmap = render.pixel_heatmap({name: fr}, step, 0, (), [completion.label])
                heatmap["layout"]["title"]["text"] = f"θ at step {step} of {fr.num_steps}; hover: θ and the output distribution"
                views.completion_heatmaps[name] = plot(heatmap)
            else:
                views.completion_heatmaps[name] = UNSET
            parts.append(f"{fr.title}: step {step} of {fr.num_steps} (t = {fr.t[step]:.3f}, {completion.samplers[name]})")
        state = completion.state
        elapsed = (completion.ended or time.monotonic()) - completion.started
        towards = "no digit in particular" if completion.label is None else f"digit {completion.label}, guidance {completion.guidance:g}"
        line = (f'<span style="color:{STATE_COLOURS[state]}">●</span> **{state.capitalize()}** — ' + " · ".join(parts)
                + f" · {elapsed:.1f} s  \n<small>{int(completion.mask.sum())} pixels known · towards {towards} · every step "
                f"taken {RESAMPLE}× (resampling) · seed {completion.seed}{' · ' + note if note else ''}</small>")  # fmt: skip
        views.completion_status = line
        if shown_t:
            views.completion_slider = gr.Slider(value=round(min(shown_t), 3))
        return views

    # --------------------------------------------------------------------------------------- handlers
    def score(self, drawing: Any, source: Any, generated_by: Any, image: Any, seed: Any, t: Any, label: Any, request: gr.Request) -> list:
        """Make the digit each model's data and score it under every label: Bayes' rule, bounds, curves, and the
        training view at t."""
        try:
            seed = parse_int("seed", seed, 0, MAX_SEED)
            t = parse_float("t", t, 0, 1)
            label = _label("label", label, self.menu.num_labels, PREDICTED)
            digit, what = self._digit(drawing, source, generated_by, image, request)
        except ValueError as e:
            raise _invalid(e) from None
        session = self._session(request)
        scores = {}
        for name, model in self.models.items():
            x = known_data(model.flow, digit[None], seed)
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(seed)
            bounds = next(score_images(model, x, self.samples, generator))
            seconds = time.perf_counter() - start
            curve = next(score_images(model, x, 1, generator, curve_points=self.curve_points))
            posterior, predicted = predictions(bounds, model.num_labels)
            scores[name] = Scored(x, bounds, curve, posterior[0].numpy(), int(predicted[0]), seconds, time.perf_counter() - start - seconds)
        classifier = self.bank.classifier if self.labels.digit_parts == 1 else None  # it reads one digit, not a number
        probs = None if classifier is None else classifier.probabilities(digits_of(torch.from_numpy(digit)[None], 1)[:, 0])[0].numpy()
        session.image, session.source, session.seed, session.scores, session.classifier = digit, what, seed, scores, probs
        views = self._flow_views(session, t, label)
        views.prepared = picture(to_uint8(digit[None]))
        views.data = {}
        for name, s in scores.items():
            flow = self.models[name].flow
            views.data[name] = picture(to_uint8(known_view(flow, s.x), flow.display.value_range))
        views.posterior = plot(posterior_figure({self.menu.titles[n]: s.posterior for n, s in scores.items()}, probs,
                                                     self.labels.names))
        views.tables = {name: bound_table(self._rows(self.models[name], s)) for name, s in scores.items()}
        views.status = self._score_status(session)
        return self.outputs(views, SCORED)

    def _score_status(self, session: DigitSession) -> str:
        n = self.menu.num_labels
        labels = n + 1  # every digit and "no class"
        verdicts = [f"{self.menu.titles[name]}: **{s.predicted}** ({s.posterior[s.predicted]:.0%}) in {1000 * s.seconds:.0f} ms"
                    for name, s in session.scores.items()]  # fmt: skip
        if session.classifier is not None:
            top = int(session.classifier.argmax())
            verdicts.append(f"classifier: **{top}** ({session.classifier[top]:.0%})")
        else:
            verdicts.append("no digit classifier loaded" if self.labels.digit_parts == 1 else
                            f"the digit classifier reads single digits, not {self.labels.word}s")
        curves = ", ".join(f"{1000 * s.curve_seconds:.0f} ms" for s in session.scores.values())
        return (f"Scored {session.source} · " + " · ".join(verdicts) + f"  \n<small>S = {self.samples} draws per label: "
                f"2·{self.samples}·{labels} = {2 * self.samples * labels} network passes per model (the loss at {self.samples} "
                f"stratified times and Lʳ at t = 1, every label seeing the same draws); the curves over t another "
                f"({self.curve_points} + 1)·{labels} = {(self.curve_points + 1) * labels} ({curves}) · seed {session.seed}</small>")  # fmt: skip

    def flow_at(self, t: Any, label: Any, request: gr.Request) -> list:
        """The training view at time t (and the curves and bounds for `label`) for the digit scored last."""
        try:
            t = parse_float("t", t, 0, 1)
            label = _label("label", label, self.menu.num_labels, PREDICTED)
        except ValueError as e:
            raise _invalid(e) from None
        session = self._session(request)
        if not session.scores:
            return self.outputs(DigitViews(flow_status="Score a digit first (**Score this digit** above)."), FLOW)
        return self.outputs(self._flow_views(session, t, label), FLOW)

    def complete(self, drawing: Any, source: Any, generated_by: Any, image: Any, seed: Any, keep: Any, digit: Any,
                 guidance: Any, request: gr.Request) -> Iterator[list]:
        """Keep part of the digit and let each model generate the rest; streams the views, ends with the final."""
        try:
            seed = parse_int("seed", seed, 0, MAX_SEED)
            keep = _choice("keep", keep, KEEPS)
            label = _label("digit", digit, self.menu.num_labels, NONE)
            guidance = parse_float("guidance", guidance, MIN_GUIDANCE, MAX_GUIDANCE)
            image_01, _ = self._digit(drawing, source, generated_by, image, request)
            mask = known_mask(keep, image_01)
        except ValueError as e:
            raise _invalid(e) from None
        session = self._session(request)
        if session.completion is not None:
            session.completion.stop()
        completion = session.completion = Completion(self.models, self.menu.titles, image_01, mask, label, guidance, seed)
        streams, steps = self.handlers.streams, completion.advance()
        with streams.stream():
            pace = streams.pace(self.handlers.stream_interval, self.handlers.plot_interval)
            try:
                for _ in steps:
                    if pace.due:
                        yield self.outputs(self._completion_views(completion, plots=pace.update()), COMPLETED)
            finally:
                steps.close()  # also when the client went away or the event was cancelled: the samplers end here
            yield self.outputs(self._completion_views(completion), COMPLETED)

    def complete_scrub(self, t: Any, request: gr.Request) -> list:
        """The completion at time t (each model at its recorded step nearest to t)."""
        try:
            t = parse_float("t", t, 0, 1)
        except ValueError as e:
            raise _invalid(e) from None
        completion = self._session(request).completion
        if completion is None:
            nothing = DigitViews(completion_status="Press **Complete** first: there is no completion to scrub through yet.")
            return self.outputs(nothing, COMPLETED)
        views = self._completion_views(completion, t)
        views.completion_slider = UNSET  # the slider stays where the user put it
        return self.outputs(views, COMPLETED)

    def stop(self, request: gr.Request) -> list:
        """Stop this session's completion; show where it got to."""
        completion = self._session(request).completion
        if completion is None:
            return self.outputs(DigitViews(completion_status="Nothing to stop."), COMPLETED)
        completion.stop()
        return self.outputs(self._completion_views(completion, note="stopped"), COMPLETED)

    def forget(self, request: gr.Request) -> None:
        """The tab was closed: drop its digit and completion."""
        self.store.drop(_session_id(request))

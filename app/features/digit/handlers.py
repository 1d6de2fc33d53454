"""The events of "Your digit through the BFN": a drawing (or a digit just generated) through every loaded model.

A digit comes from the sketchpad (made MNIST-like by `bfn.digits.to_field`: one MNIST digit, or one per digit
of a two-digit model's numbers) or is the final sample of an image of this session's last generation, and
becomes each model's data through `bfn.completion.known_data` (the seed fixes any random draw, e.g. a
binarisation). Then, per model:

* /score: the bound L_y(x) = L∞ + Lʳ under every label (`bfn.scoring.score_images`: S stratified times, common
  random numbers) and Bayes' rule over them (`bfn.scoring.predictions`), beside the digit classifier's answer,
  with a warning where the digit is far from the model's data (`bfn.typicality`: its unconditional bound above
  the `FAR_PERCENTILE`-th percentile of real test digits', measured beside the weights) and one where the
  classifier reads another digit (`DigitHandlers._cautions`);
  the loss's curve over t (a second call, on a grid of times); and the training view below at t.
* /flow_at: what the network sees in training at time t: θ ~ p_F(θ | x; t) (seeded, so moving t moves one
  draw) and its output distribution given a label, with the generation views' heatmap.
* /complete: a completion run (`app.core.runs.completion`: the sampler told the known pixels, each model with
  its recommended sampler and steps), streamed like every run; /complete_scrub shows any recorded step.

Every network pass takes turns on the CPU with every run's (`app.core.fairshare`). There is no maths here and
nothing asks which kind a flow is: numbers come from bfn/, pictures and figures from `app.ui` and `figures.py`,
words from the flows' `display`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
import torch

from app.core.fairshare import TakingTurns, Turns
from app.core.frames import Frames
from app.core.runs import Run, completion
from app.core.settings import MAX_GUIDANCE, MAX_SEED, MIN_GUIDANCE, parse_choice, parse_float, parse_int
from app.features.digit.figures import (FAR_MARK, BoundRows, CostCurve, bound_summary, bound_table, cost_figure,
                                        disagreement_mark, disagreement_warning, far_warning, label_name, posterior_figure)
from app.features.digit.inputs import KEEPS, NONE, PREDICTED, SOURCES, drawing_image, known_mask, parse_label_or
from app.features.digit.pad import Blobs
from app.ui.context import Context
from app.ui.figures import pixel_heatmap
from app.ui.images import output_image, picture, theta_image
from app.ui.views import NOTHING_SAMPLED, UNSET, ViewSet, elapsed, invalid, parsed, per_model, plot, session_id, status
from bfn.classifier import digits_of
from bfn.completion import RESAMPLE, UNKNOWN_GREY, known_data, known_view
from bfn.digits import to_field
from bfn.flow import NllUnit
from bfn.images import to_uint8, to_unit
from bfn.model import BFNModel
from bfn.objective import LabelBounds, network_output
from bfn.sampling import Network, StepState
from bfn.scoring import predictions, score_images
from bfn.typicality import Typicality, typicality, unconditional

SAMPLES = 32  # S: draws per label, 2·S·11 network passes per model (their time: docs/measurements.md)
# The curve over t is a second, smaller call on a grid of times (one θ draw each, all labels). Its mean is not the
# L∞ that Bayes' rule reads: the bounds keep the S stratified random times, which classified better
# (docs/measurements.md, "Your digit").
CURVE_POINTS = 24
FEATURE = "digit"  # what the feature keeps for a session (`DigitSession`) is under this name in the store
COMPLETION = "complete"  # the session's slot of its completion run
BITS = NllUnit("bits", per_dim=False, per_bit=True)


@dataclass
class DigitViews(ViewSet):
    """What an event of the digit view shows (or, in the layout, its components), one field per view.

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
    data: Any = per_model(1)
    posterior: Any = UNSET
    costs: Any = UNSET
    tables: Any = per_model(1)
    bounds: Any = per_model(1)
    flow_images: Any = per_model(2)
    flow_heatmaps: Any = per_model(1)
    flow_status: Any = UNSET
    completion: Any = per_model(4)
    completion_slider: Any = UNSET
    completion_heatmaps: Any = per_model(1)
    completion_status: Any = UNSET


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
    typical: Typicality | None = None  # its unconditional bound against real test digits'; None: never measured

    @property
    def arrays(self) -> list:
        """Its tensors and arrays (what its memory is)."""
        terms = [getattr(b, f) for b in (self.bounds, self.curve) for f in ("loss", "reconstruction", "times", "curve")]
        return [self.x, self.posterior, *terms]


@dataclass
class DigitSession:
    """What the feature keeps for a session: its digit, where it came from, and each model's verdict (its
    completion is a run in the session's `COMPLETION` slot)."""

    image: np.ndarray | None = None  # (H, W) in [0, 1], the models' image size
    source: str = ""
    noun: str = "drawing"  # what the digit is, in the far-from-data warning
    seed: int = 0
    scores: dict[str, Scored] = field(default_factory=dict)
    classifier: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """Its memory, as the store's budget counts it (`app.core.store.SessionStore.keep`)."""
        arrays = [self.image, self.classifier, *(a for s in self.scores.values() for a in s.arrays)]
        return sum(a.nbytes for a in arrays if a is not None)


class Caution(NamedTuple):
    """A reason not to take a model's answer at its word: the mark beside the answer, and the line that explains it."""

    mark: str
    warning: str


@torch.inference_mode()
def flow_state(model: Network, x: torch.Tensor, t: float, label: int, seed: int) -> StepState:
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


def step_at(frames: Frames, t: float) -> int:
    """The recorded step of `frames` whose time is nearest to t."""
    return int(np.abs(frames.t[: frames.count] - t).argmin()) if frames.count else 0


class DigitHandlers:
    """The digit view's handlers, on the app's `Context` (they read the session's last generation from its store)."""

    def __init__(self, ctx: Context, *, samples: int = SAMPLES, curve_points: int = CURVE_POINTS):
        self.ctx, self.bank, self.menu = ctx, ctx.bank, ctx.menu
        # One drawing is one input of one shape: the section runs the models that share the first one's labels
        # and image size (`ModelMenu.side_by_side`); a model of other labels is left to the generation above.
        self.names = self.menu.side_by_side
        self.models = {name: self.bank.models[name] for name in self.names}
        self.labels = self.menu.labels[self.names[0]]
        self.samples, self.curve_points = samples, curve_points
        self.blobs = Blobs()  # the drawings browsers upload ahead of /score and /complete (`pad.DrawingPad`)

    def outputs(self, views: DigitViews, fields: tuple[str, ...]) -> list:
        return views.outputs(self.names, fields)

    # ------------------------------------------------------------------------------------------ inputs
    def _digit(self, drawing: Any, source: Any, generated_by: Any, image: Any, request: gr.Request | None) -> tuple[np.ndarray, str]:
        """(the models' input in [0, 1]: an MNIST-like digit, or one per digit of a number; what it is) from the
        chosen source; ValueError with what is wrong."""
        if parse_choice("source", source, SOURCES) == "drawing":
            return to_field(drawing_image(drawing, self.blobs), self.labels.shape, max(1, self.labels.digit_parts)), "your drawing"
        run = self.ctx.session(request).run
        if run is None:
            raise ValueError("no digit has been generated in this session yet: press Generate above first, or use your drawing")
        name = parse_choice("generated_by", generated_by, self.names)
        frames = run.frames.get(name)
        if frames is None:
            raise ValueError(f"the last generation did not run the {self.menu.titles[name]} model; it ran: "
                             f"{', '.join(self.menu.titles[n] for n in run.frames)}")  # fmt: skip
        if frames.sample is None:
            raise ValueError("the last generation has no final sample yet (still running, or stopped): let it finish, or generate again")
        k = parse_int("image", image, 0, frames.batch - 1)
        label = run.settings.labels[k]
        what = f"image {k} of the last generation ({frames.title}, {'unconditional' if label is None else f'digit {label}'})"
        return to_unit(frames.sample[k].astype(np.float32), frames.value_range), what

    def _session(self, request: gr.Request | None) -> DigitSession:
        """The session's digit, or an empty one (not kept: only /score keeps a digit)."""
        return self.ctx.store.found(session_id(request), FEATURE) or DigitSession()

    def _turns(self, model: BFNModel) -> Network:
        """`model`, its passes taking turns on the CPU with every run's."""
        return TakingTurns(model, Turns(self.ctx.store.share))

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
            fr.record(flow_state(self._turns(model), scored.x, t, labels[name], session.seed))
            given = label_name(labels[name], self.menu.num_labels, self.labels.names)
            heatmaps[name] = plot(pixel_heatmap({name: fr}, 0, 0, (), [labels[name]],
                                                title=f"θ ~ p_F(θ | x; t = {t:.3f})<br>hover: θ and the output given digit {given}"))
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
            flow_images={name: (theta_image(fr, 0), output_image(fr, 0)) for name, fr in frames.items()},
        )  # fmt: skip

    def _completion_views(self, run: Run, t: float | None = None, *, plots: bool = True, note: str = "") -> DigitViews:
        """The completion `run` at time t (None: the latest step of each model)."""
        asked = run.settings  # `app.core.runs.CompletionSettings`
        views = DigitViews(completion={}, completion_heatmaps={})
        parts, shown_t = [], []
        for name, fr in run.frames.items():
            if fr.count == 0:
                views.completion[name] = (None, None, None, None)
                views.completion_heatmaps[name] = UNSET
                continue
            step = fr.latest if t is None else step_at(fr, t)
            shown_t.append(float(fr.t[step]))
            seen = to_uint8(known_view(fr.flow, asked.data[name]), fr.value_range)
            known = picture(np.where(asked.mask, seen, UNKNOWN_GREY).astype(np.uint8))
            done = run.outcome.get(name)
            views.completion[name] = (
                known, theta_image(fr, step), output_image(fr, step), None if done is None else picture(to_uint8(done[None])),
            )  # fmt: skip
            if plots:
                views.completion_heatmaps[name] = plot(pixel_heatmap(
                    {name: fr}, step, 0, (), [asked.label], title=f"θ at step {step} of {fr.num_steps}<br>hover: θ and the output distribution"))
            else:
                views.completion_heatmaps[name] = UNSET
            parts.append(f"{fr.title}: step {step} of {fr.num_steps} (t = {fr.t[step]:.3f}, {asked.samplers[name]})")
        line = " · ".join(parts) + f" · {elapsed(run):.1f} s" if parts else NOTHING_SAMPLED
        views.completion_status = status(run, line, self._completion_details(run, note))
        if shown_t:
            views.completion_slider = gr.Slider(value=round(min(shown_t), 3))
        return views

    def _completion_details(self, run: Run, note: str = "") -> str:
        """The small print below a completion's status: what it was asked, and `note`."""
        asked = run.settings
        towards = "no digit in particular" if asked.label is None else f"digit {asked.label}, guidance {asked.guidance:g}"
        return (f"{int(asked.mask.sum())} pixels known · towards {towards} · every step taken {RESAMPLE}× (resampling) · "
                f"seed {asked.seed}{' · ' + note if note else ''}")  # fmt: skip

    # --------------------------------------------------------------------------------------- handlers
    def score(self, drawing: Any, source: Any, generated_by: Any, image: Any, seed: Any, t: Any, label: Any, request: gr.Request) -> list:
        """Make the digit each model's data and score it under every label: Bayes' rule, bounds, curves, and the
        training view at t."""
        try:
            seed = parse_int("seed", seed, 0, MAX_SEED)
            t = parse_float("t", t, 0, 1)
            label = parse_label_or("label", label, self.menu.num_labels, PREDICTED)
            digit, what = self._digit(drawing, source, generated_by, image, request)
        except ValueError as e:
            raise invalid(e) from None
        scores = {}
        for name, model in self.models.items():
            x = known_data(model.flow, digit[None], seed)
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(seed)
            net = self._turns(model)
            bounds = next(score_images(net, x, self.samples, generator))
            seconds = time.perf_counter() - start
            curve = next(score_images(net, x, 1, generator, curve_points=self.curve_points))
            posterior, predicted = predictions(bounds, model.num_labels)
            reference = model.typical_bounds
            typical = None if reference is None else typicality(float(unconditional(bounds, model.flow.nll_unit)[0]), reference)
            scores[name] = Scored(x, bounds, curve, posterior[0].numpy(), int(predicted[0]), seconds,
                                  time.perf_counter() - start - seconds, typical)
        classifier = self.bank.classifier if self.labels.digit_parts == 1 else None  # it reads one digit, not a number
        probs = None if classifier is None else classifier.probabilities(digits_of(torch.from_numpy(digit)[None], 1)[:, 0])[0].numpy()
        noun = "drawing" if source == "drawing" else "image"
        session = DigitSession(digit, what, noun, seed, scores, probs)
        self.ctx.store.keep(session_id(request), FEATURE, session)  # within the store's memory budget
        views = self._flow_views(session, t, label)
        views.prepared = picture(to_uint8(digit[None]))
        views.data = {}
        for name, s in scores.items():
            flow = self.models[name].flow
            views.data[name] = picture(to_uint8(known_view(flow, s.x), flow.display.value_range))
        marks = {self.menu.titles[name]: [c.mark for c in kept] for name, kept in self._cautions(session).items()}
        views.posterior = plot(posterior_figure({self.menu.titles[n]: s.posterior for n, s in scores.items()}, probs,
                                                self.labels.names, marks))
        views.tables = {name: bound_table(self._rows(self.models[name], s)) for name, s in scores.items()}
        views.status = self._score_status(session)
        return self.outputs(views, SCORED)

    def _cautions(self, session: DigitSession) -> dict[str, list[Caution]]:
        """Per model (by name), the cautions beside its answer: the digit is far from the model's data
        (`bfn.typicality`), or the digit classifier reads another digit. Bayes' rule is sure of something whatever
        the digit (its posterior sums to 1 over the labels), so a confident answer alone is no evidence; on drawn
        digits the two together leave few confident errors unmarked (docs/measurements.md, "Your digit")."""
        top = None if session.classifier is None else int(session.classifier.argmax())
        cautions: dict[str, list[Caution]] = {}
        for name, s in session.scores.items():
            title = self.menu.titles[name]
            cautions[name] = []
            if s.typical is not None and s.typical.far:
                cautions[name].append(Caution(FAR_MARK, far_warning(title, s.typical, session.noun, self.labels.word)))
            if top is not None and s.predicted != top:
                cautions[name].append(Caution(disagreement_mark(top), disagreement_warning(title, s.predicted, top)))
        return cautions

    def _score_status(self, session: DigitSession) -> str:
        """The line above the views of a scored digit: each model's answer with its cautions, the classifier's,
        a line for each caution, and in small print what the scoring cost."""
        n = self.menu.num_labels
        labels = n + 1  # every digit and "no class"
        cautions = self._cautions(session)
        verdicts = [f"{self.menu.titles[name]}: **{s.predicted}** ({s.posterior[s.predicted]:.0%}{''.join(', ' + c.mark for c in cautions[name])})"
                    f" in {1000 * s.seconds:.0f} ms" for name, s in session.scores.items()]  # fmt: skip
        top = None if session.classifier is None else int(session.classifier.argmax())
        if top is not None:
            verdicts.append(f"classifier: **{top}** ({session.classifier[top]:.0%})")
        else:
            verdicts.append("no digit classifier loaded" if self.labels.digit_parts == 1 else
                            f"the digit classifier reads single digits, not {self.labels.word}s")
        curves = ", ".join(f"{1000 * s.curve_seconds:.0f} ms" for s in session.scores.values())
        warnings = "".join(f"  \n{c.warning}" for kept in cautions.values() for c in kept)
        unchecked = [self.menu.titles[name] for name, s in session.scores.items() if s.typical is None]
        unmeasured = (f" · {', '.join(unchecked)}: no bounds of test {self.labels.word}s stored beside the weights, so no "
                      "check of how far the digit is from the data" if unchecked else "")
        return (f"Scored {session.source} · " + " · ".join(verdicts) + warnings + f"  \n<small>S = {self.samples} draws per label: "
                f"2·{self.samples}·{labels} = {2 * self.samples * labels} network passes per model (the loss at {self.samples} "
                f"stratified times and Lʳ at t = 1, every label seeing the same draws); the curves over t another "
                f"({self.curve_points} + 1)·{labels} = {(self.curve_points + 1) * labels} ({curves}) · seed {session.seed}{unmeasured}</small>")  # fmt: skip

    def flow_at(self, t: Any, label: Any, request: gr.Request) -> list:
        """The training view at time t (and the curves and bounds for `label`) for the digit scored last."""
        try:
            t = parse_float("t", t, 0, 1)
            label = parse_label_or("label", label, self.menu.num_labels, PREDICTED)
        except ValueError as e:
            raise invalid(e) from None
        session = self._session(request)
        if not session.scores:
            return self.outputs(DigitViews(flow_status="Score a digit first (**Score this digit** above)."), FLOW)
        return self.outputs(self._flow_views(session, t, label), FLOW)

    def complete(self, drawing: Any, source: Any, generated_by: Any, image: Any, seed: Any, keep: Any, digit: Any,
                 guidance: Any, request: gr.Request) -> Iterator[list]:
        """Keep part of the digit and let each model generate the rest; streams the views, ends with the final."""
        try:
            seed = parse_int("seed", seed, 0, MAX_SEED)
            keep = parse_choice("keep", keep, KEEPS)
            label = parse_label_or("digit", digit, self.menu.num_labels, NONE)
            guidance = parse_float("guidance", guidance, MIN_GUIDANCE, MAX_GUIDANCE)
            image_01, _ = self._digit(drawing, source, generated_by, image, request)
            mask = known_mask(keep, image_01)
        except ValueError as e:
            raise invalid(e) from None
        run = completion(self.models, self.menu.titles, image_01, mask, label, guidance, seed)
        self.ctx.store.start(session_id(request), {COMPLETION: run})
        draw = lambda plots, rate: self.outputs(self._completion_views(run, plots=plots), COMPLETED)  # noqa: E731
        yield from self.ctx.stream([run], draw, lambda: self.outputs(self._completion_views(run), COMPLETED))

    def _completion(self, request: gr.Request | None) -> Run | None:
        return self.ctx.session(request).runs.get(COMPLETION)

    def complete_scrub(self, t: Any, request: gr.Request) -> list:
        """The completion at time t (each model at its recorded step nearest to t)."""
        t = parsed(parse_float, "t", t, 0, 1)
        run = self._completion(request)
        if run is None:
            nothing = DigitViews(completion_status="Press **Complete** first: there is no completion to scrub through yet.")
            return self.outputs(nothing, COMPLETED)
        run.touch()
        views = self._completion_views(run, t)
        views.completion_slider = UNSET  # the slider stays where the user put it
        return self.outputs(views, COMPLETED)

    def stop(self, request: gr.Request) -> list:
        """Stop this session's completion; show where it got to."""
        run = self._completion(request)
        if run is None:
            return self.outputs(DigitViews(completion_status="Nothing to stop."), COMPLETED)
        was_running = run.running
        run.stop(wait=2.0)
        note = "stopped" if was_running else f"nothing to stop: it was already {run.state.value}"
        return self.outputs(self._completion_views(run, note=note), COMPLETED)

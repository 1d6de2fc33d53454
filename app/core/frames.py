"""Every step of one model's sampling run, stored compactly so that any step can be shown again instantly.

A `Frames` keeps, per step, the input distribution θ (the flow's `theta_view`) and the output distribution
(its `output_view`) as float16 — three significant digits, enough for hover values and trajectories, half
of float32 — plus a few per-step numbers for the summary plot and, when the app has a digit classifier, the
digit probabilities it gives each image's output distribution. Arrays are allocated once for the whole run,
θ and the output in pages of their own (`app.core.memory.frame_array`: returned to the system when the run is
dropped), so memory is only touched as steps arrive and the size is known up front:

    bytes ≈ (steps + 1) × images × height × width × 2 bytes × 2 arrays

A run whose sampler makes Bayesian updates (`Sampler.observes`) also keeps what each update observed, so that
any pixel's update can be shown in numbers afterwards (`Frames.update_in_numbers`): the sender sample y as
float16 (one number per class, or one) and, where the flow draws one, the class k as uint8, per step and pixel:

    extra bytes ≈ (steps + 1) × images × height × width × (2 × numbers per pixel + 1 where a class is drawn)

No BFN maths happens here: the numbers are read off `bfn.sampling.StepState`, the per-step statistics are
the flow's own (`FlowDisplay.step_statistics`, on the state's float32 values before they are rounded to float16),
and what the frames are called and how they are shown comes from the flow too (`Frames.display`).
"""

from __future__ import annotations

import numpy as np

from app.core.memory import frame_array
from app.core.menu import DEFAULT_LABELS, LabelSet
from bfn.flow import Flow, FlowDisplay, UpdateInNumbers
from bfn.sampling import StepState

FRAME_DTYPE = np.float16
STATISTICS = 2  # (uncertainty, decided) per step: what `FlowDisplay.step_statistics` returns
DECISION_CONFIDENCE = 0.5  # a digit is decided once the classifier's top digit is final and at least this sure


def decision_step(probs: np.ndarray, confidence: float = DECISION_CONFIDENCE) -> int | None:
    """The step from which the classifier sees one digit for good: (steps, digits) → a step index, or None.

    "The moment a digit decides itself": from that step on (to the last step recorded) the top digit is the
    final one and holds at least `confidence`. None when the last step itself is not that sure.
    """
    final = int(probs[-1].argmax())
    settled = (probs.argmax(axis=1) == final) & (probs[:, final] >= confidence)
    unsettled = np.flatnonzero(~settled)
    if unsettled.size == 0:
        return 0
    last = int(unsettled[-1])
    return None if last == len(settled) - 1 else last + 1


class Frames:
    """The recorded steps of one model in one run; filled by one producer thread, read by any other.

    Args:
        flow: the model's flow, which owns the statistics and the display facts of its states.
        batch, num_steps: images per step and the run's number of updates (num_steps + 1 states).
        title: how the model is named on screen (default: the flow's title).
        digit_classes: the digit classifier's classes, 0 when the app has no classifier.
        observes: whether the states carry what their update observed (`Sampler.observes`), to be kept.
        labels: the model's labels and image size (MNIST's by default). The classifier reads each digit of a
            label (`LabelSet.digit_parts`: `digit_probs` holds each part's classes in turn, from the left), and
            nothing where the labels are not digits.
    """

    def __init__(
        self, flow: Flow, batch: int, num_steps: int, *, title: str | None = None, digit_classes: int = 0,
        observes: bool = False, labels: LabelSet = DEFAULT_LABELS,
    ):
        self.flow = flow
        self.title = title or flow.display.title
        self.batch = batch
        self.num_steps = num_steps
        self.labels = labels
        shape = (num_steps + 1, batch, *labels.shape)
        self.theta = frame_array(shape, FRAME_DTYPE)  # pages of their own, returned when the run is dropped
        self.output = frame_array(shape, FRAME_DTYPE)
        self.t = np.zeros(num_steps + 1, np.float32)
        self.guidance = np.ones(num_steps + 1, np.float32)  # the weight in effect per step (1 outside the interval)
        # ρ per step and image, for flows whose θ has a precision: allocated by the first state that carries one,
        # so that whether there is one is the states' answer, not a guess made here.
        self.precision: np.ndarray | None = None
        self.stats = np.zeros((num_steps + 1, STATISTICS), np.float32)
        classes = digit_classes * labels.digit_parts
        self.digit_probs = np.zeros((num_steps + 1, batch, classes), np.float32) if classes else None
        self.sample: np.ndarray | None = None
        # per step i ≥ 1, what the update from step i − 1 to i observed: α_i, y and the drawn class
        self.alpha = np.full(num_steps + 1, np.nan) if observes else None
        numbers = flow.num_classes or 1
        self.y = frame_array((*shape, numbers), FRAME_DTYPE) if observes else None
        self.drawn = frame_array(shape, np.uint8) if observes and flow.num_classes else None
        self.count = 0  # steps 0 … count−1 are recorded

    @property
    def display(self) -> FlowDisplay:
        return self.flow.display

    @property
    def value_range(self) -> tuple[float, float]:
        return self.display.value_range

    @property
    def latest(self) -> int:
        """The last recorded step, −1 before the first."""
        return self.count - 1

    @property
    def finished(self) -> bool:
        return self.sample is not None

    @property
    def nbytes(self) -> int:
        """The size once every step is recorded (what the memory bound is stated in)."""
        extras = (self.precision, self.digit_probs, self.alpha, self.y, self.drawn)
        arrays = [self.theta, self.output, self.t, self.guidance, self.stats] + [a for a in extras if a is not None]
        return sum(a.nbytes for a in arrays) + self.theta[0].nbytes

    def record(self, state: StepState, digit_probs: np.ndarray | None = None) -> None:
        """Store one state (and the classifier's (B, digits) probabilities for it); states arrive in order, one per step."""
        i = state.step
        if state.num_steps != self.num_steps or i != self.count:
            raise ValueError(f"expected step {self.count} of {self.num_steps}, got step {i} of {state.num_steps}")
        theta = state.theta.float()
        precision = None if state.precision is None else state.precision.float()
        self.stats[i] = self.display.step_statistics(theta, precision)
        self.theta[i] = theta.numpy()
        self.output[i] = state.output.float().numpy()
        self.t[i] = state.t
        self.guidance[i] = state.guidance
        if precision is not None:
            if self.precision is None:
                self.precision = np.ones((self.num_steps + 1, self.batch), np.float32)
            self.precision[i] = precision.numpy()
        if self.digit_probs is not None and digit_probs is not None:
            self.digit_probs[i] = digit_probs
        if state.sample is not None:
            self.sample = state.sample.float().numpy().astype(FRAME_DTYPE)
        observation = state.observation
        if self.y is not None and observation is not None:
            self.alpha[i] = observation.alpha
            self.y[i] = observation.y.float().numpy()
            if self.drawn is not None:
                self.drawn[i] = observation.drawn.numpy()
        self.count = i + 1  # published last: readers only look at steps < count

    def update_in_numbers(self, step: int, image: int, row: int, col: int) -> UpdateInNumbers | None:
        """The Bayesian update one pixel made from `step` to the next, in numbers (the flow writes them), from
        the values recorded: None where there is none to show (the sampler makes no Bayesian update, the
        last step, or the next step not recorded yet)."""
        after = step + 1
        if self.alpha is None or after >= self.count or np.isnan(self.alpha[after]):
            return None
        precision = None if self.precision is None else float(self.precision[step, image])
        y = tuple(float(v) for v in self.y[after, image, row, col])
        drawn = None if self.drawn is None else int(self.drawn[after, image, row, col])
        return self.display.update_in_numbers(float(self.theta[step, image, row, col]), precision,
                                           float(self.output[step, image, row, col]), float(self.alpha[after]), y, drawn)

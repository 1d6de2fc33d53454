"""Every step of one model's sampling run, stored compactly so that any step can be shown again instantly.

A `Frames` keeps, per step, the input distribution θ (p(pixel on), or μ) and the output distribution
(p_O(pixel on), or x̂) as float16 — three significant digits, enough for hover values and trajectories,
half of float32 — plus a few per-step numbers for the summary plot and, when the app has a digit classifier,
the ten digit probabilities it gives each image's output distribution. Arrays are allocated once for the whole
run with `np.empty`, so memory is only touched as steps arrive and the size is known up front:

    bytes ≈ (steps + 1) × images × 28 × 28 × 2 bytes × 2 arrays
          = 3.1 MB for 100 steps and 10 images, 31.4 MB for 1000 steps and 10 images (the app's maximum).

No BFN maths happens here: the numbers are read off `bfn.sampling.StepState` (and the classifier's output),
and the summary statistics are display statistics of those numbers (see `step_stats`, `decision_step`).
"""

from __future__ import annotations

import numpy as np

from bfn.sampling import StepState

FRAME_DTYPE = np.float16
DECIDED = 0.975  # a pixel counts as decided once θ puts this much probability on one side (ink or background)
Z_DECIDED = 1.959964  # the same for a Gaussian belief: |μ| ≥ 1.96 σ puts 97.5% on one side of 0
STAT_NAMES = ("uncertainty", "decided")
NUM_DIGITS = 10
DECISION_CONFIDENCE = 0.5  # a digit is decided once the classifier's top digit is final and at least this sure


def step_stats(kind: str, theta: np.ndarray, precision: np.ndarray | None) -> tuple[float, float]:
    """Two display numbers for the summary plot, both in [0, 1] and falling as sampling proceeds.

    uncertainty: the mean binary entropy of θ in bits (discrete), or the input distribution's standard
        deviation σ = 1/√ρ averaged over images (continuous).
    decided: the fraction of pixels whose input distribution puts ≥ 97.5% on one side: max(p, 1 − p) ≥ 0.975,
        or |μ| ≥ 1.96 σ (the belief is that confident about the sign, i.e. ink vs background).
    """
    x = theta.astype(np.float32, copy=False)
    if kind == "discrete":
        p = np.clip(x, 1e-7, 1 - 1e-7)
        entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
        return float(entropy.mean()), float((np.maximum(x, 1 - x) >= DECIDED).mean())
    sigma = 1.0 / np.sqrt(np.asarray(precision, dtype=np.float64).reshape(-1, 1, 1))
    return float(sigma.mean()), float((np.abs(x) >= Z_DECIDED * sigma).mean())


def decision_step(probs: np.ndarray, confidence: float = DECISION_CONFIDENCE) -> int | None:
    """The step from which the classifier sees one digit for good: (steps, 10) → a step index, or None.

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
    """The recorded steps of one model in one run; filled by one producer thread, read by any other."""

    def __init__(self, kind: str, batch: int, num_steps: int, value_range: tuple[float, float], size: int = 28, classified: bool = False):
        self.kind = kind
        self.batch = batch
        self.num_steps = num_steps
        self.value_range = value_range
        shape = (num_steps + 1, batch, size, size)
        self.theta = np.empty(shape, FRAME_DTYPE)
        self.output = np.empty(shape, FRAME_DTYPE)
        self.t = np.zeros(num_steps + 1, np.float32)
        self.guidance = np.ones(num_steps + 1, np.float32)  # the weight in effect per step (1 outside the interval)
        self.precision = np.ones((num_steps + 1, batch), np.float32) if kind == "continuous" else None
        self.stats = np.zeros((num_steps + 1, len(STAT_NAMES)), np.float32)
        self.digit_probs = np.zeros((num_steps + 1, batch, NUM_DIGITS), np.float32) if classified else None
        self.sample: np.ndarray | None = None
        self.count = 0  # steps 0 … count−1 are recorded

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
        arrays = [self.theta, self.output, self.t, self.guidance, self.stats] + [a for a in (self.precision, self.digit_probs) if a is not None]
        return sum(a.nbytes for a in arrays) + self.theta[0].nbytes

    def record(self, state: StepState, digit_probs: np.ndarray | None = None) -> None:
        """Store one state (and the classifier's (B, 10) probabilities for it); states arrive in order, one per step."""
        i = state.step
        if state.num_steps != self.num_steps or i != self.count:
            raise ValueError(f"expected step {self.count} of {self.num_steps}, got step {i} of {state.num_steps}")
        theta = state.theta.float().numpy()
        self.theta[i] = theta
        self.output[i] = state.output.float().numpy()
        self.t[i] = state.t
        self.guidance[i] = state.guidance
        precision = None
        if self.precision is not None and state.precision is not None:
            precision = state.precision.float().numpy()
            self.precision[i] = precision
        self.stats[i] = step_stats(self.kind, theta, precision)
        if self.digit_probs is not None and digit_probs is not None:
            self.digit_probs[i] = digit_probs
        if state.sample is not None:
            self.sample = state.sample.float().numpy().astype(FRAME_DTYPE)
        self.count = i + 1  # published last: readers only look at steps < count

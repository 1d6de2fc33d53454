"""The interface every Bayesian flow implements, and its small types (its display record among them).

The sampler, the solvers, the objective, the training loop, the evaluation and the app are written once
against `Flow`; each flow module (bfn/discrete.py, bfn/continuous.py) supplies the equations and every other
fact about its kind: its schedule, how MNIST becomes its data, its likelihood unit and how it is shown.
Adding a kind is one module with a class satisfying `Flow`, plus an entry in `bfn.kinds.FLOWS` (the
factory). Nothing outside the flow modules and the factory asks which kind a flow is.

θ, the parameters of the input distribution, has a type per flow: a probability tensor (`Tensor`) for
discrete data, a `GaussianBelief` (μ, ρ) for continuous data; only the flow looks inside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

import torch
from torch import Tensor

ThetaT = TypeVar("ThetaT")


class GaussianBelief(NamedTuple):
    """θ of a continuous flow: the mean μ per pixel (B, C, H, W) and one precision ρ per image (B,)."""

    mu: Tensor
    rho: Tensor


Theta = Tensor | GaussianBelief  # θ of any flow in this package

DECIDED = 0.975  # a pixel counts as decided once its belief puts this much probability on one side


def latex_number(value: float, digits: int = 4) -> str:
    """A number for a KaTeX equation: `digits` significant digits, powers of ten written out (1.2 × 10^{5})."""
    text = f"{value:.{digits}g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}"


def latex_vector(*values: float) -> str:
    """(v_1, …, v_K) for a KaTeX equation, each as `latex_number` writes it."""
    separator = r",\ "
    return rf"\left({separator.join(latex_number(v) for v in values)}\right)"


@dataclass(frozen=True)
class Observation:
    """What one generative step observed: the sender sample y of every dimension, its accuracy and its centre.

    The paper's step draws y from the receiver distribution (a class k ~ p_O, then y from the sender around
    it) and updates θ by Bayes' rule with it; keeping what was drawn lets a view show one update in numbers.

    Attributes:
        alpha: α_i, the accuracy of the sender sample.
        y: the sender sample, data-shaped with the flow's trailing axes: (B, C, H, W, K) for discrete data
            (one number per class), (B, C, H, W) for continuous data.
        drawn: the class k per dimension that y was drawn around, (B, C, H, W); None where the sender observes
            the output distribution itself (continuous data: y is drawn around x̂).
    """

    alpha: float
    y: Tensor
    drawn: Tensor | None


@dataclass(frozen=True)
class UpdateInNumbers:
    """One dimension's Bayesian update with the numbers filled in, as a flow writes it.

    Attributes:
        latex: the equations, each a KaTeX display block between $$ … $$, with short Markdown between them.
        theta: θ after the update, in the flow's `theta_view` terms (p(on), or μ).
        precision: ρ after the update; None where θ has no separate precision.
    """

    latex: str
    theta: float
    precision: float | None


StepStatistics = Callable[[Tensor, Tensor | None], tuple[float, float]]
"""(θ view, precision) → (uncertainty, decided), both in [0, 1] and falling as sampling goes on."""

UpdateWriter = Callable[[float, float | None, float, float, tuple[float, ...], int | None], UpdateInNumbers]
"""(θ, ρ, output, α, y, drawn class) of one dimension, as the views hold them → its update in numbers."""


@dataclass(frozen=True)
class FlowDisplay:
    """How a flow's states are shown, for the app, the CLIs and the model cards: words, ranges, the per-step
    statistics and the update in numbers. Each flow module builds its record next to its maths; nothing in it
    speaks of one app's widgets.

    Attributes:
        title: the kind in a few words, e.g. "Binarised (discrete)".
        data_name: the adjective a model card puts before "MNIST", e.g. "binarised".
        data: how images become this flow's data, for a model card (a clause after "MNIST training set, ").
        theta_caption / output_caption: Markdown captions of the θ and output-distribution images.
        theta_name / output_name: short names for hover labels and axes.
        value_range: the range of the θ, output and sample views.
        uncertainty: what the per-step uncertainty statistic (`step_statistics`) measures.
        explanation: one or two sentences for a newcomer: what θ and the output hold for this kind, and when its
            evidence decides the digit.
        step_statistics: (uncertainty, decided) of a state's θ view (`Flow.theta_view`) and precision; decided is
            the fraction of pixels whose input distribution puts at least `DECIDED` of its mass on one side
            (ink or background).
        update_in_numbers: one dimension's Bayesian update with its numbers filled in, from its views: θ, ρ (None
            where θ has none), the output (`Flow.output_view`), α, y (`Flow.num_classes` numbers, or one) and
            the drawn class (None for continuous data).
    """

    title: str
    data_name: str
    data: str
    theta_caption: str
    output_caption: str
    theta_name: str
    output_name: str
    value_range: tuple[float, float]
    uncertainty: str
    explanation: str
    step_statistics: StepStatistics
    update_in_numbers: UpdateWriter


@dataclass(frozen=True)
class NllUnit:
    """The unit a flow's likelihood is reported in, and the conversion from nats per image."""

    name: str  # e.g. "nats/image", "bits/dim"
    per_dim: bool  # divide by the number of data dimensions
    per_bit: bool  # divide by ln 2

    def convert(self, nats_per_image: float, dims: int) -> float:
        return nats_per_image / (dims if self.per_dim else 1) / (math.log(2) if self.per_bit else 1)


class Flow(Protocol[ThetaT]):
    """What the rest of the code may ask of a flow. Tensors are image-shaped: data (B, C, H, W)."""

    kind: str  # the name in `FLOWS` and in a model's config.json
    channels_per_dim: int  # network channels per data channel
    binary: bool  # data in {0, 1} seen through one probability channel (the U-Net's evidence skip needs it)
    display: FlowDisplay  # how its states are shown: words, ranges, statistics, the update in numbers
    nll_unit: NllUnit
    default_guidance_interval: tuple[float, float]  # where guidance above 1 acts unless a run says otherwise

    # ---- the Bayesian flow (training)
    def data_from_images(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """uint8 pixels (N, H, W) → this flow's data (N, 1, H, W)."""

    def bayesian_flow(self, x: Tensor, t: Tensor, generator: torch.Generator | None = None) -> ThetaT:
        """A draw of θ from the Bayesian flow distribution p_F(θ | x; t), t one entry per image."""

    def continuous_time_loss(self, x: Tensor, output: Tensor, t: Tensor) -> Tensor:
        """L^∞ per image."""

    def discrete_time_loss(self, x: Tensor, output: Tensor, i: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """L^n per image, with the output distribution taken at t_{i−1}."""

    def reconstruction_loss(self, x: Tensor, output: Tensor) -> Tensor:
        """L^r per image, with the output distribution taken at t = 1."""

    # ---- the network's view
    def network_input(self, theta: ThetaT) -> Tensor:
        """θ as image channels for the network."""

    def needs_network(self, t: float) -> bool:
        """Whether the output distribution at t depends on the network at all (else it is skipped)."""

    def output(self, net_out: Tensor, theta: ThetaT, t: Tensor) -> Tensor:
        """The output distribution (class probabilities, or x̂) from the network's raw output."""

    # ---- generation
    def prior(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> ThetaT:
        """θ_0, the input distribution before any observation."""

    def accuracy(self, t: float) -> float:
        """β(t), the accuracy accumulated by time t."""

    def time_at(self, beta: float) -> float:
        """The inverse of `accuracy`: the t at which β(t) = beta."""

    def step_accuracy(self, i: int | Tensor, n: int) -> float | Tensor:
        """α_i, the accuracy of sender sample i of n."""

    num_classes: int | None  # K, the classes a sender sample is drawn around; None for continuous data

    def receiver_sample(self, output: Tensor, alpha: float, generator: torch.Generator | None = None) -> Observation:
        """y from the receiver distribution p_R(· | θ; t, α) with the output distribution `output`."""

    def update(self, theta: ThetaT, observation: Observation) -> ThetaT:
        """The Bayesian update of θ by the sender sample y with accuracy α."""

    def final_sample(self, output: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The generated data from the output distribution at t = 1."""

    def point_output(self, x: Tensor) -> Tensor:
        """The output distribution that puts all its mass on the data x (one-hot of x, or x itself).

        What the sender, who knows x, would report: completion feeds it to the update at the known pixels, so
        that their sender samples come from the true values (the Bayesian flow of the known data).
        """

    # ---- the evidence view: z(t) = β(t) x̃ + s √β(t) ε (see bfn/solvers.py)
    evidence_noise_var: float  # s²

    def evidence_target(self, output: Tensor) -> Tensor:
        """The predicted x̃ = E[x̃ | θ] from the output distribution."""

    def theta_from_evidence(self, z: Tensor, beta: float) -> ThetaT:
        """θ holding the summed, accuracy-weighted evidence z after accuracy β."""

    def evidence(self, theta: ThetaT) -> Tensor:
        """The evidence z that θ holds: the inverse of `theta_from_evidence`, up to what θ cannot tell apart.

        Stepping a run back (completion's resampling) forgets evidence in z and needs it from any θ.
        """

    # ---- views (what the sampler reports and the app shows)
    def theta_view(self, theta: ThetaT) -> Tensor:
        """θ as an image in `display.value_range`: p(pixel on), or μ."""

    def precision_view(self, theta: ThetaT) -> Tensor | None:
        """ρ per image for continuous data; None where θ has no separate precision."""

    def output_view(self, output: Tensor) -> Tensor:
        """The output distribution as an image: p_O(pixel on), or x̂."""

    def sample_view(self, sample: Tensor) -> Tensor:
        """A final sample as an image in `display.value_range`."""

"""Bayesian flow for discrete data (Graves et al. 2023, section 6), written for any number of classes K.

Binarised MNIST is the K=2 case. The input distribution θ is a categorical per pixel, stored as
probabilities with the class axis last: shape (B, C, H, W, K). For K=2 the network sees and predicts one
channel (p(on) in, one logit out), which is the same model with half the parameters in the last layers.

Each function below is one equation of the paper; `DiscreteFlow` binds β1 and K and owns every other fact
of this kind behind the interface the rest of the code shares (`bfn.flow.Flow`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bfn.flow import DECIDED, FlowDisplay, NllUnit, Observation, UpdateInNumbers, latex_number, latex_vector


def accuracy_schedule(t: Tensor, beta1: float) -> Tensor:
    """β(t) = β1 t², the accuracy accumulated by time t (eq. 182)."""
    return beta1 * t**2


def step_accuracy(i: int | Tensor, n: int, beta1: float) -> float | Tensor:
    """α_i = β(i/n) − β((i−1)/n) = β1 (2i − 1) / n², the accuracy of sender sample i of n (eq. 184)."""
    return beta1 * (2 * i - 1) / n**2


def time_of_accuracy(beta: float, beta1: float) -> float:
    """t = √(β / β1), the inverse of the accuracy schedule (eq. 182)."""
    return math.sqrt(beta / beta1)


def sender_sample(x_onehot: Tensor, alpha: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """y ~ N(α(K e_x − 1), α K I), a noisy observation of the one-hot data (eq. 163)."""
    k = x_onehot.shape[-1]
    mean = alpha * (k * x_onehot - 1)
    std = (alpha * k) ** 0.5
    return mean + std * torch.randn(x_onehot.shape, generator=generator, device=x_onehot.device, dtype=x_onehot.dtype)


def class_softmax(logits: Tensor) -> Tensor:
    """Softmax over the class axis (the last one).

    Computed with that axis moved to the front: on a CPU, PyTorch's softmax over a short last axis runs one
    short row per pixel instead of long vectorised runs, and the sampler calls this twice per step.
    """
    return torch.softmax(logits.movedim(-1, 0), dim=0).movedim(0, -1)


def categorical_sample(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """k ~ Categorical(probs) over the last axis, by inverting the CDF with one uniform draw per pixel.

    The same distribution as `torch.multinomial`, without its per-row overhead on the sampler's many short rows.
    """
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device, dtype=probs.dtype)
    return (u >= probs.cumsum(-1)[..., :-1]).sum(-1)


def bayesian_update(theta: Tensor, y: Tensor) -> Tensor:
    """θ' ∝ e^y θ (eq. 171), computed in log space so that confident pixels do not overflow."""
    return class_softmax(y + torch.log(theta.clamp_min(torch.finfo(theta.dtype).tiny)))


def bayesian_flow_sample(x_onehot: Tensor, t: Tensor, beta1: float, generator: torch.Generator | None = None) -> Tensor:
    """θ = softmax(y), y ~ N(β(t)(K e_x − 1), β(t) K I): the input distribution after time t (eq. 185).

    `t` has one entry per batch element; it is broadcast over all other axes.
    """
    beta = accuracy_schedule(t, beta1).reshape(-1, *([1] * (x_onehot.dim() - 1)))
    return class_softmax(sender_sample(x_onehot, beta, generator))


def binary_flow_density(p: Tensor, t: Tensor | float, beta1: float, x: int) -> Tensor:
    """The density of θ_on = p(class 1) under p_F(θ | x; t) for K = 2, at p in (0, 1), for t > 0 (eq. 185).

    With K = 2, θ_on = σ(y_1 − y_0), and y_1 − y_0 ~ N(±2β(t), 4β(t)) (+ for x = 1): θ_on is logit-normal,
    with density N(logit p; ±2β, 4β) / (p (1 − p)).
    """
    beta = accuracy_schedule(torch.as_tensor(t, dtype=p.dtype), beta1)
    mean, var = (2 * x - 1) * 2 * beta, 4 * beta
    logit = torch.log(p) - torch.log1p(-p)
    return torch.exp(-0.5 * (logit - mean) ** 2 / var) / torch.sqrt(2 * math.pi * var) / (p * (1 - p))


def binary_entropy_bits(p: Tensor) -> Tensor:
    """H(p) = −p log₂ p − (1 − p) log₂(1 − p), the uncertainty of a binary belief in bits."""
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(p * torch.log2(p) + (1 - p) * torch.log2(1 - p))


def output_distribution(logits: Tensor) -> Tensor:
    """p_O(·|θ; t) = softmax of the network's logits over the class axis (eq. 190 with independent dims)."""
    return class_softmax(logits)


def continuous_time_loss(x_onehot: Tensor, probs: Tensor, t: Tensor, beta1: float) -> Tensor:
    """L^∞(x) = K β1 t ‖e_x − ê(θ, t)‖², summed over every dimension, one value per image (eq. 205)."""
    k = x_onehot.shape[-1]
    sq_err = (x_onehot - probs).pow(2).flatten(1).sum(1)
    return k * beta1 * t * sq_err


def discrete_time_loss(
    x_onehot: Tensor, probs: Tensor, alpha: float | Tensor, n: int, generator: torch.Generator | None = None
) -> Tensor:
    """One-sample Monte-Carlo estimate of L^n(x) = n E[ln p_S(y|x; α) − ln p_R(y|θ; t, α)] (eq. 195).

    `probs` is the output distribution at t_{i−1}; the receiver is the mixture over classes k of the sender
    distribution centred on e_k, weighted by p_O(k). One value per image.
    """
    k = x_onehot.shape[-1]
    alpha = torch.as_tensor(alpha, device=x_onehot.device, dtype=x_onehot.dtype)
    y = sender_sample(x_onehot, alpha, generator)
    # A per-image α (B, 1, …, 1) needs one more axis to line up with the candidate-class axis below.
    alpha_c = alpha.unsqueeze(-1)
    var = alpha_c * k
    classes = torch.eye(k, device=x_onehot.device, dtype=x_onehot.dtype)
    # ln N(y | α(K e_c − 1), αK) for every candidate class c: shape (..., K_c)
    centred = y.unsqueeze(-2) - alpha_c * (k * classes - 1)
    log_normals = (-0.5 * centred.pow(2) / var - 0.5 * math.log(2 * math.pi) - 0.5 * torch.log(var)).sum(-1)
    log_sender = (log_normals * x_onehot).sum(-1)
    log_receiver = torch.logsumexp(log_normals + torch.log(probs.clamp_min(1e-30)), dim=-1)
    return n * (log_sender - log_receiver).flatten(1).sum(1)


def reconstruction_loss(x_onehot: Tensor, probs: Tensor) -> Tensor:
    """L^r(x) = −ln p_O(x | θ; 1), with θ drawn from the flow at t = 1 (eq. 207). One value per image."""
    return -(torch.log(probs.clamp_min(1e-30)) * x_onehot).flatten(1).sum(1)


def step_statistics(theta_view: Tensor, precision: Tensor | None) -> tuple[float, float]:
    """The mean binary entropy of the view in bits, and the fraction of pixels with max(p, 1 − p) ≥ DECIDED."""
    p = theta_view.float()
    return float(binary_entropy_bits(p).mean()), float((torch.maximum(p, 1 - p) >= DECIDED).float().mean())


def update_in_numbers(theta: float, precision: float | None, output: float, alpha: float, y: tuple[float, ...],
                      drawn: int | None, num_classes: int = 2) -> UpdateInNumbers:
    """θ' ∝ e^y θ for one pixel of a binary flow (eq. 171), from p(on) before, p_O(on), α, y = (y_off, y_on), k.

    Only K = 2 can be shown from the views: for more classes the view holds the expected level, not the K
    probabilities.
    """
    if num_classes != 2:
        return UpdateInNumbers(f"The update of θ over {num_classes} classes is not shown in numbers: the "
                               "recorded θ is each pixel's expected level, not its probabilities.", math.nan, None)
    before = torch.tensor([1 - theta, theta], dtype=torch.float64)
    after = float(bayesian_update(before, torch.tensor(y, dtype=torch.float64))[1])
    n = latex_number
    weighted = [math.exp(y_c) * float(p) for y_c, p in zip(y, before)]
    mean = [alpha * (num_classes * (c == drawn) - 1) for c in range(num_classes)]
    latex = "\n\n".join([
        "The receiver draws a class from the output distribution (off, on):",
        rf"$$k \sim p_O = {latex_vector(1 - output, output)} \quad\Rightarrow\quad k = {drawn}$$",
        rf"and the sender observes it with accuracy $\alpha = {n(alpha)}$:",
        r"$$y \sim \mathcal{N}\!\left(\alpha (K e_k - 1),\ \alpha K I\right)$$",
        rf"$$= \mathcal{{N}}\!\left({latex_vector(*mean)},\ {n(alpha * num_classes)}\, I\right)$$",
        rf"$$\Rightarrow\quad y = {latex_vector(*y)}$$",
        "Bayes' rule multiplies the belief by the likelihood of y and normalises:",
        r"$$\theta' \propto e^{y} \theta$$",
        rf"$$= \left(e^{{{n(y[0])}}} \cdot {n(1 - theta)},\ e^{{{n(y[1])}}} \cdot {n(theta)}\right)$$",
        rf"$$= {latex_vector(*weighted)}$$",
        rf"$$\theta' = {latex_vector(1 - after, after)}$$",
    ])  # fmt: skip
    return UpdateInNumbers(latex, after, None)


BINARY_EXPLANATION = (
    "θ is, per pixel, the probability that the pixel is on (grey: no idea, white: surely ink, black: surely "
    "background); the output distribution is the network's prediction of that probability for the finished digit. "
    "Evidence arrives late here (the accuracy grows as β₁t²): the output starts as a blurry grey average of the "
    "digit asked for and its strokes sharpen over the run, while a digit classifier usually names the final digit "
    "early, before the guidance interval, so guidance makes the strokes of a digit already chosen cleaner and more "
    "typical."
)


@dataclass(frozen=True)
class DiscreteFlow:
    """Binds β1 and K to the equations above and adapts them to image-shaped networks.

    Data `x` is an integer tensor (B, C, H, W) of class indices; network tensors are (B, C·K', H, W), where
    K' = 1 for K = 2 (a single logit / probability channel) and K' = K otherwise.
    """

    beta1: float = 3.0
    num_classes: int = 2

    kind = "discrete"
    nll_unit = NllUnit("nats/image", per_dim=False, per_bit=False)
    # The label decides the digit in mid-flight: β(t) = β1 t² gathers most of its evidence late (docs/quality-and-speed.md,
    # "Guidance interval", has the sweep that chose these times).
    default_guidance_interval = (0.3, 0.6)

    def __post_init__(self) -> None:
        if not (isinstance(self.beta1, (int, float)) and math.isfinite(self.beta1) and self.beta1 > 0):
            raise ValueError(f"beta1 must be a finite positive number, got {self.beta1!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"num_classes must be an integer of at least 2, got {self.num_classes!r}")

    @property
    def channels_per_dim(self) -> int:
        """Network channels per data channel: one for binary data, K otherwise."""
        return 1 if self.binary else self.num_classes

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    @functools.cached_property
    def display(self) -> FlowDisplay:
        """Binarised MNIST's words for K = 2, a K-level flow's otherwise; the statistics and the update in numbers
        of this module."""
        k, binary = self.num_classes, self.binary
        return FlowDisplay(
            title="Binarised (discrete)" if binary else f"Discrete ({k} classes)",
            data_name="binarised" if binary else f"{k}-level",
            data="dynamically binarised: every pixel is a fresh Bernoulli draw with p = intensity each time an image is "
            "used." if binary else f"intensities quantised to {k} levels.",
            theta_caption="**Input distribution θ**: " + ("p(pixel on), the current belief" if binary else "the expected class, scaled to [0, 1]"),
            output_caption="**Output distribution**: " + ("the network's prediction of p(pixel on)" if binary
                                                           else "the network's expected class, scaled to [0, 1]"),
            theta_name="θ: p(pixel on)" if binary else "θ: expected class",
            output_name="output: p(pixel on)" if binary else "output: expected class",
            value_range=(0.0, 1.0),
            uncertainty="mean entropy of θ (bits)" if binary else "mean entropy of θ (bits, over its two ends)",
            explanation=BINARY_EXPLANATION if binary else f"θ is, per pixel, a probability for each of the {k} levels, shown "
            "as the expected level; the output distribution is the network's prediction of the same.",
            step_statistics=step_statistics,
            update_in_numbers=functools.partial(update_in_numbers, num_classes=k),
        )

    def one_hot(self, x: Tensor) -> Tensor:
        """Class indices (B, C, H, W) → one-hot e_x with the class axis last."""
        return F.one_hot(x.long(), self.num_classes).float()

    # ---- the Bayesian flow (training)
    def data_from_images(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """uint8 pixels (N, H, W) → classes (N, 1, H, W).

        K = 2: a fresh Bernoulli draw per pixel with p = intensity (dynamic binarisation, as in the paper);
        otherwise the intensity quantised to K levels.
        """
        x = images.float().unsqueeze(1) / 255
        if self.binary:
            return torch.bernoulli(x, generator=generator).long()
        return torch.round(x * (self.num_classes - 1)).long()

    def bayesian_flow(self, x: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return bayesian_flow_sample(self.one_hot(x), t, self.beta1, generator)

    def continuous_time_loss(self, x: Tensor, output: Tensor, t: Tensor) -> Tensor:
        return continuous_time_loss(self.one_hot(x), output, t, self.beta1)

    def discrete_time_loss(self, x: Tensor, output: Tensor, i: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """L^n with the output distribution computed at t_{i−1}; `i` holds each image's step index (1..n)."""
        alpha = self.step_accuracy(i.float(), n).reshape(-1, *([1] * x.dim()))  # (B, 1, …, 1): the one-hot rank
        return discrete_time_loss(self.one_hot(x), output, alpha, n, generator)

    def reconstruction_loss(self, x: Tensor, output: Tensor) -> Tensor:
        return reconstruction_loss(self.one_hot(x), output)

    # ---- the network's view
    def network_input(self, theta: Tensor) -> Tensor:
        """θ rescaled to [−1, 1] and moved to channels: p(on) alone for K = 2."""
        if self.binary:
            return 2 * theta[..., 1] - 1
        return (2 * theta - 1).movedim(-1, 2).flatten(1, 2)

    def needs_network(self, t: float) -> bool:
        return True

    def logits(self, net_out: Tensor) -> Tensor:
        """Network channels → per-class logits with the class axis last (the K = 2 logit is for class 1)."""
        if self.binary:
            return torch.stack([torch.zeros_like(net_out), net_out], dim=-1)
        b, _, h, w = net_out.shape
        return net_out.reshape(b, -1, self.num_classes, h, w).movedim(2, -1)

    def output(self, net_out: Tensor, theta: Tensor, t: Tensor) -> Tensor:
        """The output distribution p_O as class probabilities (θ and t are unused for discrete data)."""
        return output_distribution(self.logits(net_out))

    # ---- generation
    def prior(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
        """θ_0 = uniform over the K classes (eq. 170)."""
        return torch.full((*shape, self.num_classes), 1.0 / self.num_classes, device=device)

    def accuracy(self, t: float) -> float:
        return float(accuracy_schedule(torch.tensor(t, dtype=torch.float64), self.beta1))

    def time_at(self, beta: float) -> float:
        return time_of_accuracy(beta, self.beta1)

    def step_accuracy(self, i: int | Tensor, n: int) -> float | Tensor:
        return step_accuracy(i, n, self.beta1)

    def receiver_sample(self, output: Tensor, alpha: float, generator: torch.Generator | None = None) -> Observation:
        """y ~ p_R(· | θ; t, α): a class k ~ p_O, then y from the sender around e_k with accuracy α (Algorithm 9)."""
        k = categorical_sample(output, generator)
        return Observation(alpha, sender_sample(self.one_hot(k), alpha, generator), k)

    def update(self, theta: Tensor, observation: Observation) -> Tensor:
        return bayesian_update(theta, observation.y)

    def final_sample(self, output: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The generated data: one draw from the output distribution at t = 1, as class indices."""
        return categorical_sample(output, generator)

    def point_output(self, x: Tensor) -> Tensor:
        """e_x: all the probability on the known class, so that a draw from it is x itself."""
        return self.one_hot(x)

    # ---- the evidence view (eqs. 163, 185): z = y, x̃ = K e_x − 1, s² = K
    @property
    def evidence_noise_var(self) -> float:
        return float(self.num_classes)

    def evidence_target(self, output: Tensor) -> Tensor:
        return self.num_classes * output - 1

    def theta_from_evidence(self, z: Tensor, beta: float) -> Tensor:
        return class_softmax(z)

    def evidence(self, theta: Tensor) -> Tensor:
        """ln θ: z up to a constant per pixel, which the softmax back to θ ignores."""
        return torch.log(theta.clamp_min(torch.finfo(theta.dtype).tiny))

    # ---- views
    def theta_view(self, theta: Tensor) -> Tensor:
        """What to show of θ: p(class 1) for K = 2, else the expected class scaled to [0, 1]."""
        return self._expected_unit(theta)

    def precision_view(self, theta: Tensor) -> None:
        return None

    def output_view(self, output: Tensor) -> Tensor:
        return self._expected_unit(output)

    def sample_view(self, sample: Tensor) -> Tensor:
        return sample.float() / (self.num_classes - 1)

    def _expected_unit(self, probs: Tensor) -> Tensor:
        values = torch.linspace(0, 1, self.num_classes, device=probs.device, dtype=probs.dtype)
        return probs @ values  # a matrix-vector product: far faster than a sum over a short last axis

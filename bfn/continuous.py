"""Bayesian flow for continuous data (Graves et al. 2023, section 4): MNIST pixels scaled to [−1, 1].

The input distribution is an isotropic Gaussian per pixel with mean μ (B, C, H, W) and one precision ρ per
image (every pixel receives the same accuracy, so ρ is shared). By default the network sees μ and predicts the
noise ε̂ that was added to γx, and x̂ follows from eq. 84 (the paper's choice); a flow may instead precondition
the network as Karras et al. (2022) do, so that early, when μ says little, it predicts the image itself. Each
function below is one equation; `ContinuousFlow` binds σ1 and owns every other fact of this kind behind the
shared interface (`bfn.flow.Flow`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from statistics import NormalDist

import torch
from torch import Tensor

from bfn.flow import DECIDED, FlowDisplay, GaussianBelief, NllUnit, Observation, UpdateInNumbers, latex_number


def gamma(t: Tensor, sigma1: float) -> Tensor:
    """γ(t) = 1 − σ1^{2t}: the fraction of the data's signal in μ at time t (eq. 72)."""
    return 1 - sigma1 ** (2 * t)


def precision_schedule(t: Tensor | float, sigma1: float) -> Tensor | float:
    """ρ(t) = 1 + β(t) = σ1^{−2t}, the input distribution's precision at time t (eqs. 72–73)."""
    return sigma1 ** (-2 * t)


def accuracy_schedule(t: Tensor | float, sigma1: float) -> Tensor | float:
    """β(t) = ρ(t) − 1 = σ1^{−2t} − 1, the accuracy accumulated by time t (eq. 72)."""
    return precision_schedule(t, sigma1) - 1


def time_of_accuracy(beta: float, sigma1: float) -> float:
    """t = ln(1 + β) / (−2 ln σ1), the inverse of the accuracy schedule (eq. 72)."""
    return math.log1p(beta) / (-2 * math.log(sigma1))


def step_accuracy(i: int | Tensor, n: int, sigma1: float) -> float | Tensor:
    """α_i = σ1^{−2i/n} (1 − σ1^{2/n}): the accuracy of sender sample i of n (eq. 95)."""
    return sigma1 ** (-2 * i / n) * (1 - sigma1 ** (2 / n))


def sender_sample(x: Tensor, alpha: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """y ~ N(x, α⁻¹ I), a noisy observation of the data with precision α (eq. 86)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + noise / alpha**0.5


def bayesian_update(mu: Tensor, rho: Tensor | float, y: Tensor, alpha: float | Tensor) -> tuple[Tensor, Tensor | float]:
    """ρ' = ρ + α, μ' = (ρμ + αy) / ρ': the conjugate Gaussian update (eqs. 49–50)."""
    rho_new = rho + alpha
    return (rho * mu + alpha * y) / rho_new, rho_new


def bayesian_flow_moments(x: Tensor, t: Tensor, sigma1: float) -> tuple[Tensor, Tensor]:
    """E[μ] = γ(t) x and Var[μ] = γ(t)(1 − γ(t)) under the Bayesian flow distribution p_F(μ | x; t) (eq. 77).

    `t` broadcasts against `x`: the spread grows from 0 at t = 0 to at most 1/4 (at γ = 1/2) and falls back
    to σ1²(1 − σ1²) at t = 1, while the mean travels from the prior's 0 to (1 − σ1²) x.
    """
    g = gamma(t, sigma1)
    return g * x, g * (1 - g)


def bayesian_flow_sample(x: Tensor, t: Tensor, sigma1: float, generator: torch.Generator | None = None) -> Tensor:
    """μ ~ N(γ(t) x, γ(t)(1 − γ(t)) I): the input mean after time t (eq. 77), `t` one entry per image."""
    mean, var = bayesian_flow_moments(x, t.reshape(-1, *([1] * (x.dim() - 1))), sigma1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return mean + var.sqrt() * noise


def guarded(x_hat: Tensor, t: Tensor, t_min: float) -> Tensor:
    """x̂ clipped to the data range, and 0 for t < t_min where γ ≈ 0 (eq. 84's guard); `t` broadcast to x̂."""
    return torch.where(t < t_min, torch.zeros_like(x_hat), x_hat.clamp(-1, 1))


def output_prediction(mu: Tensor, eps_hat: Tensor, t: Tensor, sigma1: float, t_min: float) -> Tensor:
    """x̂(θ, t) = μ/γ − √((1−γ)/γ) ε̂, `guarded` (eq. 84)."""
    t = t.reshape(-1, *([1] * (mu.dim() - 1)))
    g = gamma(t, sigma1).clamp_min(1e-9)
    return guarded(mu / g - ((1 - g) / g).sqrt() * eps_hat, t, t_min)


SIGMA_DATA = 0.5  # the data's assumed standard deviation in preconditioning (Karras et al. 2022 use 0.5 for [−1, 1])


def preconditioning(gamma_t: Tensor, sigma_data: float = SIGMA_DATA) -> tuple[Tensor, Tensor, Tensor]:
    """(c_in, c_skip/γ, c_out) of Karras et al. 2022 (arXiv 2206.00364, Table 1) for the estimate μ/γ of x.

    μ/γ = x + σ ε with σ² = (1−γ)/γ (eq. 77), so with s = 1 − γ + σ_d² γ (that is γ (σ² + σ_d²)):
    c_in = 1/√(γ s) scales μ to unit variance, c_skip/γ = σ_d² / s, c_out = σ_d √((1−γ)/s). Written in γ they stay
    finite as γ → 0, where x̂ → σ_d F: the network predicts the image itself; as γ → 1 they tend to eq. 84's ε̂.
    """
    s = 1 - gamma_t + sigma_data**2 * gamma_t
    return (gamma_t * s).clamp_min(1e-12).rsqrt(), sigma_data**2 / s, sigma_data * ((1 - gamma_t) / s).sqrt()


def preconditioned_output(mu: Tensor, net_out: Tensor, t: Tensor, sigma1: float, t_min: float) -> Tensor:
    """x̂(θ, t) = c_skip μ/γ + c_out F, `guarded` as eq. 84's x̂ is."""
    t = t.reshape(-1, *([1] * (mu.dim() - 1)))
    _, skip, out = preconditioning(gamma(t, sigma1))
    return guarded(skip * mu + out * net_out, t, t_min)


def continuous_time_loss(x: Tensor, x_hat: Tensor, t: Tensor, sigma1: float) -> Tensor:
    """L^∞(x) = −ln σ1 · σ1^{−2t} ‖x − x̂(θ, t)‖², one value per image (eq. 101)."""
    sq_err = (x - x_hat).pow(2).flatten(1).sum(1)
    return -math.log(sigma1) * sigma1 ** (-2 * t) * sq_err


def discrete_time_loss(x: Tensor, x_hat: Tensor, i: Tensor, n: int, sigma1: float) -> Tensor:
    """L^n(x) = n/2 (1 − σ1^{2/n}) ‖x − x̂(θ_{i−1}, t_{i−1})‖² / σ1^{2i/n}, i ~ U{1..n} (eq. 96).

    (1 − σ1^{2/n}) / σ1^{2i/n} is α_i (eq. 95): the loss is n/2 α_i ‖x − x̂‖².
    """
    sq_err = (x - x_hat).pow(2).flatten(1).sum(1)
    return n / 2 * (1 - sigma1 ** (2 / n)) * sq_err / sigma1 ** (2 * i.float() / n)


def discretised_gaussian_log_prob(x: Tensor, mean: Tensor, std: float, bins: int = 256) -> Tensor:
    """ln P(bin of x) under N(mean, std²) integrated over `bins` equal bins spanning [−1, 1] (eq. 108).

    The outermost bins extend to ±∞, so the probabilities over all bins sum to one. A bin's mass is a difference
    of two values of the normal CDF Φ; above the mean both are near 1, where float32 resolves only 6·10⁻⁸, so a
    bin above the mean is mirrored about it (Φ(b) − Φ(a) = Φ(−a) − Φ(−b)) and both values come from the lower
    tail, where Φ(z) = erfc(−z/√2)/2 keeps its relative precision down to the 10⁻¹² floor (torch's float32
    `ndtr` does not: it rounds Φ(−5) to a multiple of 2⁻²⁴).
    """
    half_width = 1.0 / (bins - 1)
    a = torch.where(x <= -1 + half_width, -math.inf, (x - half_width - mean) / std)  # the bin's edges, standardised
    b = torch.where(x >= 1 - half_width, math.inf, (x + half_width - mean) / std)

    def cdf(z: Tensor) -> Tensor:
        return 0.5 * torch.special.erfc(-z / math.sqrt(2))

    mass = torch.where(a > 0, cdf(-a) - cdf(-b), cdf(b) - cdf(a))
    return torch.log(mass.clamp_min(1e-12))


def reconstruction_loss(x: Tensor, x_hat: Tensor, sigma1: float, bins: int = 256) -> Tensor:
    """L^r(x) = −ln p_O(x | θ; 1) with a discretised Gaussian of std σ1 around x̂ (eqs. 106–108), per image.

    This is what turns the bound into a likelihood of the 8-bit pixels, reportable in bits/dim.
    """
    return -discretised_gaussian_log_prob(x, x_hat, sigma1, bins).flatten(1).sum(1)


NETWORK_OUTPUTS = ("noise", "preconditioned")

# |μ| ≥ z σ puts DECIDED of a Gaussian belief's mass on one side of 0 (ink or background)
Z_DECIDED = NormalDist().inv_cdf(DECIDED)


def step_statistics(theta_view: Tensor, precision: Tensor | None) -> tuple[float, float]:
    """σ = 1/√ρ averaged over images, and the fraction of pixels with |μ| ≥ Z_DECIDED σ (DECIDED on one side of 0)."""
    sigma = 1.0 / precision.double().sqrt().reshape(-1, *([1] * (theta_view.dim() - 1)))
    return float(sigma.mean()), float((theta_view.double().abs() >= Z_DECIDED * sigma).double().mean())


def update_in_numbers(theta: float, precision: float | None, output: float, alpha: float, y: tuple[float, ...],
                      drawn: int | None) -> UpdateInNumbers:
    """μ' = (ρμ + αy) / (ρ + α), ρ' = ρ + α for one pixel (eqs. 49–50), from μ, ρ, x̂, α and y before."""
    (y,) = y
    mu, rho = bayesian_update(torch.tensor(theta, dtype=torch.float64), precision, torch.tensor(y, dtype=torch.float64), alpha)
    n = latex_number
    latex = "\n\n".join([
        rf"The sender observes the network's predicted pixel $\hat x = {n(output)}$ with accuracy $\alpha = {n(alpha)}$:",
        r"$$y \sim \mathcal{N}\!\left(\hat x,\ \alpha^{-1}\right)$$",
        rf"$$= \mathcal{{N}}\!\left({n(output)},\ {n(1 / alpha)}\right)$$",
        rf"$$\Rightarrow\quad y = {n(y)}$$",
        "Bayes' rule adds the accuracy to the precision and moves the mean towards y by its share of it:",
        rf"$$\rho' = \rho + \alpha = {n(precision)} + {n(alpha)}$$",
        rf"$$= {n(rho)}$$",
        r"$$\mu' = \frac{\rho \mu + \alpha y}{\rho + \alpha}$$",
        rf"$$= \frac{{{n(precision)} \cdot {n(theta)} + {n(alpha)} \cdot {n(y)}}}{{{n(rho)}}}$$",
        rf"$$= {n(float(mu))}$$",
    ])  # fmt: skip
    return UpdateInNumbers(latex, float(mu), float(rho))


_AT_T0 = ("θ is a best guess μ of each pixel's value, held with a certainty ρ that is the same for every pixel and "
          "grows every step (σ = 1/√ρ is how far off μ might still be); the output distribution is the network's "
          "predicted image x̂. At t = 0 x̂ is flat grey (the network has seen nothing); ")
NOISE_DISPLAY = FlowDisplay(
    title="Continuous",
    data_name="continuous",
    data="8-bit intensities mapped to the 256 bin centres in [−1, 1].",
    theta_caption="**Input distribution θ**: mean μ, the current belief (certainty ρ above)",
    output_caption="**Output distribution**: the network's predicted image x̂",
    theta_name="θ: mean μ",
    output_name="output: x̂",
    value_range=(-1.0, 1.0),
    uncertainty="σ of θ (1/√ρ)",
    explanation=_AT_T0 + "from the first step on it is a sharp, speckled digit, as the precision σ₁⁻²ᵗ fixes the "
    "digit's shape early: a digit classifier usually names the final digit within the first tenth of the steps, "
    "inside the guidance interval, so here guidance helps choose the digit.",
    step_statistics=step_statistics,
    update_in_numbers=update_in_numbers,
)


# A preconditioned network predicts the image itself while μ says little (`preconditioning`), so its early x̂ is
# the average of the digits that fit, not eq. 84's speckle.
PRECONDITIONED_DISPLAY = dataclasses.replace(
    NOISE_DISPLAY,
    explanation=_AT_T0 + "in the first steps it is a blurry grey average of the digit asked for, the network's "
    "best guess while μ says little, and its strokes sharpen as the precision σ₁⁻²ᵗ grows: a digit classifier usually "
    "names the final digit within the first tenth of the steps, inside the guidance interval, so here guidance "
    "helps choose the digit.",
)
DISPLAYS = {"noise": NOISE_DISPLAY, "preconditioned": PRECONDITIONED_DISPLAY}


@dataclass(frozen=True)
class ContinuousFlow:
    """Binds σ1 (and the t_min guard) to the equations above.

    σ1 is the data's standard deviation left at t = 1. Very small σ1 makes the loss weight σ1^{−2t} huge
    near t = 1 and has sent training to NaN in other implementations, so it is bounded below here and the
    training loop also skips non-finite steps.
    """

    sigma1: float = 0.001
    t_min: float = 1e-6
    # What the network predicts: "noise", ε̂ as in the paper (eq. 84), or "preconditioned" (`preconditioning`).
    network_output: str = "noise"

    kind = "continuous"
    channels_per_dim = 1
    binary = False
    num_classes = None  # y is one number per pixel, drawn around x̂
    nll_unit = NllUnit("bits/dim", per_dim=True, per_bit=True)
    # The precision σ1^{−2t} fixes the digit's shape early, so the label matters at the start (docs/quality-and-speed.md,
    # "Guidance interval", has the sweep that chose these times).
    default_guidance_interval = (0.0, 0.1)
    @property
    def display(self) -> FlowDisplay:
        """How the app shows this flow: what x̂ looks like early depends on what the network predicts."""
        return DISPLAYS[self.network_output]

    def __post_init__(self) -> None:
        if not (isinstance(self.sigma1, (int, float)) and 1e-4 <= self.sigma1 < 1):
            raise ValueError(f"sigma1 must lie in [1e-4, 1), got {self.sigma1!r}")
        if not (isinstance(self.t_min, (int, float)) and 0 <= self.t_min < 1):
            raise ValueError(f"t_min must lie in [0, 1), got {self.t_min!r}")
        if self.network_output not in NETWORK_OUTPUTS:
            raise ValueError(f"network_output must be one of {NETWORK_OUTPUTS}, got {self.network_output!r}")

    # ---- the Bayesian flow (training)
    def data_from_images(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """uint8 pixels (N, H, W) → (N, 1, H, W) in [−1, 1]: the 256 levels mapped to their bin centres."""
        return images.float().unsqueeze(1) / 255 * 2 - 1

    def bayesian_flow(self, x: Tensor, t: Tensor, generator: torch.Generator | None = None) -> GaussianBelief:
        return GaussianBelief(bayesian_flow_sample(x, t, self.sigma1, generator), precision_schedule(t, self.sigma1))

    def continuous_time_loss(self, x: Tensor, output: Tensor, t: Tensor) -> Tensor:
        return continuous_time_loss(x, output, t, self.sigma1)

    def discrete_time_loss(self, x: Tensor, output: Tensor, i: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        return discrete_time_loss(x, output, i, n, self.sigma1)

    def reconstruction_loss(self, x: Tensor, output: Tensor) -> Tensor:
        return reconstruction_loss(x, output, self.sigma1)

    # ---- the network's view
    def network_input(self, theta: GaussianBelief) -> Tensor:
        """μ, or c_in μ when preconditioned (γ = 1 − 1/ρ, as ρ = σ1^{−2t} along the flow)."""
        if self.network_output == "noise":
            return theta.mu
        rho = theta.rho.reshape(-1, *([1] * (theta.mu.dim() - 1)))
        return preconditioning(1 - 1 / rho)[0] * theta.mu

    def needs_network(self, t: float) -> bool:
        """Before t_min, x̂ is 0 whatever the network says (eq. 84's guard)."""
        return t >= self.t_min

    def output(self, net_out: Tensor, theta: GaussianBelief, t: Tensor) -> Tensor:
        """x̂ from the network's output and the current mean μ."""
        if self.network_output == "noise":
            return output_prediction(theta.mu, net_out, t, self.sigma1, self.t_min)
        return preconditioned_output(theta.mu, net_out, t, self.sigma1, self.t_min)

    # ---- generation
    def prior(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> GaussianBelief:
        """θ_0 = (μ = 0, ρ = 1) per image: the standard normal prior (eq. 48)."""
        return GaussianBelief(torch.zeros(shape, device=device), torch.ones(shape[0], device=device))

    def accuracy(self, t: float) -> float:
        return float(precision_schedule(torch.tensor(t, dtype=torch.float64), self.sigma1)) - 1.0

    def time_at(self, beta: float) -> float:
        return time_of_accuracy(beta, self.sigma1)

    def step_accuracy(self, i: int | Tensor, n: int) -> float | Tensor:
        return step_accuracy(i, n, self.sigma1)

    def receiver_sample(self, output: Tensor, alpha: float, generator: torch.Generator | None = None) -> Observation:
        """y ~ p_R(· | θ; t, α) = N(x̂, α⁻¹ I): the sender's observation of the predicted x̂ (Algorithm 3)."""
        return Observation(alpha, sender_sample(output, alpha, generator), None)

    def update(self, theta: GaussianBelief, observation: Observation) -> GaussianBelief:
        mu, rho = theta
        mu, rho = bayesian_update(mu, rho.reshape(-1, *([1] * (mu.dim() - 1))), observation.y, observation.alpha)
        return GaussianBelief(mu, rho.flatten())

    def final_sample(self, output: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The generated data: x̂(θ_n, 1), the output distribution's point mass at t = 1."""
        return output

    def point_output(self, x: Tensor) -> Tensor:
        """x̂ = x: the output distribution is a point mass at x̂ already (`final_sample` returns it)."""
        return x.float()

    # ---- the evidence view (eqs. 49–50, 77): z = ρμ, x̃ = x, s² = 1
    evidence_noise_var = 1.0

    def evidence_target(self, output: Tensor) -> Tensor:
        return output

    def theta_from_evidence(self, z: Tensor, beta: float) -> GaussianBelief:
        rho = 1.0 + beta
        return GaussianBelief(z / rho, torch.full((z.shape[0],), rho, device=z.device))

    def evidence(self, theta: GaussianBelief) -> Tensor:
        return theta.mu * theta.rho.reshape(-1, *([1] * (theta.mu.dim() - 1)))

    # ---- views
    def theta_view(self, theta: GaussianBelief) -> Tensor:
        return theta.mu

    def precision_view(self, theta: GaussianBelief) -> Tensor:
        return theta.rho

    def output_view(self, output: Tensor) -> Tensor:
        return output

    def sample_view(self, sample: Tensor) -> Tensor:
        return sample

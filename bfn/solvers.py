"""Few-step samplers for Bayesian Flow Networks: BFN-Solver-style ODE and SDE solvers (Xue et al. 2024).

Both flows are one Gaussian process in disguise. Let z be the sum of all sender samples, weighted by their
accuracies, and β(t) the accuracy accumulated by time t. Then, given the data,

    z(t) = β(t) x̃ + s √β(t) ε,      ε ~ N(0, I),

    continuous:  z = ρμ (ρ = 1 + β, β = σ1^{−2t} − 1),  x̃ = x,           s² = 1        (eqs. 49–50, 77)
    discrete:    z = y = ln θ + const (β = β1 t²),     x̃ = K e_x − 1,    s² = K        (eqs. 163, 185)

In β, z is a Brownian motion whose drift is the data, so its law without the data obeys
    SDE   dz = x̂(z, t) dβ + s dW_β          (x̂ = E[x̃ | z], what the network predicts)
and it has the same marginals as the probability-flow ODE, which in w = z/√β and u = √β reads
    ODE   dw = x̂ du,   starting from w(0) = s ε (a random start: θ_0 is the same for every image).

The paper's sampler is the first-order (Euler–Maruyama) solver of the SDE: for continuous data exactly, for
discrete data up to drawing one class k ~ p_O instead of using its mean (Xue et al., Props. 4.2 and 5.3).
Here that SDE and the ODE are integrated with higher order instead: multistep solvers that extrapolate x̂
linearly from the last two network outputs and integrate that line exactly over the step, in the log-SNR
λ = ln √β (as DPM-Solver++(2M); Lu et al. 2022). Everything works on the class logits / the
precision-weighted mean with plain tensor arithmetic: no per-pixel Python, one network call per step.

Where the steps go matters as much as the order. The original sampler's uniform grid makes a first, blind
step from θ_0 (where x̂ knows at most the class's mean image, and is exactly 0 for continuous data by
eq. 84's t_min rule) to β(1/n), which is already β ≈ 1 at 20 steps for σ1 = 0.001; the solvers instead take that
step to β = BETA_MIN and then space the steps uniformly in λ ("logsnr" grid, as DPM-Solver does).

Each flow supplies its side of that picture (`Flow.accuracy` β(t) and its inverse `time_at`, the noise
variance s², x̃̂ from the output distribution, θ from z); this module holds the update rules and the time
grids, and `bfn.sampling.SAMPLERS` turns them into named samplers:
    ode1     first-order probability-flow ODE solver (DDIM-like, "BFN-Solver1")
    ode2     second-order multistep ODE solver in λ (DPM-Solver++(2M)-like, "BFN-Solver++2")
    sde1     first-order SDE solver using the mean prediction x̂ (for continuous data, on the uniform grid,
             exactly the paper's sampler)
    sde2     second-order multistep SDE solver in λ (SDE-DPM-Solver++(2M)-like), also named `solver`
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bfn.flow import Flow, Theta


def _exp_integrals(a: float, b: float, power: int) -> tuple[float, float]:
    """∫ e^{pλ} dλ and ∫ e^{pλ}(λ − a) dλ over [a, b], for the weight e^{pλ} (p = 1: ODE in w, 2: SDE in z)."""
    ea, eb = math.exp(power * a), math.exp(power * b)
    h = b - a
    i0 = (eb - ea) / power
    i1 = eb * h / power - (eb - ea) / power**2
    return i0, i1


GRIDS = ("uniform", "logsnr")
BETA_MIN = 1e-2  # β at the first step of the log-SNR grid


def uniform_grid(steps: int) -> list[float]:
    """t_i = i/n: the original sampler's time grid."""
    return [i / steps for i in range(steps + 1)]


def time_grid(flow: Flow, steps: int, grid: str) -> list[float]:
    """t_0 = 0 < t_1 < … < t_n = 1.

    uniform: t_i = i/n, the original sampler's grid.
    logsnr:  t_1 where β = BETA_MIN (so the first, blind step from the prior loses almost nothing), then
             uniform in λ = ln √β up to t = 1, as DPM-Solver does. For the continuous flow β grows like
             σ1^{−2t} and the uniform grid's first step already reaches β ≈ 1 at 20 steps, throwing away
             what the network knows at t = 0 (x̂ is 0 there by eq. 84's t_min rule).
    """
    if grid not in GRIDS:
        raise ValueError(f"unknown time grid {grid!r}; choose one of {GRIDS}")
    if grid == "uniform" or steps == 1:
        return uniform_grid(steps)
    lam_lo, lam_hi = 0.5 * math.log(min(BETA_MIN, flow.accuracy(1 / steps))), 0.5 * math.log(flow.accuracy(1.0))
    lams = [lam_lo + (lam_hi - lam_lo) * k / (steps - 1) for k in range(steps)]
    return [0.0] + [flow.time_at(math.exp(2 * lam)) for lam in lams[:-1]] + [1.0]


@dataclass
class SolverUpdate:
    """One run's update rule integrating the ODE (stochastic=False) or the SDE with x̂ of order 1 or 2.

    Order 2 extrapolates x̂ linearly in λ = ln √β from the last two outputs; the first steps, where λ of the
    previous output is −∞ (t = 0), fall back to order 1. The state a multistep solver carries from step to
    step is in plain sight: `z`, the summed evidence after the last step, `prev`, the last x̃̂, and `last`, the
    θ it returned. Handed any other θ (a completion's resampling stepped back), it restarts from that θ's
    evidence at first order, as the last x̃̂ belongs to the abandoned path.
    """

    flow: Flow
    times: Sequence[float]
    generator: torch.Generator
    order: int = 2
    stochastic: bool = True
    z: Tensor | None = field(default=None, init=False)
    prev: Tensor | None = field(default=None, init=False)
    last: Theta | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {self.order}")
        self.betas = [self.flow.accuracy(t) for t in self.times]
        self.lams = [0.5 * math.log(b) if b > 0 else -math.inf for b in self.betas]
        self.noise_std = math.sqrt(self.flow.evidence_noise_var)

    def __call__(self, i: int, theta: Theta, output: Tensor) -> tuple[Theta, None]:
        """θ_{i−1} (through `z`) and the output distribution at t_{i−1} → θ_i, with no sender sample: the step
        integrates the ODE or SDE instead of making a Bayesian update."""
        if self.last is not None and theta is not self.last:
            self.z, self.prev = self.flow.evidence(theta), None
        x_hat = self.flow.evidence_target(output)
        lams, b_prev, b_next = self.lams, self.betas[i - 1], self.betas[i]
        z = self.z if self.z is not None else torch.zeros_like(x_hat)  # t_0: z = 0 (the prior)
        second = self.order == 2 and self.prev is not None and math.isfinite(lams[i - 2]) and b_prev > 0
        if second:
            slope = (x_hat - self.prev) / (lams[i - 1] - lams[i - 2])
        if self.stochastic or b_prev == 0:
            # z' = z + ∫ x̂ dβ + s √Δβ ξ; from t = 0 this is also the ODE's random start w(0) = s ε
            z_next = z + (b_next - b_prev) * x_hat
            if second:
                _, i1 = _exp_integrals(lams[i - 1], lams[i], 2)
                z_next = z_next + 2 * i1 * slope
            noise = torch.randn(x_hat.shape, generator=self.generator, device=x_hat.device, dtype=x_hat.dtype)
            z_next = z_next + self.noise_std * math.sqrt(b_next - b_prev) * noise
        else:
            # w' = w + ∫ x̂ du with w = z/√β, u = √β = e^λ
            u_prev, u_next = math.sqrt(b_prev), math.sqrt(b_next)
            w_next = z / u_prev + (u_next - u_prev) * x_hat
            if second:
                _, i1 = _exp_integrals(lams[i - 1], lams[i], 1)
                w_next = w_next + i1 * slope
            z_next = u_next * w_next
        self.z, self.prev = z_next, x_hat
        self.last = self.flow.theta_from_evidence(z_next, b_next)
        return self.last, None

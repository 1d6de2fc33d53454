"""The BFN objective, once: draw t, draw θ from the Bayesian flow, run the network, score the output.

Training minimises it, validation and the test-set evaluation report it, and scoring a single image uses
it, so the procedure exists here only (Graves et al. 2023, section 3 and Algorithms 1, 2, 4, 5, 7, 8):

    −ln p(x) ≤ L(x) + L^r(x),

with L the continuous-time loss L^∞ (t ~ U(0, 1)) or the n-step loss L^n (i ~ U{1, …, n}, t = (i − 1)/n),
and L^r the reconstruction loss at t = 1. Every term is one Monte-Carlo sample per image, in nats.
`net` may be the model or a wrapper around its network (DDP, torch.compile): it is called as
`net(network_input, t, labels)` and only the flow is read from `flow`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from bfn.flow import Flow

Net = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class NllTerms:
    """One image each: the diffusion-like loss (L^∞ or L^n) and the reconstruction loss L^r, in nats."""

    loss: Tensor
    reconstruction: Tensor

    @property
    def total(self) -> Tensor:
        """The bound on −ln p(x) per image."""
        return self.loss + self.reconstruction


def output_at(flow: Flow, net: Net, x: Tensor, labels: Tensor, t: Tensor, generator: torch.Generator | None) -> Tensor:
    """The output distribution at times t for θ ~ p_F(θ | x; t): what every loss term scores.

    On a GPU the network runs in bf16 autocast; the flow's maths stays in float32.
    """
    theta = flow.bayesian_flow(x, t, generator)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
        raw = net(flow.network_input(theta), t, labels)
    return flow.output(raw.float(), theta, t)


def diffusion_loss(flow: Flow, net: Net, x: Tensor, labels: Tensor, steps: int = 0,
                   generator: torch.Generator | None = None) -> Tensor:
    """L^∞ per image (`steps` = 0, eq. 205 / 101) or the n-step loss L^n with n = `steps` (eq. 195 / 96)."""
    b = x.shape[0]
    if steps:
        i = torch.randint(1, steps + 1, (b,), device=x.device, generator=generator)
        t = (i - 1).float() / steps
        return flow.discrete_time_loss(x, output_at(flow, net, x, labels, t, generator), i, steps, generator)
    t = torch.rand(b, device=x.device, generator=generator)
    return flow.continuous_time_loss(x, output_at(flow, net, x, labels, t, generator), t)


def reconstruction_loss(flow: Flow, net: Net, x: Tensor, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """L^r per image: −ln p_O(x | θ; 1) with θ drawn from the flow at t = 1 (eq. 207 / 108)."""
    ones = torch.ones(x.shape[0], device=x.device)
    return flow.reconstruction_loss(x, output_at(flow, net, x, labels, ones, generator))


def nll_terms(flow: Flow, net: Net, x: Tensor, labels: Tensor, steps: int = 0,
              generator: torch.Generator | None = None) -> NllTerms:
    """Both terms of the bound per image; `steps` as in `diffusion_loss`."""
    loss = diffusion_loss(flow, net, x, labels, steps, generator)
    return NllTerms(loss, reconstruction_loss(flow, net, x, labels, generator))

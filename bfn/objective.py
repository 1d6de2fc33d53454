"""The BFN objective, once: draw t, draw θ from the Bayesian flow, run the network, score the output.

Training minimises it, validation and the test-set evaluation report it, and scoring a single image uses
it, so the procedure exists here only (Graves et al. 2023, section 3 and Algorithms 1, 2, 4, 5, 7, 8):

    −ln p(x) ≤ L(x) + L^r(x),

with L the continuous-time loss L^∞ (t ~ U(0, 1)) or the n-step loss L^n (i ~ U{1, …, n}, t = (i − 1)/n),
and L^r the reconstruction loss at t = 1. Every term is one Monte-Carlo sample per image, in nats, except in
`label_bounds`, which scores each image under many labels at once for Bayes' rule (bfn/scoring.py).
`net` may be the model or a wrapper around its network (DDP, torch.compile): it is called as
`net(network_input, t, labels)` and only the flow is read from `flow`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from bfn.flow import Flow, NllUnit

Net = Callable[[Tensor, Tensor, Tensor], Tensor]
Weighting = Callable[[Tensor], Tensor]  # a training objective's weight of each time: w(t) per entry of t
TimeMap = Callable[[Tensor], Tensor]  # a training objective's times t from the uniform draws u ~ U(0, 1), per entry


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
    """The output distribution at times t for θ ~ p_F(θ | x; t): what every loss term scores."""
    theta = flow.bayesian_flow(x, t, generator)
    return flow.output(network_output(net, flow.network_input(theta), t, labels), theta, t)


def network_output(net: Net, inputs: Tensor, t: Tensor, labels: Tensor, max_rows: int | None = None) -> Tensor:
    """The network's raw output in float32, in calls of at most `max_rows` rows (all at once if None).

    On a GPU the network runs in bf16 autocast; the flow's maths stays in float32.
    """
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=inputs.is_cuda):
        if max_rows is None or inputs.shape[0] <= max_rows:
            return net(inputs, t, labels).float()
        parts = [net(inputs[k : k + max_rows], t[k : k + max_rows], labels[k : k + max_rows])
                 for k in range(0, inputs.shape[0], max_rows)]
    return torch.cat(parts).float()


def diffusion_loss(flow: Flow, net: Net, x: Tensor, labels: Tensor, steps: int = 0,
                   generator: torch.Generator | None = None, weighting: Weighting | None = None,
                   time_map: TimeMap | None = None) -> Tensor:
    """L^∞ per image (`steps` = 0, eq. 205 / 101) or the n-step loss L^n with n = `steps` (eq. 195 / 96); with a
    `weighting`, each image's term times `weighting(t)` at its time t, and with a `time_map`, L^∞'s term at
    t = time_map(u) for its uniform draw u (training objectives, no longer the bound). A time map draws nothing
    of its own, so the generator's stream, and with it a run's batches, stays that of the bound."""
    b = x.shape[0]
    if steps:
        if time_map is not None:
            raise ValueError("a time map moves the times of the continuous-time loss; the n-step loss draws steps")
        i = torch.randint(1, steps + 1, (b,), device=x.device, generator=generator)
        t = (i - 1).float() / steps
        loss = flow.discrete_time_loss(x, output_at(flow, net, x, labels, t, generator), i, steps, generator)
    else:
        t = torch.rand(b, device=x.device, generator=generator)
        t = t if time_map is None else time_map(t)
        loss = flow.continuous_time_loss(x, output_at(flow, net, x, labels, t, generator), t)
    return loss if weighting is None else loss * weighting(t)


def early_times(u: Tensor, until: float, share: float) -> Tensor:
    """Times from the mixture share · U(0, until) + (1 − share) · U(0, 1), one uniform draw u each: u below
    `share` is stretched onto [0, until), the rest onto [0, 1).

    A class-conditional network learns its "no class" path from few rows (the label dropout), and of those the
    uniform t of the bound puts few at the early times where an unconditional run chooses its digit. Drawing
    the "no class" rows' times from this mixture gives those times more of that path's training, each at the
    bound's own weight.
    """
    return torch.where(u < share, u / share * until, (u - share) / (1 - share))


def sigmoid_weighting(flow: Flow, t: Tensor, bias: float) -> Tensor:
    """w(t) = sigmoid(b − ln β(t)) per entry of `t`: the sigmoid weighting of Kingma & Gao (arXiv 2303.00848),
    with the log of the flow's accuracy β(t) in the place of their log-SNR (the same thing for the
    continuous flow, where β(t) = γ/(1 − γ)).

    Most of the bound's nats, and of its gradient, come from the late, nearly noiseless times; this keeps the
    early times, where the digit's shape is chosen, at the bound's weight and fades those with ln β(t) above
    b. Being monotone, it is still a likelihood objective, of the data with Gaussian noise added (their main
    result).
    """
    beta = torch.tensor([flow.accuracy(float(v)) for v in t.flatten()], dtype=torch.float64).reshape(t.shape)
    return torch.sigmoid(bias - beta.log()).to(t)


def reconstruction_loss(flow: Flow, net: Net, x: Tensor, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """L^r per image: −ln p_O(x | θ; 1) with θ drawn from the flow at t = 1 (eq. 207 / 108)."""
    ones = torch.ones(x.shape[0], device=x.device)
    return flow.reconstruction_loss(x, output_at(flow, net, x, labels, ones, generator))


def nll_terms(flow: Flow, net: Net, x: Tensor, labels: Tensor, steps: int = 0,
              generator: torch.Generator | None = None) -> NllTerms:
    """Both terms of the bound per image; `steps` as in `diffusion_loss`."""
    loss = diffusion_loss(flow, net, x, labels, steps, generator)
    return NllTerms(loss, reconstruction_loss(flow, net, x, labels, generator))


@dataclass(frozen=True)
class LabelBounds(NllTerms):
    """The bound of each image under each label: `loss` and `reconstruction` are (B, L), in nats.

    Attributes:
        dims: data dimensions per image, which `in_unit` divides by where the flow's unit is per dimension.
        times: the grid (G,) of `curve`, or None.
        curve: (B, L, G) the integrand of L^∞ at each grid time, in nats per unit time (L^∞ is its integral
            over t in [0, 1]); `loss` is its mean over the grid. None without a grid.
    """

    dims: int
    times: Tensor | None = None
    curve: Tensor | None = None

    def in_unit(self, unit: NllUnit) -> Tensor:
        """`total` in a flow's likelihood unit (e.g. bits/dim)."""
        return unit.convert(self.total, self.dims)


def curve_times(points: int, device: torch.device | str = "cpu") -> Tensor:
    """The midpoints of `points` equal bins of [0, 1]: the mean of a function over them is the midpoint rule."""
    return (torch.arange(points, device=device) + 0.5) / points


def stratify(u: Tensor, strata: int) -> Tensor:
    """(s + u) / S for the s-th of every S uniform draws u: one draw in each of S equal bins of [0, 1].

    Each draw is uniform on its bin, so the mean over the S times is still an unbiased estimate of the
    integral over t in [0, 1], without the clusters and gaps of independent times, which leave parts of the
    range (where the labels' losses part, say) unscored in one estimate and doubly scored in the next.
    """
    return (torch.arange(strata, device=u.device).repeat(u.shape[0] // strata) + u) / strata


def label_bounds(flow: Flow, net: Net, x: Tensor, labels: Tensor, samples: int = 4, generator: torch.Generator | None = None,
                 curve_points: int = 0, stratified: bool = True, max_rows: int | None = None) -> LabelBounds:
    """L^∞ + L^r of every image in x under every label, with common random numbers (eqs. 205 / 101, 207 / 108).

    Each image's times and draws θ ~ p_F(θ | x; t), and its draws θ ~ p_F(θ | x; 1) for L^r, are made once
    and scored under every label: the labels' bounds then differ only by the network's answers, so their
    differences (what Bayes' rule reads) are far less noisy than those of separate estimates. All labels ×
    draws go through the network together, in calls of at most `max_rows` rows.

    Args:
        labels: (L,) label indices; the model's `num_labels` is the "no class" label.
        samples: S, the draws per image of θ at t = 1 for L^r, and of t ~ U(0, 1) for L^∞ unless a grid is asked.
        stratified: draw the S times of each image one in each of S equal bins (`stratify`), else independently.
        curve_points: G > 0 replaces the random times of L^∞ by the G midpoints of `curve_times` (the same for
            every image, one θ draw each), returns the integrand there as `curve`, and takes L^∞ as its mean.

    Without a grid and unstratified, the draws are those `nll_terms` makes for each image repeated S times
    (`x.repeat_interleave(S, 0)`), in its order: t, θ at t, θ at 1; stratified, the same uniform draws u
    become the times (s + u) / S.
    """
    b, n = x.shape[0], len(labels)
    x_r = x.repeat_interleave(samples, 0)
    ones = torch.ones(b * samples, device=x.device)
    if curve_points:
        times = curve_times(curve_points, x.device)
        x_t, t = x.repeat_interleave(curve_points, 0), times.repeat(b)
    else:
        times = None
        x_t, t = x_r, torch.rand(b * samples, device=x.device, generator=generator)
        if stratified:
            t = stratify(t, samples)
    theta_t, theta_1 = flow.bayesian_flow(x_t, t, generator), flow.bayesian_flow(x_r, ones, generator)
    inputs = torch.cat([flow.network_input(theta_t), flow.network_input(theta_1)])
    rows = inputs.shape[0]
    raw = network_output(net, inputs.repeat(n, *[1] * (inputs.dim() - 1)), torch.cat([t, ones]).repeat(n),
                         labels.to(x.device).repeat_interleave(rows), max_rows).unflatten(0, (n, rows))
    split = t.shape[0]
    per_t = torch.stack([flow.continuous_time_loss(x_t, flow.output(r[:split], theta_t, t), t) for r in raw])
    per_1 = torch.stack([flow.reconstruction_loss(x_r, flow.output(r[split:], theta_1, ones)) for r in raw])
    per_t = per_t.unflatten(1, (b, -1)).transpose(0, 1)  # (B, L, S or G)
    return LabelBounds(per_t.mean(-1), per_1.unflatten(1, (b, samples)).mean(-1).T, x[0].numel(), times,
                       per_t if curve_points else None)

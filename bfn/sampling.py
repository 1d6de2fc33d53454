"""Sampling: one generator that yields every step's state, classifier-free guidance, and a registry.

The app streams these states, the CLI keeps the last one and the tests inspect all of them, so the
generative procedure exists exactly once. A run is fully determined by (model, labels, steps, guidance,
guidance interval, seed): all randomness comes from one seeded `torch.Generator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from bfn.flow import Flow, Theta
from bfn.model import BFNModel

IMAGE_SHAPE = (1, 28, 28)
MAX_STEPS = 10_000

# Where guidance pays, per flow kind: the default `guidance_interval` of every sampler. The discrete flow
# gathers its evidence late (β(t) = β1 t²: 91 % of it after t = 0.3), the continuous one early (its precision
# grows as σ1^−2t: μ already holds the digit's shape by t = 0.1), so the label matters in the middle of the
# one and at the start of the other. Chosen with the classifier sweep on the shipped models at guidance 3,
# 100 steps (README, "Guidance interval"): as recognisable as guiding throughout, closer to the data, and
# 35–45 % fewer network passes.
GUIDANCE_INTERVALS: dict[str, tuple[float, float]] = {"discrete": (0.3, 0.6), "continuous": (0.0, 0.1)}


@dataclass(frozen=True)
class StepState:
    """The state of a sampling run at one step, for a batch of B images (tensors are on the CPU).

    Attributes:
        step: 0 … num_steps; step i holds θ after i Bayesian updates.
        num_steps: n, the number of updates in the run.
        t: the time at which `output` was computed, i/n.
        theta: the input distribution: p(pixel on) for discrete data, μ for continuous data; (B, H, W).
        precision: ρ per image for continuous data (B,); None for discrete data.
        output: the output distribution: p_O(pixel on) for discrete data, x̂ for continuous data; (B, H, W).
        sample: the generated images, only on the final state (step == num_steps): {0, 1} pixels for
            discrete data, values in [−1, 1] for continuous data; (B, H, W).
        value_range: the range of `theta`, `output` and `sample`, for display: (0, 1) or (−1, 1).
        guidance: the guidance weight in effect for `output`: the run's, or 1 outside its guidance interval.
    """

    step: int
    num_steps: int
    t: float
    theta: Tensor
    precision: Tensor | None
    output: Tensor
    sample: Tensor | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    guidance: float = 1.0

    @property
    def is_final(self) -> bool:
        return self.sample is not None


def resolve_labels(labels: Sequence[int | None] | Tensor, num_labels: int) -> Tensor:
    """Digits 0 … num_labels−1, with None (or −1) meaning "no class" → the model's label indices."""
    if isinstance(labels, Tensor):
        labels = labels.tolist()
    labels = list(labels)
    if not labels:
        raise ValueError("labels must name at least one image (a digit, or None for unconditional)")
    out = []
    for label in labels:
        if label is None or label == -1:
            out.append(num_labels)
        elif isinstance(label, int) and not isinstance(label, bool) and 0 <= label < num_labels:
            out.append(label)
        else:
            raise ValueError(f"label {label!r} is not a digit 0–{num_labels - 1} or None (unconditional)")
    return torch.tensor(out, dtype=torch.long)


def guidance_interval_for(kind: str, interval: tuple[float, float] | None = None) -> tuple[float, float]:
    """The guidance interval a run uses: the one asked for, or else the flow kind's `GUIDANCE_INTERVALS`."""
    return GUIDANCE_INTERVALS[kind] if interval is None else interval


def validate_run(steps: int, guidance: float, seed: int, guidance_interval: tuple[float, float] | None = None) -> None:
    """Reject values that would silently produce garbage, with a message that says what is allowed.

    A `guidance_interval` of None stands for the flow kind's default, which is valid.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
        raise ValueError(f"guidance must be a finite number ≥ 0, got {guidance!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer from 0 to 2^63 − 1, got {seed!r}")
    if guidance_interval is None:
        return
    try:
        start, end = (float(v) for v in guidance_interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval must be two times (start, end), got {guidance_interval!r}") from None
    if not 0 <= start <= end <= 1:
        raise ValueError(f"guidance_interval must satisfy 0 ≤ start ≤ end ≤ 1, got {guidance_interval!r}")


def guided_network_output(model: BFNModel, net_input: Tensor, t: float, labels: Tensor, guidance: float) -> Tensor:
    """Classifier-free guidance: u + w (c − u) on the network's raw output.

    The raw output is the logit for discrete data and the noise ε̂ for continuous data, so guidance acts in
    logit space and in noise space respectively. w = 1 is the plain conditional network and w = 0 the
    unconditional one; both are evaluated without the other half. Rows whose label is already "no class"
    have c = u, so guidance leaves them unconditional.
    """
    null = torch.full_like(labels, model.num_labels)
    times = torch.full((labels.shape[0],), t, device=net_input.device)
    if guidance == 1 or bool((labels == null).all()):
        return model(net_input, times, labels)
    if guidance == 0:
        return model(net_input, times, null)
    both = model(torch.cat([net_input, net_input]), torch.cat([times, times]), torch.cat([labels, null]))
    cond, uncond = both.chunk(2)
    return uncond + guidance * (cond - uncond)


def guidance_at(t: float, guidance: float, interval: tuple[float, float]) -> float:
    """The guidance weight at time t: guidance beyond the conditional model (w > 1) acts only inside `interval`.

    Guidance in a limited interval (Kynkäänniemi et al. 2024, arXiv 2404.07724): where the output barely
    depends on the label, or the digit is already decided, guiding costs a second network pass and only
    narrows the samples, so there the plain conditional model (w = 1) is used. A weight w ≤ 1 blends towards
    the unconditional model and applies throughout, so w = 0 still samples the unconditional model.
    """
    start, end = interval
    return guidance if guidance <= 1 or start <= t <= end else 1.0


def _state(flow: Flow, step: int, n: int, t: float, theta: Theta, output: Tensor, guidance: float,
           sample: Tensor | None = None) -> StepState:
    precision = flow.precision_view(theta)
    return StepState(
        step=step,
        num_steps=n,
        t=t,
        theta=flow.theta_view(theta)[:, 0].cpu(),
        precision=None if precision is None else precision.cpu(),
        output=flow.output_view(output)[:, 0].cpu(),
        sample=None if sample is None else flow.sample_view(sample)[:, 0].cpu(),
        value_range=flow.value_range,
        guidance=guidance,
    )


Update = Callable[[int, Theta, Tensor], Theta]
"""One step of a sampler: (i, θ_{i−1}, output distribution at t_{i−1}) → θ_i, for i = 1 … n."""


def uniform_times(steps: int) -> list[float]:
    """t_i = i/n: the original sampler's time grid."""
    return [i / steps for i in range(steps + 1)]


def run_sampler(
    model: BFNModel,
    labels: Sequence[int | None] | Tensor,
    *,
    steps: int,
    guidance: float,
    seed: int,
    make_update: Callable[[Flow, Sequence[float], torch.Generator], Update],
    times: Callable[[Flow, int], Sequence[float]] | None = None,
    guidance_interval: tuple[float, float] | None = None,
) -> Iterator[StepState]:
    """The loop every sampler shares; a sampler differs only in its update rule (and maybe its time grid).

    For i = 1 … n: compute the output distribution at t_{i−1}, yield the state, and let the update turn
    θ_{i−1} into θ_i. Finally yield the output distribution at t_n = 1 together with a sample drawn from
    it. That is n + 1 states and n + 1 network evaluations (n for the continuous flow, whose output at t = 0
    does not depend on the network). `make_update(flow, times, generator)` is called
    once per run, so an update may keep history (multistep solvers); `times(flow, n)` gives t_0 = 0 < … <
    t_n = 1 (default: uniform). Guidance applies only at the times in `guidance_interval` (`guidance_at`;
    None: the flow kind's `GUIDANCE_INTERVALS`, (0, 1): everywhere, as in plain classifier-free guidance).
    """
    guidance_interval = guidance_interval_for(model.flow.kind, guidance_interval)
    validate_run(steps, guidance, seed, guidance_interval)
    label_idx = resolve_labels(labels, model.num_labels)
    device = next(model.parameters()).device
    label_idx = label_idx.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    flow = model.flow
    grid = list(times(flow, steps)) if times is not None else uniform_times(steps)
    if len(grid) != steps + 1 or grid[0] != 0 or grid[-1] != 1 or any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"a sampler's time grid must rise from 0 to 1 in {steps} steps, got {grid}")
    update = make_update(flow, grid, generator)
    theta = flow.prior((label_idx.shape[0], *IMAGE_SHAPE), device)

    def predict(t: float) -> tuple[Tensor, float]:
        """The output distribution at t and the guidance weight that shaped it."""
        weight = guidance_at(t, guidance, guidance_interval)
        net_input = flow.network_input(theta)
        if t < getattr(flow, "t_min", 0.0):
            # the continuous flow's x̂ is 0 before t_min whatever the network says (eq. 84): skip the pass
            raw = torch.zeros((label_idx.shape[0], *net_input.shape[1:]), device=device)
        else:
            raw = guided_network_output(model, net_input, t, label_idx, weight)
        return flow.output(raw, theta, torch.full((label_idx.shape[0],), t, device=device)), weight

    for i in range(1, steps + 1):
        t = grid[i - 1]
        output, weight = predict(t)
        yield _state(flow, i - 1, steps, t, theta, output, weight)
        theta = update(i, theta, output)
    output, weight = predict(1.0)
    yield _state(flow, steps, steps, 1.0, theta, output, weight, flow.final_sample(output, generator))


@torch.inference_mode()
def bfn_sampler(
    model: BFNModel,
    labels: Sequence[int | None] | Tensor,
    *,
    steps: int = 100,
    guidance: float = 1.0,
    seed: int = 0,
    guidance_interval: tuple[float, float] | None = None,
) -> Iterator[StepState]:
    """The paper's generative procedure (Algorithms 3 and 9 of Graves et al. 2023), one state per step.

    For i = 1 … n: compute the output distribution at t = (i−1)/n, yield the state, draw a sender sample
    from the receiver distribution with accuracy α_i and update θ. Finally yield the output distribution at
    t = 1 together with a sample drawn from it. That is n + 1 states and n + 1 network evaluations.
    """

    def ancestral(flow: Flow, times: Sequence[float], generator: torch.Generator) -> Update:
        return lambda i, theta, output: flow.sample_step(theta, output, flow.step_accuracy(i, steps), generator)

    yield from run_sampler(model, labels, steps=steps, guidance=guidance, seed=seed, make_update=ancestral,
                           guidance_interval=guidance_interval)


Sampler = Callable[..., Iterator[StepState]]

SAMPLERS: dict[str, Sampler] = {"bfn": bfn_sampler}


def get_sampler(name: str) -> Sampler:
    """Look a sampler up by name; the error lists the names that exist."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}") from None


def sample(model: BFNModel, labels: Sequence[int | None] | Tensor, *, sampler: str = "bfn", **kwargs) -> StepState:
    """Run a sampler to the end and return its final state."""
    state = None
    for state in get_sampler(sampler)(model, labels, **kwargs):
        pass
    return state

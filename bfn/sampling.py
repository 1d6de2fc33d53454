"""Sampling: one loop that yields every step's state, classifier-free guidance, autoguidance, and the samplers by name.

The app streams these states, the CLI keeps the last one and the tests inspect all of them, so the
generative procedure exists exactly once (`run_sampler`); a sampler is that loop with an update rule and a
time grid (`Sampler`), and `SAMPLERS` lists every one. A run is fully determined by (model, labels, steps,
guidance, guidance interval, autoguidance, seed, known data): all randomness comes from one seeded
`torch.Generator`.

Completion (inpainting) is the same loop told part of the data (`known`): at the known pixels the sender knows
the data, so every update there observes the true values instead of a draw from the output distribution.
θ then follows the Bayesian flow of the known data at those pixels, the network sees it as in training, and
its predictions for the other pixels are generated around it; every sampler completes, as none is changed.
Early on the known pixels are barely observed, so the generated ones commit before they could agree with
them; resampling (`resample`, after RePaint) takes each step again after forgetting what it added (`forget`).
"""

from __future__ import annotations

import math
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from bfn.flow import Flow, Observation, Theta
from bfn.solvers import SolverUpdate, time_grid

if TYPE_CHECKING:  # a model's settings name samplers of this module: imported for the annotation alone
    from bfn.settings import SamplingSettings

MAX_STEPS = 10_000
MAX_RESAMPLE = 100


class Network(Protocol):
    """What a sampler needs of a model (`bfn.model.BFNModel`, or anything that stands in for one: a test's exact
    posterior, the app's model that takes turns on the CPU): its flow, labels, data shape, recommended settings
    and guide, and a call from the network input, times and labels to the raw output."""

    flow: Flow
    num_labels: int  # this index itself is the "no class" label
    data_shape: tuple[int, int, int]
    sampling: SamplingSettings
    guide: Network | None  # its autoguidance guide, if it has one (`autoguided`)

    def __call__(self, theta_input: Tensor, t: Tensor, labels: Tensor) -> Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


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
            In a completion it is still the network's prediction at the known pixels too, so that the views
            show what the network believes; θ is what follows the known data there.
        sample: the generated images, only on the final state (step == num_steps): {0, 1} pixels for
            discrete data, values in [−1, 1] for continuous data; (B, H, W). A completion's sample holds the
            known data exactly at the known pixels.
        value_range: the range of `theta`, `output` and `sample`, for display: (0, 1) or (−1, 1).
        guidance: the guidance weight in effect for `output`: the run's, or 1 outside its guidance interval.
        autoguidance: the autoguidance weight in effect for `output`: the run's, or 1 outside its interval.
        observation: the sender sample whose Bayesian update turned the previous state's θ into this one's,
            per image and pixel: y (B, H, W, m) with m numbers per pixel (one per class, or one) and the drawn
            class (B, H, W) where the flow draws one. None at step 0, for samplers whose update is not a
            Bayesian update of a sender sample (the solvers), and where resampling replaced that θ.
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
    observation: Observation | None = None
    autoguidance: float = 1.0

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


def guidance_interval_for(model: Network, interval: tuple[float, float] | None = None) -> tuple[float, float]:
    """The guidance interval a run uses: the one asked for, else the model's recommended one (its config's
    `sampling.guidance_interval`), else its flow's `default_guidance_interval`."""
    if interval is not None:
        return interval
    return model.sampling.guidance_interval or model.flow.default_guidance_interval


def _check_interval(name: str, interval: tuple[float, float] | None) -> None:
    """An interval of times is two numbers 0 ≤ start ≤ end ≤ 1; None stands for a default, which is valid."""
    if interval is None:
        return
    try:
        start, end = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two times (start, end), got {interval!r}") from None
    if not 0 <= start <= end <= 1:
        raise ValueError(f"{name} must satisfy 0 ≤ start ≤ end ≤ 1, got {interval!r}")


def validate_run(steps: int, guidance: float, seed: int, guidance_interval: tuple[float, float] | None = None,
                 rescaled_phi: float = 0.0, resample: int = 1, autoguidance: float = 1.0,
                 autoguidance_interval: tuple[float, float] | None = None) -> None:
    """Reject values that would silently produce garbage, with a message that says what is allowed.

    An interval of None stands for the model's recommended one, which is valid.
    """
    if isinstance(rescaled_phi, bool) or not isinstance(rescaled_phi, (int, float)) or not 0 <= rescaled_phi <= 1:
        raise ValueError(f"rescaled_phi must be a number from 0 to 1, got {rescaled_phi!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
        raise ValueError(f"guidance must be a finite number ≥ 0, got {guidance!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer from 0 to 2^63 − 1, got {seed!r}")
    if isinstance(resample, bool) or not isinstance(resample, int) or not 1 <= resample <= MAX_RESAMPLE:
        raise ValueError(f"resample must be an integer from 1 to {MAX_RESAMPLE}, got {resample!r}")
    if (isinstance(autoguidance, bool) or not isinstance(autoguidance, (int, float)) or not math.isfinite(autoguidance)
            or autoguidance < 1):
        raise ValueError(f"autoguidance must be a finite number ≥ 1 (1: off), got {autoguidance!r}")
    _check_interval("guidance_interval", guidance_interval)
    _check_interval("autoguidance_interval", autoguidance_interval)


def rescale_guided(guided: Tensor, cond: Tensor, phi: float) -> Tensor:
    """Rescaled classifier-free guidance (Lin et al. 2023, arXiv 2305.08891, eq. 15–16).

    Guidance with w > 1 inflates the output's spread beyond anything the conditional model produces, which
    over-saturates the samples; rescaling each image's guided output to the conditional output's standard
    deviation undoes that, and φ blends the rescaled and the plain guided output.
    """
    dims = tuple(range(1, guided.dim()))
    rescaled = guided * (cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True).clamp_min(1e-12))
    return phi * rescaled + (1 - phi) * guided


def guided_network_output(model: Network, net_input: Tensor, t: float, labels: Tensor, guidance: float,
                          rescaled_phi: float = 0.0) -> Tensor:
    """Classifier-free guidance: u + w (c − u) on the network's raw output, optionally rescaled (φ > 0).

    The raw output is the logit for discrete data; for continuous data it is the noise ε̂ or a preconditioned
    output, and either way x̂ is affine in it with the same coefficients for both halves, so guidance acts on x̂
    before clipping. w = 1 is the plain conditional network and w = 0 the
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
    guided = uncond + guidance * (cond - uncond)
    return rescale_guided(guided, cond, rescaled_phi) if rescaled_phi else guided


def autoguidance_interval_for(model: Network, interval: tuple[float, float] | None = None) -> tuple[float, float]:
    """The autoguidance interval a run uses: the one asked for, else the model's recommended one (its config's
    `sampling.autoguidance_interval`), else the whole run."""
    if interval is not None:
        return interval
    return model.sampling.autoguidance_interval or (0.0, 1.0)


def autoguided(good: Tensor, bad: Tensor, weight: float) -> Tensor:
    """Autoguidance (Karras et al. 2024, arXiv 2406.02507, eq. 2): bad + w (good − bad) on the raw output.

    "bad" is a smaller, briefly trained network of the same flow, data and labels (the model's guide): where
    the two disagree is where the good model's extra training matters, and w > 1 pushes further that way. The
    guide sees the same labels, so unlike classifier-free guidance it also sharpens unconditional samples.
    w = 1 is exactly `good`.
    """
    return good if weight == 1 else bad + weight * (good - bad)


def guidance_at(t: float, guidance: float, interval: tuple[float, float]) -> float:
    """The guidance weight at time t: guidance beyond the conditional model (w > 1) acts only inside `interval`.

    Guidance in a limited interval (Kynkäänniemi et al. 2024, arXiv 2404.07724): where the output barely
    depends on the label, or the digit is already decided, guiding costs a second network pass and only
    narrows the samples, so there the plain conditional model (w = 1) is used. A weight w ≤ 1 blends towards
    the unconditional model and applies throughout, so w = 0 still samples the unconditional model.
    """
    start, end = interval
    return guidance if guidance <= 1 or start <= t <= end else 1.0


def autoguidance_at(t: float, autoguidance: float, interval: tuple[float, float]) -> float:
    """The autoguidance weight at time t: the run's inside `interval`, 1 (off) outside it."""
    start, end = interval
    return autoguidance if start <= t <= end else 1.0


def _observation_view(observation: Observation | None) -> Observation | None:
    """An observation as the states report it: image-shaped (B, H, W, m) y and (B, H, W) classes, on the CPU."""
    if observation is None:
        return None
    y, drawn = observation.y[:, 0], observation.drawn
    return Observation(observation.alpha, y.reshape(*y.shape[:3], -1).cpu(), None if drawn is None else drawn[:, 0].cpu())


def _state(flow: Flow, step: int, n: int, t: float, theta: Theta, output: Tensor, weights: tuple[float, float],
           sample: Tensor | None = None, observation: Observation | None = None) -> StepState:
    precision = flow.precision_view(theta)
    return StepState(
        step=step,
        num_steps=n,
        t=t,
        theta=flow.theta_view(theta)[:, 0].cpu(),
        precision=None if precision is None else precision.cpu(),
        output=flow.output_view(output)[:, 0].cpu(),
        sample=None if sample is None else flow.sample_view(sample)[:, 0].cpu(),
        value_range=flow.display.value_range,
        guidance=weights[0],
        observation=_observation_view(observation),
        autoguidance=weights[1],
    )


class Update(Protocol):
    """One run's update rule: (i, θ_{i−1}, output distribution at t_{i−1}) → (θ_i, what it observed), i = 1 … n.

    What it observed is the sender sample of a Bayesian update, or None for a rule that makes no such update
    (a solver integrating the ODE or SDE).

    A step may be taken again from a θ_{i−1} that the rule did not return (resampling steps back); a rule
    that carries state from step to step (a multistep solver) then restarts from that θ.
    """

    def __call__(self, i: int, theta: Theta, output: Tensor) -> tuple[Theta, Observation | None]: ...


MakeUpdate = Callable[[Flow, Sequence[float], torch.Generator], Update]
"""Builds a run's update rule from the flow, the time grid t_0 … t_n and the run's generator."""

Known = tuple[Tensor, Tensor]
"""What a completion knows: (x, mask), the data in the flow's data space (B, 1, H, W) and a bool mask that
broadcasts to (B, 1, H, W), True where x is known."""


def known_output(flow: Flow, known: Known, shape: tuple[int, ...], device: torch.device | str) -> tuple[Tensor, Tensor]:
    """The point-mass output distribution at the known data, and the mask shaped to select from it."""
    x, mask = known
    if tuple(x.shape) != shape:
        raise ValueError(f"the known data must have shape {shape} (one image per label), got {tuple(x.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"the known-pixel mask must be a bool tensor, got {mask.dtype}")
    try:
        mask = torch.broadcast_to(mask, shape)
    except RuntimeError:
        raise ValueError(f"the known-pixel mask of shape {tuple(mask.shape)} does not broadcast to {shape}") from None
    point = flow.point_output(x.to(device))
    # a flow's output distribution may have axes after the data's (the class axis): the mask broadcasts over them
    return point, mask.to(device).reshape(*shape, *([1] * (point.dim() - len(shape))))


def forget(flow: Flow, theta: Theta, beta: float, earlier: float, generator: torch.Generator) -> Theta:
    """θ after accuracy β → a θ after the accuracy `earlier` ≤ β that could have led to it.

    In the evidence view (bfn/solvers.py) z(β) = β x̃ + s √β ε is a Brownian motion with drift x̃ in β, so
    given z(β) the evidence at β' ≤ β is the Brownian bridge N(β'/β z, s² β'(β − β')/β), whatever x̃ is:
    stepping back needs neither the network nor the data. It is RePaint's forward noising (Lugmayr et al.
    2022, arXiv 2201.09865) for a Bayesian flow; at β' = 0 it returns the prior.
    """
    z = flow.evidence(theta)
    noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    std = math.sqrt(flow.evidence_noise_var * earlier * (beta - earlier) / beta)
    return flow.theta_from_evidence(earlier / beta * z + std * noise, earlier)


def run_sampler(
    model: Network,
    labels: Sequence[int | None] | Tensor,
    *,
    steps: int,
    guidance: float,
    seed: int,
    make_update: MakeUpdate,
    grid: str = "uniform",
    guidance_interval: tuple[float, float] | None = None,
    rescaled_phi: float = 0.0,
    known: Known | None = None,
    resample: int = 1,
    autoguidance: float = 1.0,
    autoguidance_interval: tuple[float, float] | None = None,
) -> Iterator[StepState]:
    """The loop every sampler shares; a sampler differs only in its update rule (and maybe its time grid).

    For i = 1 … n: compute the output distribution at t_{i−1}, yield the state, and let the update turn
    θ_{i−1} into θ_i. Finally yield the output distribution at t_n = 1 together with a sample drawn from
    it. That is n + 1 states and n + 1 network evaluations (fewer where the flow says the output does not
    depend on the network, `Flow.needs_network`). `make_update(flow, times, generator)` is called once per
    run, so an update may keep state (multistep solvers); `grid` names the time grid (`bfn.solvers.GRIDS`).
    Guidance applies only at the times in `guidance_interval` (`guidance_at`; None: the model's recommended
    interval, `guidance_interval_for`; (0, 1): everywhere, as in plain classifier-free guidance), rescaled by
    `rescaled_phi` (`rescale_guided`; 0: plain guidance). `autoguidance` = w > 1 then moves the (guided) output
    away from the model's guide's (`autoguided`, `BFNModel.guide`) at the times in `autoguidance_interval`
    (None: the model's recommended interval, `autoguidance_interval_for`), one guide pass per step there.

    `known` = (x, mask) makes the run a completion: where the mask is True, the update and the final sample
    see the output distribution that puts all its mass on x (`Flow.point_output`) instead of the network's,
    so the sender samples there come from the true values and the sample ends as x; the states report the
    network's own output (see `StepState`). Nothing else changes, not even the random draws: with no pixel
    known the run is the ordinary sample, bit for bit.

    `resample` = r > 1 takes each step of a completion r times (RePaint's resampling with jump length 1):
    after a take, the evidence it added is forgotten (`forget`, back to θ at t_{i−1}) and the step is taken
    again from a fresh prediction, so the generated pixels get r chances to agree with the known ones; the
    last take stands and is the one reported. It costs r network evaluations per step, and does nothing
    without a known pixel (there is nothing to agree with, and the run stays the ordinary sample).
    """
    flow = model.flow
    guidance_interval = guidance_interval_for(model, guidance_interval)
    validate_run(steps, guidance, seed, guidance_interval, rescaled_phi, resample, autoguidance, autoguidance_interval)
    if autoguidance != 1:  # a model asked for no autoguidance need have neither a guide nor settings for one
        if model.guide is None:
            raise ValueError("autoguidance needs the model's guide (a guide/ folder beside its weights), and this model has none")
        autoguidance_interval = autoguidance_interval_for(model, autoguidance_interval)
    else:
        autoguidance_interval = (0.0, 1.0)
    label_idx = resolve_labels(labels, model.num_labels)
    device = next(model.parameters()).device
    label_idx = label_idx.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    times = time_grid(flow, steps, grid)
    update = make_update(flow, times, generator)
    shape = (label_idx.shape[0], *model.data_shape)
    theta = flow.prior(shape, device)
    takes = 1
    observation = None  # what the update that led to the next state observed
    if known is not None:
        point, mask = known_output(flow, known, shape, device)
        takes = resample if bool(mask.any()) else 1
        betas = [flow.accuracy(t) for t in times]

    def observed(output: Tensor) -> Tensor:
        """The output distribution the update draws from: the sender's point mass at the known pixels."""
        return output if known is None else torch.where(mask, point, output)

    def predict(t: float) -> tuple[Tensor, tuple[float, float]]:
        """The output distribution at t and the (guidance, autoguidance) weights that shaped it."""
        weight = guidance_at(t, guidance, guidance_interval)
        auto = autoguidance_at(t, autoguidance, autoguidance_interval)
        net_input = flow.network_input(theta)
        times_now = torch.full((label_idx.shape[0],), t, device=device)
        if flow.needs_network(t):
            raw = guided_network_output(model, net_input, t, label_idx, weight, rescaled_phi)
            if auto != 1:
                raw = autoguided(raw, model.guide(net_input, times_now, label_idx), auto)
        else:
            raw = torch.zeros((label_idx.shape[0], *net_input.shape[1:]), device=device)
        return flow.output(raw, theta, times_now), (weight, auto)

    for i in range(1, steps + 1):
        t = times[i - 1]
        for take in range(takes):
            if take:
                theta = forget(flow, theta, betas[i], betas[i - 1], generator)
            output, weights = predict(t)
            if take == takes - 1:  # a later take's θ was forgotten and is not what the last update made
                yield _state(flow, i - 1, steps, t, theta, output, weights, observation=None if take else observation)
            theta, observation = update(i, theta, observed(output))
    output, weights = predict(1.0)
    yield _state(flow, steps, steps, 1.0, theta, output, weights, flow.final_sample(observed(output), generator), observation)


@dataclass
class AncestralUpdate:
    """The paper's update (Algorithms 3 and 9): draw from the receiver with accuracy α_i, update θ by Bayes."""

    flow: Flow
    times: Sequence[float]
    generator: torch.Generator

    def __call__(self, i: int, theta: Theta, output: Tensor) -> tuple[Theta, Observation]:
        observation = self.flow.receiver_sample(output, self.flow.step_accuracy(i, len(self.times) - 1), self.generator)
        return self.flow.update(theta, observation), observation


@dataclass(frozen=True)
class Sampler:
    """A named sampler: the shared loop with one update rule on one time grid.

    Call it like a function: `sampler(model, labels, steps=…, guidance=…, seed=…, guidance_interval=…,
    rescaled_phi=…, known=…, resample=…, autoguidance=…, autoguidance_interval=…)` yields the run's `StepState`s (see `run_sampler`; `known` makes it a
    completion, `resample` resamples it).
    """

    name: str
    description: str
    make_update: MakeUpdate
    grid: str = "uniform"
    default_steps: int = 100
    observes: bool = False  # its update is a Bayesian update: its states carry what it observed (`StepState.observation`)

    @torch.inference_mode()  # a generator: torch enters the mode around each step, not across the caller's work
    def __call__(
        self,
        model: Network,
        labels: Sequence[int | None] | Tensor,
        *,
        steps: int | None = None,
        guidance: float = 1.0,
        seed: int = 0,
        guidance_interval: tuple[float, float] | None = None,
        rescaled_phi: float = 0.0,
        known: Known | None = None,
        resample: int = 1,
        autoguidance: float = 1.0,
        autoguidance_interval: tuple[float, float] | None = None,
    ) -> Iterator[StepState]:
        yield from run_sampler(model, labels, steps=self.default_steps if steps is None else steps, guidance=guidance,
                               seed=seed, make_update=self.make_update, grid=self.grid, guidance_interval=guidance_interval,
                               rescaled_phi=rescaled_phi, known=known, resample=resample, autoguidance=autoguidance,
                               autoguidance_interval=autoguidance_interval)


def _solver(order: int, stochastic: bool) -> MakeUpdate:
    return functools.partial(SolverUpdate, order=order, stochastic=stochastic)


bfn_sampler = Sampler("bfn", "The paper's generative procedure (Algorithms 3 and 9 of Graves et al. 2023).", AncestralUpdate, observes=True)
ode1_sampler = Sampler("ode1", "First-order probability-flow ODE solver (DDIM-like) with a random start.", _solver(1, False), "logsnr", 20)
ode2_sampler = Sampler("ode2", "Second-order multistep probability-flow ODE solver (x̂ linear in λ).", _solver(2, False), "logsnr", 20)
sde1_sampler = Sampler("sde1", "First-order SDE solver using the mean prediction x̂ (no class draw).", _solver(1, True), "logsnr", 20)
sde2_sampler = Sampler("sde2", "Second-order multistep SDE solver (x̂ linear in λ).", _solver(2, True), "logsnr", 20)
solver_sampler = Sampler(
    "solver",
    "The recommended few-step sampler, sde2: it had the lowest Fréchet distance of the solvers for both flows (docs/quality-and-speed.md).",
    _solver(2, True), "logsnr", 20,
)

SAMPLERS: dict[str, Sampler] = {
    s.name: s for s in (bfn_sampler, solver_sampler, ode1_sampler, ode2_sampler, sde1_sampler, sde2_sampler)
}


def get_sampler(name: str) -> Sampler:
    """Look a sampler up by name; the error lists the names that exist."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}") from None


def sample(model: Network, labels: Sequence[int | None] | Tensor, *, sampler: str = "bfn", **kwargs) -> StepState:
    """Run a sampler to the end and return its final state."""
    state = None
    for state in get_sampler(sampler)(model, labels, **kwargs):
        pass
    return state

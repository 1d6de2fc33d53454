"""Adding a flow kind is one class plus one factory entry: a third kind, defined here and nowhere else, runs
through the samplers, a training step, the NLL evaluation and the app's renderers.

`LinearGaussianFlow` is a toy continuous flow with a linear accuracy schedule β(t) = β1 t whose network
predicts x̂ directly. Its equations follow from the paper's section 4 with that schedule:
    p_F(μ | x; t) = N(β x / (1 + β), β / (1 + β)²),   ρ(t) = 1 + β(t),
    L^∞ = ½ β′(t) ‖x − x̂‖² = ½ β1 ‖x − x̂‖²,           L^n = n/2 α_i ‖x − x̂‖²,
and an 8-bit reconstruction term with the std 1/√ρ(1) left at t = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor

from bfn.continuous import ContinuousFlow, bayesian_update, reconstruction_loss, sender_sample, update_in_numbers
from bfn.flow import FlowDisplay, GaussianBelief, NllUnit, Observation
from bfn.kinds import FLOWS
from bfn.model import BFNModel
from bfn.sampling import SAMPLERS, sample
from tests.support.models import TINY_UNET
from training.data import Split
from training.evaluate import evaluate_nll
from training.loop import TrainConfig, train


def _statistics(theta_view: Tensor, precision: Tensor) -> tuple[float, float]:
    sigma = precision.rsqrt().reshape(-1, 1, 1)
    return float(sigma.mean()), float((theta_view.abs() >= 2 * sigma).float().mean())


@dataclass(frozen=True)
class LinearGaussianFlow:
    beta1: float = 50.0

    kind = "linear-gaussian"
    channels_per_dim = 1
    binary = False
    num_classes = None
    nll_unit = NllUnit("bits/dim", per_dim=True, per_bit=True)
    default_guidance_interval = (0.0, 1.0)
    display = FlowDisplay("Linear Gaussian (toy)", "toy", "grey levels in [−1, 1].", "**θ**: μ", "**output**: x̂",
                          "θ: μ", "output: x̂", (-1.0, 1.0), "σ of θ", "θ is a mean μ per pixel and one precision.",
                          step_statistics=_statistics,
                          update_in_numbers=update_in_numbers)  # the same conjugate update
    evidence_noise_var = 1.0

    def data_from_images(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return images.float().unsqueeze(1) / 255 * 2 - 1

    def bayesian_flow(self, x: Tensor, t: Tensor, generator: torch.Generator | None = None) -> GaussianBelief:
        beta = (self.beta1 * t).reshape(-1, *([1] * (x.dim() - 1)))
        noise = torch.randn(x.shape, generator=generator)
        mu = beta / (1 + beta) * x + beta.sqrt() / (1 + beta) * noise
        return GaussianBelief(mu, 1 + self.beta1 * t)

    def continuous_time_loss(self, x: Tensor, output: Tensor, t: Tensor) -> Tensor:
        return 0.5 * self.beta1 * (x - output).pow(2).flatten(1).sum(1)

    def discrete_time_loss(self, x: Tensor, output: Tensor, i: Tensor, n: int, generator=None) -> Tensor:
        return n / 2 * self.step_accuracy(i, n) * (x - output).pow(2).flatten(1).sum(1)

    def reconstruction_loss(self, x: Tensor, output: Tensor) -> Tensor:
        return reconstruction_loss(x, output, 1 / math.sqrt(1 + self.beta1))

    def network_input(self, theta: GaussianBelief) -> Tensor:
        return theta.mu

    def needs_network(self, t: float) -> bool:
        return True

    def output(self, net_out: Tensor, theta: GaussianBelief, t: Tensor) -> Tensor:
        return net_out.tanh()

    def prior(self, shape, device="cpu") -> GaussianBelief:
        return GaussianBelief(torch.zeros(shape, device=device), torch.ones(shape[0], device=device))

    def accuracy(self, t: float) -> float:
        return self.beta1 * t

    def time_at(self, beta: float) -> float:
        return beta / self.beta1

    def step_accuracy(self, i, n: int):
        return self.beta1 / n + 0 * i

    def receiver_sample(self, output: Tensor, alpha: float, generator=None) -> Observation:
        return Observation(alpha, sender_sample(output, alpha, generator), None)

    def update(self, theta: GaussianBelief, observation: Observation) -> GaussianBelief:
        mu, rho = bayesian_update(theta.mu, theta.rho.reshape(-1, 1, 1, 1), observation.y, observation.alpha)
        return GaussianBelief(mu, rho.flatten())

    def final_sample(self, output: Tensor, generator=None) -> Tensor:
        return output

    def point_output(self, x: Tensor) -> Tensor:
        return x

    def evidence_target(self, output: Tensor) -> Tensor:
        return output

    def theta_from_evidence(self, z: Tensor, beta: float) -> GaussianBelief:
        return GaussianBelief(z / (1 + beta), torch.full((z.shape[0],), 1 + beta))

    def evidence(self, theta: GaussianBelief) -> Tensor:
        return theta.mu * theta.rho.reshape(-1, 1, 1, 1)

    # θ is a Gaussian belief (μ, ρ) and the output x̂ itself: shown as the continuous flow shows its own
    theta_view, precision_view = ContinuousFlow.theta_view, ContinuousFlow.precision_view
    output_view = sample_view = ContinuousFlow.output_view



@pytest.fixture
def toy_kind(monkeypatch):
    """The new kind, registered for this test only (as its factory entry would be)."""
    monkeypatch.setitem(FLOWS, LinearGaussianFlow.kind, LinearGaussianFlow)
    return LinearGaussianFlow.kind


@pytest.fixture
def toy_model(toy_kind) -> BFNModel:
    torch.manual_seed(0)
    model = BFNModel(toy_kind, {"beta1": 20.0}, TINY_UNET)
    with torch.no_grad():
        model.net.head[-1].weight.normal_(0, 0.3)
    return model.eval()


def test_the_exact_flow_distribution_is_the_posterior_of_one_observation(toy_kind) -> None:
    """The toy's own p_F against one Bayesian update of the prior with accuracy β(t), so the toy is a real flow."""
    flow = LinearGaussianFlow(beta1=8.0)
    x, t = torch.full((20_000, 1, 1, 1), 0.5), torch.full((20_000,), 0.5)
    mu = flow.bayesian_flow(x, t, torch.Generator().manual_seed(0)).mu
    beta = 4.0
    assert mu.mean().item() == pytest.approx(beta / (1 + beta) * 0.5, abs=0.01)
    assert mu.var().item() == pytest.approx(beta / (1 + beta) ** 2, rel=0.05)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_runs_the_new_kind_reproducibly(toy_model, sampler: str) -> None:
    a = sample(toy_model, [1, None], sampler=sampler, steps=5, guidance=2.0, seed=3)
    b = sample(toy_model, [1, None], sampler=sampler, steps=5, guidance=2.0, seed=3)
    assert a.sample.shape == (2, 28, 28) and a.value_range == (-1.0, 1.0) and a.precision is not None
    torch.testing.assert_close(a.sample, b.sample, rtol=0, atol=0)
    assert a.precision[0].item() == pytest.approx(1 + 20.0)  # every sampler ends at ρ(1) = 1 + β(1)


def test_training_and_nll_evaluation_run_the_new_kind(toy_kind, tmp_path) -> None:
    images = torch.randint(0, 256, (48, 28, 28), dtype=torch.uint8)
    labels = torch.arange(48) % 10
    data = (Split(images[:40], labels[:40]), Split(images[40:], labels[40:]))
    cfg = TrainConfig(kind=toy_kind, out=str(tmp_path / "run"), flow={"beta1": 20.0}, unet=TINY_UNET, batch_size=8,
                      warmup_steps=1, max_steps=2, checkpoint_every=2, eval_every=2, log_every=1, val_images=8, sample_steps=2)
    last = train(cfg, data=data)
    assert last["step"] == 2 and np.isfinite(last["val_loss"])
    model = BFNModel(toy_kind, {"beta1": 20.0}, TINY_UNET).eval()
    result = evaluate_nll(model, data[1], batch_size=4)
    assert result["unit"] == "bits/dim" and result["kind"] == toy_kind
    assert result["nll_conditional"] > result["reconstruction_conditional"] > 0


def test_the_apps_views_render_the_new_kind(toy_model) -> None:
    """Recorded frames, every figure and both exports, with the new kind's own words and range."""
    import plotly.graph_objects as go

    from app.core.frames import Frames
    from app.features.generate import exports, figures
    from app.ui.figures import pixel_heatmap
    from app.ui.images import theta_image

    frames = Frames(toy_model.flow, 2, 4)
    for state in SAMPLERS["bfn"](toy_model, [1, None], steps=4, guidance=2.0, seed=0):
        frames.record(state)
    assert frames.finished and frames.precision is not None and frames.title == "Linear Gaussian (toy)"
    by_model = {"toy": frames}
    assert theta_image(frames, 2).dtype == np.uint8
    for figure in (pixel_heatmap(by_model, 3, 0, [(0, 14, 14)], [1, None]), figures.trajectories(by_model, 3, [(0, 14, 14)]),
                   figures.step_summary(by_model, 3), figures.digit_beliefs(by_model, 3, 0, [1, None])):
        go.Figure(figure)  # a valid Plotly figure
    hover = figures.trajectories(by_model, 3, [(0, 14, 14)])["data"][0]["hovertemplate"]
    assert "θ: μ" in hover and "σ of θ" in str(figures.step_summary(by_model, 3))
    assert exports.animation_gif(by_model)[:6] == b"GIF89a" and exports.png_bytes(exports.final_picture(by_model))[:4] == b"\x89PNG"

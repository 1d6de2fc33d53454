"""One variable's Bayesian flow: the draws the view shows follow the closed forms of p_F(θ | x; t), and its
figures hold what their words say."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F

from app.features import explainer
from bfn import continuous, discrete

N = 40_000


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("t", [0.3, 1.0])
def test_discrete_flow_draws_have_the_sender_moments_of_beta(k: int, t: float) -> None:
    """θ = softmax(y), y ~ N(β(K e_x − 1), βK I) (eq. 185): ln θ_x − ln θ_j = y_x − y_j ~ N(βK, 2βK)."""
    beta1, x = 3.0, 1
    theta = discrete.bayesian_flow_sample(F.one_hot(torch.full((N,), x), k).double(), torch.full((N,), t, dtype=torch.float64),
                                          beta1, torch.Generator().manual_seed(0))
    beta = beta1 * t**2
    for j in [c for c in range(k) if c != x]:
        d = torch.log(theta[:, x]) - torch.log(theta[:, j])
        sd = math.sqrt(2 * beta * k)
        assert float(d.mean()) == pytest.approx(beta * k, abs=4 * sd / math.sqrt(N))
        assert float(d.var()) == pytest.approx(2 * beta * k, rel=4 * math.sqrt(2 / N))


@pytest.mark.parametrize("x", [0, 1])
def test_the_binary_density_is_the_distribution_of_the_draws(x: int) -> None:
    beta1, t = 3.0, 0.6
    grid = torch.linspace(1e-6, 1 - 1e-6, 200_001, dtype=torch.float64)
    density = discrete.binary_flow_density(grid, t, beta1, x)
    step = float(grid[1] - grid[0])
    assert float(density.sum()) * step == pytest.approx(1.0, abs=1e-3)
    theta = discrete.bayesian_flow_sample(F.one_hot(torch.full((N,), x), 2).double(), torch.full((N,), t, dtype=torch.float64),
                                          beta1, torch.Generator().manual_seed(1))[:, 1]
    for edge in (0.1, 0.3, 0.5, 0.7, 0.9):
        below = float(density[grid < edge].sum()) * step
        assert float((theta < edge).double().mean()) == pytest.approx(below, abs=4 * math.sqrt(0.25 / N))


@pytest.mark.parametrize("t", [0.2, 0.5, 1.0])
def test_continuous_flow_draws_are_normal_around_gamma_x(t: float) -> None:
    """μ ~ N(γx, γ(1 − γ)) with γ = β/(1 + β) = 1 − σ1^{2t} (eq. 77)."""
    sigma1, x = 0.02, 0.6
    beta = sigma1 ** (-2 * t) - 1
    gamma = beta / (1 + beta)
    mean, var = continuous.bayesian_flow_moments(torch.tensor(x, dtype=torch.float64), torch.tensor(t, dtype=torch.float64), sigma1)
    assert float(mean) == pytest.approx(gamma * x) and float(var) == pytest.approx(gamma * (1 - gamma))
    mu = continuous.bayesian_flow_sample(torch.full((N,), x, dtype=torch.float64), torch.full((N,), t, dtype=torch.float64), sigma1,
                                         torch.Generator().manual_seed(2))
    sd = math.sqrt(gamma * (1 - gamma))
    assert float(mu.mean()) == pytest.approx(gamma * x, abs=4 * sd / math.sqrt(N))
    assert float(mu.var()) == pytest.approx(gamma * (1 - gamma), rel=4 * math.sqrt(2 / N))


def test_the_binary_panel_scales_each_time_to_its_peak_and_drifts_to_x() -> None:
    for x in (0, 1):
        fig = explainer.binary_figure(3.0, x)
        go.Figure(fig)
        z, p = fig["data"][0]["z"], fig["data"][0]["y"]
        np.testing.assert_allclose(z.max(axis=0), 1.0)
        peaks = p[z.argmax(axis=0)]
        assert abs(peaks[0] - 0.5) < 0.01  # near ½ at small t
        assert (peaks[-1] > 0.95) if x else (peaks[-1] < 0.05)  # near x at t = 1


def test_the_simplex_panel_draws_on_the_simplex_towards_the_true_corner() -> None:
    fig = explainer.simplex_figure(3.0, 2)
    go.Figure(fig)
    traces = fig["data"]
    assert [tr["type"] for tr in traces] == ["scatterternary"] * len(explainer.SIMPLEX_TIMES)
    share = []
    for tr in traces:
        np.testing.assert_allclose(tr["a"] + tr["b"] + tr["c"], 1.0)
        share.append(float(np.mean(tr["c"])))  # c: class 2, the true class
    assert share == sorted(share) and share[0] > 1 / 3 and share[-1] > 0.8
    assert explainer.simplex_figure(3.0, 2)["data"][0]["a"].tolist() == traces[0]["a"].tolist()  # seeded: the same draws again


def test_the_continuous_panel_band_is_two_sd_around_the_mean() -> None:
    sigma1, x = 0.02, -0.4
    fig = explainer.continuous_figure(sigma1, x)
    go.Figure(fig)
    band, mean, draws, truth = fig["data"]
    n = len(explainer.TIMES)
    upper, lower = band["y"][:n], band["y"][n:][::-1]
    _, var = continuous.bayesian_flow_moments(torch.tensor(x, dtype=torch.float64), explainer.TIMES, sigma1)
    np.testing.assert_allclose(upper - lower, 4 * var.sqrt().numpy())
    np.testing.assert_allclose((upper + lower) / 2, mean["y"])
    assert abs(mean["y"][-1] - x) < 1e-3 and truth["y"] == [x, x]
    assert len(draws["x"]) == n * explainer.CONTINUOUS_DRAWS
    assert np.max(np.sqrt(var.numpy())) <= 0.5 and math.sqrt(float(var[-1])) == pytest.approx(sigma1, rel=1e-3)  # as the text says

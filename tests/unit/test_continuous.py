"""The continuous Bayesian flow against independent computations: numerical posteriors, Monte Carlo, erf."""

from __future__ import annotations

import math

import pytest
import torch

from bfn.continuous import (
    ContinuousFlow,
    bayesian_flow_sample,
    bayesian_update,
    continuous_time_loss,
    discretised_gaussian_log_prob,
    gamma,
    output_prediction,
    preconditioned_output,
    preconditioning,
    precision_schedule,
    reconstruction_loss,
    sender_sample,
    step_accuracy,
)

SIGMA1 = 0.02


def grid_posterior(mu0: float, rho0: float, ys: list[float], alphas: list[float]) -> tuple[float, float]:
    """Mean and precision of p(x | y_1…y_m) ∝ N(x | μ0, 1/ρ0) Π_i N(y_i | x, 1/α_i), by numerical integration."""
    x = torch.linspace(-12, 12, 400_001, dtype=torch.float64)
    log_p = -0.5 * rho0 * (x - mu0) ** 2
    for y, alpha in zip(ys, alphas):
        log_p = log_p - 0.5 * alpha * (y - x) ** 2
    p = torch.softmax(log_p, 0)
    mean = (p * x).sum()
    var = (p * (x - mean) ** 2).sum()
    return mean.item(), 1 / var.item()


def test_repeated_updates_give_the_exact_posterior() -> None:
    gen = torch.Generator().manual_seed(0)
    mu0, rho0 = torch.tensor([0.3, -1.0, 0.0], dtype=torch.float64), torch.tensor([1.5, 0.7, 1.0], dtype=torch.float64)
    x = torch.tensor([0.9, -0.2, 0.5], dtype=torch.float64)
    alphas = [0.5, 2.0, 0.1, 4.0]
    ys = [sender_sample(x, a, gen) for a in alphas]

    mu, rho = mu0, rho0
    for y, a in zip(ys, alphas):
        mu, rho = bayesian_update(mu, rho, y, a)

    for d in range(3):
        mean, precision = grid_posterior(mu0[d].item(), rho0[d].item(), [y[d].item() for y in ys], alphas)
        assert mu[d].item() == pytest.approx(mean, abs=1e-6)
        assert rho[d].item() == pytest.approx(precision, rel=1e-4)


def test_flow_distribution_matches_many_small_updates() -> None:
    """p_F(μ | x; t) = N(γx, γ(1−γ)) is what the update chain reaches when its accuracies add up to ρ(t) − 1."""
    n, t, steps = 20_000, 0.4, 40
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([-0.8, 0.3], dtype=torch.float64).repeat(n, 1)

    flow_mu = bayesian_flow_sample(x, torch.full((n,), t, dtype=torch.float64), SIGMA1, gen)
    mu, rho = torch.zeros_like(x), 1.0
    for j in range(1, steps + 1):  # the paper's schedule on a fine grid up to t
        alpha = precision_schedule(t * j / steps, SIGMA1) - precision_schedule(t * (j - 1) / steps, SIGMA1)
        mu, rho = bayesian_update(mu, rho, sender_sample(x, alpha, gen), alpha)
    assert rho == pytest.approx(precision_schedule(t, SIGMA1))

    g = float(gamma(torch.tensor(t), SIGMA1))
    true_mean, true_var = g * x[0], torch.full((2,), g * (1 - g), dtype=torch.float64)
    mean_se, var_se = (true_var / n).sqrt(), true_var * math.sqrt(2 / n)
    for sample in (flow_mu, mu):
        assert ((sample.mean(0) - true_mean).abs() < 5 * mean_se).all()
        assert ((sample.var(0) - true_var).abs() < 5 * var_se).all()
    assert ((flow_mu.mean(0) - mu.mean(0)).abs() < 5 * math.sqrt(2) * mean_se).all()
    assert ((flow_mu.var(0) - mu.var(0)).abs() < 5 * math.sqrt(2) * var_se).all()


def test_output_prediction_inverts_the_flow_given_the_true_noise() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(6, 1, 4, 4, generator=gen, dtype=torch.float64) * 1.8 - 0.9
    t = torch.linspace(0.05, 0.95, 6, dtype=torch.float64)

    mu = bayesian_flow_sample(x, t, SIGMA1, torch.Generator().manual_seed(7))
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    g = gamma(t, SIGMA1).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(mu, g * x + (g * (1 - g)).sqrt() * eps)  # eps is the noise the flow used

    torch.testing.assert_close(output_prediction(mu, eps, t, SIGMA1, t_min=1e-6), x, rtol=0, atol=1e-9)


def test_output_prediction_clips_and_is_zero_before_t_min() -> None:
    mu = torch.full((2, 1, 2, 2), 0.5)
    eps = torch.full_like(mu, -50.0)  # claims far more signal than the data range allows
    t = torch.tensor([1e-7, 0.5])
    x_hat = output_prediction(mu, eps, t, SIGMA1, t_min=1e-6)
    assert (x_hat[0] == 0).all()
    assert (x_hat[1] == 1).all()


def test_preconditioning_gives_the_image_from_the_right_network_output_and_tends_to_eq_84() -> None:
    """x̂ = c_skip μ/γ + c_out F recovers x for F = (x − c_skip μ/γ)/c_out; as γ → 1 it is eq. 84 with F = −ε̂
    (c_skip/γ → 1, c_out → √((1−γ)/γ)); at t = 0 the network alone gives x̂ = σ_d F."""
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(6, 1, 4, 4, generator=gen, dtype=torch.float64) * 1.8 - 0.9
    t = torch.linspace(0.01, 0.99, 6, dtype=torch.float64)
    mu = bayesian_flow_sample(x, t, SIGMA1, torch.Generator().manual_seed(7))
    g = gamma(t, SIGMA1).reshape(-1, 1, 1, 1)
    c_in, skip, out = preconditioning(g)
    torch.testing.assert_close(preconditioned_output(mu, (x - skip * mu) / out, t, SIGMA1, t_min=1e-6), x, rtol=0, atol=1e-9)

    late = gamma(torch.tensor(1 - 1e-9, dtype=torch.float64), 1e-4)  # γ → 1
    _, skip_late, out_late = preconditioning(late)
    assert float(skip_late * late) == pytest.approx(1, abs=1e-6)
    assert float(out_late / ((1 - late) / late).sqrt()) == pytest.approx(1, abs=1e-6)
    _, skip_0, out_0 = preconditioning(torch.tensor(0.0, dtype=torch.float64))
    assert (float(skip_0), float(out_0)) == (pytest.approx(0.25), pytest.approx(0.5))


def test_preconditioned_input_has_unit_variance_for_data_of_the_assumed_spread() -> None:
    """c_in = 1/√(γ(1 − γ + σ_d² γ)) scales μ ~ N(γx, γ(1−γ)) to unit variance when Var x = σ_d² (eq. 77)."""
    n = 200_000
    flow = ContinuousFlow(sigma1=SIGMA1, network_output="preconditioned")
    x = torch.randn(n, 1, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.5
    for t in (0.02, 0.3, 0.9):
        theta = flow.bayesian_flow(x, torch.full((n,), t, dtype=torch.float64), torch.Generator().manual_seed(1))
        assert float(flow.network_input(theta).var()) == pytest.approx(1, rel=0.02)
    assert ContinuousFlow().network_input(theta) is theta.mu  # the paper's network sees μ itself


def test_a_flow_names_what_its_network_predicts() -> None:
    with pytest.raises(ValueError, match="network_output must be one of"):
        ContinuousFlow(network_output="image")


def test_continuous_time_loss_closed_form() -> None:
    x = torch.tensor([0.5, -0.25]).reshape(1, 1, 1, 2).repeat(2, 1, 1, 1)
    t = torch.tensor([0.5, 1.0])
    torch.testing.assert_close(continuous_time_loss(x, x, t, 0.1), torch.zeros(2))

    x_hat = torch.zeros_like(x)  # ‖x − x̂‖² = 0.25 + 0.0625
    expected = torch.tensor([-math.log(0.1) * 0.1**-1.0 * 0.3125, -math.log(0.1) * 0.1**-2.0 * 0.3125])
    torch.testing.assert_close(ContinuousFlow(sigma1=0.1).continuous_time_loss(x, x_hat, t), expected)


@pytest.mark.parametrize("n", [1, 3, 10, 1000])
def test_discrete_time_loss_averages_to_the_continuous_time_loss(n: int) -> None:
    """For a fixed error, E_i[L^n] = Σ_i α_i ‖x − x̂‖²/2 = (ρ(1) − 1) ‖x − x̂‖²/2 = E_t[L^∞], for every n."""
    flow = ContinuousFlow(sigma1=SIGMA1)
    x = torch.tensor([[[[0.5, -0.25]]]], dtype=torch.float64)
    x_hat = torch.zeros_like(x)
    i = torch.arange(1, n + 1)
    discrete = flow.discrete_time_loss(x.expand(n, -1, -1, -1), x_hat.expand(n, -1, -1, -1), i, n).mean().item()

    ts = (torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000
    continuous = (
        flow.continuous_time_loss(x.expand(len(ts), -1, -1, -1), x_hat.expand(len(ts), -1, -1, -1), ts).mean().item()
    )
    assert discrete == pytest.approx(continuous, rel=1e-6)
    assert discrete == pytest.approx((SIGMA1**-2 - 1) * 0.3125 / 2, rel=1e-6)  # i is cast to float32


def test_step_accuracies_add_up_to_the_final_precision() -> None:
    for n in (1, 5, 200):
        total = sum(step_accuracy(i, n, SIGMA1) for i in range(1, n + 1))
        assert 1 + total == pytest.approx(precision_schedule(1.0, SIGMA1))


BIN_CENTRES = torch.arange(256, dtype=torch.float64) * 2 / 255 - 1


@pytest.mark.parametrize("mean", [-1.3, -1.0, -0.002, 0.37, 1.0, 2.0])
@pytest.mark.parametrize("std", [0.001, 0.02, 0.7])
def test_discretised_gaussian_sums_to_one_over_the_256_bins(mean: float, std: float) -> None:
    probs = discretised_gaussian_log_prob(BIN_CENTRES, torch.tensor(mean, dtype=torch.float64), std).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-8)


def phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_reconstruction_loss_matches_a_hand_computation() -> None:
    sigma, h = 0.02, 1 / 255
    x = torch.tensor([[[[-1.0, 153 * 2 / 255 - 1, 1.0]]]], dtype=torch.float64)  # edge bin, pixel 153, edge bin
    x_hat = torch.tensor([[[[-0.99, 0.21, 0.995]]]], dtype=torch.float64)
    p_low_edge = phi((-1 + h + 0.99) / sigma)  # the bottom bin reaches −∞
    p_middle = phi((0.2 + h - 0.21) / sigma) - phi((0.2 - h - 0.21) / sigma)
    p_high_edge = 1 - phi((1 - h - 0.995) / sigma)  # the top bin reaches +∞
    expected = -(math.log(p_low_edge) + math.log(p_middle) + math.log(p_high_edge))
    assert reconstruction_loss(x, x_hat, sigma).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("side", [1, -1])
def test_a_bin_far_from_the_mean_keeps_its_precision_in_float32(side: int) -> None:
    """A bin from 5σ to 12.8σ away from the mean has mass Φ(−5) − Φ(−12.8) ≈ 2.87·10⁻⁷. With Φ as (1 + erf)/2 in
    float32 it came out as 2.98·10⁻⁷, a multiple of 2⁻²⁴, on either side of the mean, and differently on CPUs whose
    erf differs, so a badly predicted pixel's reconstruction term depended on the machine (`test_pinned`)."""
    sigma, h = 0.001, 1 / 255
    x = torch.tensor([side * (153 * 2 / 255 - 1)], dtype=torch.float32)
    mean = x - side * (h + 5 * sigma)
    width = 2 * h / sigma
    expected = math.log(0.5 * math.erfc(5 / math.sqrt(2)) - 0.5 * math.erfc((5 + width) / math.sqrt(2)))
    assert discretised_gaussian_log_prob(x, mean, sigma).item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("sigma1", [0.0, 0.00001, 1.0, 1.5, -0.1])
def test_bad_sigma1_is_rejected(sigma1: float) -> None:
    with pytest.raises(ValueError, match="sigma1"):
        ContinuousFlow(sigma1=sigma1)

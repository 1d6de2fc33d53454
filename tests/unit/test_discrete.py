"""The discrete Bayesian flow against independent computations: exact posteriors, Monte Carlo, quadrature."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bfn.discrete import (
    DiscreteFlow,
    accuracy_schedule,
    bayesian_flow_sample,
    bayesian_update,
    categorical_sample,
    class_softmax,
    continuous_time_loss,
    reconstruction_loss,
    sender_sample,
    step_accuracy,
)
from bfn.kinds import make_flow

BETA1 = 3.0


def log_normal(y: torch.Tensor, mean: torch.Tensor, var: float) -> torch.Tensor:
    """ln N(y | mean, var) elementwise, written out."""
    return -0.5 * (y - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)


def exact_posterior(prior: torch.Tensor, ys: list[torch.Tensor], alphas: list[float]) -> torch.Tensor:
    """p(k | y_1…y_m) ∝ p(k) Π_i N(y_i | α_i (K e_k − 1), α_i K I), evaluated for every class k by brute force."""
    k = prior.shape[-1]
    log_post = prior.log().clone()
    for y, alpha in zip(ys, alphas):
        for c in range(k):
            mean = alpha * (k * F.one_hot(torch.tensor(c), k).double() - 1)
            log_post[..., c] += log_normal(y, mean, alpha * k).sum(-1)
    return torch.softmax(log_post, dim=-1)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_repeated_updates_give_the_exact_posterior(k: int) -> None:
    gen = torch.Generator().manual_seed(k)
    prior = torch.distributions.Dirichlet(torch.ones(k, dtype=torch.float64)).sample((40,))
    x = F.one_hot(torch.randint(0, k, (40,), generator=gen), k).double()
    alphas = [0.05, 0.3, 1.2, 0.01, 2.0]
    ys = [sender_sample(x, a, gen) for a in alphas]

    theta = prior
    for y in ys:
        theta = bayesian_update(theta, y)

    torch.testing.assert_close(theta, exact_posterior(prior, ys, alphas), rtol=1e-9, atol=1e-12)
    assert not torch.allclose(theta, prior)  # the observations did move θ


def logit_differences(theta: torch.Tensor) -> torch.Tensor:
    """ln θ_k − ln θ_0 for k ≥ 1: the logits with the per-dimension normalising constant removed."""
    log_theta = theta.log()
    return log_theta[..., 1:] - log_theta[..., :1]


@pytest.mark.parametrize("k", [2, 3])
def test_flow_distribution_matches_many_small_updates(k: int) -> None:
    """p_F(θ | x; t) is what the sender/update chain reaches when its accuracies add up to β(t)."""
    n, t, steps, true_class = 20_000, 0.6, 40, 1
    gen = torch.Generator().manual_seed(0)
    x = F.one_hot(torch.full((n, 1), true_class), k).double()

    flow_theta = bayesian_flow_sample(x, torch.full((n,), t, dtype=torch.float64), BETA1, gen)
    beta = float(accuracy_schedule(torch.tensor(t), BETA1))
    theta = torch.full_like(x, 1 / k)
    for _ in range(steps):
        theta = bayesian_update(theta, sender_sample(x, beta / steps, gen))

    a, b = logit_differences(flow_theta).flatten(0, 1), logit_differences(theta).flatten(0, 1)
    # Analytically ln θ_k − ln θ_0 = y_k − y_0 ~ N(β K (δ_k,x − δ_0,x), 2 β K).
    true_mean = beta * k * (F.one_hot(torch.tensor(true_class), k)[1:] - int(true_class == 0)).double()
    true_var = torch.full((k - 1,), 2 * beta * k, dtype=torch.float64)
    mean_se = (true_var / n).sqrt()
    var_se = true_var * math.sqrt(2 / n)
    for sample in (a, b):
        assert (sample.mean(0) - true_mean).abs().max() < 5 * mean_se.max()
        assert (sample.var(0) - true_var).abs().max() < 5 * var_se.max()
    assert (a.mean(0) - b.mean(0)).abs().max() < 5 * math.sqrt(2) * mean_se.max()
    assert (a.var(0) - b.var(0)).abs().max() < 5 * math.sqrt(2) * var_se.max()


@pytest.mark.parametrize("k", [2, 3, 5])
def test_class_softmax_is_the_softmax_over_the_last_axis(k: int) -> None:
    logits = torch.randn(3, 1, 4, 5, k, generator=torch.Generator().manual_seed(k)) * 20
    torch.testing.assert_close(class_softmax(logits), torch.softmax(logits, dim=-1), rtol=1e-6, atol=1e-7)


def test_categorical_sample_draws_each_class_with_its_probability() -> None:
    """Frequencies over many draws from three different rows match their probabilities (and 0 is never drawn)."""
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.0, 0.1, 0.9], [1.0, 0.0, 0.0]], dtype=torch.float64)
    n = 40_000
    draws = categorical_sample(probs.expand(n, 3, 3), torch.Generator().manual_seed(0))
    assert draws.shape == (n, 3) and draws.dtype == torch.long
    freqs = torch.stack([(draws == c).double().mean(0) for c in range(3)], dim=-1)
    torch.testing.assert_close(freqs, probs, rtol=0, atol=4 * math.sqrt(0.25 / n))  # 4 standard errors
    assert (freqs[probs == 0] == 0).all()


def test_step_accuracies_add_up_to_beta1() -> None:
    for n in (1, 7, 100):
        assert sum(step_accuracy(i, n, BETA1) for i in range(1, n + 1)) == pytest.approx(BETA1)
    assert float(accuracy_schedule(torch.tensor(0.5), BETA1)) == pytest.approx(BETA1 / 4)


def test_continuous_time_loss_closed_form() -> None:
    flow = DiscreteFlow(beta1=BETA1)
    x = torch.tensor([[[[1, 0]]], [[[0, 0]]]])  # two 1×1×2 images
    t = torch.tensor([0.5, 0.2])
    perfect = flow.one_hot(x)
    torch.testing.assert_close(flow.continuous_time_loss(x, perfect, t), torch.zeros(2))

    wrong = torch.tensor([0.75, 0.25]).expand(2, 1, 1, 2, 2)
    # Image 0: ‖e_1 − ê‖² = 0.75² + 0.75² = 1.125 for pixel 1, 0.0625 + 0.0625 = 0.125 for pixel 0.
    # Image 1: two pixels of class 0, 0.125 each. L^∞ = K β1 t ‖e_x − ê‖².
    expected = torch.tensor([2 * BETA1 * 0.5 * (1.125 + 0.125), 2 * BETA1 * 0.2 * 0.25])
    torch.testing.assert_close(flow.continuous_time_loss(x, wrong, t), expected)


def test_continuous_time_loss_general_k() -> None:
    x = F.one_hot(torch.tensor([[[[2]]]]), 3).float()
    probs = torch.tensor([0.2, 0.3, 0.5]).reshape(1, 1, 1, 1, 3)
    sq_err = 0.2**2 + 0.3**2 + 0.5**2
    torch.testing.assert_close(
        continuous_time_loss(x, probs, torch.tensor([0.7]), 2.0), torch.tensor([3 * 2.0 * 0.7 * sq_err])
    )


@functools.cache
def gauss_hermite_nodes(count: int = 120) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.hermite_e.hermegauss(count)


def exact_binary_kl(alpha: float, p_on: float) -> float:
    """KL(p_S(·|x=1; α) ‖ p_R(·|p_O; α)) for K = 2 by Gauss–Hermite quadrature.

    Both distributions agree along y_0 + y_1, so the KL is that of d = y_1 − y_0: N(2α, 4α) against the
    mixture (1 − p_on) N(−2α, 4α) + p_on N(2α, 4α).
    """
    m, s = 2 * alpha, math.sqrt(4 * alpha)
    z, w = gauss_hermite_nodes()
    d = m + s * z
    log_sender = -0.5 * ((d - m) / s) ** 2
    log_receiver = np.logaddexp(np.log(1 - p_on) - 0.5 * ((d + m) / s) ** 2, np.log(p_on) + log_sender)
    return float((w * (log_sender - log_receiver)).sum() / w.sum())


def mc_expected_discrete_loss(n: int, reps: int, dims: int, p_on: float, seed: int = 0) -> tuple[float, float]:
    """E_i[L^n] per pixel for x = 1 everywhere and a fixed p_O, from the flow's own estimator.

    Every i = 1 … n appears `reps` times in one batch (so per-image α is exercised); returns the mean and its
    standard error (stratified by i).
    """
    flow = DiscreteFlow(beta1=BETA1)
    i = torch.arange(1, n + 1).repeat(reps)
    x = torch.ones(len(i), 1, 1, dims, dtype=torch.long)
    probs = torch.tensor([1 - p_on, p_on]).expand(len(i), 1, 1, dims, 2)
    per_pixel = (flow.discrete_time_loss(x, probs, i, n, torch.Generator().manual_seed(seed)) / dims).reshape(reps, n)
    within_var = per_pixel.var(0).mean() if reps > 1 else per_pixel.var()
    return per_pixel.mean().item(), (within_var / (reps * n)).sqrt().item()


@pytest.mark.parametrize("n, reps, dims", [(1, 2, 10_000), (10, 10, 1000), (100, 2, 1000)])
def test_discrete_time_loss_is_n_times_the_exact_kl(n: int, reps: int, dims: int) -> None:
    p_on = 0.3
    exact = sum(exact_binary_kl(step_accuracy(i, n, BETA1), p_on) for i in range(1, n + 1))  # E_i[n KL_i]
    mean, se = mc_expected_discrete_loss(n, reps, dims, p_on)
    assert abs(mean - exact) < 4 * se + 1e-3, (mean, exact, se)


def test_discrete_time_loss_approaches_continuous_time_loss() -> None:
    """For a fixed output distribution, E_i[L^n] → E_t[L^∞] = K β1 ‖e_x − ê‖² / 2 as n grows."""
    p_on = 0.3
    flow = DiscreteFlow(beta1=BETA1)
    x = torch.ones(1, 1, 1, 1, dtype=torch.long)
    probs = torch.tensor([1 - p_on, p_on]).reshape(1, 1, 1, 1, 2)
    ts = (torch.arange(1000) + 0.5) / 1000  # L^∞ is linear in t, so the midpoint rule is exact
    target = torch.stack([flow.continuous_time_loss(x, probs, t.reshape(1)) for t in ts]).mean().item()
    assert target == pytest.approx(2 * BETA1 * 2 * 0.7**2 / 2)

    gaps, last_se = [], 0.0
    for n, reps, dims in [(1, 2, 10_000), (10, 10, 1000), (1000, 2, 1000)]:
        mean, last_se = mc_expected_discrete_loss(n, reps, dims, p_on, seed=n)
        gaps.append(target - mean)
    assert gaps[0] > 1.5 and gaps[1] > 0.4  # far off for few steps (exact gaps: 1.91, 0.57)
    assert abs(gaps[2]) < 4 * last_se + 0.01  # exact gap at n = 1000: 0.008


def test_discrete_time_loss_is_zero_for_a_perfect_prediction() -> None:
    flow = DiscreteFlow(beta1=BETA1, num_classes=3)
    x = torch.randint(0, 3, (4, 1, 5, 5), generator=torch.Generator().manual_seed(0))
    loss = flow.discrete_time_loss(x, flow.one_hot(x), torch.tensor([1, 2, 5, 10]), 10)
    torch.testing.assert_close(loss, torch.zeros(4), atol=1e-4, rtol=0)


def test_reconstruction_loss_closed_form() -> None:
    flow = DiscreteFlow(num_classes=3)
    x = torch.tensor([[[[0, 2]]]])
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]).reshape(1, 1, 1, 2, 3)
    torch.testing.assert_close(flow.reconstruction_loss(x, probs), torch.tensor([-math.log(0.5) - math.log(0.8)]))
    assert reconstruction_loss(flow.one_hot(x), flow.one_hot(x)).item() == 0


@pytest.mark.parametrize("params", [{"beta1": 0.0}, {"beta1": -1.0}, {"num_classes": 1}, {"num_classes": 0}])
def test_bad_config_is_rejected(params: dict) -> None:
    with pytest.raises(ValueError, match="beta1|num_classes"):
        DiscreteFlow(**params)
    with pytest.raises(ValueError):
        make_flow("discrete", **params)


def test_unknown_flow_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown flow kind"):
        make_flow("gaussian")

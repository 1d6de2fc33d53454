"""Few-step samplers: the interface of `bfn`, reproducible, convergent, and better than `bfn` at few steps."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from bfn.model import BFNModel
from bfn.sampling import SAMPLERS, Sampler, get_sampler, guided_network_output, sample
from bfn.solvers import BETA_MIN, SolverUpdate, time_grid
from tests.support.toys import BlockToy, GaussianToy, block_error, gaussian_error

torch.set_num_threads(1)
FLOWS = {"discrete": {"beta1": 3.0}, "continuous": {"sigma1": 0.001}}
NEW = ["solver", "ode1", "ode2", "sde1", "sde2"]


def tiny_model(kind: str) -> BFNModel:
    """A tiny U-Net with a random (non-zero) head, so its outputs depend on θ, t and the label."""
    torch.manual_seed(0)
    model = BFNModel(kind, FLOWS[kind], {"channels": [8, 16], "groups": 4, "attention": False})
    torch.nn.init.normal_(model.net.head[-1].weight, std=0.3)
    return model.eval()


@pytest.fixture(scope="module", params=["discrete", "continuous"])
def model(request):
    return tiny_model(request.param)


def test_registered_by_name():
    for name in NEW:
        assert get_sampler(name) is SAMPLERS[name]
    with pytest.raises(ValueError, match="solver"):
        get_sampler("nope")


@pytest.mark.parametrize("name", NEW)
def test_same_interface_as_the_original_sampler(model, name):
    states = list(get_sampler(name)(model, [3, None], steps=5, guidance=2.0, seed=1))
    assert [s.step for s in states] == list(range(6))
    assert all(s.num_steps == 5 for s in states)
    ts = [s.t for s in states]
    assert ts[0] == 0 and ts[-1] == 1 and all(b > a for a, b in zip(ts, ts[1:]))
    assert all(s.sample is None for s in states[:-1]) and states[-1].is_final
    lo, hi = model.flow.display.value_range
    for s in states:
        assert s.theta.shape == s.output.shape == (2, 28, 28)
        assert s.output.min() >= lo and s.output.max() <= hi and torch.isfinite(s.theta).all()
    assert states[-1].sample.shape == (2, 28, 28)
    if model.kind == "continuous":
        rho = torch.stack([s.precision for s in states])[:, 0]
        assert rho[0] == 1 and (rho[1:] > rho[:-1]).all()  # precision grows like the original sampler's


@pytest.mark.parametrize("name", NEW)
def test_reproducible_and_seeded(model, name):
    a = sample(model, [1, 2], sampler=name, steps=4, guidance=1.5, seed=7)
    b = sample(model, [1, 2], sampler=name, steps=4, guidance=1.5, seed=7)
    c = sample(model, [1, 2], sampler=name, steps=4, guidance=1.5, seed=8)
    assert torch.equal(a.output, b.output) and torch.equal(a.sample, b.sample)
    assert not torch.equal(a.output, c.output)


@pytest.mark.parametrize("bad", [{"steps": 0}, {"steps": 2.5}, {"guidance": -1.0}, {"guidance": math.nan}, {"seed": -1}])
def test_invalid_runs_are_refused_like_the_original(model, bad):
    kwargs = {"steps": 3, "guidance": 1.0, "seed": 0, **bad}
    with pytest.raises(ValueError):
        sample(model, [0], sampler="solver", **kwargs)


def test_first_order_sde_is_the_original_sampler_for_continuous_data():
    # BFN's continuous sampler is Euler–Maruyama on dz = x̂ dβ + dW (Xue et al. 2024, Prop. 4.2): same
    # noise stream, same result, which also checks the solvers' Gaussian view of (μ, ρ). (On a smooth
    # network: a random U-Net amplifies float32 rounding differences from step to step.)
    toy = GaussianToy()
    sde1_uniform = Sampler("sde1_uniform", "sde1 on the uniform grid", functools.partial(SolverUpdate, order=1, stochastic=True), "uniform")
    for steps in (3, 30):
        a = list(get_sampler("bfn")(toy, [0, 5], steps=steps, guidance=1.0, seed=3))
        b = list(sde1_uniform(toy, [0, 5], steps=steps, guidance=1.0, seed=3))
        for sa, sb in zip(a, b):
            torch.testing.assert_close(sb.theta, sa.theta, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(sb.precision, sa.precision, rtol=1e-5, atol=0)
        torch.testing.assert_close(b[-1].sample, a[-1].sample, rtol=1e-4, atol=1e-5)


def test_gaussian_view_inverts_the_schedules():
    for kind in FLOWS:
        flow = tiny_model(kind).flow
        for t in (0.0, 0.1, 0.5, 1.0):
            assert flow.time_at(flow.accuracy(t)) == pytest.approx(t, abs=1e-9)


@pytest.mark.parametrize("kind", list(FLOWS))
def test_time_grids(kind):
    flow = tiny_model(kind).flow
    assert time_grid(flow, 4, "uniform") == [0, 0.25, 0.5, 0.75, 1]
    grid = time_grid(flow, 10, "logsnr")
    assert grid[0] == 0 and grid[-1] == 1 and len(grid) == 11 and all(b > a for a, b in zip(grid, grid[1:]))
    assert flow.accuracy(grid[1]) == pytest.approx(min(BETA_MIN, flow.accuracy(0.1)))


@pytest.mark.parametrize("kind", list(FLOWS))
def test_ode_solvers_converge_as_steps_grow_second_order_faster(kind):
    # After the random start w(0) = s ε (the same draw for every step count), the ODE is deterministic: its
    # few-step solutions approach the many-step one, and the second-order solver gets there first.
    model = tiny_model(kind)
    labels = list(range(0, 10, 2))
    ref = sample(model, labels, sampler="ode2", steps=160, seed=0).output
    err = {(name, n): float((sample(model, labels, sampler=name, steps=n, seed=0).output - ref).abs().mean())
           for name in ("ode1", "ode2") for n in (4, 12, 40)}
    for name in ("ode1", "ode2"):
        assert err[name, 4] > err[name, 12] > err[name, 40]
    assert err["ode2", 40] < 0.25 * err["ode2", 4]
    assert err["ode2", 12] < err["ode1", 12] and err["ode2", 40] < err["ode1", 40]


@pytest.mark.parametrize("kind", list(FLOWS))
def test_sde_solver_converges_to_the_original_samplers_distribution(kind):
    # On a tiny (random, so not a consistent denoiser) model the SDE solvers and the original sampler
    # discretise the same SDE: with many steps their final states have the same law. The final θ is compared
    # as well as the output: the tiny discrete network's output barely depends on θ, so output statistics
    # alone miss a wrong amount of SDE noise (tripled noise moves the discrete θ statistics by ~0.055, the
    # seeded sampling error here is ~0.008).
    model = tiny_model(kind)
    labels = list(range(10)) * 2

    def stats(name: str, n: int) -> torch.Tensor:
        final = sample(model, labels, sampler=name, steps=n, seed=0)
        out, theta = final.output, final.theta
        return torch.stack([out.mean(), out.std(), out.mean(0).std(), theta.mean(), theta.std(), theta.mean(0).std()])

    ref = stats("bfn", 100)
    far, near = ((stats("sde2", n) - ref).abs().max() for n in (2, 50))
    assert near < 0.02, (near, ref)
    if kind == "continuous":  # (the tiny discrete model's outputs barely depend on the step count)
        assert near < far / 3


def _compare(toy, error, steps: tuple[int, ...]) -> dict[tuple[str, int], float]:
    labels = [0] * 24
    return {(name, n): error(sample(toy, labels, sampler=name, steps=n, seed=0).sample)
            for name in ("bfn", "solver") for n in steps}


def test_solver_beats_the_original_sampler_on_gaussian_data():
    # Pixels ~ N(0.2, 0.2²), a network that returns the exact posterior mean: the right answer is known.
    err = _compare(GaussianToy(mean=0.2, var=0.04), lambda s: gaussian_error(s, 0.2, 0.04), (4, 8, 16, 200))
    for n in (4, 8, 16):  # at least as good at every small step count (ties allowed), far better overall
        assert err["solver", n] <= 1.05 * err["bfn", n], err
    assert sum(err["solver", n] for n in (4, 8, 16)) < 0.6 * sum(err["bfn", n] for n in (4, 8, 16)), err
    assert err["solver", 200] < 0.015 and err["bfn", 200] < 0.015, err  # both converge to the answer


def test_solver_beats_the_original_sampler_on_correlated_binary_data():
    # 2×2 blocks all on (p = 0.3) or all off: drawing pixels independently splits blocks at coarse steps.
    err = _compare(BlockToy(q=0.3), lambda s: block_error(s, 0.3), (4, 8, 16, 200))
    for n in (4, 8, 16):
        assert err["solver", n] <= 1.05 * err["bfn", n], err
    assert sum(err["solver", n] for n in (4, 8, 16)) < 0.6 * sum(err["bfn", n] for n in (4, 8, 16)), err
    assert err["solver", 200] < 0.015 and err["bfn", 200] < 0.015, err


class CountingModel(torch.nn.Module):
    """Wraps a model and records the batch size of every network call."""

    def __init__(self, inner: BFNModel):
        super().__init__()
        self.inner, self.flow, self.num_labels, self.calls = inner, inner.flow, inner.num_labels, []
        self.data_shape = inner.data_shape

    def forward(self, x, t, labels):
        self.calls.append(x.shape[0])
        return self.inner(x, t, labels)


@pytest.mark.parametrize("guidance, per_call", [(0.0, 3), (1.0, 3), (2.5, 6)])
def test_one_network_pass_per_step_and_only_one_half_without_guidance(guidance, per_call):
    everywhere = (0.0, 1.0)  # guidance at every step (the default interval is tested with the sampler)
    counting = CountingModel(tiny_model("discrete"))
    sample(counting, [1, 2, 3], sampler="solver", steps=6, guidance=guidance, seed=0, guidance_interval=everywhere)
    assert counting.calls == [per_call] * 7
    # the continuous flow's x̂(t = 0) is 0 by definition (eq. 84): no network pass for it
    counting = CountingModel(tiny_model("continuous"))
    for name in ("bfn", "solver"):
        counting.calls.clear()
        final = sample(counting, [1, 2, 3], sampler=name, steps=6, guidance=guidance, seed=0, guidance_interval=everywhere)
        assert counting.calls == [per_call] * 6 and final.sample.shape == (3, 28, 28)
    # w = 1 is the conditional network alone, w = 0 the unconditional one
    x, labels = torch.zeros(3, 1, 28, 28), torch.tensor([1, 2, 3])
    null = torch.full_like(labels, 10)
    torch.testing.assert_close(guided_network_output(counting.inner, x, 0.5, labels, 0.0),
                               counting.inner(x, torch.full((3,), 0.5), null))

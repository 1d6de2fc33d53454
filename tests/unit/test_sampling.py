"""The step generator: what every state holds, determinism, guidance, mixed labels and input checks."""

from __future__ import annotations

import math

import pytest
import torch

from bfn.continuous import precision_schedule
from bfn.model import BFNModel
from bfn.sampling import StepState, bfn_sampler, get_sampler, sample
from tests.support.runs import assert_same_run

STEPS = 4


def run(model: BFNModel, labels: list, **kwargs) -> list[StepState]:
    return list(bfn_sampler(model, labels, **{"steps": STEPS, **kwargs}))


def test_states_have_the_documented_shapes_and_ranges(model: BFNModel) -> None:
    labels = [0, 7, None]
    states = run(model, labels, guidance=2.0, seed=1)
    assert len(states) == STEPS + 1
    b, (h, w) = len(labels), (28, 28)
    for i, state in enumerate(states):
        assert (state.step, state.num_steps, state.t) == (i, STEPS, i / STEPS)
        assert state.theta.shape == state.output.shape == (b, h, w)
        assert state.is_final == (i == STEPS)
        assert torch.isfinite(state.theta).all() and torch.isfinite(state.output).all()
        assert (state.output >= state.value_range[0]).all() and (state.output <= state.value_range[1]).all()
        if model.kind == "discrete":
            assert state.value_range == (0.0, 1.0) and state.precision is None
            assert ((state.theta >= 0) & (state.theta <= 1)).all()
        else:
            assert state.value_range == (-1.0, 1.0) and state.precision.shape == (b,)
            # ρ_i = 1 + Σ_{j≤i} α_j = σ1^{−2 i/n}: the precision follows the schedule exactly.
            expected = precision_schedule(i / STEPS, model.flow.sigma1)
            torch.testing.assert_close(state.precision, torch.full((b,), float(expected)), rtol=1e-5, atol=0)
    final = states[-1].sample
    assert final.shape == (b, h, w)
    if model.kind == "discrete":
        assert set(final.unique().tolist()) <= {0.0, 1.0}
    else:
        assert final.min() >= -1 and final.max() <= 1
        torch.testing.assert_close(final, states[-1].output)  # x̂(θ_n, 1) is the sample
    if model.kind == "continuous":
        precisions = torch.stack([s.precision for s in states])
        assert (precisions.diff(dim=0) > 0).all()


def test_theta_starts_at_the_prior_and_moves(model: BFNModel) -> None:
    states = run(model, [3, 3], seed=0)
    prior = 0.5 if model.kind == "discrete" else 0.0
    assert (states[0].theta == prior).all()
    assert not torch.equal(states[-1].theta, states[0].theta)


def test_same_seed_same_run_and_different_seeds_differ(model: BFNModel) -> None:
    labels = [1, 2, None]
    assert_same_run(run(model, labels, guidance=1.5, seed=5), run(model, labels, guidance=1.5, seed=5))
    other = run(model, labels, guidance=1.5, seed=6)
    assert not torch.equal(run(model, labels, guidance=1.5, seed=5)[-1].theta, other[-1].theta)


@torch.inference_mode()
def manual_run(model: BFNModel, labels: list[int], guidance_labels: list[int] | None, w: float, seed: int,
               guided: tuple[float, float] = (0.0, 1.0)) -> tuple:
    """The generative procedure written out from the flow's pieces, calling the network directly (unbatched).

    Guidance weight w applies at the times in the closed interval `guided`, weight 1 elsewhere.
    Returns θ-view and output-view of every step and the final sample, as the sampler reports them.
    """
    flow, b = model.flow, len(labels)
    cond_labels = torch.tensor(labels)
    null_labels = torch.full((b,), model.num_labels)
    generator = torch.Generator().manual_seed(seed)

    def output(theta, t: float) -> torch.Tensor:
        times = torch.full((b,), t)
        raw = model(flow.network_input(theta), times, cond_labels)
        if guidance_labels is not None and guided[0] <= t <= guided[1]:
            uncond = model(flow.network_input(theta), times, null_labels)
            raw = uncond + w * (raw - uncond)
        return flow.output(raw, theta, times)

    theta, outputs = flow.prior((b, 1, 28, 28)), []
    for i in range(1, STEPS + 1):
        out = output(theta, (i - 1) / STEPS)
        outputs.append(flow.output_view(out)[:, 0])
        theta = flow.update(theta, flow.receiver_sample(out, flow.step_accuracy(i, STEPS), generator))
    out = output(theta, 1.0)
    outputs.append(flow.output_view(out)[:, 0])
    return outputs, flow.sample_view(flow.final_sample(out, generator))[:, 0]


def test_guidance_one_is_the_plain_conditional_model(model: BFNModel) -> None:
    labels = [4, 9]
    states = run(model, labels, guidance=1.0, seed=2)
    outputs, final = manual_run(model, labels, None, 1.0, seed=2)
    for state, out in zip(states, outputs):
        torch.testing.assert_close(state.output, out, rtol=0, atol=0)
    torch.testing.assert_close(states[-1].sample, final, rtol=0, atol=0)


def test_guidance_zero_is_the_unconditional_model(model: BFNModel) -> None:
    assert_same_run(run(model, [4, 9], guidance=0.0, seed=2), run(model, [None, None], guidance=1.0, seed=2))


def test_guidance_mixes_conditional_and_unconditional_outputs(continuous_model: BFNModel) -> None:
    """u + w (c − u) on the raw network output; continuous data has no discrete draws, so whole runs compare."""
    labels, w = [4, 9], 2.5
    states = run(continuous_model, labels, guidance=w, seed=2, guidance_interval=(0.0, 1.0))
    outputs, _ = manual_run(continuous_model, labels, labels, w, seed=2)
    for state, out in zip(states, outputs):
        torch.testing.assert_close(state.output, out, rtol=1e-4, atol=1e-5)
    plain = run(continuous_model, labels, guidance=1.0, seed=2)
    # Same θ_1 (x̂ = 0 before t_min in both runs), different predictions from it:
    torch.testing.assert_close(plain[1].theta, states[1].theta)
    assert not torch.allclose(plain[1].output, states[1].output)


def test_guidance_acts_only_inside_its_interval(continuous_model: BFNModel) -> None:
    labels, w, interval = [4, 9], 2.5, (0.25, 0.5)
    states = run(continuous_model, labels, guidance=w, seed=2, guidance_interval=interval)
    outputs, _ = manual_run(continuous_model, labels, labels, w, seed=2, guided=interval)
    for state, out in zip(states, outputs):
        torch.testing.assert_close(state.output, out, rtol=1e-4, atol=1e-5)
    everywhere = run(continuous_model, labels, guidance=w, seed=2, guidance_interval=(0.0, 1.0))
    assert not torch.allclose(states[-1].output, everywhere[-1].output)


def test_guidance_passes_follow_the_kinds_default_interval(model: BFNModel) -> None:
    """Two network halves per step inside the interval, one outside: the interval is what saves time."""
    rows = []
    handle = model.net.register_forward_hook(lambda module, args, out: rows.append(out.shape[0]))
    try:
        states = list(bfn_sampler(model, [1, 2], steps=20, guidance=3.0, seed=0))
    finally:
        handle.remove()
    start, end = model.flow.default_guidance_interval
    expected = [4 if start <= s.t <= end else 2 for s in states if model.flow.needs_network(s.t)]
    assert rows == expected and 2 in rows and 4 in rows
    assert [s.guidance for s in states] == [3.0 if start <= s.t <= end else 1.0 for s in states]  # as reported to the app


def test_mixed_labels_in_one_batch(model: BFNModel) -> None:
    """A guided batch of digits and None, at every step: each row follows its own label, None rows stay unconditional.

    Compared with the procedure written out (`manual_run`), whose None row has c = u; the interval guides
    the middle steps only, so steps with and without guidance both occur, after θ has diverged per row.
    """
    labels, w, interval = [0, 5, None], 3.0, (0.25, 0.75)
    states = run(model, labels, guidance=w, seed=0, guidance_interval=interval)
    as_indices = [model.num_labels if label is None else label for label in labels]
    outputs, final = manual_run(model, as_indices, as_indices, w, seed=0, guided=interval)
    assert [s.guidance for s in states] == [1.0, w, w, w, 1.0]
    for state, out in zip(states, outputs):
        torch.testing.assert_close(state.output, out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(states[-1].sample, final, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(states[2].theta[0], states[2].theta[1])  # the rows have diverged by the guided steps


def test_each_row_of_a_mixed_batch_is_predicted_as_if_alone(discrete_model: BFNModel) -> None:
    """At the first step θ is the prior for every row, so each row's output must equal a run of its label alone."""
    labels, w, everywhere = [0, 5, None], 3.0, (0.0, 1.0)
    first = run(discrete_model, labels, guidance=w, seed=0, guidance_interval=everywhere)[0]
    for row, label in enumerate(labels):
        alone = run(discrete_model, [label], guidance=w, seed=0, steps=1, guidance_interval=everywhere)[0]
        torch.testing.assert_close(first.output[row], alone.output[0], rtol=1e-4, atol=1e-5)
    unconditional = run(discrete_model, [None], guidance=0.0, seed=0, steps=1)[0]
    torch.testing.assert_close(first.output[2], unconditional.output[0], rtol=1e-4, atol=1e-5)  # w has no effect
    assert not torch.allclose(first.output[0], first.output[1])  # the label matters


def test_sample_returns_the_final_state(discrete_model: BFNModel) -> None:
    final = sample(discrete_model, [1, None], steps=STEPS, guidance=2.0, seed=3)
    assert_same_run([final], [run(discrete_model, [1, None], guidance=2.0, seed=3)[-1]])


@pytest.mark.parametrize(
    "labels, kwargs, message",
    [
        ([10], {}, "label 10"),
        ([-2], {}, "label -2"),
        (["3"], {}, "label '3'"),
        ([], {}, "at least one"),
        ([1], {"steps": 0}, "steps"),
        ([1], {"steps": 2.5}, "steps"),
        ([1], {"guidance": -0.5}, "guidance"),
        ([1], {"guidance": math.nan}, "guidance"),
        ([1], {"guidance": math.inf}, "guidance"),
        ([1], {"seed": -1}, "seed"),
        ([1], {"guidance_interval": (0.6, 0.3)}, "guidance_interval"),
        ([1], {"guidance_interval": (0.0, 1.5)}, "guidance_interval"),
        ([1], {"guidance_interval": "ab"}, "guidance_interval"),
    ],
)
def test_bad_inputs_are_rejected(discrete_model: BFNModel, labels: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next(bfn_sampler(discrete_model, labels, **kwargs))


def test_unknown_sampler_name_is_rejected(discrete_model: BFNModel) -> None:
    with pytest.raises(ValueError, match="unknown sampler 'nope'.*bfn"):
        get_sampler("nope")
    with pytest.raises(ValueError, match="unknown sampler"):
        sample(discrete_model, [1], sampler="nope")

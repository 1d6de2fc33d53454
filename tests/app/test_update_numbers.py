"""One Bayesian update in numbers: what the sampler records of each update, what the frames keep of it, and the
numbers the flows write, against the flows' own equations and the next recorded step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.core.frames import FRAME_DTYPE, Frames
from bfn import discrete
from bfn.continuous import ContinuousFlow
from bfn.discrete import DiscreteFlow
from bfn.flow import latex_number
from bfn.sampling import SAMPLERS, get_sampler
from tests.support.apps import context
from tests.support.runs import wait_for_step

STEPS = 8
PIXELS = [(0, 14, 14), (1, 3, 25), (1, 20, 9)]


def record(model, sampler: str = "bfn", steps: int = STEPS) -> tuple[Frames, list]:
    states = list(get_sampler(sampler)(model, [3, None], steps=steps, guidance=2.0, seed=4))
    frames = Frames(model.flow, 2, steps, observes=get_sampler(sampler).observes)
    for state in states:
        frames.record(state)
    return frames, states


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_only_samplers_that_make_bayesian_updates_report_what_they_observed(discrete_model, name: str) -> None:
    states = list(get_sampler(name)(discrete_model, [3, None], steps=4, guidance=2.0, seed=0))
    assert states[0].observation is None
    assert all((s.observation is not None) == SAMPLERS[name].observes for s in states[1:])
    assert SAMPLERS["bfn"].observes and not SAMPLERS["solver"].observes


def test_each_state_carries_the_observation_that_made_its_theta(model) -> None:
    """θ_i is the flow's update of θ_{i−1} by the observation state i reports: replayed in full precision."""
    flow = model.flow
    states = list(get_sampler("bfn")(model, [3, None], steps=STEPS, guidance=2.0, seed=4))
    theta = flow.prior((2, 1, 28, 28))
    for i, state in enumerate(states[1:], start=1):
        obs = state.observation
        assert obs.alpha == pytest.approx(flow.step_accuracy(i, STEPS))
        assert obs.y.shape == (2, 28, 28, flow.num_classes or 1)
        assert (obs.drawn is None) == (flow.num_classes is None)
        full_y = obs.y.reshape(2, 1, 28, 28, *obs.y.shape[3:]) if flow.num_classes else obs.y.reshape(2, 1, 28, 28)
        drawn = None if obs.drawn is None else obs.drawn[:, None]
        theta = flow.update(theta, type(obs)(obs.alpha, full_y, drawn))
        torch.testing.assert_close(flow.theta_view(theta)[:, 0], state.theta)


def test_a_resampled_completion_reports_no_observation_where_theta_was_resampled(discrete_model) -> None:
    x = torch.zeros(1, 1, 28, 28, dtype=torch.long)
    mask = torch.zeros(1, 1, 28, 28, dtype=torch.bool)
    mask[..., :14, :] = True
    states = list(get_sampler("bfn")(discrete_model, [3], steps=4, seed=0, known=(x, mask), resample=2))
    assert [s.observation is None for s in states] == [True, True, True, True, False]  # the last update stands


@pytest.mark.parametrize("pixel", PIXELS)
def test_the_numbers_shown_are_the_flows_update_and_match_the_next_frame(model, pixel) -> None:
    frames, states = record(model)
    image, row, col = pixel
    tol = 2 * float(np.finfo(FRAME_DTYPE).eps)  # the frames keep θ and y to float16
    for step in range(STEPS):
        shown = frames.update_in_numbers(step, image, row, col)
        assert shown.theta == pytest.approx(float(frames.theta[step + 1, image, row, col]), abs=tol)
        assert shown.theta == pytest.approx(float(states[step + 1].theta[image, row, col]), abs=tol)
        y = tuple(float(v) for v in frames.y[step + 1, image, row, col])  # as kept, and as shown
        theta = float(frames.theta[step, image, row, col])
        if model.flow.num_classes is None:
            rho, alpha = float(frames.precision[step, image]), states[step + 1].observation.alpha
            (y1,) = y
            assert shown.precision == pytest.approx(rho + alpha)  # ρ' = ρ + α
            assert shown.precision == pytest.approx(float(frames.precision[step + 1, image]), rel=1e-6)
            assert shown.theta == pytest.approx((rho * theta + alpha * y1) / (rho + alpha), abs=tol)  # μ' = (ρμ + αy) / ρ'
        else:
            odds = math.exp(y[1]) * theta / (math.exp(y[0]) * (1 - theta))  # θ' ∝ e^y θ
            assert shown.precision is None and shown.theta == pytest.approx(odds / (1 + odds), abs=tol)
            assert shown.theta == pytest.approx(float(discrete.bayesian_update(torch.tensor([1 - theta, theta]), torch.tensor(y))[1]), abs=1e-6)
        assert latex_number(shown.theta) in shown.latex and latex_number(y[-1]) in shown.latex
    assert frames.update_in_numbers(STEPS, image, row, col) is None  # the last step makes no update


def test_the_discrete_equation_shows_the_drawn_class_and_the_products() -> None:
    shown = DiscreteFlow(beta1=3.0).display.update_in_numbers(0.25, None, 0.8, 0.09, (-0.2, 0.4), 1)
    assert r"k = 1" in shown.latex and r"\left(0.2,\ 0.8\right)" in shown.latex  # p_O as (off, on)
    assert r"\left(-0.09,\ 0.09\right)" in shown.latex and r"0.18\, I" in shown.latex  # α(K e_k − 1), αK
    products = (math.exp(-0.2) * 0.75, math.exp(0.4) * 0.25)
    assert latex_number(products[0]) in shown.latex and latex_number(products[1]) in shown.latex
    assert shown.theta == pytest.approx(products[1] / sum(products))


def test_the_continuous_equation_fills_in_rho_mu_and_alpha() -> None:
    shown = ContinuousFlow(sigma1=0.02).display.update_in_numbers(0.5, 4.0, 0.3, 2.0, (0.8,), None)
    assert shown.precision == 6.0 and shown.theta == pytest.approx((4 * 0.5 + 2 * 0.8) / 6)
    assert r"= 4 + 2$$" in shown.latex and r"$$= 6$$" in shown.latex  # ρ' = ρ + α
    assert r"$$= \frac{4 \cdot 0.5 + 2 \cdot 0.8}{6}$$" in shown.latex and r"$$= 0.6$$" in shown.latex  # μ' = (ρμ + αy) / ρ'
    assert r"\mathcal{N}\!\left(0.3,\ 0.5\right)" in shown.latex  # N(x̂, 1/α)


def test_solver_runs_keep_no_observations(model) -> None:
    frames, _ = record(model, "solver", 4)
    assert frames.y is None and frames.update_in_numbers(0, 0, 14, 14) is None
    bfn_frames, _ = record(model, "bfn", 4)
    extra = (4 + 1) * 2 * 28 * 28 * (2 * (model.flow.num_classes or 1) + (1 if model.flow.num_classes else 0))
    assert bfn_frames.nbytes - frames.nbytes == extra + 8 * 5  # y, the drawn class, α per step


def test_the_view_shows_the_update_or_says_plainly_why_not(discrete_model, continuous_model) -> None:
    from app.features.update import NO_UPDATE, update_markdown

    bfn_frames, _ = record(discrete_model)
    solver_frames, _ = record(continuous_model, "solver")
    text = update_markdown({"discrete": bfn_frames, "continuous": solver_frames}, 2, (1, 20, 9), [3, None])
    assert "Pixel (row 20, column 9) of image 1 · unconditional" in text and "from step 2 to step 3 of 8" in text
    assert bfn_frames.update_in_numbers(2, 1, 20, 9).latex in text and NO_UPDATE in text
    last = update_markdown({"discrete": bfn_frames}, STEPS, (0, 14, 14), [3, None])
    assert "no update follows" in last and f"step {STEPS} of {STEPS}." in last and f"step {STEPS + 1}" not in last
    assert "Click a pixel" in update_markdown({"discrete": bfn_frames}, 2, None, [3, None])


def test_the_schedule_marks_the_step_on_show_and_the_accuracy_it_adds(model) -> None:
    import plotly.graph_objects as go

    from app.features.update import schedule_figure

    frames, _ = record(model)
    fig = schedule_figure({"m": frames}, 3)
    go.Figure(fig)
    curve, steps, shown, bracket = fig["data"]
    flow = model.flow
    assert shown["x"] == [pytest.approx(3 / STEPS)] and shown["y"] == [pytest.approx(flow.accuracy(3 / STEPS))]
    rise = bracket["y"][1] - bracket["y"][0]
    assert rise == pytest.approx(float(frames.alpha[4]), rel=1e-5)  # α of the update shown is β's rise over its step
    assert curve["y"][-1] == pytest.approx(flow.accuracy(1.0)) and len(steps["x"]) == STEPS + 1
    solver, _ = record(model, "solver", 4)
    assert len(schedule_figure({"m": solver}, 1)["data"]) == 3  # no update: no bracket


def test_the_schedule_of_a_live_run_is_drawn_from_one_reading_of_its_recorded_steps(discrete_model) -> None:
    """A producer records steps while the figure is drawn: the step on show is one of those the figure plots."""
    from app.features.update import schedule_figure

    frames, states = record(discrete_model)
    live = Frames(discrete_model.flow, 2, STEPS, observes=True)
    for state in states[:5]:
        live.record(state)

    class Recording:  # each reading of `count` finds one more step recorded, as under a live run
        def __getattr__(self, name):
            if name == "count":
                if live.count < len(states):
                    live.record(states[live.count])
                return live.count - 1
            return getattr(live, name)

        @property
        def latest(self):
            return live.count - 1

    fig = schedule_figure({"m": Recording()}, STEPS)
    shown = fig["data"][2]
    assert len(fig["data"][1]["x"]) == 5 and shown["x"] == [pytest.approx(4 / STEPS)]


def test_the_largest_run_with_its_observations_fits_the_session_bound(discrete_model, continuous_model) -> None:
    """1,000 steps side by side, ten digits, the classifier view, both models sampled with bfn (`MAX_RUN_BYTES`)."""
    from app.core.runs import MAX_RUN_BYTES

    models = (discrete_model, continuous_model)
    kept = sum(Frames(m.flow, 10, 1000, digit_classes=10, observes=True).nbytes for m in models)
    plain = sum(Frames(m.flow, 10, 1000, digit_classes=10).nbytes for m in models)
    assert plain < 64 << 20 < kept <= MAX_RUN_BYTES


def test_more_than_two_classes_say_why_they_show_no_numbers() -> None:
    shown = DiscreteFlow(num_classes=3).display.update_in_numbers(0.5, None, 0.5, 0.1, (0.1, -0.2, 0.3), 2)
    assert "not shown in numbers" in shown.latex and math.isnan(shown.theta)


def test_the_view_is_redrawn_at_a_bounded_rate_while_a_run_streams(discrete_model) -> None:
    from types import SimpleNamespace

    import gradio as gr

    from app.core.settings import parse_settings
    from app.features.update import NO_RUN, update_handler

    ctx = context({"discrete": discrete_model}, plot_interval=60.0)
    try:
        update, request = update_handler(ctx), SimpleNamespace(session_hash="live")
        assert update(request)[0] == NO_RUN
        settings = parse_settings("discrete", "all", None, 1.0, 1000, 0, "bfn", menu=ctx.menu)
        run = ctx.store.start_run("live", settings, ctx.bank.models)
        wait_for_step(run, 1)
        first, again = update(request), update(request)
        assert "Pixel (row 14, column 14)" in first[0] and again == (gr.skip(), gr.skip())  # live: once per interval
        run.stop(wait=30)
        assert "Pixel (row 14, column 14)" in update(request)[0]  # ended: drawn at once
    finally:
        ctx.close()


def test_the_app_names_the_update_endpoint_and_has_both_tabs(discrete_model) -> None:
    from app.page import build

    demo = build(context({"discrete": discrete_model}))
    assert "update_numbers" in {fn.api_name for fn in demo.fns.values()}
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"update-numbers", "update-schedule", "flow-binary", "flow-simplex", "flow-continuous"} <= ids

"""The sampler duel's handlers (`app.duel`), in process with tiny random models: one clock over two runs of
different step counts, each side the very run /generate makes of its settings, and bad settings told by name."""

from __future__ import annotations

import re
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from app.ui import images
from app.features.duel.handlers import DuelHandlers, live_t, parse_duel, step_at
from app.core.settings import parse_settings
from app.core.runs import RunState
from tests.support.apps import context

T_IN_CAPTION = re.compile(r"step (\d+) of (\d+), t = ([0-9.]+)")


@pytest.fixture
def duel(discrete_model, continuous_model):
    ctx = context({"discrete": discrete_model, "continuous": continuous_model}, stream_interval=0.0, plot_interval=0.0)
    yield DuelHandlers(ctx)
    ctx.close()


def finished_runs(duel: DuelHandlers, sid: str, left=("bfn", 10), right=("solver", 4), model="discrete"):
    request = SimpleNamespace(session_hash=sid)
    updates = list(duel.duel(model, "one", 3, 1.0, 7, *left, *right, request))
    return request, updates, duel.runs(request)


def shown(update: list) -> list[tuple[int, int, float]]:
    """(step, steps, t) of the left and right captions of a /duel update (its 2nd and 3rd outputs)."""
    return [tuple(int(g) if k < 2 else float(g) for k, g in enumerate(T_IN_CAPTION.search(caption).groups())) for caption in update[1:3]]


def latest_at(times: np.ndarray, t: float) -> int:
    """By brute force: the last step whose time is at most t."""
    return max(i for i, ti in enumerate(times) if ti <= t + 1e-6)


def test_each_side_shows_its_latest_step_at_or_before_t(duel):
    _, _, (left, right) = finished_runs(duel, "clock")
    times = [run.frames["discrete"].t for run in (left, right)]
    assert (len(times[0]), len(times[1])) == (11, 5)
    assert not np.allclose(times[1], np.linspace(0, 1, 5))  # the solver's steps are not evenly spaced in t
    for t in (0.0, *times[0], *times[1], *np.linspace(0.013, 0.987, 40)):
        assert (step_at(left, t), step_at(right, t)) == (latest_at(times[0], t), latest_at(times[1], t)), t
    # a slider's decimal just below a step's time still shows that step (0.3 arrives as 0.29999999999999993)
    assert step_at(left, 0.1 + 0.2 - 2e-16) == 3 and step_at(left, 0.3 - 1e-4) == 2


def test_a_duel_streams_both_sides_at_one_t_and_ends_at_t_1(duel):
    _, updates, runs = finished_runs(duel, "stream")
    assert updates
    for update in updates:
        common = float(re.search(r"Both at t = ([0-9.]+)", update[0]).group(1))
        for run, (step, n, t) in zip(runs, shown(update)):
            times = run.frames["discrete"].t
            assert n == run.num_steps and abs(t - times[step]) < 1e-3
            assert times[step] <= common + 1e-3 and (step == n or times[step + 1] > common - 1e-3)  # the latest at or before
    assert shown(updates[-1]) == [(10, 10, 1.0), (4, 4, 1.0)]
    assert all(run.frames["discrete"].finished for run in runs)


def test_scrubbing_moves_both_sides_to_the_same_moment(duel):
    request, _, (left, right) = finished_runs(duel, "scrub")
    t = 0.55
    steps = [latest_at(run.frames["discrete"].t, t) for run in (left, right)]
    update = duel.scrub(t, request)
    assert [s[0] for s in shown(update)] == steps and steps[0] == 5
    np.testing.assert_array_equal(update[3], images.theta_image(left.frames["discrete"], steps[0]))  # left θ at its step
    np.testing.assert_array_equal(update[5], images.theta_image(right.frames["discrete"], steps[1]))  # right θ at its step
    with pytest.raises(gr.Error, match=r"t must be from 0 to 1; got 1\.5"):
        duel.scrub(1.5, request)
    assert "no duel to scrub" in duel.scrub(0.5, SimpleNamespace(session_hash="nobody"))[0]


def test_each_side_is_the_run_generate_makes_of_its_settings(duel):
    """No second generation loop: a side is the run /generate makes (`app.core.runs.generation`), bit for bit."""
    _, _, (left, right) = finished_runs(duel, "same", model="both")
    for run, (sampler, steps) in ((left, ("bfn", 10)), (right, ("solver", 4))):
        settings = parse_settings("both", "one", 3, 1.0, steps, 7, sampler, menu=duel.menu)
        alone = duel.ctx.store.start_run(f"alone-{sampler}", settings, duel.bank.models)
        alone.join(60)
        for name in ("discrete", "continuous"):
            np.testing.assert_array_equal(run.frames[name].theta, alone.frames[name].theta)
            np.testing.assert_array_equal(run.frames[name].sample, alone.frames[name].sample)


def test_bad_duel_settings_are_told_by_side_and_field(duel):
    menu = duel.menu
    good = dict(model="discrete", digits="one", digit=3, guidance=1.0, seed=0, left_sampler="bfn", left_steps=10, right_sampler="solver", right_steps=4)
    for field, value, message in (
        ("right_steps", 5000, "right steps must be from 1 to 1000; got 5000"),
        ("left_steps", "many", "left steps must be a number from 1 to 1000; got 'many'"),
        ("left_sampler", "fast", "left sampler must be one of 'recommended', "),
        ("guidance", 25, "guidance must be from 0 to 10; got 25"),
        ("model", "nope", "model must be one of 'discrete', 'continuous', 'both'; got 'nope'"),
    ):
        with pytest.raises(ValueError) as e:
            parse_duel(**{**good, field: value}, menu=menu)
        assert str(e.value).startswith(message), str(e.value)
    with pytest.raises(gr.Error, match="right steps must be from 1 to 1000"):
        next(duel.duel(*{**good, "right_steps": 0}.values(), SimpleNamespace(session_hash="bad")))


def test_forget_drops_both_sides(duel):
    request, _, runs = finished_runs(duel, "gone")
    assert live_t(runs) == 1.0
    duel.ctx.forget(request)
    assert "gone" not in duel.ctx.store._sessions and all(not run.running for run in runs)
    assert "Press **Run the duel** first" in duel.scrub(0.5, request)[0]


def test_stop_ends_both_sides_where_they_got_to(duel):
    request = SimpleNamespace(session_hash="stopper")
    stream = duel.duel("discrete", "all", 0, 1.0, 0, "bfn", 1000, "solver", 500, request)
    next(stream)
    update = duel.stop(request)
    left, right = duel.runs(request)
    assert left.state is RunState.STOPPED and right.state is RunState.STOPPED
    t = float(re.search(r"Both at t = ([0-9.]+)", update[0]).group(1))
    assert t < 1 and [s[0] for s in shown(update)] == [step_at(left, t), step_at(right, t)] and "(stopped)" in update[0]
    stream.close()


def test_a_duels_first_update_is_its_images_and_status_and_the_timeline_follows(duel):
    """As for a generation: the cheapest update first, so that with many streams starting at once each user
    sees the duel begin soonest; the last update has every view."""
    _, updates, _ = finished_runs(duel, "first")
    assert len(updates) >= 2
    assert updates[0][-1] == gr.skip() and isinstance(updates[0][3], np.ndarray)  # no timeline, but the images
    assert updates[-1][-1] != gr.skip()

"""Status lines say what is so, in process with tiny models: of a stopped run, of a t a stopped duel never
reached, of a completion that had finished before its Stop, and of runs stopped before their first step."""

from __future__ import annotations

import copy
import re
from types import SimpleNamespace

import pytest

from app.core.models import ModelBank
from app.core.runs import Run, RunState
from app.features.digit.handlers import DigitHandlers
from app.features.duel.handlers import DuelHandlers, live_t
from app.features.generate.handlers import GenerateHandlers
from app.features.update import update_handler
from app.ui.context import Context
from bfn.settings import SamplingSettings
from tests.support.apps import stroke_drawing
from tests.support.runs import wait_for_step


@pytest.fixture
def bank(discrete_model, continuous_model) -> ModelBank:
    models = {"discrete": copy.deepcopy(discrete_model), "continuous": copy.deepcopy(continuous_model)}
    for model in models.values():
        model.sampling = SamplingSettings(sampler="bfn", steps=6, few_steps_below=2, guidance=2.0)
    return ModelBank(models=models)


@pytest.fixture
def ctx(bank):
    ctx = Context(bank, stream_interval=0.0, plot_interval=0.0)
    yield ctx
    ctx.close()


def request(sid: str) -> SimpleNamespace:
    return SimpleNamespace(session_hash=sid)


def test_the_update_in_numbers_of_a_stopped_run_says_no_update_follows(ctx):
    """/update_numbers after /stop said "Step 297 is not sampled yet" of a run that will never sample it."""
    generate, numbers = GenerateHandlers(ctx), update_handler(ctx)
    stream = generate.generate("discrete", "one", 3, 1.0, 1000, 0, "bfn", "recommended", request("stopped"))
    next(stream)
    run = ctx.store.find("stopped").run
    wait_for_step(run, 3)
    stopped_at = generate.stop(request("stopped"))
    stream.close()
    assert run.state is RunState.STOPPED and 3 <= run.latest < 1000
    text, _ = numbers(request("stopped"))
    assert f"step {run.latest} of 1000: the run stopped here, so no update follows it" in text
    assert "not sampled yet" not in text and f"step {run.latest} of 1000" in stopped_at[0]
    generate.scrub(1, request("stopped"))
    text, _ = numbers(request("stopped"))
    assert "the update from step 1 to step 2 of 1000" in text and "stopped here" not in text  # earlier steps: as ever


def test_a_duel_scrubbed_beyond_where_it_stopped_says_what_is_shown(ctx):
    """/duel_scrub(0.5) after a duel stopped near t ≈ 0.005 said "Both at t = 0.500" while both showed 0.005."""
    duel = DuelHandlers(ctx)
    stream = duel.duel("discrete", "one", 3, 1.0, 0, "bfn", 1000, "bfn", 800, request("duel"))
    next(stream)
    left, right = duel.runs(request("duel"))
    wait_for_step(left, 2)
    wait_for_step(right, 2)
    duel.stop(request("duel"))
    stream.close()
    reached = live_t([left, right])
    assert reached < 0.1
    status = duel.scrub(0.5, request("duel"))[0]
    assert f"Both at t = {reached:.3f}" in status and "t = 0.500 was never sampled: the duel ended before it" in status
    assert "Both at t = 0.500" not in status
    earlier = duel.scrub(reached / 2, request("duel"))[0]
    assert f"Both at t = {reached / 2:.3f}" in earlier and "never sampled" not in earlier


def test_stop_after_a_completion_finished_does_not_say_it_stopped(ctx):
    """/complete_stop after a finished completion reported "Done … · stopped": it says there was nothing to stop."""
    digit = DigitHandlers(ctx, samples=2, curve_points=3)
    updates = list(digit.complete(stroke_drawing(), "drawing", "discrete", 0, 0, "top", "none", 1.0, request("done")))
    assert "Done" in updates[-1][-1]
    status = digit.stop(request("done"))[-1]
    assert "Done" in status and "nothing to stop: it was already done" in status and "· stopped" not in status


@pytest.mark.parametrize("feature", ["duel", "generate", "complete"])
def test_a_run_stopped_before_its_first_step_still_answers(ctx, feature, monkeypatch):
    """A duel stopped before its first step returned None (its stream yielded nothing): every stream now ends
    with an update that says nothing was sampled. (Stop is pressed as the runs start: each is stopped before
    its producers record anything.)"""
    start, runs = Run.start, []

    def stopped_at_once(run: Run, share=None) -> Run:
        runs.append(run)
        run.stop()
        return start(run, share)

    monkeypatch.setattr(Run, "start", stopped_at_once)
    sid = request(feature)
    if feature == "duel":
        stream = DuelHandlers(ctx).duel("discrete", "one", 3, 1.0, 0, "bfn", 10, "bfn", 5, sid)
    elif feature == "generate":
        stream = GenerateHandlers(ctx).generate("discrete", "one", 3, 1.0, 10, 0, "bfn", "recommended", sid)
    else:
        stream = DigitHandlers(ctx, samples=2, curve_points=3).complete(stroke_drawing(), "drawing", "discrete", 0, 0, "top", "none", 1.0, sid)
    updates = list(stream)
    assert runs and all(run.state is RunState.STOPPED and run.latest == -1 for run in runs)
    assert len(updates) == 1, updates
    said = " ".join(v for v in updates[0] if isinstance(v, str))
    assert re.search(r"(?i)stopped.*before (its|their) first step: nothing was sampled", said), said


def test_models_on_different_time_grids_each_say_their_own_t(ctx, bank):
    """Side by side, bfn's uniform grid and the solver's log-SNR grid reach step i at different t; the status
    said the first model's t for both ("step 3 of 6 (t = 0.500) · continuous ρ = …", ρ of a much earlier t)."""
    bank.models["continuous"].sampling = SamplingSettings(sampler="solver", steps=6, few_steps_below=2, guidance=2.0)
    generate = GenerateHandlers(ctx)
    for _ in generate.generate("both", "all", 0, 1.0, 6, 0, "recommended", "recommended", request("clocks")):
        pass
    run = ctx.store.find("clocks").run
    status = generate.scrub(3, request("clocks"))[0]
    d, c = (float(run.frames[name].t[3]) for name in ("discrete", "continuous"))
    assert abs(d - c) > 1e-3  # the premise: two clocks
    assert f"step 3 of 6 · discrete t = {d:.3f} · continuous t = {c:.3f}, ρ = " in status and "(t = " not in status
    status = generate.scrub(6, request("clocks"))[0]
    assert "step 6 of 6 (t = 1.000) · continuous ρ = " in status  # one clock at the end: said once


def test_side_by_side_says_whose_guidance_the_slider_holds(ctx, bank):
    """One guidance weight drives both models side by side; the switch said "at its recommended guidance 2" of
    a pair whose continuous model recommends 1.5."""
    generate = GenerateHandlers(ctx)
    assert generate.switch_model("continuous", request("whose"))[0] == "Continuous, at its recommended guidance 2: press **Generate**."
    bank.models["continuous"].sampling = SamplingSettings(sampler="bfn", steps=6, few_steps_below=2, guidance=1.5)
    ctx = Context(bank, stream_interval=0.0, plot_interval=0.0)  # the menu reads the models' settings once
    try:
        out = GenerateHandlers(ctx).switch_model("both", request("whose"))
        assert out[0] == ("Both, side by side, at Binarised (discrete)'s recommended guidance 2 (Continuous's: 1.5): "
                          "press **Generate**.") and out[-1] == 2.0
    finally:
        ctx.close()

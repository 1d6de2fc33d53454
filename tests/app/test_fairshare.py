"""Concurrent runs take turns on the CPU (app.fairshare): bounded, fewest-turns-first, and exactly as alone."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("gradio")

from app.core.fairshare import FairShare, TakingTurns, Turns  # noqa: E402
from app.ui.pace import StreamBudget  # noqa: E402
from app.core.models import model_menu  # noqa: E402
from app.core.settings import parse_settings  # noqa: E402
from app.core.runs import Run, generation  # noqa: E402


def test_no_more_than_slots_calls_run_at_once():
    share, running, most, lock = FairShare(slots=2), [0], [0], threading.Lock()

    def work() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    threads = [threading.Thread(target=share.call, args=(k % 3, work)) for k in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert most[0] == 2


def test_the_waiting_call_with_fewest_turns_goes_next():
    share, order, release = FairShare(slots=1), [], threading.Event()
    holder = threading.Thread(target=share.call, args=(0, release.wait))
    holder.start()
    time.sleep(0.05)  # the slot is taken; the others queue behind it
    waiting = [threading.Thread(target=share.call, args=(had, order.append, had)) for had in (7, 0, 3, 0)]
    for th in waiting:
        th.start()
        time.sleep(0.02)
    release.set()
    for th in [holder, *waiting]:
        th.join(timeout=30)
    assert order == [0, 0, 3, 7]  # a new run (no turns yet) first; ties in order of arrival


def test_turns_are_counted_and_a_model_taking_turns_is_otherwise_the_model(discrete_model):
    turns = Turns(FairShare(slots=1))
    model = TakingTurns(discrete_model, turns)
    assert model.flow is discrete_model.flow and model.num_labels == discrete_model.num_labels
    assert turns(max, 2, 5) == 5 and turns.had == 1


def test_runs_sharing_the_cpu_record_exactly_what_each_records_alone(discrete_model, continuous_model):
    models = {"discrete": discrete_model, "continuous": continuous_model}
    menu = model_menu(models)
    settings = [parse_settings("both", "all", 0, 2.0, 8, seed, "bfn", menu=menu) for seed in range(3)]

    def frames(runs: list[Run], share: FairShare | None = None) -> list[dict[str, np.ndarray]]:
        for run in runs:
            run.start(share)
        for run in runs:
            run.join(timeout=120)
        return [{name: fr.theta.copy() for name, fr in run.frames.items()} for run in runs]

    alone = [frames([generation(s, models)])[0] for s in settings]
    together = frames([generation(s, models) for s in settings], FairShare(slots=1))
    for a, b in zip(alone, together):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_stream_budget_shares_one_rate_among_the_streams_live():
    budget = StreamBudget()
    assert budget.interval(0.1) == 0.1  # alone: the full rate
    with budget.stream(), budget.stream():
        assert budget.live == 2 and budget.interval(0.1) == pytest.approx(0.2) and budget.interval(0.5) == pytest.approx(1.0)
    with pytest.raises(RuntimeError), budget.stream():
        raise RuntimeError("a stream that fails returns its share too")
    assert budget.live == 0 and budget.interval(0.1) == 0.1


def test_generations_duels_and_completions_all_stream_within_the_budget(discrete_model, continuous_model):
    from app.features.digit.handlers import DigitHandlers
    from app.features.duel.handlers import DuelHandlers
    from app.features.generate.handlers import GenerateHandlers
    from tests.support.apps import context, stroke_drawing

    ctx = context({"discrete": discrete_model, "continuous": continuous_model}, stream_interval=0.1)
    stream = GenerateHandlers(ctx).generate("discrete", "all", 0, 1.0, 3, 0, "bfn", "recommended", SimpleNamespace(session_hash="a"))
    next(stream)
    assert ctx.streams.live == 1
    duel = DuelHandlers(ctx).duel("discrete", "all", 0, 1.0, 0, "bfn", 3, "solver", 3, SimpleNamespace(session_hash="b"))
    next(duel)
    assert ctx.streams.live == 2
    completion = DigitHandlers(ctx, samples=2, curve_points=3).complete(
        stroke_drawing(), "drawing", "discrete", 0, 0, "top", "none", 1.0, SimpleNamespace(session_hash="c"))
    next(completion)
    assert ctx.streams.live == 3
    for _ in stream:
        pass
    assert ctx.streams.live == 2  # a stream that ends returns its share
    duel.close()  # and so does one whose client goes away
    completion.close()
    assert ctx.streams.live == 0
    ctx.close()


def test_a_pace_sends_the_figures_from_the_second_update_on_at_their_own_rate_and_always_at_the_end():
    budget = StreamBudget()
    pace = budget.pace(0.0, 0.0)
    assert [pace.update(), pace.update(), pace.update(final=True)] == [False, True, True]
    slow = budget.pace(30.0, 60.0)
    assert slow.update() is False  # the first update carries no figures,
    assert slow.update() is True  # the figures follow with the next update,
    assert slow.update() is False  # then wait their interval
    assert slow.update(final=True) is True
    assert slow.rate is not None and slow.rate > 0 and StreamBudget().pace(0.1, 0.5).rate is None


def test_a_pace_waits_until_the_next_update_is_due_and_not_at_all_when_it_is():
    pace = StreamBudget().pace(0.05, 0.5)
    start = time.monotonic()
    pace.wait()  # nothing sent yet: due at once
    assert time.monotonic() - start < 0.04
    pace.update()
    pace.wait()  # one interval from the update's start
    assert 0.05 - 0.01 <= time.monotonic() - start < 0.5

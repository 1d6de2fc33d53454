"""Concurrent runs take turns on the CPU (app.fairshare): bounded, fewest-turns-first, and exactly as alone."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("gradio")

from app.fairshare import FairShare, TakingTurns, Turns  # noqa: E402
from app.models import model_menu  # noqa: E402
from app.params import parse_settings  # noqa: E402
from app.session import Run  # noqa: E402


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

    def frames(runs: list[Run]) -> list[dict[str, np.ndarray]]:
        for run in runs:
            run.start()
        for run in runs:
            run.join(timeout=120)
        return [{name: fr.theta.copy() for name, fr in run.frames.items()} for run in runs]

    alone = [frames([Run(s, models)])[0] for s in settings]
    share = FairShare(slots=1)
    together = frames([Run(s, models, share=share) for s in settings])
    for a, b in zip(alone, together):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_streams_share_one_budget_of_updates_and_a_finished_stream_returns_its_share(discrete_model, continuous_model):
    from app.handlers import Handlers
    from app.models import ModelBank

    handlers = Handlers(ModelBank(models={"discrete": discrete_model, "continuous": continuous_model}), stream_interval=0.1)
    assert handlers._paced(0.1) == 0.1  # alone: the full rate
    stream = handlers.generate("discrete", "all", 0, 1.0, 3, 0, "bfn", None)
    next(stream)
    other = handlers.generate("continuous", "all", 0, 1.0, 3, 1, "bfn", None)
    next(other)
    assert handlers._paced(0.1) == pytest.approx(0.2) and handlers._paced(0.5) == pytest.approx(1.0)
    for _ in stream:
        pass
    other.close()  # a client that goes away returns its share too
    assert handlers._paced(0.1) == 0.1
    handlers.close()

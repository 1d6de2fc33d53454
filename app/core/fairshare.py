"""Fair shares of the CPU for concurrent runs: network passes take turns, the run that has had fewest first.

Each run samples in threads of its own (one per model), and every network or classifier pass is a burst of
CPU work. Left to the operating system, sixteen such threads on two cores all slow each other down alike, so
a run that has just started waits for its first frame about as long as the others take for a step each,
times the number of runs, and the users queued behind the concurrency limit see nothing at all.

With a `FairShare`, at most `slots` passes run at once (one per core: more would only contend), and the
next pass to go is the waiting one whose thread has had the fewest passes: a new run's first pass goes
ahead of everyone else's next one, so its first frame comes after at most the passes already running, and
all runs then advance at the same pace. Each pass keeps its own inputs, so every run's numbers are exactly
those of the same run alone.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def default_slots() -> int:
    """Passes that fit the machine at once: its cores divided by the threads each pass uses (at least one)."""
    return max(1, (os.cpu_count() or 1) // torch.get_num_threads())


class FairShare:
    """At most `slots` calls at once; a waiting call with fewer turns had goes first (ties: first come)."""

    def __init__(self, slots: int | None = None):
        self.slots = slots or default_slots()
        self._changed = threading.Condition()
        self._busy = 0
        self._waiting: list[tuple[int, int]] = []  # heap of (turns had, arrival)
        self._arrivals = itertools.count()

    def call(self, turns_had: int, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` once a slot is free and no waiting call has had fewer turns than `turns_had`."""
        ticket = (turns_had, next(self._arrivals))
        with self._changed:
            heapq.heappush(self._waiting, ticket)
            while self._busy >= self.slots or self._waiting[0] != ticket:
                self._changed.wait()
            heapq.heappop(self._waiting)
            self._busy += 1
            self._changed.notify_all()  # a second free slot goes to the next in line
        try:
            return fn(*args)
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()


class Turns:
    """One sampling thread's side of a `FairShare`: its calls, counted, so that it waits its fair turn."""

    def __init__(self, share: FairShare):
        self.share = share
        self.had = 0

    def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        out = self.share.call(self.had, fn, *args)
        self.had += 1
        return out


class TakingTurns:
    """A model whose every network pass waits for its thread's turn; otherwise the model itself.

    It stands in for the model where a sampler takes one (a `bfn.sampling.Network`: the sampler calls it for
    each pass and reads its flow, labels and settings), so the sampler needs no knowledge of the sharing.
    """

    def __init__(self, model: Any, turns: Turns):
        self.model = model
        self.turns = turns

    def __call__(self, *inputs: Any) -> Any:
        return self.turns(self.model, *inputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

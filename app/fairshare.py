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

import contextlib
import heapq
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
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

    It stands in for the model where a sampler takes one (the sampler calls the model for each pass and reads
    its flow, labels and settings), so the sampler needs no knowledge of the sharing.
    """

    def __init__(self, model: Any, turns: Turns):
        self.model = model
        self.turns = turns

    def __call__(self, *inputs: Any) -> Any:
        return self.turns(self.model, *inputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class StreamBudget:
    """One budget of view updates for every stream live now: each stream's interval times the streams live.

    Rendering and sending views is the server's heaviest work after sampling; shared out this way it does not
    grow with the number of users and take the CPU their runs need, and a stream alone updates at full rate.
    Generations, duels and completions all stream within it.
    """

    def __init__(self):
        self._live = 0
        self._lock = threading.Lock()

    @property
    def live(self) -> int:
        """Streams open now."""
        return self._live

    @contextlib.contextmanager
    def stream(self) -> Iterator[None]:
        """Count a stream as live while the block runs (also when its client goes away mid-stream)."""
        with self._lock:
            self._live += 1
        try:
            yield
        finally:
            with self._lock:
                self._live -= 1

    def interval(self, interval: float) -> float:
        """A stream's pause between updates, for `interval` alone."""
        return interval * max(1, self._live)

    def pace(self, interval: float, figures_interval: float) -> Pace:
        """A timetable for one stream in this budget (call within `stream()`, so that it counts as live)."""
        return Pace(self, interval, figures_interval)


class Pace:
    """One stream's timetable within a `StreamBudget`: when its next update is due, and which carry the figures.

    The first update carries none: its images and status are the cheapest to draw and send, so with many
    streams starting at once each user sees something soonest. The figures follow with the next update, then
    at most once per `figures_interval` (times the streams live), and the final update always has them. An
    update's interval counts from its start, so drawing and sending it count towards the budget.
    """

    def __init__(self, budget: StreamBudget, interval: float, figures_interval: float):
        self.budget = budget
        self.interval = interval
        self.figures_interval = figures_interval
        self.updates = 0
        self._first = self._latest = None
        self._next_at = -math.inf
        self._last_figures = -math.inf

    @property
    def due(self) -> bool:
        """Whether the next update may go now."""
        return time.monotonic() >= self._next_at

    def wait(self) -> None:
        """Sleep until the next update is due (not at all if it is)."""
        time.sleep(max(0.0, self._next_at - time.monotonic()))

    def poll(self) -> None:
        """Sleep until the next update is due, or for one interval if it already is: for a stream that looks
        for news (a duel, over two runs) rather than being woken by it."""
        now = time.monotonic()
        time.sleep(self._next_at - now if self._next_at > now else self.budget.interval(self.interval))

    def update(self, final: bool = False) -> bool:
        """Start an update now; whether it carries the figures."""
        now = time.monotonic()
        figures = final or (self.updates > 0 and now - self._last_figures >= self.budget.interval(self.figures_interval))
        if figures:
            self._last_figures = now
        if self._first is None:
            self._first = now
        self._latest = now
        self._next_at = now + self.budget.interval(self.interval)
        self.updates += 1
        return figures

    @property
    def rate(self) -> float | None:
        """Updates per second from the first update to the latest one's start (None before there are two)."""
        if self.updates < 2 or self._latest <= self._first:
            return None
        return (self.updates - 1) / (self._latest - self._first)

"""The pace of the streams of views: one budget of updates shared by every stream live now, each stream's
timetable within it, and the one loop that streams runs (`stream`) for every feature. Sharing the CPU's passes
between runs is another matter (`app.core.fairshare`); this is about how often the server draws and sends
what the runs recorded.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from app.core.runs import Run, wait_for_news
from app.ui.views import raise_if_failed


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

    def wait(self) -> None:
        """Sleep until the next update is due (not at all if it is)."""
        time.sleep(max(0.0, self._next_at - time.monotonic()))

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


def stream(runs: Sequence[Run], pace: Pace, draw: Callable[[bool, float | None], list], unstarted: Callable[[], list],
           timeout: float = 1.0) -> Iterator[list]:
    """The views of `runs` while they sample, then where they ended: every feature streams its runs here.

    An update goes whenever a run has recorded more since the last one (once every model of every run has its
    first state), at most as often as `pace` allows; the last update, once every run has ended, carries every
    figure. `draw(figures, rate)` makes one update: whether it carries the figures, and the updates per second
    so far. Runs that ended before every model had its first state (stopped at once) end the stream with
    `unstarted()` instead, so that the event still answers (with nothing, a client would get None). A failed
    run is reported at once (`raise_if_failed`).
    """
    shown, final_shown = None, False
    while True:
        for run in runs:
            raise_if_failed(run)
        recorded, ended = tuple(run.recorded for run in runs), not any(run.running for run in runs)
        ready = all(run.latest >= 0 for run in runs)
        if ready and (recorded != shown or (ended and not final_shown)):
            if not ended:
                pace.wait()
                recorded, ended = tuple(run.recorded for run in runs), not any(run.running for run in runs)
            yield draw(pace.update(final=ended), pace.rate)
            shown, final_shown = recorded, ended
        elif ended:
            break
        else:
            wait_for_news(runs, recorded, timeout)
    for run in runs:
        raise_if_failed(run)
    if not final_shown:
        yield unstarted()

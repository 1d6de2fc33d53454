"""Per-session state: each session's runs (its generation, its duel's sides, its completion), what the generation
views show, and what each feature keeps for the session.

`SessionStore` maps Gradio session ids to `Session`s. A session is made only by a call that has something to
keep (a run started, a digit scored, a pixel chosen): every other call reads (`find`), so a flood of cheap
calls from fresh sessions makes nothing and evicts nobody. Every run of every session is in the store, and
what features keep, so memory is bounded once for all of them: per run by `app.core.runs.MAX_RUN_BYTES`, and
over all sessions by `max_bytes`: beyond it the least recently used ended runs are dropped, then what the
least recently used sessions keep (their users are told to run or score again). Sessions beyond
`max_sessions` go least recently used first, those that hold nothing before the others. Neither ever takes a
session with a running run. All runs take turns on the CPU through the store's one `FairShare`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.core.fairshare import FairShare
from app.core.runs import Run, generation
from app.core.settings import RunSettings
from bfn.classifier import DigitClassifier
from bfn.model import BFNModel

MAX_PIXELS = 8
DEFAULT_MAX_BYTES = 512 << 20  # all sessions' kept runs: 4 of the largest, 40 side-by-side bfn runs of 100 steps
MAX_SESSIONS = 10_000  # sessions kept; those that hold nothing but their pixels go first
GENERATION = "generate"  # the slot of a session's generation, which other features read (a digit taken from it)

T = TypeVar("T")


@dataclass
class Session:
    """One browser session: its runs by slot, what the generation views show, and each feature's own state.

    Attributes:
        runs: slot → the session's latest run there (`GENERATION`, a duel's sides, a completion).
        pixels: the pixels the generation views follow, (image, row, column), the last chosen last.
        image: the image shown in the pixel heatmap.
        step: the step on show.
        kept: feature name → what that feature keeps for the session (`SessionStore.kept`).
    """

    runs: dict[str, Run] = field(default_factory=dict)
    pixels: list[tuple[int, int, int]] = field(default_factory=lambda: [(0, 14, 14)])
    image: int = 0
    step: int = 0
    kept: dict[str, Any] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)

    @property
    def run(self) -> Run | None:
        """The session's generation, if it has one (and the store has not dropped it)."""
        return self.runs.get(GENERATION)

    @property
    def running(self) -> bool:
        """Whether any of its runs is still sampling (such a session is never evicted)."""
        return any(run.running for run in self.runs.values())

    @property
    def holds(self) -> bool:
        """Whether it holds anything beyond its choice of pixels: a run, or something a feature keeps."""
        return bool(self.runs or self.kept)

    @property
    def nbytes(self) -> int:
        """The memory of its runs and of what features keep (each kept value's `nbytes`, where it has one)."""
        return sum(run.nbytes for run in self.runs.values()) + sum(getattr(v, "nbytes", 0) for v in self.kept.values())

    def add_pixel(self, pixel: tuple[int, int, int]) -> None:
        """Toggle a pixel: choosing one again removes it; the oldest goes when there are too many."""
        if pixel in self.pixels:
            self.pixels.remove(pixel)
        else:
            self.pixels.append(pixel)
            del self.pixels[:-MAX_PIXELS]
        self.image = pixel[0]

    def stop(self) -> None:
        for run in self.runs.values():
            run.stop()


class SessionStore:
    """Session id → `Session`, with the memory of all kept runs and features' state bounded by `max_bytes` (least
    recently used first, never a running session) and the sessions by `max_sessions`.

    The budget is checked when a run starts and when one ends, and when a feature keeps something (`keep`), so
    what is kept adds up to at most `max_bytes`, or to what the runs still sampling take where those alone are
    more (a running run is never dropped): a budget of at least the most concurrent runs × `MAX_RUN_BYTES` is a
    bound.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_sessions: int = MAX_SESSIONS, share: FairShare | None = None):
        self.max_bytes = max_bytes
        self.share = share or FairShare()  # every run's passes take turns on the CPU (`app.core.fairshare`)
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> Session:
        """The session, made if it is new: for calls that keep something in it (others `find` it)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = Session()
                self._evict_sessions(keep=session_id)
            self._touch(session_id, session)
            return session

    def find(self, session_id: str) -> Session | None:
        """The session if the store has it (None for a caller that never kept anything): nothing is made."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                self._touch(session_id, session)
            return session

    def _touch(self, session_id: str, session: Session) -> None:
        self._sessions.move_to_end(session_id)
        session.last_used = time.monotonic()

    def kept(self, session_id: str, feature: str, make: Callable[[], T]) -> T:
        """What `feature` keeps for the session, made by `make` the first time (the session too)."""
        kept = self.get(session_id).kept
        if feature not in kept:
            kept[feature] = make()
        return kept[feature]

    def found(self, session_id: str, feature: str) -> Any:
        """What `feature` keeps for the session, or None: nothing is made."""
        session = self.find(session_id)
        return None if session is None else session.kept.get(feature)

    def keep(self, session_id: str, feature: str, value: Any) -> None:
        """Keep `value` for `feature` in the session (made if new), within the memory budget (`value.nbytes`
        counts): other sessions' ended runs and kept state go first where it does not fit."""
        session = self.get(session_id)
        with self._lock:
            session.kept[feature] = value
            self._evict(keep=session_id)

    def start(self, session_id: str, runs: Mapping[str, Run]) -> None:
        """Put `runs` in their slots of the session (stopping the runs they replace) and start them."""
        session = self.get(session_id)
        for slot in runs:
            if (old := session.runs.get(slot)) is not None:
                old.stop()
        with self._lock:
            session.runs.update(runs)
            for run in runs.values():
                run.on_end = lambda: self._trim(session_id)
            self._evict(keep=session_id)
        for run in runs.values():
            run.start(self.share)

    def start_run(self, session_id: str, settings: RunSettings, models: Mapping[str, BFNModel],
                  classifier: DigitClassifier | None = None) -> Run:
        """Start the session's generation of `settings` (`app.core.runs.generation`) in place of its last one; the
        views go back to step 0, following the pixels that lie in the new run's images."""
        run = generation(settings, models, classifier)
        session = self.get(session_id)
        height, width = settings.label_set.shape
        session.step = 0
        session.pixels = [p for p in session.pixels if p[0] < len(settings.labels) and p[1] < height and p[2] < width] or [
            (0, height // 2, width // 2)]
        session.image = min(session.image, len(settings.labels) - 1)
        self.start(session_id, {GENERATION: run})
        return run

    def end(self, session_id: str, slot: str, keep: Callable[[Run], bool] = lambda run: False) -> bool:
        """Stop and forget the session's run in `slot`: its page no longer shows it (another model was chosen),
        so nothing may read it back (a scrub, a click, an export), and its stream sends nothing more. A run for
        which `keep` is true is left alone instead, and True returned. The test and the end are one step under
        the store's lock: a run started between a separate look and the end would be ended unseen."""
        with self._lock:
            session = self._sessions.get(session_id)
            run = None if session is None else session.runs.get(slot)
            if run is not None:
                if keep(run):
                    return True
                del session.runs[slot]
        if run is not None:
            run.dismissed = True
            run.stop()
        return False

    def close(self, wait: float = 2.0) -> None:
        """Stop every run and forget every session (the server is going away); wait up to `wait` seconds in
        all for the producers to end."""
        with self._lock:
            runs = [run for s in self._sessions.values() for run in s.runs.values()]
            self._sessions.clear()
        for run in runs:
            run.stop()
        deadline = time.monotonic() + wait
        for run in runs:
            run.join(max(0.0, deadline - time.monotonic()))

    def drop(self, session_id: str) -> None:
        """The session is gone (its tab was closed): stop its runs and forget it."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.stop()

    def _trim(self, keep: str) -> None:
        """A run of session `keep` has ended: it may now be dropped, and others beyond the budget are."""
        with self._lock:
            self._evict(keep=keep)

    def _evict(self, keep: str) -> None:
        """Drop other sessions' ended runs, then what they keep, least recently used first, until the total fits;
        a session with a running run keeps what it has (called with the lock held)."""
        total = sum(s.nbytes for s in self._sessions.values())
        for sid, session in list(self._sessions.items()):
            if total <= self.max_bytes:
                return
            if sid == keep:
                continue
            for slot, run in list(session.runs.items()):
                if total > self.max_bytes and not run.running:
                    total -= run.nbytes
                    del session.runs[slot]
            if session.running:
                continue
            for feature, value in list(session.kept.items()):
                if total > self.max_bytes:
                    total -= getattr(value, "nbytes", 0)
                    del session.kept[feature]

    def _evict_sessions(self, keep: str) -> None:
        """Beyond `max_sessions`, forget the least recently used sessions that hold nothing, then those whose runs
        have all ended; never `keep` (just made) nor a session with a running run (called with the lock held)."""
        excess = len(self._sessions) - self.max_sessions
        for holding in (False, True):
            for sid, session in list(self._sessions.items()):
                if excess <= 0:
                    return
                if sid != keep and not session.running and session.holds == holding:
                    del self._sessions[sid]
                    excess -= 1

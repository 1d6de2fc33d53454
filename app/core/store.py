"""Per-session state: each session's runs (its generation, its duel's sides, its completion), what the generation
views show, and what each feature keeps for the session.

`SessionStore` maps Gradio session ids to `Session`s. Every run of every session is in it, so memory is bounded
once for all of them: per run by `app.core.runs.MAX_RUN_BYTES`, and over all sessions by `max_bytes`: beyond
it the least recently used ended runs are dropped (their sessions are told to run again). All runs take turns
on the CPU through the store's one `FairShare`.
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
    """Session id → `Session`, with the memory of all kept runs bounded by `max_bytes` (LRU, ended runs).

    The budget is checked when a run starts and when one ends, so the runs kept add up to at most
    `max_bytes`, or to what the runs still sampling take where those alone are more (a running run is never
    dropped): a budget of at least the most concurrent runs × `MAX_RUN_BYTES` is a bound.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_sessions: int = 10_000, share: FairShare | None = None):
        self.max_bytes = max_bytes
        self.share = share or FairShare()  # every run's passes take turns on the CPU (`app.core.fairshare`)
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = Session()
            self._sessions.move_to_end(session_id)
            session.last_used = time.monotonic()
            while len(self._sessions) > self.max_sessions:
                _, old = self._sessions.popitem(last=False)
                old.stop()
            return session

    def kept(self, session_id: str, feature: str, make: Callable[[], T]) -> T:
        """What `feature` keeps for the session, made by `make` the first time."""
        kept = self.get(session_id).kept
        if feature not in kept:
            kept[feature] = make()
        return kept[feature]

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

    def end(self, session_id: str, slot: str) -> None:
        """Stop and forget the session's run in `slot`: its page no longer shows it (another model was chosen),
        so nothing may read it back (a scrub, a click, an export)."""
        with self._lock:
            session = self._sessions.get(session_id)
            run = None if session is None else session.runs.pop(slot, None)
        if run is not None:
            run.stop()

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
        """Drop least recently used ended runs of other sessions until the total fits (called with the lock held)."""
        total = sum(run.nbytes for s in self._sessions.values() for run in s.runs.values())
        for sid, session in list(self._sessions.items()):
            for slot, run in list(session.runs.items()):
                if total <= self.max_bytes:
                    return
                if sid != keep and not run.running:
                    total -= run.nbytes
                    del session.runs[slot]

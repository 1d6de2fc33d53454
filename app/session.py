"""Runs and per-session state: who is generating what, and the recorded steps each session can scrub through.

A `Run` samples with one producer thread per model (so the two models of a side-by-side run use both cores)
and records every step into `Frames`; the UI polls it at its own pace, so sampling never waits for the
browser and the browser is never flooded. A run stops when asked, when its session starts a new one or goes
away, or when nobody has looked at it for `IDLE_STOP_S` seconds. Its `state` says which of these happened.

`SessionStore` maps Gradio session ids to `Session`s (the latest run, the chosen pixels, the step on show).
Memory is bounded twice: per session, one run of at most `MAX_STEPS` steps and one image per label per model
(≤ 128 MB for 1000 steps side by side with the `bfn` sampler, whose updates' sender samples are kept too; ≤ 64 MB
with the solvers; tests/test_app_render.py checks the bound against `Frames.nbytes`), and
over all sessions by `max_bytes`: beyond it the least recently used ended runs are dropped (their sessions
are told to generate again).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from app.fairshare import FairShare, TakingTurns, Turns
from app.frames import Frames
from app.models import digit_classes
from app.params import RunSettings
from bfn.classifier import DigitClassifier, classify_states
from bfn.model import BFNModel
from bfn.sampling import StepState, get_sampler

IDLE_STOP_S = 30.0
MAX_PIXELS = 8
MAX_RUN_BYTES = 128 << 20  # the most frames one run may keep: the largest MNIST run fits, larger ones are refused (`check_size`)
DEFAULT_MAX_BYTES = 512 << 20  # all sessions' kept runs: 4 of the largest, 40 side-by-side bfn runs of 100 steps


class RunState(Enum):
    """Where a run stands. It leaves RUNNING once, when its last producer ends (`Run._produce`)."""

    RUNNING = "running"
    DONE = "done"  # every model reached its final sample
    STOPPED = "stopped"  # asked to stop, replaced, or left unwatched, before the end
    FAILED = "failed"  # a producer raised; `Run.error` says what


class RunTooLarge(ValueError):
    """A run's frames would take more than `MAX_RUN_BYTES`; the message says how many steps fit."""


def check_size(frames: Mapping[str, Frames], steps: int) -> None:
    """Refuse a run whose frames, once every step is recorded, would exceed `MAX_RUN_BYTES`.

    The frames are only reserved so far (pages are taken as steps are written), so refusing here costs nothing;
    the largest MNIST run fits, but larger images (a 64×64 model) or many images reach the bound sooner.
    """
    size = sum(fr.nbytes for fr in frames.values())
    if size > MAX_RUN_BYTES:
        per_step = size / (steps + 1)
        fits = max(1, int(MAX_RUN_BYTES / per_step) - 1)
        raise RunTooLarge(f"{steps} steps would keep {size / 2**20:.0f} MB of frames, over the {MAX_RUN_BYTES >> 20} MB "
                          f"one run may keep: choose at most {fits} steps")


class Run:
    """One generation: settings, the recorded frames per model, and the threads producing them."""

    def __init__(self, settings: RunSettings, models: Mapping[str, BFNModel], classifier: DigitClassifier | None = None,
                 share: FairShare | None = None):
        self.settings = settings
        self.labels = settings.labels
        self.frames: dict[str, Frames] = {
            name: Frames(models[name].flow, len(self.labels), settings.steps, title=settings.menu.titles[name],
                         digit_classes=digit_classes(classifier), observes=get_sampler(settings.sampler_for(models[name])).observes,
                         labels=settings.menu.labels[name])
            for name in settings.models
        }  # fmt: skip
        check_size(self.frames, settings.steps)
        self._models = {name: models[name] for name in settings.models}
        self._classifier = classifier
        # the CPU shared with other runs (`app.fairshare`); alone, each model's thread has a slot of its own
        self._share = share or FairShare(slots=len(self.frames))
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self.state = RunState.RUNNING
        self.error: str | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.last_seen = self.started
        self.follow_live = True  # the live stream shows the newest step until the user scrubs back
        self.on_end: Callable[[], object] | None = None  # called once the run has ended (from its last producer)

    # ------------------------------------------------------------------ producing
    def start(self) -> "Run":
        self._running = len(self.frames)
        for name in self.frames:
            thread = threading.Thread(target=self._produce, args=(name,), name=f"bfn-run-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def _produce(self, name: str) -> None:
        s = self.settings
        turns = Turns(self._share)
        try:
            model = self._models[name]
            sampler = get_sampler(s.sampler_for(model))
            states = sampler(TakingTurns(model, turns), self.labels, steps=s.steps, guidance=s.guidance, seed=s.seed,
                             rescaled_phi=model.sampling.rescaled_phi)
            for state in states:
                if self._stop.is_set():
                    break
                frames = self.frames[name]
                probs = None if frames.digit_probs is None else turns(self._digit_probs, state, frames)
                frames.record(state, probs)
                with self._changed:
                    self._changed.notify_all()
                if time.monotonic() - self.last_seen > IDLE_STOP_S:
                    self._stop.set()  # nobody is watching: free the CPU
        except Exception as e:  # noqa: BLE001 — reported to the user by the poller, never lost
            self.error = f"{type(e).__name__}: {e}"
            self._stop.set()
        finally:
            with self._changed:
                self._running -= 1
                last = self._running == 0
                if last:
                    self.ended = time.monotonic()
                    self.state = self._end_state()
                self._changed.notify_all()
            if last and self.on_end is not None:
                self.on_end()

    def _end_state(self) -> RunState:
        if self.error:
            return RunState.FAILED
        if all(fr.finished for fr in self.frames.values()):
            return RunState.DONE
        return RunState.STOPPED

    def _digit_probs(self, state: StepState, frames: Frames) -> np.ndarray:
        """What the classifier sees in this step's output distribution, (B, digits of each part of a label); only
        for frames that keep it (not without a classifier, nor for labels that are not digits)."""
        return classify_states(self._classifier, state.output[None], state.value_range, frames.labels.digit_parts)[0].numpy()

    def stop(self, wait: float = 0.0) -> None:
        self._stop.set()
        self.join(wait)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the producers to end; whoever waits counts as watching (the idle stop does not fire)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            while thread.is_alive() and thread is not threading.current_thread():
                left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if left <= 0:
                    return
                self.touch()
                thread.join(left)

    # ------------------------------------------------------------------ reading
    @property
    def latest(self) -> int:
        """The last step recorded for every model (−1 before the first)."""
        return min(fr.latest for fr in self.frames.values())

    @property
    def num_steps(self) -> int:
        return self.settings.steps

    @property
    def running(self) -> bool:
        return self.state is RunState.RUNNING

    @property
    def nbytes(self) -> int:
        return sum(fr.nbytes for fr in self.frames.values())

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def wait(self, after: int, timeout: float) -> int:
        """Block until a step newer than `after` is recorded for every model, the run ends, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.latest <= after and self.running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        self.touch()
        return self.latest


@dataclass
class Session:
    run: Run | None = None
    pixels: list[tuple[int, int, int]] = field(default_factory=lambda: [(0, 14, 14)])
    image: int = 0  # the image shown in the pixel heatmap
    step: int = 0  # the step on show
    last_used: float = field(default_factory=time.monotonic)

    def add_pixel(self, pixel: tuple[int, int, int]) -> None:
        """Toggle a pixel: choosing one again removes it; the oldest goes when there are too many."""
        if pixel in self.pixels:
            self.pixels.remove(pixel)
        else:
            self.pixels.append(pixel)
            del self.pixels[:-MAX_PIXELS]
        self.image = pixel[0]


class SessionStore:
    """Session id → `Session`, with the memory of all kept runs bounded by `max_bytes` (LRU, ended runs).

    The budget is checked when a run starts and when one ends, so the runs kept add up to at most
    `max_bytes`, or to what the runs still sampling take where those alone are more (a running run is never
    dropped): a budget of at least the most concurrent generations × `MAX_RUN_BYTES` is a bound.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_sessions: int = 10_000, share: FairShare | None = None):
        self.max_bytes = max_bytes
        self.share = share or FairShare()  # every run's passes take turns on the CPU (`app.fairshare`)
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
                if old.run is not None:
                    old.run.stop()
            return session

    def start_run(self, session_id: str, settings: RunSettings, models: Mapping[str, BFNModel], classifier: DigitClassifier | None = None) -> Run:
        """Replace the session's run with a new one (stopping the old) and start it."""
        session = self.get(session_id)
        if session.run is not None:
            session.run.stop()
        run = Run(settings, models, classifier, self.share)
        run.on_end = lambda: self._trim(session_id)
        with self._lock:
            session.run = run
            session.step = 0
            height, width = settings.label_set.shape  # pixels followed before must lie in this run's images
            session.pixels = [p for p in session.pixels if p[0] < len(run.labels) and p[1] < height and p[2] < width] or [
                (0, height // 2, width // 2)]
            session.image = min(session.image, len(run.labels) - 1)
            self._evict(keep=session_id)
        return run.start()

    def close(self, wait: float = 2.0) -> None:
        """Stop every run and forget every session (the server is going away); wait up to `wait` seconds in
        all for the producers to end."""
        with self._lock:
            runs = [s.run for s in self._sessions.values() if s.run is not None]
            self._sessions.clear()
        for run in runs:
            run.stop()
        deadline = time.monotonic() + wait
        for run in runs:
            run.join(max(0.0, deadline - time.monotonic()))

    def drop(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None and session.run is not None:
            session.run.stop()

    def _trim(self, keep: str) -> None:
        """A run of session `keep` has ended: it may now be dropped, and others beyond the budget are."""
        with self._lock:
            self._evict(keep=keep)

    def _evict(self, keep: str) -> None:
        """Drop least recently used ended runs until the total fits (called with the lock held)."""
        total = sum(s.run.nbytes for s in self._sessions.values() if s.run is not None)
        for sid, session in list(self._sessions.items()):
            if total <= self.max_bytes:
                break
            if sid != keep and session.run is not None and not session.run.running:
                total -= session.run.nbytes
                session.run = None

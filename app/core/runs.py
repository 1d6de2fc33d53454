"""One run engine for everything that samples: a generation, each side of a sampler duel, and a completion.

A `Run` samples with one producer thread per model (so the two models of a side-by-side run use both cores)
and records every state into that model's `Frames`; the views poll it at their own pace, so sampling never
waits for the browser and the browser is never flooded. What a run samples is its `Part`s: per model, the
frames to fill and the sampler's states (a generation's, or a completion's told the known pixels), so the
three kinds of run differ only in how their parts are made (`generation`, `completion`).

Every pass of every run, network or classifier, takes turns on the CPU with the passes of all other runs
(`app.core.fairshare`). A run stops when asked, when its session starts another in its place or goes away,
or when nobody has looked at it for `IDLE_STOP_S` seconds; its `state` says which of these happened.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import torch

from app.core.fairshare import FairShare, TakingTurns, Turns
from app.core.frames import Frames
from app.core.menu import LabelSet
from app.core.models import digit_classes
from app.core.settings import RunSettings
from bfn.classifier import DigitClassifier, classify_states
from bfn.completion import RESAMPLE, completed_images, known_data
from bfn.flow import Flow
from bfn.model import BFNModel
from bfn.sampling import Network, StepState, get_sampler

IDLE_STOP_S = 30.0
MAX_RUN_BYTES = 128 << 20  # the most frames one run may keep: the largest MNIST run fits, larger ones are refused (`check_size`)


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


@dataclass(frozen=True)
class Part:
    """One model's share of a run.

    Attributes:
        model: the model that samples.
        frames: where its states are recorded.
        states: the sampler's states for a model (the run passes the model wrapped to take turns on the CPU).
        finish: what to keep of the final state besides its frames (a completion's completed images), if anything.
    """

    model: BFNModel
    frames: Frames
    states: Callable[[Network], Iterator[StepState]]
    finish: Callable[[StepState], np.ndarray] | None = None


class Run:
    """One run: per model its recorded frames, and the threads producing them.

    Args:
        parts: per model name, what it samples (`Part`).
        settings: what the run was asked for (`RunSettings`, or a completion's `CompletionSettings`): read by the
            views that describe it, never by the engine.
        classifier: reads each state's output distribution where the frames keep its digit probabilities.
        changed: the condition notified as states arrive; runs streamed together (a duel's sides) share one, so
            that one wait serves them all (`wait_for_news`).
    """

    def __init__(self, parts: Mapping[str, Part], settings: Any = None, *, classifier: DigitClassifier | None = None,
                 changed: threading.Condition | None = None):
        self.parts = dict(parts)
        self.frames: dict[str, Frames] = {name: part.frames for name, part in self.parts.items()}
        self.settings = settings
        self.outcome: dict[str, np.ndarray] = {}  # per model, what its part's `finish` kept of the final state
        self._classifier = classifier
        self._stop = threading.Event()
        self._changed = changed or threading.Condition()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self.state = RunState.RUNNING
        self.error: str | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.last_seen = self.started
        self.follow_live = True  # the live stream shows the newest step until the user scrubs back
        self.dismissed = False  # its page cleared it (another model was chosen): its stream sends nothing more
        self.on_end: Callable[[], object] | None = None  # called once the run has ended (from its last producer)

    # ------------------------------------------------------------------ producing
    def start(self, share: FairShare | None = None) -> "Run":
        """Start one producer per model, taking turns on `share` (alone: a slot per model of its own)."""
        share = share or FairShare(slots=len(self.parts))
        self._running = len(self.parts)
        for name in self.parts:
            thread = threading.Thread(target=self._produce, args=(name, share), name=f"bfn-run-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def _produce(self, name: str, share: FairShare) -> None:
        part, frames, turns = self.parts[name], self.frames[name], Turns(share)
        try:
            for state in part.states(TakingTurns(part.model, turns)):
                if self._stop.is_set():
                    break
                probs = None if frames.digit_probs is None else turns(self._digit_probs, state, frames)
                frames.record(state, probs)
                if state.is_final and part.finish is not None:
                    self.outcome[name] = part.finish(state)
                with self._changed:
                    self._changed.notify_all()
                if time.monotonic() - self.last_seen > IDLE_STOP_S:
                    self._stop.set()  # nobody is watching: free the CPU
        except Exception as e:  # noqa: BLE001 — reported to the user by the views, never lost
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
    def recorded(self) -> int:
        """States recorded so far, all models together: it grows with every state, whichever model's."""
        return sum(fr.count for fr in self.frames.values())

    @property
    def num_steps(self) -> int:
        """The most steps of any model (the models of a generation all take the same)."""
        return max(fr.num_steps for fr in self.frames.values())

    @property
    def running(self) -> bool:
        return self.state is RunState.RUNNING

    @property
    def nbytes(self) -> int:
        return sum(fr.nbytes for fr in self.frames.values())

    def touch(self) -> None:
        self.last_seen = time.monotonic()


def wait_for_news(runs: Sequence[Run], seen: tuple[int, ...], timeout: float) -> None:
    """Block until any of `runs` (which share one condition) records a state beyond `seen` (their `recorded`) or
    every one of them has ended, or `timeout` passes; whoever waits counts as watching them."""
    changed = runs[0]._changed
    deadline = time.monotonic() + timeout
    with changed:
        while tuple(run.recorded for run in runs) == seen and any(run.running for run in runs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            changed.wait(remaining)
    for run in runs:
        run.touch()


def sampled(sampler: str, labels: Sequence[int | None], **run: Any) -> Callable[[Network], Iterator[StepState]]:
    """A part's states: the sampler named `sampler` on a model, for `labels`, with the keywords of `run`."""
    return lambda model: get_sampler(sampler)(model, labels, **run)


def generation(settings: RunSettings, models: Mapping[str, BFNModel], classifier: DigitClassifier | None = None,
               changed: threading.Condition | None = None) -> Run:
    """The run that /generate (and a duel's side) makes of `settings`: every model of the choice samples the same
    labels with the same seed, and the classifier reads every step (`RunTooLarge` if its frames would not fit)."""
    parts = {}
    for name in settings.models:
        model = models[name]
        sampler = get_sampler(settings.sampler_for(model))
        frames = Frames(model.flow, len(settings.labels), settings.steps, title=settings.menu.titles[name],
                        digit_classes=digit_classes(classifier), observes=sampler.observes, labels=settings.menu.labels[name])
        parts[name] = Part(model, frames, sampled(sampler.name, settings.labels, steps=settings.steps, guidance=settings.guidance,
                                                  seed=settings.seed, rescaled_phi=model.sampling.rescaled_phi,
                                                  autoguidance=settings.autoguidance_for(model)))
    check_size({name: part.frames for name, part in parts.items()}, settings.steps)
    return Run(parts, settings, classifier=classifier, changed=changed)


@dataclass(frozen=True)
class CompletionSettings:
    """What a completion was asked for: the digit (H, W) in [0, 1], the known pixels, the label to complete towards
    (None: none), the guidance and the seed, and per model its data (`bfn.completion.known_data`) and sampler."""

    image: np.ndarray
    mask: np.ndarray
    label: int | None
    guidance: float
    seed: int
    data: Mapping[str, torch.Tensor]
    samplers: Mapping[str, str]


def _completed(flow: Flow, x: torch.Tensor, known: torch.Tensor, final: StepState) -> np.ndarray:
    """The completed image in [0, 1] (H, W): the final output distribution with the known data at the known pixels."""
    return completed_images(flow, final, x, known)[0]


def completion(models: Mapping[str, BFNModel], titles: Mapping[str, str], image: np.ndarray, mask: np.ndarray,
               label: int | None, guidance: float, seed: int) -> Run:
    """A completion of `image` from the pixels `mask` keeps, each model with its recommended sampler and steps and
    every step resampled `RESAMPLE` times; the completed images are the run's `outcome`."""
    known = torch.from_numpy(mask)
    data = {name: known_data(model.flow, image[None], seed) for name, model in models.items()}
    samplers = {name: model.sampling.sampler_for(model.sampling.steps) for name, model in models.items()}
    parts = {}
    for name, model in models.items():
        x, steps = data[name], model.sampling.steps
        frames = Frames(model.flow, 1, steps, title=titles[name], labels=LabelSet.of(model))
        states = sampled(samplers[name], [label], steps=steps, guidance=guidance, seed=seed, known=(x, known[None, None]),
                         resample=RESAMPLE, rescaled_phi=model.sampling.rescaled_phi)
        parts[name] = Part(model, frames, states, functools.partial(_completed, model.flow, x, known))
    return Run(parts, CompletionSettings(image, mask, label, guidance, seed, data, samplers))

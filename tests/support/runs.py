"""Sampling runs in tests: compared state by state, and waited for."""

from __future__ import annotations

import time

import torch

from app.core.runs import Run, wait_for_news
from bfn.sampling import StepState


def assert_same_run(a: list[StepState], b: list[StepState]) -> None:
    assert len(a) == len(b)
    for sa, sb in zip(a, b):
        for field in ("theta", "precision", "output", "sample"):
            va, vb = getattr(sa, field), getattr(sb, field)
            assert (va is None) == (vb is None)
            if va is not None:
                torch.testing.assert_close(va, vb, rtol=0, atol=0)


def wait_for_step(run: Run, step: int, timeout: float = 30.0) -> int:
    """Wait until every model of `run` has recorded `step` (or the run ends, or `timeout` passes); → its latest."""
    deadline = time.monotonic() + timeout
    while run.latest < step and run.running and time.monotonic() < deadline:
        wait_for_news([run], (run.recorded,), deadline - time.monotonic())
    return run.latest

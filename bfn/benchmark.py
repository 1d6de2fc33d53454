"""Timing sampling: seconds per run of a row of labels, the same for every model, and a reference network the
size of the official MNIST BFN U-Net (Graves et al.'s: ~25M parameters) to compare with. `python -m
bfn.cli.bench` prints these measurements; the figures themselves belong in docs/quality-and-speed.md and the model cards.

Timings include everything a caller of `bfn.sampling.sample` pays (network passes, guidance, the Bayesian
updates, the per-step state).
"""

from __future__ import annotations

import time

import torch

from bfn.hub import WEIGHTS_DIR
from bfn.kinds import FLOWS
from bfn.labels import label_row
from bfn.model import BFNModel
from bfn.sampling import guidance_interval_for, sample

REFERENCE_UNET = {"channels": [128, 256, 256], "patch": 1, "res_blocks": 2, "attention": True, "groups": 32}


def shipped_model(name: str, device: str) -> tuple[BFNModel, bool] | None:
    """The shipped model weights/`name`, or where it is missing and `name` is a flow kind an untrained one of
    the default architecture; None for another missing model."""
    from bfn.hub import ModelLoadError, load_model

    try:
        return load_model(WEIGHTS_DIR / name, device=device), True
    except ModelLoadError:
        if name not in FLOWS:
            return None
        return BFNModel(name).eval().requires_grad_(False).to(device), False


def reference_model(kind: str, device: str, channels_last: bool, like: BFNModel | None = None) -> BFNModel:
    """The reference-size network of `kind`, for the image size and labels of the model `like` (MNIST's by default)."""
    size = {} if like is None else {"image_size": list(like.data_shape[1:]), "num_labels": like.num_labels}
    model = BFNModel(kind, unet={**REFERENCE_UNET, **size}).eval().requires_grad_(False).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


EVERY_STEP = (0.0, 1.0)  # the guidance interval of plain classifier-free guidance


def time_sampling(model: BFNModel, sampler: str, steps: int, guidance: float, device: str, repeats: int = 1,
                  interval: tuple[float, float] | None = None) -> float:
    """Best-of-`repeats` seconds for one run of a row of labels (`label_row`) × `steps` (after a short warm-up
    run), with the model's recommended rescaled guidance and autoguidance (its guide's passes count)."""
    labels = list(label_row(model.num_labels))
    sample(model, labels, sampler=sampler, steps=2, guidance=guidance, seed=0, guidance_interval=EVERY_STEP)  # both batch sizes
    best = float("inf")
    for r in range(repeats):
        _sync(device)
        start = time.perf_counter()
        sample(model, labels, sampler=sampler, steps=steps, guidance=guidance, seed=r, guidance_interval=interval,
               rescaled_phi=model.sampling.rescaled_phi, autoguidance=model.sampling.autoguidance_for(labels),
               autoguidance_interval=model.sampling.autoguidance_interval)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def measure(name: str, model: BFNModel, sampler: str, steps: int, timed_steps: int, guidance: float, device: str,
            threads: int | None, repeats: int, interval: tuple[float, float] | None = None, **extra) -> dict:
    interval = guidance_interval_for(model, interval)
    seconds = time_sampling(model, sampler, timed_steps, guidance, device, repeats, interval)
    per_step = seconds / (timed_steps + 1)  # n steps = n + 1 network evaluations and states
    return {
        "model": name, "kind": model.kind, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "device": device, "threads": threads, "sampler": sampler, "steps": steps, "guidance": guidance,
        "guidance_interval": list(interval), "ms_per_step": round(per_step * 1000, 2), "total_s": round(per_step * (steps + 1), 3),
        "timed_steps": timed_steps, "extrapolated": timed_steps != steps, **extra,
    }

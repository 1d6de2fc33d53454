"""`python -m bfn.bench`: how fast is sampling? ms per step and total time for a row of images × N steps.

A row is ten images (`bfn.sample.label_row`: the ten digits, or ten numbers 00, 11, …, 99 of a two-digit
model). For each shipped model (weights/discrete, weights/continuous, weights/two-digit; for a missing one of
the first two an untrained model of the same architecture stands in, flagged `untrained`) and for a reference
network the size of the official
MNIST BFN U-Net (Graves et al.'s: ~25M parameters, 128 base channels, multipliers 1-2-2, 2 residual
blocks, attention at the lowest resolution; here our own U-Net at that size, for the model's image size and
labels), on CPU with 1 and 2 threads and on the GPU
when there is one, it prints one JSON line per measurement, then the reference ÷ shipped ratio per setting and
each further model's total time ÷ the first's (each at its own settings).
Each model is timed at its recommended settings (its config's `sampling`: sampler, steps, guidance, guidance
interval; options override them); the reference, and the shipped models once more for the ratio, guide at
every step.

Timings include everything a caller of `bfn.sampling.sample` pays (network passes, guidance, the Bayesian
updates, the per-step state). The big reference is slow on a CPU, so it is timed on `--reference-steps`
steps and its total is extrapolated to N (marked `extrapolated`). Figures are for reporting, not tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Iterator

import torch

from bfn.flows import FLOWS
from bfn.hub import SHIPPED_MODELS, WEIGHTS_DIR
from bfn.model import BFNModel
from bfn.sample import label_row
from bfn.sampling import SAMPLERS, guidance_interval_for, sample

RECOMMENDED = "recommended"  # the --sampler value that times each model with its own recommended sampler

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


def models_to_time(args: argparse.Namespace, device: str) -> Iterator[tuple[str, tuple[BFNModel, bool]]]:
    """(name, (model, trained)) for each model asked for: `--models` if given, else the shipped `--kinds`."""
    from bfn.hub import load_model

    if args.models:
        for source in args.models:
            yield source, (load_model(source, device=device), True)
    else:
        for name in args.kinds:
            if (found := shipped_model(name, device)) is not None:
                yield f"weights/{name}", found


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bfn.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help="N, the steps of one sampling run (default: each model's recommended)")
    p.add_argument("--guidance", type=float, default=None,
                   help="guidance weight (> 1: two network halves per step inside the guidance interval; default: each "
                        "model's recommended)")
    p.add_argument("--guidance-interval", type=float, nargs=2, metavar=("START", "END"),
                   help="guide only for t in [START, END]; 0 1 guides every step (default: each model's recommended)")
    p.add_argument("--sampler", nargs="+", default=[RECOMMENDED],
                   help=f"sampler(s) to time: {RECOMMENDED} (each model's own for the step count), {', '.join(sorted(SAMPLERS))}")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts to try")
    p.add_argument("--kinds", nargs="+", choices=SHIPPED_MODELS, default=list(SHIPPED_MODELS), help="shipped model folders (weights/NAME) to time; a missing one is skipped")
    p.add_argument("--models", nargs="+", metavar="MODEL", default=[],
                   help="time these model folders / Hub ids instead of the shipped models (e.g. a candidate run's export)")
    p.add_argument("--reference-steps", type=int, default=5, help="steps actually timed for the 25M reference (0: skip it)")
    p.add_argument("--repeats", type=int, default=3, help="runs per shipped-model measurement (the best counts)")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU even if there is one")
    p.add_argument("--layouts", action="store_true", help="also time the shipped models in the default (NCHW) memory layout")
    args = p.parse_args(argv)
    for name in args.sampler:
        if name not in SAMPLERS and name != RECOMMENDED:
            p.error(f"unknown sampler {name!r}; choose from {RECOMMENDED}, {', '.join(sorted(SAMPLERS))}")

    settings = [("cpu", t) for t in args.threads]
    if torch.cuda.is_available() and not args.no_gpu:
        settings.append(("cuda", None))
    print(json.dumps({"torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                      "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}), flush=True)
    ratios = []
    for device, threads in settings:
        if threads is not None:
            torch.set_num_threads(threads)
        first = None  # the first model's run at its first sampler: what the others' total times are compared with
        for name, (model, trained) in models_to_time(args, device):
            kind = model.kind
            steps = args.steps or model.sampling.steps
            guidance = model.sampling.guidance if args.guidance is None else args.guidance
            for choice in args.sampler:
                sampler = model.sampling.sampler_for(steps) if choice == RECOMMENDED else choice
                small = measure(name, model, sampler, steps, steps, guidance, device, threads,
                                args.repeats, args.guidance_interval, layout="channels_last" if device == "cpu" else "default",
                                **({} if trained else {"untrained": True}))
                print(json.dumps(small), flush=True)
                if choice == args.sampler[0]:
                    if first is None:
                        first = small
                    else:  # e.g. a row of 64×64 numbers against a row of MNIST digits, each at its own defaults
                        ratios.append({"ratio": f"{name} ÷ {first['model']}", "device": device, "threads": threads,
                                       "total_s": round(small["total_s"] / first["total_s"], 2)})
                if args.layouts and device == "cpu":
                    plain = model.to(memory_format=torch.contiguous_format)
                    print(json.dumps(measure(name, plain, sampler, steps, steps, guidance, device,
                                             threads, args.repeats, args.guidance_interval, layout="nchw")), flush=True)
                    model = model.to(memory_format=torch.channels_last)
                if args.reference_steps and choice == args.sampler[0]:
                    # A few timed steps cannot stand for a guidance interval, so the reference and the
                    # shipped model it is compared with guide at every step.
                    layout = "channels_last" if device == "cpu" else "default"
                    every = measure(name, model, sampler, steps, steps, guidance, device, threads,
                                    args.repeats, EVERY_STEP, layout=layout)
                    print(json.dumps(every), flush=True)
                    ref = reference_model(kind, device, channels_last=device == "cpu", like=model)
                    big = measure("reference-25M", ref, sampler, steps, min(args.reference_steps, steps),
                                  guidance, device, threads, 1, EVERY_STEP, layout=layout)
                    print(json.dumps(big), flush=True)
                    ratios.append({"ratio": f"reference ÷ {name}", "device": device, "threads": threads,
                                   "ms_per_step": round(big["ms_per_step"] / every["ms_per_step"], 1)})
                    del ref
    for r in ratios:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

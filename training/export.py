"""Export a run's EMA weights as a Hub-layout model folder (config.json, model.safetensors, README.md).

The folder is what `bfn.hub.load_model` and `BFNModel.from_pretrained` read, and what `--push-to-hub`
uploads. Optional half-precision storage halves the size; weights are cast back to float32 on load.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from huggingface_hub import HfApi

from training.card import MEASUREMENTS, SOURCE_TRAINING, TRAINING, write_card
from training.checkpoint import load_checkpoint
from training.loop import TrainConfig, build_model

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def describe_compute() -> str:
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU only ({platform.processor() or platform.machine()}, torch {torch.__version__})"


def source_training(run: Path) -> dict:
    """The training record of the model a fine-tuning run started from (empty for a run from scratch).

    A fine-tuned model's card must tell its whole history, so its steps and commands include the source's.
    """
    record = run / SOURCE_TRAINING
    return json.loads(record.read_text()) if record.is_file() else {}


def export_run(run: Path, to: Path, dtype: str = "float32", push_to_hub: str | None = None, compute: str | None = None) -> Path:
    """Write the EMA weights of `run`'s last checkpoint to `to`, with its training record and card.

    The recommended sampling settings of a model being replaced are kept (the app and the CLI go on sampling
    the same way); they are measured again with `evaluate-samples` and edited in config.json when better
    ones are found.
    """
    state = load_checkpoint(run / "checkpoint")
    cfg = state["config"]
    previous = to / "config.json"
    sampling = json.loads(previous.read_text()).get("sampling") if previous.is_file() else None
    model = build_model(TrainConfig(**cfg), sampling)
    model.load_state_dict(state["ema"])
    model.to(DTYPES[dtype])
    to.mkdir(parents=True, exist_ok=True)
    for stale in MEASUREMENTS:  # they measured the weights being replaced; the card must not show them
        (to / stale).unlink(missing_ok=True)
    model.save_pretrained(to)
    commands_file = run / "commands.txt"
    source = source_training(run)
    training = {
        "steps": source.get("steps", 0) + state["step"],
        "batch_size": cfg["batch_size"],
        "ema_decay": cfg["ema_decay"],
        "parameters": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M",
        "compute": compute or describe_compute(),
        "commands": source.get("commands", []) + (commands_file.read_text().splitlines() if commands_file.exists() else []),
        "config": cfg,
    }
    (to / TRAINING).write_text(json.dumps(training, indent=2))
    write_card(to)
    if push_to_hub:
        api = HfApi()
        api.create_repo(push_to_hub, exist_ok=True)
        api.upload_folder(folder_path=to, repo_id=push_to_hub, commit_message=f"Export {run.name}")
    return to


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run's EMA weights as a Hub-layout model folder",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", type=Path, help="run folder (holds checkpoint/)")
    p.add_argument("--to", type=Path, required=True, help="model folder to write, e.g. weights/discrete")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="storage precision of the weights")
    p.add_argument("--compute", help="what the run was trained on, for the model card (default: this machine)")
    p.add_argument("--push-to-hub", metavar="OWNER/REPO", help="also upload the folder to this Hub repo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    print(f"exported to {export_run(args.run, args.to, args.dtype, args.push_to_hub, args.compute)}")

"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint holds the model, its EMA, the optimiser state, the scheduler, the step and the random number
generator state, which is everything needed to continue a run bit for bit. Writes go to a temporary file
first and are renamed into place, so a run killed while saving keeps its previous checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

TENSORS = "checkpoint.safetensors"
META = "checkpoint.json"


def _flatten(prefix: str, obj: Any, tensors: dict[str, Tensor]) -> Any:
    """Move every tensor of a nested dict/list into `tensors`, leaving a JSON-able placeholder."""
    if isinstance(obj, Tensor):
        key = prefix
        tensors[key] = obj.detach().contiguous().cpu()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _flatten(f"{prefix}.{k}", v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(f"{prefix}.{i}", v, tensors) for i, v in enumerate(obj)]
    return obj


def _unflatten(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    """Write `state` (nested dicts of tensors and JSON values; dict keys may be ints) atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    meta = _flatten("state", state, tensors)
    for name, write in ((TENSORS, lambda p: save_file(tensors, p)), (META, lambda p: Path(p).write_text(json.dumps(meta)))):
        tmp = directory / f".{name}.tmp"
        write(str(tmp))
        os.replace(tmp, directory / name)


def load_checkpoint(directory: Path) -> dict[str, Any]:
    if not (directory / META).exists():
        raise FileNotFoundError(f"no checkpoint in {directory} (expected {META} and {TENSORS})")
    tensors = load_file(str(directory / TENSORS))
    return _unflatten(json.loads((directory / META).read_text()), tensors)


def has_checkpoint(directory: Path) -> bool:
    return (directory / META).exists() and (directory / TENSORS).exists()


def restore_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """JSON turns the optimiser's integer parameter ids into strings; turn them back before loading."""
    state = dict(state)
    state["state"] = {int(k): v for k, v in state["state"].items()}
    optimizer.load_state_dict(state)

"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint holds the model, its EMA, the optimiser state, the scheduler, the step and the random number
generator state, which is everything needed to continue a run bit for bit.

It is one unit, committed by one rename: the tensors go to a file under a fresh name, then the manifest
`checkpoint.json` (the step, that file's name and sha256, and the JSON part of the state) replaces the
previous one. Until that rename the previous manifest and the tensors it names are untouched, so a run killed
at any point of a save keeps its previous checkpoint or the new one, never the JSON of one with the tensors of
another; `load_checkpoint` checks the checksum all the same, against a damaged or hand-copied file.
Checkpoints from before the manifest (checkpoint.json + checkpoint.safetensors, no checksum) still load, with
the one cross-check they allow (`_check_legacy`), so runs started then can be resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor

META = "checkpoint.json"
LEGACY_TENSORS = "checkpoint.safetensors"
FORMAT = 2  # of the manifest; legacy checkpoint.json files have no "format" entry
WHAT_TO_DO = "delete the checkpoint folder and start over with --overwrite, or resume from a copy"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file, what is wrong and what to do."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"checkpoint file {path} {problem}; {WHAT_TO_DO}")


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


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make the folder's entries (a new file, a rename) durable, not just the files' contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    """Write `state` (nested dicts of tensors and JSON values; dict keys may be ints) as one atomic unit."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    meta = _flatten("state", state, tensors)
    data = save_tensors(tensors)
    name = f"tensors-{secrets.token_hex(8)}.safetensors"  # a fresh name: never the file the current manifest names
    _write_durably(directory / name, data)
    _fsync_dir(directory)  # the file's entry is durable before a manifest names it
    manifest = {"format": FORMAT, "step": state.get("step"), "tensors": name,
                "sha256": hashlib.sha256(data).hexdigest(), "state": meta}
    tmp = directory / f".{META}.tmp"
    _write_durably(tmp, json.dumps(manifest).encode())
    os.replace(tmp, directory / META)  # the commit
    _fsync_dir(directory)
    for old in [*directory.glob("tensors-*.safetensors"), directory / LEGACY_TENSORS]:
        if old.name != name:  # the previous save's, a legacy one, or one whose save was killed before its commit
            old.unlink(missing_ok=True)


def _read_tensors(path: Path, data: bytes) -> dict[str, Tensor]:
    try:
        return load_tensors(data)
    except SafetensorError as e:
        raise CheckpointError(path, f"is not a readable safetensors file ({' '.join(str(e).split())})") from None


def load_checkpoint(directory: Path) -> dict[str, Any]:
    """The state `save_checkpoint` wrote, after checking that its tensors and its JSON belong together.

    Raises FileNotFoundError if there is no checkpoint, `CheckpointError` if there is an unusable one.
    """
    meta_path = directory / META
    if not meta_path.exists():
        raise FileNotFoundError(f"no checkpoint in {directory} (expected {META})")
    try:
        manifest = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(meta_path, f"is not valid JSON ({e}): it was cut short or damaged") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(meta_path, "holds no checkpoint manifest")
    if "format" not in manifest:
        return _load_legacy(directory, manifest)
    try:
        tensors_path, digest, meta = directory / manifest["tensors"], manifest["sha256"], manifest["state"]
    except KeyError as e:
        raise CheckpointError(meta_path, f"lacks the entry {e}") from None
    try:
        data = tensors_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(tensors_path, f"named by {META} is missing") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise CheckpointError(tensors_path, f"does not match the sha256 that {META} records: it is damaged or from "
                              "another save")
    return _unflatten(meta, _read_tensors(tensors_path, data))


def _load_legacy(directory: Path, meta: Any) -> dict[str, Any]:
    path = directory / LEGACY_TENSORS
    if not path.exists():
        raise CheckpointError(path, f"is missing (the tensors of the older-format {META})")
    try:
        state = _unflatten(meta, _read_tensors(path, path.read_bytes()))
    except KeyError as e:
        raise CheckpointError(path, f"lacks the tensor {e} that {META} names: the two files come from different "
                              "saves") from None
    _check_legacy(state, path)
    return state


def _check_legacy(state: Any, path: Path) -> None:
    """The one cross-check a checkpoint without checksum allows: AdamW counts its updates in the tensors file,
    and they cannot exceed the step the JSON records (they fall short of it by the steps skipped as non-finite).

    A save killed between the two renames of the older format left the new tensors beside the old JSON,
    which this catches.
    """
    if not isinstance(state, dict) or not isinstance(state.get("optimizer"), dict):
        return
    per_parameter = state["optimizer"].get("state", {}).values()
    updates = max((s["step"].item() for s in per_parameter if isinstance(s.get("step"), Tensor)), default=0)
    if updates > state["step"]:
        raise CheckpointError(path, f"holds the optimiser after {updates:.0f} updates, but {META} records step "
                                    f"{state['step']}: the two files come from different saves")


def has_checkpoint(directory: Path) -> bool:
    return (directory / META).exists()


def restore_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """JSON turns the optimiser's integer parameter ids into strings; turn them back before loading."""
    state = dict(state)
    state["state"] = {int(k): v for k, v in state["state"].items()}
    optimizer.load_state_dict(state)

"""Load a trained `BFNModel` from a local folder or a Hugging Face Hub repo, or fail with one clear error.

Every way a load can go wrong (no folder, no config, a pickle checkpoint instead of safetensors, keys that do
not match the architecture, a truncated file, an unreachable Hub) raises `ModelLoadError`, whose message
names what was tried and how to get weights, so the CLI and the app can show it as is. Weights are only
ever read from `model.safetensors`; pickle files are never opened.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError

from bfn.flows import FLOWS
from bfn.model import WEIGHTS_FILE, BFNModel

CONFIG_FILE = constants.CONFIG_NAME
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_KIND = "discrete"
SHIPPED_MODELS = ("discrete", "continuous")  # the model folders under weights/ that the app and bench load by default
HOW_TO_GET_WEIGHTS = (
    "To get weights, clone the repository with its weights/ folder, train and export one with "
    "`python -m training export ...`, or pass a Hugging Face Hub repo id (owner/name)."
)


class ModelLoadError(Exception):
    """A model could not be loaded; the message says from where, why, and how to get weights."""


def _fail(what: str, why: str) -> ModelLoadError:
    return ModelLoadError(f"cannot load a BFN model from {what}: {why}. {HOW_TO_GET_WEIGHTS}")


def _summary(error: Exception, limit: int = 300) -> str:
    """An underlying error on one short line: torch and the Hub client write several, listing every key."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_repo_id(source: str) -> bool:
    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return True


def _download_folder(repo_id: str) -> Path:
    """Fetch config and weights through the Hub cache (so HF_HUB_OFFLINE=1 with a filled cache works)."""
    try:
        paths = [Path(hf_hub_download(repo_id, name)) for name in (CONFIG_FILE, WEIGHTS_FILE)]
    except (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled, OSError) as e:
        raise _fail(repo_id, f"no such local folder, and the Hub repo could not be fetched ({_summary(e)})") from e
    return paths[0].parent  # both files live in the same snapshot folder


def _check_folder(folder: Path) -> None:
    """Refuse early what `from_pretrained` would otherwise accept silently (no config → default kind)."""
    if not folder.is_dir():
        raise _fail(str(folder), "no such folder")
    if not (folder / CONFIG_FILE).is_file():
        raise _fail(str(folder), f"{CONFIG_FILE} is missing")
    if not (folder / WEIGHTS_FILE).is_file():
        pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt*"))
        hint = (
            f" (found {', '.join(pickles)}: pickle checkpoints are never loaded, export safetensors)" if pickles else ""
        )
        raise _fail(str(folder), f"{WEIGHTS_FILE} is missing{hint}")


def _read_kind(folder: Path) -> str:
    """The flow kind recorded in config.json, which must name one explicitly."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(str(folder), f"{CONFIG_FILE} is unreadable or not JSON ({_summary(e)})") from e
    kind = config.get("kind") if isinstance(config, dict) else None
    if kind not in FLOWS:
        raise _fail(str(folder), f"{CONFIG_FILE} has kind {kind!r}, expected one of {tuple(FLOWS)}")
    return kind


def resolve_folder(source: str | Path | None, kind: str | None) -> Path:
    """The local folder holding config.json and model.safetensors for `source` (see `load_model`).

    A str that names an existing path, or that cannot be a repo id ("/abs/path", "a/b/c"), is a local folder;
    any other "owner/name" is fetched from the Hub, so a mistyped relative folder is reported as both.
    """
    if source is None:
        return WEIGHTS_DIR / (kind or DEFAULT_KIND)
    local = Path(source).expanduser()
    if isinstance(source, Path) or local.exists() or not _is_repo_id(str(source)):
        return local
    return _download_folder(str(source))


def _prepare(model: BFNModel, device: torch.device | str) -> BFNModel:
    """Inference setup: eval mode, no gradients, and on CPU channels_last, the faster layout for this U-Net's
    convolutions there (`python -m bfn.bench --layouts` measures both)."""
    model = model.eval().requires_grad_(False).to(device)
    if torch.device(device).type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model


def load_model(
    source: str | Path | None = None, kind: str | None = None, device: torch.device | str = "cpu"
) -> BFNModel:
    """Load a `BFNModel` ready for sampling.

    Args:
        source: a local folder with config.json and model.safetensors, or a Hub repo id ("owner/name"), which
            is downloaded through the Hugging Face cache. None means this repository's own weights/<kind>/.
        kind: the expected flow kind ("discrete" or "continuous"); a model of another kind is an error.
            With no source it picks the folder, defaulting to "discrete".
        device: where to put the model.

    Raises:
        ModelLoadError: for anything that prevents loading, with a message that says how to get weights.
        ValueError: if `kind` is not a known flow kind.
    """
    if kind is not None and kind not in FLOWS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {tuple(FLOWS)}")
    folder = resolve_folder(source, kind)
    _check_folder(folder)
    found = _read_kind(folder)
    if kind is not None and found != kind:
        raise _fail(str(folder), f"it holds a {found} model, but a {kind} model was asked for")
    try:
        model = BFNModel.from_pretrained(folder)
    except (SafetensorError, RuntimeError, OSError, TypeError, ValueError) as e:
        raise _fail(str(folder), f"{WEIGHTS_FILE} or {CONFIG_FILE} is unusable ({_summary(e)})") from e
    return _prepare(model, device)

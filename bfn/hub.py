"""Load a trained `BFNModel` from a local folder or a Hugging Face Hub repo, or fail with one clear error.

Every way a load can go wrong (no folder, no config, an invalid config field, a pickle checkpoint instead of
safetensors, keys that do not match the architecture, NaN weights, a truncated file, an unreachable Hub, a guide
that does not fit its model, an invalid typical_bounds.json) raises
`ModelLoadError`, whose message names what was tried (folder, Hub cache, Hub) and how to get weights, so the
CLI and the app can show it as is. Weights are only ever read from `model.safetensors`; pickle files are
never opened. A model's autoguidance guide travels with it as a model folder of its own, `guide/`, inside the
model's folder or Hub repo, and is loaded with it where present; so are the bounds of real test images that
tell a digit far from the model's data (`bfn.typicality`, typical_bounds.json beside the weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError

from bfn import typicality
from bfn.kinds import FLOWS
from bfn.model import WEIGHTS_FILE, BFNModel, ConfigError

CONFIG_FILE = constants.CONFIG_NAME
UNREADABLE = (OSError, UnicodeDecodeError, json.JSONDecodeError)  # what reading a JSON file can raise
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_KIND = "discrete"
GUIDE_FOLDER = "guide"  # a model's autoguidance guide: a model folder of its own inside the model's
SHIPPED_MODELS = ("discrete", "continuous", "two-digit")  # the model folders this repository ships under weights/, in order
HOW_TO_GET_WEIGHTS = (
    "To get weights, clone the repository with its weights/ folder, train and export one with "
    "`python -m training export ...`, or pass a Hugging Face Hub repo id (owner/name)."
)


class ModelLoadError(Exception):
    """A model could not be loaded; the message says from where, why, and how to get weights."""


def _fail(what: str, why: str, hint: str = HOW_TO_GET_WEIGHTS) -> ModelLoadError:
    return ModelLoadError(f"cannot load a BFN model from {what}: {why}. {hint}")


def _is_model_folder(folder: Path) -> bool:
    """Whether `folder` holds a BFN model: weights, and a config.json naming a flow kind (not the classifier's)."""
    if not (folder / WEIGHTS_FILE).is_file():
        return False
    try:
        return _config_kind(folder) in FLOWS
    except UNREADABLE:
        return False


def model_folders(root: Path | None = None) -> list[Path]:
    """Every model folder in `root` (default: weights/): the shipped ones that are there, in `SHIPPED_MODELS`'
    order, then any other, by name; so a model folder added next to them is picked up as they are."""
    root = WEIGHTS_DIR if root is None else root
    found = [folder for folder in sorted(root.glob("*/")) if _is_model_folder(folder)]
    rank = {name: k for k, name in enumerate(SHIPPED_MODELS)}
    return sorted(found, key=lambda folder: (rank.get(folder.name, len(rank)), folder.name))


def _model_folders() -> str:
    """What does exist under weights/, so that a misspelt name comes with the right ones."""
    names = sorted(folder.name for folder in model_folders())
    return f"model folders in {WEIGHTS_DIR}: {', '.join(names) or 'none'}"


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
    paths = []
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        try:
            paths.append(Path(hf_hub_download(repo_id, name)))
        except (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled, OSError) as e:
            if constants.HF_HUB_OFFLINE:
                why = (f"no such folder, and {name} of Hub repo {repo_id} is not in the Hugging Face cache "
                       "(HF_HUB_OFFLINE is set, so the Hub was not asked)")
                hint = "Unset HF_HUB_OFFLINE to download it, check the repo id, or use a local folder."
            else:
                why = f"no such folder, not in the Hugging Face cache, and the Hub did not provide {name} ({_summary(e)})"
                hint = "Check the repo id (owner/name) and your connection, or use a local folder."
            raise _fail(repo_id, f"{why}; {_model_folders()}", hint) from e
    try:  # the bounds of test images (bfn.typicality), where measured: optional, so a miss is no error
        hf_hub_download(repo_id, typicality.FILE)
    except (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled, OSError):
        pass
    for name in (CONFIG_FILE, WEIGHTS_FILE):  # the guide, where the repo has one: optional, so a miss is no error
        try:
            hf_hub_download(repo_id, name, subfolder=GUIDE_FOLDER)
        except (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled, OSError):
            break
    return paths[0].parent  # both files live in the same snapshot folder, the guide's in its guide/


def _cached_folder(repo_id: str) -> Path | None:
    """The Hub cache's snapshot folder of `repo_id` if it holds both files; never asks the Hub."""
    paths = [try_to_load_from_cache(repo_id, name) for name in (CONFIG_FILE, WEIGHTS_FILE)]
    return Path(paths[0]).parent if all(isinstance(p, str) for p in paths) else None


def _check_folder(folder: Path) -> None:
    """Refuse early what `from_pretrained` would otherwise accept silently (no config → default kind)."""
    if not folder.is_dir():
        raise _fail(str(folder), f"no such folder; {_model_folders()}")
    if not (folder / CONFIG_FILE).is_file():
        raise _fail(str(folder), f"{CONFIG_FILE} is missing")
    if not (folder / WEIGHTS_FILE).is_file():
        pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt*"))
        hint = (
            f" (found {', '.join(pickles)}: pickle checkpoints are never loaded, export safetensors)" if pickles else ""
        )
        raise _fail(str(folder), f"{WEIGHTS_FILE} is missing{hint}")


def _config_kind(folder: Path) -> object:
    """The "kind" entry of the folder's config.json, None if it has none; raises `UNREADABLE` errors."""
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    return config.get("kind") if isinstance(config, dict) else None


def _read_kind(folder: Path) -> str:
    """The flow kind recorded in config.json, which must name one explicitly."""
    try:
        kind = _config_kind(folder)
    except UNREADABLE as e:
        raise _fail(str(folder), f"{CONFIG_FILE} is unreadable or not JSON ({_summary(e)})") from e
    if kind not in FLOWS:
        raise _fail(str(folder), f"{CONFIG_FILE} has kind {kind!r}, expected one of {tuple(FLOWS)}")
    return kind


def resolve_folder(source: str | Path | None, kind: str | None) -> Path:
    """The local folder holding config.json and model.safetensors for `source` (see `load_model`).

    A str that names an existing path, or that cannot be a repo id ("/abs/path", "a/b/c"), is a local folder.
    A name that could be one is looked up in the Hub cache, and only an "owner/name" whose owner is no local
    folder is asked of the Hub: a misspelt "weights/discrte" or "discrte" fails at once, without waiting on
    the Hub's retries, and the error lists the folders that do exist.
    """
    if source is None:
        return WEIGHTS_DIR / (kind or DEFAULT_KIND)
    local = Path(source).expanduser()
    if isinstance(source, Path) or local.exists() or not _is_repo_id(str(source)):
        return local
    if not local.parent.is_dir():  # "owner/name" with no local "owner/": a Hub repo id
        return _download_folder(str(source))
    cached = _cached_folder(str(source))
    if cached is None:
        because = f"{local.parent}/ is a local folder" if local.parent != Path(".") else "a Hub repo id is owner/name"
        why = f"no such folder, and not a repo in the Hugging Face cache (the Hub was not asked: {because})"
        raise _fail(str(source), f"{why}; {_model_folders()}")
    return cached


def _prepare(model: BFNModel, device: torch.device | str) -> BFNModel:
    """Inference setup: eval mode, no gradients, and on CPU channels_last, the faster layout for this U-Net's
    convolutions there (`python -m bfn.cli.bench --layouts` measures both)."""
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
    except ConfigError as e:
        raise _fail(str(folder), f"{CONFIG_FILE} is invalid ({_summary(e)})") from e
    except (SafetensorError, RuntimeError, OSError, TypeError, ValueError) as e:
        raise _fail(str(folder), f"{WEIGHTS_FILE} is unusable ({_summary(e)})") from e
    model = _prepare(model, device)
    try:
        model.typical_bounds = typicality.load(folder, model.flow.nll_unit.name)
    except ValueError as e:
        raise _fail(str(folder), _summary(e), f"Measure it again (`python -m training typical-bounds --model {folder} "
                    "--write`) or delete it.") from e
    guide = folder / GUIDE_FOLDER
    if (guide / WEIGHTS_FILE).is_file():
        try:
            model.attach_guide(load_model(guide, kind=found, device=device))
        except ConfigError as e:
            raise _fail(str(guide), f"it is no guide for the model in {folder} ({_summary(e)})") from e
    return model

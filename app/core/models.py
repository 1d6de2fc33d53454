"""The models, loaded once at start-up and shared read-only by every session.

Sampling only reads the weights (inference mode, no gradients), so one copy serves all concurrent runs.
`--weights` may name folders or Hugging Face Hub repo ids, several times; a folder may hold one model
(config.json + model.safetensors) or one sub-folder per model (weights/discrete, weights/continuous,
weights/two-digit, the layout this repository ships; any other model folder beside them is loaded too).

The app tells models apart by a *name*, the slot they fill: the shipped folders' names, or for an explicit
source the folder's name or the repo id's last part. Everything else about a model (its kind, its title, its
captions and ranges) comes from its flow (`model.flow.display`) and its config's labels and image size (its
`LabelSet`), so nothing here asks which kind it is.

The digit classifier (weights/classifier by default) powers the "which digit?" view; the app works without
it, and says so in that view.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from app.core.menu import BOTH, LabelSet, ModelMenu
from bfn.classifier import ClassifierLoadError, DigitClassifier, fast_classifier, load_classifier
from bfn.hub import CONFIG_FILE, SHIPPED_MODELS, WEIGHTS_DIR, ModelLoadError, load_model, model_folders
from bfn.model import BFNModel

log = logging.getLogger(__name__)

# Per-op threads. The README's "The app" section says why one: on a shared 2-core host two single-threaded
# runs use the cores better than one run with two threads, so runs, not ops, are spread over the cores.
DEFAULT_THREADS = 1


def model_name(source: str | Path) -> str:
    """The name a --weights source is known by: its folder's name, or a Hub repo id's last part."""
    path = Path(source).expanduser()
    return (path.resolve() if path.exists() else path).name


def model_titles(models: Mapping[str, BFNModel]) -> dict[str, str]:
    """Each model's title on screen: its flow's title, or what its images are where its labels or size are not
    MNIST's ("Two digits (64×64)", `LabelSet.title`), with the model's name added where two would look alike."""
    own = {name: LabelSet.of(m).title(m.flow.display.title, name) for name, m in models.items()}
    counts = Counter(own.values())
    return {name: title if counts[title] == 1 else f"{title} · {name}" for name, title in own.items()}


def model_menu(models: Mapping[str, BFNModel]) -> ModelMenu:
    """The Model choices these models offer; those of the first model's labels and size run side by side."""
    return ModelMenu(model_titles(models), {name: LabelSet.of(m) for name, m in models.items()},
                     {name: m.sampling for name, m in models.items()})


def digit_classes(classifier: DigitClassifier | None) -> int:
    """How many digits the classifier tells apart (0 without one): the width of the "which digit?" view."""
    return 0 if classifier is None else classifier.head.out_features


@dataclass
class ModelBank:
    models: dict[str, BFNModel] = field(default_factory=dict)  # by name, in display order
    sources: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    classifier: DigitClassifier | None = None

    @property
    def menu(self) -> ModelMenu:
        return model_menu(self.models)

    def add(self, name: str, model: BFNModel, source: str) -> None:
        """Keep `model` under `name`; refuse a name already taken. Models of other labels or image sizes are kept
        too: the menu runs them on their own (`ModelMenu.side_by_side`)."""
        if name == BOTH:
            raise ModelLoadError(f"{source}: a model may not be named {BOTH!r} (the side-by-side choice); rename its folder")
        if name in self.models:
            raise ModelLoadError(
                f"two models named {name!r} ({self.sources[name]} and {source}): the app tells models apart by "
                "their folder or repo name; rename one"
            )
        self.models[name] = model
        self.sources[name] = source


def configure_threads(threads: int) -> None:
    """Per-op CPU threads for torch; set once, before any model runs."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started (e.g. in tests)
        pass


def _load_source(bank: ModelBank, source: str, device: str) -> None:
    folder = Path(source).expanduser()
    if folder.is_dir() and not (folder / CONFIG_FILE).exists():
        found = model_folders(folder)
        if not found:
            raise ModelLoadError(f"{folder} holds neither a model ({CONFIG_FILE}) nor model sub-folders such as "
                                 f"{', '.join(SHIPPED_MODELS)}")
        for sub in found:
            bank.add(sub.name, load_model(sub, device=device), str(sub))
        return
    bank.add(model_name(source), load_model(source, device=device), source)


def load_models(weights: Sequence[str] | None = None, device: str = "cpu", classifier: str | None = None) -> ModelBank:
    """Load every model named by `weights` (default: this repository's weights/<name>/ for each shipped model,
    then any other model folder there), and the digit classifier from `classifier` (default: weights/classifier).

    With the default, a model whose weights are missing is left out (and noted in `problems`); with explicit
    sources every source must load. Raises `ModelLoadError` when no model at all could be loaded. A classifier
    that cannot be loaded only costs its view (noted in `problems`), unless it was named explicitly.
    """
    bank = ModelBank()
    if weights:
        for source in weights:
            _load_source(bank, source, device)
    else:
        others = [folder.name for folder in model_folders() if folder.name not in SHIPPED_MODELS]
        for name in (*SHIPPED_MODELS, *others):
            try:
                bank.add(name, load_model(WEIGHTS_DIR / name, device=device), f"weights/{name}")
            except ModelLoadError as e:
                bank.problems.append(str(e))
                log.warning("%s", e)
    if not bank.models:
        raise ModelLoadError("no model could be loaded:\n" + "\n".join(bank.problems))
    try:
        bank.classifier = fast_classifier(load_classifier(classifier, device=device))
    except ClassifierLoadError as e:
        if classifier is not None:
            raise ModelLoadError(str(e)) from e
        bank.problems.append(str(e))
        log.warning("%s; the digit classifier view is off", e)
    return bank


@torch.inference_mode()
def warm_up(bank: ModelBank) -> None:
    """Run each model once per typical batch size so the first user does not pay for lazy initialisation.

    Typical: one image, a guided one (two rows), a run of a row of labels, and that run guided.
    """
    for model in bank.models.values():
        device = next(model.parameters()).device
        row = len(LabelSet.of(model).row)
        for b in (1, 2, row, 2 * row):
            x = torch.zeros(b, model.flow.channels_per_dim, *model.data_shape[1:], device=device)
            model(x, torch.zeros(b, device=device), torch.zeros(b, dtype=torch.long, device=device))

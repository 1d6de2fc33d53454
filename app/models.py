"""The models, loaded once at start-up and shared read-only by every session.

Sampling only reads the weights (inference mode, no gradients), so one copy serves all concurrent runs.
`--weights` may name folders or Hugging Face Hub repo ids, several times; a folder may hold one model
(config.json + model.safetensors) or one sub-folder per shipped model (weights/discrete, weights/continuous,
the layout this repository ships).

The app tells models apart by a *name*, the slot they fill: the shipped folders' names, or for an explicit
source the folder's name or the repo id's last part. Everything else about a model (its kind, its title, its
captions and ranges) comes from its flow (`model.flow.display`), so nothing here asks which kind it is.

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

from app.params import BOTH, ModelMenu
from bfn.classifier import ClassifierLoadError, DigitClassifier, fast_classifier, load_classifier
from bfn.hub import CONFIG_FILE, SHIPPED_MODELS, WEIGHTS_DIR, ModelLoadError, load_model
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
    """Each model's title on screen: its flow's title, with the model's name added where two would look alike."""
    counts = Counter(m.flow.display.title for m in models.values())
    titles = {}
    for name, model in models.items():
        title = model.flow.display.title
        titles[name] = title if counts[title] == 1 else f"{title} · {name}"
    return titles


def model_menu(models: Mapping[str, BFNModel]) -> ModelMenu:
    """The Model choices these models offer (they know the same labels: `ModelBank.add` makes sure)."""
    first = next(iter(models.values()))
    return ModelMenu(model_titles(models), first.num_labels, first.sampling)


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
        """Keep `model` under `name`; refuse a name already taken, or one that a side-by-side run could not share."""
        if name == BOTH:
            raise ModelLoadError(f"{source}: a model may not be named {BOTH!r} (the side-by-side choice); rename its folder")
        if name in self.models:
            raise ModelLoadError(
                f"two models named {name!r} ({self.sources[name]} and {source}): the app tells models apart by "
                "their folder or repo name; rename one"
            )
        if self.models and model.num_labels != self.menu.num_labels:
            raise ModelLoadError(
                f"{source} knows {model.num_labels} labels, the other models {self.menu.num_labels}: side by side they must agree"
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
        found = [name for name in SHIPPED_MODELS if (folder / name).is_dir()]
        if not found:
            raise ModelLoadError(f"{folder} holds neither a model ({CONFIG_FILE}) nor sub-folders {', '.join(SHIPPED_MODELS)}")
        for name in found:
            bank.add(name, load_model(folder / name, device=device), str(folder / name))
        return
    bank.add(model_name(source), load_model(source, device=device), source)


def load_models(weights: Sequence[str] | None = None, device: str = "cpu", classifier: str | None = None) -> ModelBank:
    """Load every model named by `weights` (default: this repository's weights/<name>/ for each shipped model),
    and the digit classifier from `classifier` (default: weights/classifier).

    With the default, a model whose weights are missing is left out (and noted in `problems`); with explicit
    sources every source must load. Raises `ModelLoadError` when no model at all could be loaded. A classifier
    that cannot be loaded only costs its view (noted in `problems`), unless it was named explicitly.
    """
    bank = ModelBank()
    if weights:
        for source in weights:
            _load_source(bank, source, device)
    else:
        for name in SHIPPED_MODELS:
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

    Typical: one image, a guided one (two rows), a run of every digit, and that run guided.
    """
    for model in bank.models.values():
        device = next(model.parameters()).device
        for b in (1, 2, model.num_labels, 2 * model.num_labels):
            x = torch.zeros(b, model.flow.channels_per_dim, 28, 28, device=device)
            model(x, torch.zeros(b, device=device), torch.zeros(b, dtype=torch.long, device=device))

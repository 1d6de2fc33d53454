"""The models, loaded once at start-up and shared read-only by every session.

Sampling only reads the weights (inference mode, no gradients), so one copy serves all concurrent runs.
`--weights` may name folders or Hugging Face Hub repo ids, several times; a folder may hold one model
(config.json + model.safetensors) or one sub-folder per kind (weights/discrete, weights/continuous, the
layout this repository ships). Each model's kind is read from its config.

The digit classifier (weights/classifier by default) powers the "which digit?" view; the app works without
it, and says so in that view.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bfn.classifier import ClassifierLoadError, DigitClassifier, fast_classifier, load_classifier
from bfn.flow import KINDS
from bfn.hub import CONFIG_FILE, ModelLoadError, load_model
from bfn.model import BFNModel

log = logging.getLogger(__name__)

DEFAULT_THREADS = 1  # per-op threads; see README ("Threads"): runs, not ops, are spread over the cores


@dataclass
class ModelBank:
    models: dict[str, BFNModel] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    classifier: DigitClassifier | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if k in self.models)

    def add(self, model: BFNModel, source: str) -> None:
        if model.kind in self.models:
            raise ModelLoadError(f"two {model.kind} models given ({self.sources[model.kind]} and {source}); pass one per kind")
        self.models[model.kind] = model
        self.sources[model.kind] = source


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
        found = [k for k in KINDS if (folder / k).is_dir()]
        if not found:
            raise ModelLoadError(f"{folder} holds neither a model ({CONFIG_FILE}) nor sub-folders {', '.join(KINDS)}")
        for kind in found:
            bank.add(load_model(folder / kind, kind=kind, device=device), str(folder / kind))
        return
    model = load_model(source, device=device)
    bank.add(model, source)


def load_models(weights: Sequence[str] | None = None, device: str = "cpu", classifier: str | None = None) -> ModelBank:
    """Load every model named by `weights` (default: this repository's weights/<kind>/ for each kind), and the
    digit classifier from `classifier` (default: weights/classifier).

    With the default, a kind whose weights are missing is left out (and noted in `problems`); with explicit
    sources every source must load. Raises `ModelLoadError` when no model at all could be loaded. A classifier
    that cannot be loaded only costs its view (noted in `problems`), unless it was named explicitly.
    """
    bank = ModelBank()
    if weights:
        for source in weights:
            _load_source(bank, source, device)
    else:
        for kind in KINDS:
            try:
                bank.add(load_model(None, kind=kind, device=device), f"weights/{kind}")
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
def warm_up(bank: ModelBank, batches: Sequence[int] = (1, 2, 10, 20)) -> None:
    """Run each model once per typical batch size so the first user does not pay for lazy initialisation."""
    for model in bank.models.values():
        device = next(model.parameters()).device
        for b in batches:
            x = torch.zeros(b, model.flow.channels_per_dim, 28, 28, device=device)
            model(x, torch.zeros(b, device=device), torch.zeros(b, dtype=torch.long, device=device))

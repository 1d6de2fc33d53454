"""A small MNIST digit classifier: the judge of sample quality and the app's "what digit is this?" view.

Images go in as (B, 1, 28, 28) or (B, 28, 28) intensities in [0, 1] (grey or binarised: it is trained on
both). `features` returns the 128 penultimate activations that the Fréchet distance is computed on;
`forward` the ten logits. Saved and loaded like `BFNModel`: `save_pretrained` writes config.json and
model.safetensors; `load_classifier` reads them strictly and never opens a pickle file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from bfn.images import to_unit

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = constants.CONFIG_NAME
DEFAULT_FOLDER = Path(__file__).resolve().parent.parent / "weights" / "classifier"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class ClassifierLoadError(Exception):
    """The classifier could not be loaded; the message says from where, why and how to get it."""


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DigitClassifier(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="bfn-studio",
    tags=["mnist", "image-classification"],
    license="mit",
):
    """conv16 → conv32 → pool → conv64 → pool → conv128 at 7×7 → global average → 10 logits (~100k weights).

    Args:
        channels: widths of the four 3×3 convolutions.
        num_classes: output classes (10 digits).
        dropout: dropout on the penultimate features during training.
    """

    def __init__(self, channels: tuple[int, ...] | list[int] = (16, 32, 64, 128), num_classes: int = 10, dropout: float = 0.1):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.body = nn.Sequential(
            _conv(1, c1), _conv(c1, c2), nn.MaxPool2d(2),  # 28 → 14
            _conv(c2, c3), nn.MaxPool2d(2),  # 14 → 7
            _conv(c3, c4),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c4, num_classes)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    @staticmethod
    def _prepare(images: Tensor) -> Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(1)
        return (images.float() - MNIST_MEAN) / MNIST_STD

    def features(self, images: Tensor) -> Tensor:
        """Penultimate features (B, 128): the embedding the Fréchet distance and diversity use."""
        return self.body(self._prepare(images)).mean(dim=(2, 3))

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, 10) of images in [0, 1]."""
        return self.head(self.dropout(self.features(images)))

    @torch.inference_mode()
    def features_and_logits(self, images: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
        """(penultimate features (B, 128), logits (B, 10)) of images in [0, 1], in batches, in inference mode."""
        parts = [self.features(part) for part in images.split(batch_size)]
        feats = torch.cat(parts) if parts else self.features(images)
        return feats, self.head(feats)

    def probabilities(self, images: Tensor, batch_size: int = 1000) -> Tensor:
        """Class probabilities (B, 10), batched, in inference mode."""
        return F.softmax(self.features_and_logits(images, batch_size)[1], dim=1)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token,
                         map_location: str = "cpu", **model_kwargs) -> "DigitClassifier":
        model = cls(**model_kwargs)
        folder = Path(model_id)
        if folder.is_dir():
            weights = folder / WEIGHTS_FILE
        else:
            weights = hf_hub_download(repo_id=model_id, filename=WEIGHTS_FILE, revision=revision, cache_dir=cache_dir,
                                      force_download=force_download, token=token, local_files_only=local_files_only)
        safetensors.torch.load_model(model, str(weights), strict=True, device=map_location)
        return model.eval()


def load_classifier(source: str | Path | None = None, device: torch.device | str = "cpu") -> DigitClassifier:
    """Load the classifier from a folder (default: this repository's weights/classifier) or a Hub repo id.

    Only model.safetensors is read, strictly: missing or unexpected keys are an error, not a partial load.

    Raises:
        ClassifierLoadError: with a message that says what was tried and how to get the weights.
    """
    how = "Train and export it with `python -m training classifier --data-dir DIR --out weights/classifier`."
    folder = Path(source).expanduser() if source is not None else DEFAULT_FOLDER
    if source is None or folder.exists():
        if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise ClassifierLoadError(f"cannot load the digit classifier from {folder}: {CONFIG_FILE} and "
                                      f"{WEIGHTS_FILE} are both needed. {how}")
        try:
            json.loads((folder / CONFIG_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ClassifierLoadError(f"cannot load the digit classifier from {folder}: bad {CONFIG_FILE} ({e}). {how}") from e
    try:
        model = DigitClassifier.from_pretrained(str(folder) if folder.exists() else str(source))
    except Exception as e:  # safetensors, key mismatch, Hub errors: one error type for callers
        summary = " ".join(str(e).split())[:300]
        raise ClassifierLoadError(f"cannot load the digit classifier from {source or folder}: {summary}. {how}") from e
    return model.eval().requires_grad_(False).to(device)


def fast_classifier(classifier: DigitClassifier) -> DigitClassifier:
    """An inference-only copy: BatchNorm folded into the convolutions, channels-last memory.

    Folding removes a normalisation pass per convolution, which matters when the
    app classifies every sampling step. Its parameters no longer match the saved layout: never save it.
    """
    fast = copy.deepcopy(classifier).eval()
    for block in fast.body:
        if isinstance(block, nn.Sequential):  # a `_conv`: Conv2d, BatchNorm2d, ReLU
            block[0], block[1] = fuse_conv_bn_eval(block[0], block[1]), nn.Identity()
    return fast.to(memory_format=torch.channels_last)


@torch.inference_mode()
def classify_states(classifier: DigitClassifier, outputs: Tensor, value_range: tuple[float, float]) -> Tensor:
    """What the classifier sees in each step's output distribution: (S, B, H, W) → probabilities (S, B, 10).

    `outputs` stacks the `output` images of S sampling states (p_O(pixel on) or x̂); the app plots, for
    each image, the ten probabilities against the step: the moment a digit decides itself.
    """
    s, b = outputs.shape[:2]
    probs = classifier.probabilities(to_unit(outputs.reshape(s * b, *outputs.shape[2:]).float(), value_range))
    return probs.reshape(s, b, -1)

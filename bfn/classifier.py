"""A small MNIST digit classifier: the judge of sample quality and the app's "what digit is this?" view.

Images go in as (B, 1, 28, 28) or (B, 28, 28) intensities in [0, 1] (grey or binarised: it is trained on
both). `features` returns the 128 penultimate activations that the Fréchet distance is computed on;
`forward` the ten logits. Its probabilities are the logits' softmax at a fitted `temperature`: label smoothing in
training leaves the raw softmax under-confident (most real digits below 0.9), and a "confidence" that real
digits do not reach cannot say whether a sample looks like one. Saved and loaded like `BFNModel`: `save_pretrained` writes config.json and
model.safetensors; `load_classifier` reads them strictly and never opens a pickle file.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from bfn.digits import CENTRE, SIZE
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
        temperature: the logits are divided by it before the softmax (fitted after training, see
            `training.classifier.fit_temperature`; 1 = the raw softmax).
    """

    def __init__(self, channels: tuple[int, ...] | list[int] = (16, 32, 64, 128), num_classes: int = 10, dropout: float = 0.1,
                 temperature: float = 1.0):
        super().__init__()
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number above 0, got {temperature!r}")
        self.temperature = float(temperature)
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

    def class_probabilities(self, logits: Tensor) -> Tensor:
        """The calibrated probabilities (B, 10) of logits (B, 10)."""
        return F.softmax(logits / self.temperature, dim=1)

    def probabilities(self, images: Tensor, batch_size: int = 1000) -> Tensor:
        """Class probabilities (B, 10), batched, in inference mode."""
        return self.class_probabilities(self.features_and_logits(images, batch_size)[1])

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


def digit_parts(label_names: tuple[str, ...] | list[str]) -> int:
    """How many digits each label of a model spells, side by side in its images: 1 for MNIST's "0" … "9", 2 for
    "00" … "99"; 0 where the labels are not all digit strings of one length (Fashion-MNIST's names, EMNIST's
    letters), for which a digit classifier says nothing."""
    lengths = {len(name) for name in label_names}
    return lengths.pop() if len(lengths) == 1 and all(name.isdigit() for name in label_names) else 0


def centre_ink(images: Tensor, size: int = SIZE) -> Tensor:
    """Images (N, H, W) in [0, 1] → (N, size, size): the window whose centre is each image's centre of ink mass,
    zero outside the image, where MNIST puts a digit's centre of mass (`bfn.digits.CENTRE`). One gather."""
    n, h, w = images.shape
    mass = images.sum((1, 2)).clamp_min(1e-6)
    rows = torch.arange(h, dtype=images.dtype, device=images.device)
    cols = torch.arange(w, dtype=images.dtype, device=images.device)
    com_row = (images.sum(2) @ rows) / mass
    com_col = (images.sum(1) @ cols) / mass
    top = torch.floor(com_row - CENTRE[0] + 0.5).long()
    left = torch.floor(com_col - CENTRE[1] + 0.5).long()
    r = top[:, None] + torch.arange(size, device=images.device)  # (N, size): source row of each window row
    c = left[:, None] + torch.arange(size, device=images.device)
    inside = ((r >= 0) & (r < h))[:, :, None] & ((c >= 0) & (c < w))[:, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None]
    picked = images[batch, r.clamp(0, h - 1)[:, :, None], c.clamp(0, w - 1)[:, None, :]]
    return torch.where(inside, picked, torch.zeros((), dtype=images.dtype, device=images.device))


def digits_of(images: Tensor, parts: int) -> Tensor:
    """Images (N, H, W) in [0, 1] of `parts` digits side by side → the digits (N, parts, 28, 28), as the
    classifier reads them: each of the `parts` equal column strips with its ink centred in 28×28. An image that
    already is one MNIST digit goes in as it is."""
    n, h, w = images.shape
    if parts == 1 and (h, w) == (SIZE, SIZE):
        return images[:, None]
    strips = images.reshape(n, h, parts, w // parts).permute(0, 2, 1, 3).reshape(n * parts, h, w // parts)
    return centre_ink(strips).reshape(n, parts, SIZE, SIZE)


@torch.inference_mode()
def classify_states(classifier: DigitClassifier, outputs: Tensor, value_range: tuple[float, float], parts: int = 1) -> Tensor:
    """What the classifier sees in each step's output distribution: (S, B, H, W) → probabilities
    (S, B, parts · 10), the ten digits of each part (`digits_of`) in turn, from the left.

    `outputs` stacks the `output` images of S sampling states (p_O(pixel on) or x̂); the app plots, for
    each image, the probabilities against the step: the moment a digit (each digit of a number) decides itself.
    """
    s, b = outputs.shape[:2]
    digits = digits_of(to_unit(outputs.reshape(s * b, *outputs.shape[2:]).float(), value_range), parts)
    probs = classifier.probabilities(digits.reshape(-1, SIZE, SIZE))
    return probs.reshape(s, b, -1)

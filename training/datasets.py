"""The data sets `python -m training train --dataset` knows: each names its classes and its image size.

Both go into the trained model's config (`unet.num_labels`, `unet.image_size`, `labels`), so a model
trained on Fashion-MNIST shows "Trouser" where an MNIST one shows "1", wherever it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bfn.model import BFNModel
from training import two_digit
from training.data import EMNIST_BALANCED, FASHION_MNIST, MNIST, IdxSource, Split, test_split, train_val_split

FASHION_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot")
EMNIST_BALANCED_LABELS = tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt")  # the 47 classes, label order


@dataclass(frozen=True)
class Description:
    """How a model card names a data set (training.card)."""

    title: str  # after the flow's data name: "binarised MNIST"
    condition: str  # what the label is: "the digit class"
    training: str  # the training data, with its validation hold-out
    test: str  # what the NLL is measured on
    reference: str = ""  # a published figure to compare with


@dataclass(frozen=True)
class IdxDataset:
    """An MNIST-format data set: 28×28 images, the classes of its label file."""

    source: IdxSource
    label_names: tuple[str, ...]
    description: Description
    image_size: tuple[int, int] = (28, 28)

    def train_val(self, data_dir: str | Path, val_size: int, seed: int) -> tuple[Split, Split]:
        return train_val_split(data_dir, val_size, seed, self.source)

    def test(self, data_dir: str | Path) -> Split:
        return test_split(data_dir, self.source)


@dataclass(frozen=True)
class TwoDigitDataset:
    """Two-digit numbers on 64×64 (`training.two_digit`), composed from MNIST digits.

    Validation pairs the digits held out of MNIST's training set, so no digit of a training number is in a
    validation one, and the test set pairs MNIST's test digits. Each split's pairing is fixed by `seed` and
    the split; the training set has `train_per_digit` numbers per training digit (each digit appears in about
    twice as many, left and right), the others one per digit.
    """

    label_names: tuple[str, ...] = two_digit.LABEL_NAMES
    image_size: tuple[int, int] = (two_digit.HEIGHT, two_digit.WIDTH)
    train_per_digit: int = 8
    description: Description = Description(
        "two-digit MNIST numbers (64×64)", "the number 00–99 (tens digit left, units digit right)",
        "440,000 numbers composed on the fly from the MNIST training set's digits (55,000; 5,000 more held out, "
        "whose pairs are the validation numbers)",
        "10,000 numbers paired from the MNIST test digits (`--dataset two-digit`)",
        "A number has 4,096 pixels; for scale, the paper's 77.87 nats/image on binarised MNIST is 0.0993 nats per pixel "
        "(784 pixels).")

    def train_val(self, data_dir: str | Path, val_size: int, seed: int) -> tuple[two_digit.TwoDigits, two_digit.TwoDigits]:
        train, val = train_val_split(data_dir, val_size, seed, MNIST)
        return (two_digit.TwoDigits.build(train, self.train_per_digit * len(train), seed=3 * seed),
                two_digit.TwoDigits.build(val, len(val), seed=3 * seed + 1))

    def test(self, data_dir: str | Path, seed: int = 0) -> two_digit.TwoDigits:
        digits = test_split(data_dir, MNIST)
        return two_digit.TwoDigits.build(digits, len(digits), seed=3 * seed + 2)


MNIST_TRAINING = "training set (55,000 images; 5,000 held out for validation)"
DATASETS = {
    "mnist": IdxDataset(MNIST, tuple(str(d) for d in range(10)), Description(
        "MNIST", "the digit class", f"MNIST {MNIST_TRAINING}", "the MNIST test set",
        "Compare the unconditional figure with published results (the paper reports 77.87 nats/image on binarised MNIST).")),
    "fashion-mnist": IdxDataset(FASHION_MNIST, FASHION_LABELS, Description(
        "Fashion-MNIST", "the garment class", f"Fashion-MNIST {MNIST_TRAINING}", "the Fashion-MNIST test set")),
    "emnist-balanced": IdxDataset(EMNIST_BALANCED, EMNIST_BALANCED_LABELS, Description(
        "EMNIST balanced", "the character class (47: digits, letters)",
        "EMNIST balanced training set (112,800 images; 5,000 held out for validation)", "the EMNIST balanced test set")),
    "two-digit": TwoDigitDataset(),
}


Dataset = IdxDataset | TwoDigitDataset


def check_fits(model: BFNModel, dataset: Dataset, name: str) -> None:
    """Refuse to score a model on a data set of another image size or number of labels (ValueError)."""
    if model.data_shape[1:] != dataset.image_size or model.num_labels != len(dataset.label_names):
        h, w = model.data_shape[1:]
        raise ValueError(f"the model draws {h}×{w} images with {model.num_labels} labels, but --dataset {name} has "
                         f"{dataset.image_size[0]}×{dataset.image_size[1]} images with {len(dataset.label_names)}: "
                         "pass the --dataset it was trained on")


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name]

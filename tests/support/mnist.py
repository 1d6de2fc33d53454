"""Tiny MNIST stand-ins: synthetic "digits" written as IDX files in torchvision's MNIST/raw layout."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Digit c is a bright horizontal bar at row 3 + 2c with a random horizontal offset, plus speckle."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for k, c in enumerate(labels):
        left = rng.integers(3, 9)
        images[k, 3 + 2 * c : 6 + 2 * c, left : left + 14] = rng.integers(180, 256)
        images[k] |= (rng.random((28, 28)) < 0.03).astype(np.uint8) * 100
    return images, labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """An unsigned-byte IDX file; gzipped when the name ends in .gz, as the published MNIST files are."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def write_split(raw: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool = False, prefix: str = "") -> None:
    """One split ("train" or "t10k") as the IDX pair MNIST-format sets use, e.g. emnist-balanced-train-images-idx3-ubyte."""
    raw.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(raw / f"{prefix}{split}-images-idx3-ubyte{suffix}", images)
    write_idx(raw / f"{prefix}{split}-labels-idx1-ubyte{suffix}", labels)


def write_mnist(root: Path, train: int = 300, test: int = 100, gz: bool = False) -> Path:
    for split, n, seed in (("train", train, 1), ("t10k", test, 2)):
        write_split(root / "MNIST" / "raw", split, *synthetic_digits(n, seed), gz=gz)
    return root

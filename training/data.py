"""MNIST and the data sets stored like it (Fashion-MNIST, EMNIST) as tensors: read once, held whole on the
training device, batched by index.

torchvision's `MNIST(root, download=True)` (or its class for the other sets) is used where torchvision
imports (GPU machines, users); the same raw IDX files are read directly otherwise, so CPU-only machines and CI (where torchvision cannot be
imported) train and test from the identical bytes. MNIST is 47 MB as uint8: holding it on the device
removes the data loader from the training loop entirely.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

IDX_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxSource:
    """Where an MNIST-format data set's IDX files lie (torchvision's layout) and how torchvision fetches it.

    `folder`: root/<folder>/raw holds the files, named `prefix` + MNIST's file names. `transposed`: the
    files store each image transposed (EMNIST does; torchvision passes them on as stored), so reading turns
    them upright.
    """

    name: str  # shown in messages
    folder: str  # torchvision's class name, the sub-folder of the root
    prefix: str = ""
    transposed: bool = False
    torchvision_options: tuple[tuple[str, str], ...] = ()  # extra keyword arguments of the torchvision class


MNIST = IdxSource("MNIST", "MNIST")
FASHION_MNIST = IdxSource("Fashion-MNIST", "FashionMNIST")
EMNIST_BALANCED = IdxSource("EMNIST balanced", "EMNIST", prefix="emnist-balanced-", transposed=True,
                            torchvision_options=(("split", "balanced"),))


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped): magic (dtype, ndim), big-endian sizes, then raw data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {array.size}")
    return array.reshape(shape)


def _find_idx(raw_dir: Path, name: str, source: IdxSource) -> Path:
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{source.name} file {name}(.gz) not found in {raw_dir}. Pass --data-dir pointing at a folder that holds "
        f"{source.folder}/raw/ (the layout torchvision's {source.folder}(root) uses), or install torchvision to download it."
    )


def _torchvision_class(source: IdxSource):
    """torchvision's class for `source`, or None where torchvision does not import (CPU-only machines, CI)."""
    try:
        from torchvision import datasets
    except Exception:  # torchvision missing, or built for another torch (as on CPU-only machines here)
        return None
    return getattr(datasets, source.folder)


def load_idx(data_dir: str | Path, train: bool, source: IdxSource = MNIST) -> tuple[Tensor, Tensor]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of the train or test split of an MNIST-format data set."""
    data_dir = Path(data_dir)
    dataset = _torchvision_class(source)
    if dataset is not None:
        ds = dataset(str(data_dir), train=train, download=True, **dict(source.torchvision_options))
        images, labels = ds.data.to(torch.uint8), ds.targets.to(torch.long)
    else:
        raw = data_dir / source.folder / "raw"
        images_name, labels_name = (source.prefix + name for name in IDX_FILES[train])
        images = torch.from_numpy(read_idx(_find_idx(raw, images_name, source)).copy())
        labels = torch.from_numpy(read_idx(_find_idx(raw, labels_name, source)).astype(np.int64))
    return (images.transpose(1, 2).contiguous() if source.transposed else images), labels


def load_mnist(data_dir: str | Path, train: bool) -> tuple[Tensor, Tensor]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of the MNIST train or test split."""
    return load_idx(data_dir, train, MNIST)


@dataclass
class Split:
    """A data split held as whole tensors on one device."""

    images: Tensor  # uint8 (N, 28, 28)
    labels: Tensor  # int64 (N,)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, index: Tensor | slice) -> "Split":
        return Split(self.images[index], self.labels[index])


def train_val_split(data_dir: str | Path, val_size: int = 5000, seed: int = 0, source: IdxSource = MNIST) -> tuple[Split, Split]:
    """The training images split into a training and a held-out validation set (fixed by `seed`)."""
    images, labels = load_idx(data_dir, True, source)
    if not 0 < val_size < len(labels):
        raise ValueError(f"validation size must be between 1 and {len(labels) - 1} (the data has {len(labels)} images), got {val_size}")
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    full = Split(images, labels)
    return full.subset(perm[val_size:]), full.subset(perm[:val_size])


def test_split(data_dir: str | Path, source: IdxSource = MNIST) -> Split:
    return Split(*load_idx(data_dir, False, source))

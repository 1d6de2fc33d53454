"""Two-digit numbers on a 64×64 canvas, built from MNIST on the fly: the data of the two-digit model.

Number n = 10·a + b (00–99) is one label. Digit a (a 28×28 MNIST image) goes into the left half (columns
0–31) and b into the right half (columns 32–63), each at its own random offset inside its half (rows 0–36,
columns 0–4 within the half), and the canvas is the pixel-wise maximum of the two (the ranges keep them
apart, but nothing here relies on it). A set is held as indices only: which two digits make each number and
where they sit, fixed by a seed; images are composed when a batch is taken (`TwoDigits.subset`), so nothing
is ever written to disk. Each split pairs digits of one MNIST split only, so no test digit is ever seen in
training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bfn.digits import SIZE as DIGIT
from training.data import Split

HEIGHT, WIDTH = 64, 64  # the canvas
HALF = WIDTH // 2  # each digit's half is HEIGHT × HALF
MAX_OFFSET = (HEIGHT - DIGIT, HALF - DIGIT)  # (36, 4): the largest row and column offset within a half
LABEL_NAMES = tuple(f"{n:02d}" for n in range(100))


def place(images: Tensor, rows: Tensor, cols: Tensor, size: tuple[int, int]) -> Tensor:
    """Each image (B, h, w) on a blank canvas of `size` with its top-left pixel at (rows[i], cols[i]).

    Offsets may be negative or reach past the canvas: what falls outside is cut off, and canvas pixels that
    no image pixel covers are 0. One gather for the whole batch, on whichever device the images are.
    """
    b, h, w = images.shape
    r = torch.arange(size[0], device=images.device)[None, :] - rows[:, None]  # (B, H): source row of each canvas row
    c = torch.arange(size[1], device=images.device)[None, :] - cols[:, None]  # (B, W)
    inside = ((r >= 0) & (r < h))[:, :, None] & ((c >= 0) & (c < w))[:, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None]
    picked = images[batch, r.clamp(0, h - 1)[:, :, None], c.clamp(0, w - 1)[:, None, :]]
    return torch.where(inside, picked, torch.zeros((), dtype=images.dtype, device=images.device))


def compose(left: Tensor, right: Tensor, offsets: Tensor) -> Tensor:
    """Two batches of digits (B, 28, 28) → numbers (B, 64, 64): pixel-wise max of the two placed digits.

    `offsets` (B, 2, 2) holds (row, column) of the left and of the right digit within its own half.
    """
    a = place(left, offsets[:, 0, 0], offsets[:, 0, 1], (HEIGHT, WIDTH))
    b = place(right, offsets[:, 1, 0], offsets[:, 1, 1] + HALF, (HEIGHT, WIDTH))
    return torch.maximum(a, b)


@dataclass
class TwoDigits:
    """A two-digit data set as indices into a split of MNIST digits; behaves as a `Split` of 64×64 numbers.

    `pairs[i]` = (left digit, right digit) of number i, as indices into `digits`; `offsets[i]` their
    (row, column) within their halves. `subset` composes the images, so a batch costs one gather.
    """

    digits: Split
    pairs: Tensor  # int64 (N, 2)
    offsets: Tensor  # int64 (N, 2, 2)

    @classmethod
    def build(cls, digits: Split, size: int, seed: int) -> "TwoDigits":
        """`size` numbers from `digits`: both digits of each drawn uniformly (with replacement), and their
        offsets uniformly over the allowed ranges, all fixed by `seed`."""
        if size < 1 or len(digits) < 1:
            raise ValueError(f"a two-digit set needs at least one number and one digit, got {size} numbers from {len(digits)} digits")
        g = torch.Generator().manual_seed(seed)
        pairs = torch.randint(len(digits), (size, 2), generator=g)
        rows = torch.randint(MAX_OFFSET[0] + 1, (size, 2), generator=g)
        cols = torch.randint(MAX_OFFSET[1] + 1, (size, 2), generator=g)
        return cls(digits, pairs, torch.stack([rows, cols], dim=2))

    @property
    def labels(self) -> Tensor:
        """The number of each item: its label."""
        return self._numbers(self.pairs)

    def _numbers(self, pairs: Tensor) -> Tensor:
        """10·a + b for each (left, right) pair of digit indices."""
        return 10 * self.digits.labels[pairs[:, 0]] + self.digits.labels[pairs[:, 1]]

    def __len__(self) -> int:
        return self.pairs.shape[0]

    def to(self, device: torch.device | str) -> "TwoDigits":
        return TwoDigits(self.digits.to(device), self.pairs.to(device), self.offsets.to(device))

    def subset(self, index: Tensor | slice) -> Split:
        """The numbers at `index`, composed: a `Split` of uint8 images (B, 64, 64) and their labels."""
        pairs, offsets = self.pairs[index], self.offsets[index]
        images = compose(self.digits.images[pairs[:, 0]], self.digits.images[pairs[:, 1]], offsets)
        return Split(images, self._numbers(pairs))

    @property
    def images(self) -> Tensor:
        """All the images, composed (N, 64, 64): for small sets; batches should use `subset`."""
        return self.subset(slice(None)).images


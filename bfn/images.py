"""Image grids as plain uint8 arrays and PNG files (Pillow), for the CLI, training previews and the app.

Kept free of torchvision so that everything CI runs can import it on a CPU-only torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image


Array = TypeVar("Array", torch.Tensor, np.ndarray)


def to_unit(values: Array, value_range: tuple[float, float]) -> Array:
    """Map float values in `value_range` (a flow's display range) to [0, 1], clipping outside."""
    lo, hi = value_range
    return ((values - lo) / (hi - lo)).clip(0, 1)


def to_uint8(images: torch.Tensor | np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Map values in `value_range` to 0 … 255 (clipping outside), keeping the shape."""
    arr = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, dtype=np.float32)
    return np.rint(to_unit(arr, value_range) * 255).astype(np.uint8)


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 64) -> np.ndarray:
    """Tile N uint8 images (N, H, W) into one (rows·(H+p)+p, cols·(W+p)+p) image, row-major."""
    n, h, w = images.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value, dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top : top + h, left : left + w] = images[k]
    return grid


def save_png(image: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Write a uint8 grey image, enlarged `scale` times with nearest-neighbour so pixels stay crisp."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(image, mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
    return path

"""The live images: a batch of one model's images as one grey picture, and where a click on it lands.

Live images are sent at their true size (one pixel per pixel of the model's images) and enlarged by the browser
with CSS `image-rendering: pixelated`: an enlargement by k on the server would send k² times the pixels, at up
to 10 updates per second. Exports are enlarged here (`scale`). Images are grey, black background as in MNIST.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.core.frames import Frames
from app.core.menu import DEFAULT_LABELS
from bfn.images import make_grid, to_uint8

PAD = 2  # grey pixels between images in a grid
PAD_VALUE = 64
MAX_COLS = 5

Pixel = tuple[int, int, int]  # (image index, row, column)


@dataclass(frozen=True)
class GridLayout:
    """Where each image of a batch sits in the enlarged grid picture, both ways: `draw` places the images and
    `locate` maps a click back, from the same numbers, so a click always lands on the pixel drawn there."""

    batch: int
    shape: tuple[int, int] = DEFAULT_LABELS.shape  # (height, width) of one image
    scale: int = 1

    @property
    def cols(self) -> int:
        return min(self.batch, MAX_COLS)

    @property
    def rows(self) -> int:
        return math.ceil(self.batch / self.cols)

    @property
    def width(self) -> int:
        """The enlarged picture's width in pixels (what `draw` returns), the range of a click's x."""
        return (self.cols * (self.shape[1] + PAD) + PAD) * self.scale

    @property
    def height(self) -> int:
        return (self.rows * (self.shape[0] + PAD) + PAD) * self.scale

    def draw(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (B, H, W) → the grid picture, enlarged `scale`× with nearest-neighbour."""
        grid = make_grid(images, nrow=self.cols, padding=PAD, pad_value=PAD_VALUE)
        return np.repeat(np.repeat(grid, self.scale, axis=0), self.scale, axis=1) if self.scale > 1 else grid

    def locate(self, x: float, y: float) -> Pixel | None:
        """The (image, row, column) under point (x, y) of the enlarged picture; None on the padding or outside."""
        gx, gy = int(x // self.scale), int(y // self.scale)
        c_img, col = divmod(gx - PAD, self.shape[1] + PAD)
        r_img, row = divmod(gy - PAD, self.shape[0] + PAD)
        if gx < PAD or gy < PAD or col >= self.shape[1] or row >= self.shape[0] or c_img >= self.cols or r_img >= self.rows:
            return None
        index = r_img * self.cols + c_img
        return (index, row, col) if index < self.batch else None


def image_grid(values: np.ndarray, value_range: tuple[float, float], scale: int = 1) -> np.ndarray:
    """(B, H, W) values in `value_range` → one uint8 grey picture, rows of up to 5 images, enlarged `scale`×."""
    return GridLayout(values.shape[0], values.shape[-2:], scale).draw(to_uint8(values.astype(np.float32), value_range))


def theta_image(frames: Frames, step: int) -> np.ndarray:
    return image_grid(frames.theta[step], frames.value_range)


def output_image(frames: Frames, step: int) -> np.ndarray:
    return image_grid(frames.output[step], frames.value_range)


def picture(values: np.ndarray) -> np.ndarray:
    """uint8 images (B, H, W) as the live views show them: a grid with their padding."""
    return GridLayout(values.shape[0], values.shape[-2:]).draw(values)

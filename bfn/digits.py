"""A drawing becomes an MNIST digit the way MNIST itself was made, and the masks that say which pixels to keep.

MNIST's digits were size-normalised so that the ink's bounding box fits a 20×20 box with its aspect ratio kept
(anti-aliased, hence grey levels), then placed in the 28×28 field by the ink's centre of mass. The models
were trained on exactly such images, so a drawing of any size has to go through the same steps before a
model can complete it: `to_mnist`. On the MNIST test set every digit's centre of mass, in row and column
pixel indices, lies within half a pixel of (14, 14) (an integer shift brought it there), and that is the
convention used here (`CENTRE`).

Drawings come as arrays in whichever convention their source uses; `ink` turns them into ink in [0, 1],
bright on dark, and documents which conventions it accepts and how it tells them apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

SIZE = 28  # the MNIST field
BOX = 20  # the box the ink's bounding box is scaled to fit
CENTRE = (14.0, 14.0)  # where MNIST puts the ink's centre of mass (row, column), to within half a pixel
INK_LEVEL = 0.1  # fainter ink (specks, anti-aliasing, scanner noise) does not count towards the bounding box
HALVES = ("top", "bottom", "left", "right")


def ink(drawing: np.ndarray) -> np.ndarray:
    """A drawing → ink in [0, 1] (H, W), float32, bright on dark with the background at 0.

    Accepted: a 2-D array (grey), or (H, W, C) with C = 2 (grey + alpha), 3 (RGB) or 4 (RGBA); dtype bool,
    uint8 (0–255), uint16 (0–65535) or float in [0, 1]. How the ink is found:
      * with an alpha channel that varies (strokes on a transparent canvas, as a sketchpad layer gives them),
        the ink is the opacity and the colour is ignored, so black or white strokes both work;
      * otherwise (no alpha, or the same alpha everywhere: strokes flattened onto an opaque canvas) the ink
        is in the grey level (RGB by luminance, as Pillow's "L"), and the background is the median of the
        outermost pixels: a light background (above ½) means dark ink on white, which is inverted. The
        background level is then mapped to 0 and full ink to 1, so a grey paper counts as no ink.
    """
    values = unit_values(drawing)
    if values.ndim == 3 and values.shape[2] in (2, 4):
        alpha = values[..., -1]
        if alpha.max() > alpha.min():
            return alpha
        values = values[..., :-1]
    if values.ndim == 3 and values.shape[2] == 3:
        values = values @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    elif values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    if values.ndim != 2:
        raise ValueError(f"a drawing must be (H, W) grey or (H, W, 2|3|4) with colour/alpha channels, got shape {drawing.shape}")
    border = np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])
    background = float(np.median(border))
    if background > 0.5:
        values, background = 1 - values, 1 - background
    return np.clip((values - background) / (1 - background), 0, 1).astype(np.float32)


def unit_values(drawing: np.ndarray) -> np.ndarray:
    """An image's values as float32 in [0, 1], by its dtype's range (bool, uint8, uint16, or float already in it)."""
    array = np.asarray(drawing)
    if array.dtype == bool:
        return array.astype(np.float32)
    if array.dtype in (np.uint8, np.uint16):
        return array.astype(np.float32) / np.iinfo(array.dtype).max
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not (np.isfinite(array).all() and 0 <= array.min() and array.max() <= 1):
            raise ValueError("float images must hold values in [0, 1]")
        return array.astype(np.float32)
    raise ValueError(f"an image must be bool, uint8, uint16 or float in [0, 1], got dtype {array.dtype}")


def to_mnist(drawing: np.ndarray) -> np.ndarray:
    """A drawing of any size → a 28×28 MNIST-like digit in [0, 1] (float32), ink bright on dark.

    The ink's bounding box (pixels of at least `INK_LEVEL`) is cropped and scaled with its aspect ratio kept so
    that its long side is 20 px (Lanczos resampling: anti-aliased like MNIST's grey levels), then placed so that
    its centre of mass lands within half a pixel of `CENTRE` (an integer shift, so no second resampling blurs
    it). Only where that would push ink out of the field is the glyph kept inside instead. A drawing without
    ink is a ValueError.
    """
    level = ink(drawing)
    rows, cols = np.nonzero(level >= INK_LEVEL)
    if rows.size == 0:
        raise ValueError("the drawing is empty: no pixel stands out from its background as ink")
    glyph = level[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = glyph.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow's (width, height)
    glyph = np.clip(np.asarray(Image.fromarray(glyph, mode="F").resize(size, Image.LANCZOS)), 0, 1)
    h, w = glyph.shape
    mass = glyph.sum()
    com_row = (glyph.sum(1) @ np.arange(h)) / mass
    com_col = (glyph.sum(0) @ np.arange(w)) / mass
    top = int(np.clip(np.floor(CENTRE[0] - com_row + 0.5), 0, SIZE - h))
    left = int(np.clip(np.floor(CENTRE[1] - com_col + 0.5), 0, SIZE - w))
    digit = np.zeros((SIZE, SIZE), dtype=np.float32)
    digit[top : top + h, left : left + w] = glyph
    return digit


def load_image(path: str | Path) -> np.ndarray:
    """A PNG (or any image Pillow reads) as an array `ink` accepts: grey, or RGBA where the file has alpha."""
    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, UnidentifiedImageError) as e:  # missing, unreadable, or not an image
        raise ValueError(f"{path}: not a readable image ({' '.join(str(e).split()) or type(e).__name__})") from None
    if img.mode.startswith("I;16"):  # 16-bit grey: keep its depth
        return np.asarray(img).astype(np.uint16)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    return np.asarray(img.convert("RGBA" if has_alpha else "L"))


def half_mask(keep: str) -> np.ndarray:
    """Which pixels of a 28×28 digit are known when one half is kept: (28, 28) bool, True = known."""
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    half = SIZE // 2
    regions = {"top": np.s_[:half, :], "bottom": np.s_[half:, :], "left": np.s_[:, :half], "right": np.s_[:, half:]}
    if keep not in regions:
        raise ValueError(f"keep must be one of {', '.join(HALVES)}, got {keep!r}")
    mask[regions[keep]] = True
    return mask


def mask_from_image(path: str | Path) -> np.ndarray:
    """A 28×28 mask image → (28, 28) bool: white (grey level ≥ ½, opaque) is known, black unknown."""
    image = load_image(path)
    if image.shape[:2] != (SIZE, SIZE):
        raise ValueError(f"{path}: a mask must be {SIZE}×{SIZE} pixels, got {image.shape[1]}×{image.shape[0]}")
    values = unit_values(image)
    if values.ndim == 3:  # RGBA: transparent counts as black
        values = values[..., :3].mean(-1) * values[..., 3]
    return values >= 0.5

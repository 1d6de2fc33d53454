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

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

SIZE = 28  # the MNIST field
BOX = 20  # the box the ink's bounding box is scaled to fit
CENTRE = (14.0, 14.0)  # where MNIST puts the ink's centre of mass (row, column), to within half a pixel
INK_LEVEL = 0.1  # fainter ink (specks, anti-aliasing, scanner noise) does not count towards the bounding box
HALVES = ("top", "bottom", "left", "right")
# The most pixels an input image may decode to (a JPEG at its reduced scale, `open_image`): as RGBA 16 MB, and as
# much again while it is converted, so that a few decoded at once stay within the app's memory margin.
MAX_IMAGE_PIXELS = 2048 * 2048
WORKING_SIDE = 512  # a drawing is reduced to fit this square right after decoding (the sketchpad's is 280×280)

ImageSource = str | Path | BinaryIO


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


def _pixels_in_words(max_pixels: int) -> str:
    """"2048×2048 (4,194,304)": a pixel limit as a square and a count."""
    side = math.isqrt(max_pixels)
    return f"{side}×{side} ({max_pixels:,})" if side * side == max_pixels else f"{max_pixels:,}"


def _one_of(names: Sequence[str]) -> str:
    """"PNG, JPEG or WEBP"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


@contextmanager
def open_image(source: ImageSource, *, name: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS,
               fit: int | None = None, formats: Sequence[str] | None = None) -> Iterator[Image.Image]:
    """An image file, decoded only once its size is known to be at most `max_pixels`: ValueError otherwise.

    Pillow opens lazily, so the size in the header is read before any pixel is decoded: a PNG of 12000×12000
    one-bit pixels is 32 KB of file and would be 144 MB as Pillow's pixels, and far more as floats. A JPEG is
    decoded at a reduced scale where `fit` (a side in pixels) allows (`Image.draft`: 1/2, 1/4 or 1/8 as the
    DCT is decoded), and the limit counts the pixels decoded. `formats` limits the decoders tried (Pillow's
    names, e.g. "PNG"); `name` names the image in messages (default: the path). Missing, unreadable,
    truncated and over-large files are all a one-line ValueError naming the image and what is allowed.
    """
    name = name or str(source)
    kinds = "an image Pillow reads" if formats is None else f"a {_one_of(formats)} image"
    try:
        img = Image.open(source, formats=None if formats is None else list(formats))
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours, checked as it opens
        raise ValueError(f"{name} may have at most {_pixels_in_words(max_pixels)} pixels; got far more") from None
    except FileNotFoundError:
        raise ValueError(f"{name}: no such file") from None
    except (OSError, UnidentifiedImageError):  # not an image, or of a format not allowed
        raise ValueError(f"{name} must be {kinds}; got a file that is not a readable image") from None
    with img:
        if fit is not None and img.format == "JPEG":
            img.draft(img.mode, (fit, fit))
        width, height = img.size
        if width * height > max_pixels:
            raise ValueError(f"{name} may have at most {_pixels_in_words(max_pixels)} pixels; got {width}×{height}")
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
            raise ValueError(f"{name} must be {kinds}; got one that cannot be decoded ({' '.join(str(e).split())[:80]})") from None
        yield img


def load_image(source: ImageSource, *, name: str | None = None, fit: int | None = WORKING_SIDE,
               formats: Sequence[str] | None = None) -> np.ndarray:
    """An image (a path or a binary file; PNG or any format Pillow reads, or only `formats`) as an array `ink`
    accepts: grey, or RGBA where the file has alpha; 16-bit grey keeps its depth.

    Bounded by pixels before anything is decoded (`open_image`, `MAX_IMAGE_PIXELS`), and reduced to fit a
    square of `fit` pixels right after decoding, before any conversion to floats (None: kept at its size, as a
    mask must be): a drawing becomes a 20×20 digit, so a larger working size would only cost memory.
    """
    with open_image(source, name=name, fit=fit, formats=formats) as img:
        if img.mode.startswith("I;16"):  # 16-bit grey, of either byte order: keep its depth
            img = Image.fromarray(np.asarray(img).astype(np.uint16))
        else:
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "L")
        if fit is not None and max(img.size) > fit:
            img.thumbnail((fit, fit), Image.Resampling.BOX)
        return np.asarray(img).astype(np.uint16) if img.mode == "I;16" else np.asarray(img)


def to_field(drawing: np.ndarray, shape: tuple[int, int], parts: int = 1) -> np.ndarray:
    """A drawing → a model's input of `shape` (H, W) in [0, 1]: `parts` MNIST digits side by side.

    A model of two-digit numbers sees a digit in each half of its image, a model of MNIST one digit in all of
    it. The ink's bounding box is cut into `parts` columns of equal width (each cut moved to the emptiest
    column near it, where the gap between two digits is), each part becomes an MNIST digit (`to_mnist`), and
    each digit goes to the middle of its own column strip of the field. For a 28×28 field and one part this
    is `to_mnist` itself. ValueError for a part without ink, or a field too small for its digits.
    """
    if parts == 1 and tuple(shape) == (SIZE, SIZE):
        return to_mnist(drawing)
    height, width = shape
    if parts < 1 or height < SIZE or width // parts < SIZE:
        raise ValueError(f"a {height}×{width} image has no room for {parts} MNIST digit(s) of {SIZE}×{SIZE} side by side")
    level = ink(drawing)
    cols = np.nonzero((level >= INK_LEVEL).any(0))[0]
    if cols.size == 0:
        raise ValueError("the drawing is empty: no pixel stands out from its background as ink")
    cuts = _cuts(level[:, cols[0] : cols[-1] + 1].sum(0), parts) + cols[0]
    field = np.zeros(shape, dtype=np.float32)
    strip = width // parts
    top = (height - SIZE) // 2
    for k, (start, end) in enumerate(zip([0, *cuts], [*cuts, level.shape[1]])):
        try:
            digit = to_mnist(level[:, start:end])
        except ValueError:
            raise ValueError(f"part {k + 1} of {parts} of the drawing (from the left) is empty: draw one digit in each") from None
        left = k * strip + (strip - SIZE) // 2
        field[top : top + SIZE, left : left + SIZE] = digit
    return field


def _cuts(column_ink: np.ndarray, parts: int) -> np.ndarray:
    """Where to cut the ink's columns into `parts` digits: at equal widths, each moved to the column of least
    ink within a sixth of the width around it."""
    width = column_ink.size
    reach = width // (6 * parts)
    cuts = []
    for k in range(1, parts):
        at = round(k * width / parts)
        lo, hi = max(1, at - reach), min(width - 1, at + reach)
        cuts.append(lo + int(np.argmin(column_ink[lo : hi + 1])) if hi >= lo else at)
    return np.array(cuts, dtype=int)


def half_mask(keep: str, shape: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """Which pixels of an image of `shape` (an MNIST digit by default) are known when one half is kept: bool,
    True = known."""
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    regions = {"top": np.s_[: height // 2, :], "bottom": np.s_[height // 2 :, :], "left": np.s_[:, : width // 2],
               "right": np.s_[:, width // 2 :]}
    if keep not in regions:
        raise ValueError(f"keep must be one of {', '.join(HALVES)}, got {keep!r}")
    mask[regions[keep]] = True
    return mask


def mask_from_image(path: str | Path, shape: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """A mask image of `shape` (H, W) → bool of that shape: white (grey level ≥ ½, opaque) is known, black unknown."""
    image = load_image(path, fit=None)
    if image.shape[:2] != tuple(shape):
        raise ValueError(f"{path}: a mask must be {shape[1]}×{shape[0]} pixels (the model's image), got "
                         f"{image.shape[1]}×{image.shape[0]}")
    values = unit_values(image)
    if values.ndim == 3:  # RGBA: transparent counts as black
        values = values[..., :3].mean(-1) * values[..., 3]
    return values >= 0.5

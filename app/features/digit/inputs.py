"""What "Your digit through the BFN" takes in: the sketchpad's drawing, which pixels a completion keeps, and the
choices of its events (a label, or "predicted" / "none"), each refused with a message that says what is wrong.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from gradio.utils import get_upload_folder, is_in_or_equal
from PIL import Image

from app.core.settings import echo
from app.features.digit.pad import MAX_LAYERS, Blobs
from bfn.digits import HALVES, INK_LEVEL, half_mask, load_image

# The sketchpad: a square canvas, and a round brush whose size Gradio takes as its radius (measured in Chromium: a
# stroke is 2 · BRUSH_RADIUS = 44 canvas pixels wide). `python -m training bayes-accuracy --drawing-like` draws
# test digits with the same two, so a change here is a change to measure again (docs/measurements.md).
CANVAS = 280
BRUSH_RADIUS = 22
STROKES = "strokes"  # keep the ink pixels of the digit itself
KEEPS = (*HALVES, STROKES)
KEEP_LABELS = {"top": "Top half", "bottom": "Bottom half", "left": "Left half", "right": "Right half", STROKES: "My strokes (the ink)"}
SOURCES = ("drawing", "generated")
PREDICTED = "predicted"  # the label choice that follows each model's own prediction
NONE = "none"  # completion towards no digit in particular
DRAWING_FORMATS = ("PNG", "JPEG", "WEBP")  # what a drawing may be: what browsers and phones make; nothing else is decoded


def parse_label_or(name: str, value: Any, num_labels: int, other: str) -> int | None:
    """A digit 0 … num_labels−1 (an int, or a string of ASCII digits), or `other` (→ None)."""
    if value == other:
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # not '٣': ASCII digits only
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_labels:
        raise ValueError(f"{name} must be a digit from 0 to {num_labels - 1} or {other!r}; got {echo(value)}")
    return value


def drawing_image(drawing: Any, blobs: Blobs | None = None) -> np.ndarray:
    """The drawing as an event receives it (`preprocess=False`) → an array `to_field` takes; ValueError naming
    what is wrong.

    Accepted: the sketchpad's value {"background", "layers", "composite"} with images: files an API caller
    uploaded, or what a browser uploaded ahead of the event under "id" (`pad.Blobs`), or arrays (callers in
    this process). The composite is read; without one, the layers over the background, so that a drawing sent
    only as a background (an uploaded picture) is read too. Every image is decoded bounded by pixels
    (`bfn.digits.load_image`) and only PNG, JPEG and WebP are decoded at all.
    """
    if isinstance(drawing, np.ndarray):
        return drawing
    if isinstance(drawing, dict) and blobs is not None and (uploaded := blobs.take(drawing.get("id"))) is not None:
        drawing = uploaded
    if drawing is not None and not isinstance(drawing, dict):
        raise ValueError(f"drawing must be the sketchpad's value, {{'background', 'layers', 'composite'}} with images; "
                         f"got {echo(drawing)}")
    drawing = drawing or {}
    composite = _part("drawing", drawing.get("composite"))
    if composite is not None:
        return composite
    layers = drawing.get("layers") or []
    if not isinstance(layers, list):
        raise ValueError(f"drawing layers must be a list of images; got {echo(layers)}")
    parts = [_part("drawing background", drawing.get("background"))]
    parts += [_part(f"drawing layer {k + 1}", layer) for k, layer in enumerate(layers[:MAX_LAYERS])]
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError("the drawing is empty: draw a digit on the sketchpad first (or take a generated one)")
    return parts[0] if len(parts) == 1 else _over(parts)


def _part(name: str, value: Any) -> np.ndarray | None:
    """One image of the drawing: None, an array, the bytes a browser uploaded, or a file an API caller uploaded."""
    if value is None or isinstance(value, np.ndarray):
        return value
    if isinstance(value, bytes):
        return load_image(io.BytesIO(value), name=name, formats=DRAWING_FORMATS)
    path = value.get("path") if isinstance(value, dict) else None
    if not isinstance(path, str):
        raise ValueError(f"{name} must be an uploaded image file ({{'path': …}} as the client uploads it); got {echo(value)}")
    if not is_in_or_equal(path, get_upload_folder()):  # Gradio checks uploads it knows as files; this checks them all
        raise ValueError(f"{name} must be a file uploaded to this app; got a path outside its uploads")
    return load_image(path, name=name, formats=DRAWING_FORMATS)


def _over(parts: list[np.ndarray]) -> np.ndarray:
    """Images of one size laid over the first in order (alpha compositing), as RGBA."""
    base = _rgba(parts[0])
    for part in parts[1:]:
        layer = _rgba(part)
        if layer.size != base.size:
            raise ValueError(f"drawing layers must be the size of the first image, {base.width}×{base.height}; got "
                             f"{layer.width}×{layer.height}")
        base = Image.alpha_composite(base, layer)
    return np.asarray(base)


def _rgba(array: np.ndarray) -> Image.Image:
    """An image as `bfn.digits.load_image` gives it (grey, 16-bit grey or RGBA) as RGBA."""
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    return Image.fromarray(array.astype(np.uint8)).convert("RGBA")


def known_mask(keep: str, digit: np.ndarray) -> np.ndarray:
    """Which pixels a completion keeps: a half, or the digit's ink (the strokes); refuses none and all."""
    mask = half_mask(keep, digit.shape) if keep in HALVES else digit >= INK_LEVEL
    if not mask.any():
        raise ValueError("the mask keeps no pixel: there is nothing to complete from (draw more ink, or keep a half)")
    if mask.all():
        raise ValueError("the mask keeps every pixel: there is nothing left to complete (keep a half instead)")
    return mask

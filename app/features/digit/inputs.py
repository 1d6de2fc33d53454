"""What "Your digit through the BFN" takes in: the sketchpad's drawing, which pixels a completion keeps, and the
choices of its events (a label, or "predicted" / "none"), each refused with a message that says what is wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.core.settings import echo
from bfn.digits import HALVES, INK_LEVEL, half_mask

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


def parse_label_or(name: str, value: Any, num_labels: int, other: str) -> int | None:
    """A digit 0 … num_labels−1 (int or numeric string), or `other` (→ None)."""
    if value == other:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_labels:
        raise ValueError(f"{name} must be a digit from 0 to {num_labels - 1} or {other!r}; got {echo(value)}")
    return value


def drawing_image(drawing: Any) -> np.ndarray:
    """The sketchpad's value (its preprocessed dict, or an image array) → the drawing as an array `to_field` takes."""
    if isinstance(drawing, dict):
        image = drawing.get("composite")
        if image is None and drawing.get("layers"):
            image = drawing["layers"][0]
        drawing = image
    if drawing is None:
        raise ValueError("the drawing is empty: draw a digit on the sketchpad first (or take a generated one)")
    if not isinstance(drawing, np.ndarray):
        raise ValueError(f"the drawing must be an image; got {type(drawing).__name__}")
    return drawing


def known_mask(keep: str, digit: np.ndarray) -> np.ndarray:
    """Which pixels a completion keeps: a half, or the digit's ink (the strokes); refuses none and all."""
    mask = half_mask(keep, digit.shape) if keep in HALVES else digit >= INK_LEVEL
    if not mask.any():
        raise ValueError("the mask keeps no pixel: there is nothing to complete from (draw more ink, or keep a half)")
    if mask.all():
        raise ValueError("the mask keeps every pixel: there is nothing left to complete (keep a half instead)")
    return mask

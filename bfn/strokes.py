"""A digit redrawn as a person would draw it: its strokes' centre lines traced again with a round brush.

A digit drawn on a sketchpad differs from an MNIST digit in more than its size: its strokes have the brush's
width everywhere, with hard edges, where MNIST's pen strokes vary and fade. To measure what a model makes of
drawings without collecting any, `as_drawn` turns a real digit into such a drawing: the digit is scaled up to
the canvas (so that its 20-pixel box fills the canvas as it fills MNIST's 28×28 field), reduced to its
strokes' centre lines (`thin`: Zhang–Suen thinning), and those are traced with a round brush of the given
radius (`redraw`: every point within the radius of a centre line is ink, as a sketchpad stamps a disc at
each point of the pointer's path). `bfn.digits.to_mnist` then treats it as it treats a drawing.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bfn.digits import unit_values

INK = 0.5  # what counts as the stroke when the digit is scaled up: at least half its brightest ink


def _neighbours(mask: np.ndarray) -> list[np.ndarray]:
    """The eight neighbours of every pixel, clockwise from north (P2 … P9 of Zhang & Suen), outside the image 0."""
    p = np.pad(mask, 1).astype(np.uint8)
    h, w = mask.shape
    offsets = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
    return [p[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] for dr, dc in offsets]


def thin(mask: np.ndarray) -> np.ndarray:
    """The centre lines of the shapes of a bool mask, one pixel wide and connected as the shapes are
    (Zhang & Suen 1984, "A fast parallel algorithm for thinning digital patterns"): each pass peels, in two
    sub-passes, the boundary pixels whose removal breaks no connection and shortens no line end."""
    skeleton = np.asarray(mask, dtype=bool).copy()
    while True:
        changed = False
        for step in (0, 1):
            n = _neighbours(skeleton)
            count = sum(n)
            transitions = sum(((n[k] == 0) & (n[(k + 1) % 8] == 1)).astype(np.uint8) for k in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if step == 0:
                spare = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                spare = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            peel = skeleton & (count >= 2) & (count <= 6) & (transitions == 1) & spare
            if peel.any():
                skeleton &= ~peel
                changed = True
        if not changed:
            return skeleton


def redraw(lines: np.ndarray, radius: float) -> np.ndarray:
    """Ink in [0, 1] (float32, the shape of `lines`): a round brush of `radius` pixels traced along every pixel of
    the bool mask `lines`. Anti-aliased by a one-pixel ramp at the edge, so a straight line becomes a stroke
    2·radius pixels wide (in ink summed across it)."""
    h, w = lines.shape
    reach = int(np.ceil(radius + 0.5))
    dr, dc = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    disc = np.clip(radius + 0.5 - np.hypot(dr, dc), 0, 1).astype(np.float32)  # a stamp's ink around its centre
    canvas = np.zeros((h + 2 * reach, w + 2 * reach), dtype=np.float32)
    size = 2 * reach + 1
    for r, c in zip(*np.nonzero(lines)):
        window = canvas[r : r + size, c : c + size]
        np.maximum(window, disc, out=window)
    return canvas[reach : reach + h, reach : reach + w]


def as_drawn(digit: np.ndarray, canvas: int, brush_radius: float) -> np.ndarray:
    """A digit (H, W; uint8, or float in [0, 1]; bright ink on dark) → the same digit as drawn on a square
    sketchpad of `canvas` pixels with a round brush of `brush_radius` pixels: ink in [0, 1] (canvas, canvas),
    bright on dark, ready for `bfn.digits.to_mnist`. A blank image stays blank."""
    values = unit_values(digit)
    if values.ndim != 2:
        raise ValueError(f"a digit must be a grey (H, W) image, got shape {values.shape}")
    if canvas < 1 or brush_radius <= 0:
        raise ValueError(f"the canvas must be at least 1 pixel and the brush radius above 0, got {canvas} and {brush_radius}")
    large = np.asarray(Image.fromarray(values, mode="F").resize((canvas, canvas), Image.BILINEAR))
    return redraw(thin((large >= INK * large.max()) & (large > 0)), brush_radius)

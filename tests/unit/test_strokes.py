"""A digit redrawn as a sketchpad draws it (`bfn.strokes`): centre lines one pixel wide, strokes of the brush's width,
and a digit that stays the digit it was (the shipped classifier still reads it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bfn.classifier import load_classifier
from bfn.digits import to_mnist
from bfn.hub import load_model
from bfn.images import to_uint8
from bfn.sampling import sample
from bfn.strokes import as_drawn, redraw, thin

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "weights"


def bar(height: int = 200, width: int = 200, thickness: int = 40) -> np.ndarray:
    """A thick horizontal bar across the middle of a blank image."""
    mask = np.zeros((height, width), dtype=bool)
    top = (height - thickness) // 2
    mask[top : top + thickness, 20 : width - 20] = True
    return mask


def test_thinning_leaves_a_connected_line_one_pixel_wide() -> None:
    lines = thin(bar())
    columns = lines[:, 60:140].sum(0)
    assert (columns == 1).all(), columns  # one pixel wide along the bar
    rows = np.nonzero(lines[:, 60:140])[0]
    assert np.ptp(rows) <= 1 and abs(rows.mean() - 100) <= 1  # straight, along the middle
    assert lines.sum() < bar().sum() / 30  # a line, not a shape


@pytest.mark.parametrize("radius", [3, 11, 22])
def test_a_line_is_redrawn_as_a_stroke_twice_the_brush_radius_wide(radius: int) -> None:
    lines = np.zeros((120, 120), dtype=bool)
    lines[60, 10:110] = True
    ink = redraw(lines, radius)
    assert ink.dtype == np.float32 and 0 <= ink.min() and ink.max() == 1
    across = ink[:, 60]
    assert across.sum() == pytest.approx(2 * radius, abs=0.05)  # the stroke's width in ink
    assert (across > 0).sum() <= 2 * radius + 2  # and no ink beyond it


@pytest.mark.parametrize("radius", [8, 22])
def test_a_drawn_digit_has_strokes_of_the_brush_width_whatever_its_own(radius: int) -> None:
    """A thick bar and a thin one, scaled to the canvas, both come back as strokes 2·radius wide."""
    for thickness in (3, 7):
        digit = np.zeros((28, 28), dtype=np.uint8)
        digit[14 - thickness // 2 : 14 - thickness // 2 + thickness, 4:24] = 255
        drawn = as_drawn(digit, 280, radius)
        assert drawn.shape == (280, 280)
        assert drawn[:, 130:150].sum(0) == pytest.approx(2 * radius, abs=0.5), thickness


def test_a_blank_image_stays_blank_and_bad_arguments_are_refused() -> None:
    assert not as_drawn(np.zeros((28, 28), dtype=np.uint8), 280, 22).any()
    with pytest.raises(ValueError, match="brush radius"):
        as_drawn(np.zeros((28, 28), dtype=np.uint8), 280, 0)
    with pytest.raises(ValueError, match="grey"):
        as_drawn(np.zeros((28, 28, 3), dtype=np.uint8), 280, 22)


def fixture_digits() -> tuple[np.ndarray, np.ndarray]:
    """Ten digits 0–9 (uint8): the shipped continuous model's samples, or MNIST's first test digits where the data is
    on this machine (BFN_DATA_DIR, else ../shared/data)."""
    data = Path(os.environ.get("BFN_DATA_DIR", ROOT.parent / "shared" / "data"))
    if (data / "MNIST" / "raw").is_dir():
        from training.data import test_split

        split = test_split(data).subset(slice(0, 40))
        return split.images.numpy(), split.labels.numpy()
    labels = list(range(10))
    out = sample(load_model(WEIGHTS / "continuous"), labels, sampler="solver", steps=20, guidance=2.0, seed=0).output
    return to_uint8(out.reshape(len(labels), 28, 28), (-1.0, 1.0)), np.array(labels)


def test_the_classifier_still_reads_drawn_digits() -> None:
    """Redrawn with the app's brush (radius 22 on 280 px) and made MNIST-like again, most digits stay readable."""
    classifier = load_classifier(WEIGHTS / "classifier")
    images, labels = fixture_digits()

    def reads(batch: np.ndarray) -> float:
        return float((classifier.probabilities(torch.from_numpy(batch).float() / 255).argmax(1).numpy() == labels).mean())

    drawn = to_uint8(np.stack([to_mnist(as_drawn(image, 280, 22)) for image in images]))
    assert reads(images) >= 0.9
    assert reads(drawn) >= 0.8
    assert np.abs(drawn.astype(int) - images).mean() > 10  # and they did change: drawn, not copied

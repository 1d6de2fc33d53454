"""Drawings become MNIST digits the way MNIST was made, whatever convention they come in; masks for halves and
from images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bfn.digits import BOX, CENTRE, HALVES, SIZE, half_mask, ink, load_image, mask_from_image, to_mnist


def stroke_drawing() -> np.ndarray:
    """An oversized, off-centre "7": bright ink (uint8) on dark, in the drawing's top-left corner."""
    canvas = np.zeros((500, 300), dtype=np.uint8)
    canvas[20:50, 10:200] = 255  # the bar
    for row in range(50, 400):  # the slanted stem
        col = 200 - (row - 50) // 3
        canvas[row, col - 15 : col + 15] = 255
    return canvas


def small_drawing() -> np.ndarray:
    """A 60×40 bright-on-dark drawing that touches no edge: a ring and a tail."""
    canvas = np.zeros((60, 40), dtype=np.uint8)
    canvas[10:14, 8:30] = canvas[26:30, 8:30] = 255
    canvas[10:30, 8:12] = canvas[10:50, 26:30] = 255
    return canvas


def centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    rows, cols = np.mgrid[:SIZE, :SIZE]
    return float((digit * rows).sum() / digit.sum()), float((digit * cols).sum() / digit.sum())


def bounding_box(digit: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(digit > 0)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def test_an_off_centre_oversized_drawing_lands_centred_with_its_box_scaled_to_20() -> None:
    """MNIST's convention (every test digit's centre of mass lies within half a pixel of (14, 14)) and its 20 px box."""
    digit = to_mnist(stroke_drawing())
    assert digit.shape == (SIZE, SIZE) and digit.dtype == np.float32 and 0 <= digit.min() and digit.max() <= 1
    row, col = centre_of_mass(digit)
    assert abs(row - CENTRE[0]) <= 0.5 and abs(col - CENTRE[1]) <= 0.5
    height, width = bounding_box(digit)
    assert height == BOX and width < BOX  # the long side is 20, and the aspect ratio is kept
    assert width == pytest.approx(BOX * 190 / 380, abs=1.5)


def test_a_small_wide_drawing_is_scaled_up_with_its_aspect_ratio_kept() -> None:
    canvas = np.zeros((12, 16), dtype=np.uint8)
    canvas[5:7, 2:14] = 255  # 12 wide, 2 tall
    digit = to_mnist(canvas)
    height, width = bounding_box(digit)
    assert width == BOX and height in (3, 4, 5)  # 20 · 2/12 ≈ 3.3, and Lanczos spreads a pixel's edge
    row, col = centre_of_mass(digit)
    assert abs(row - CENTRE[0]) <= 0.5 and abs(col - CENTRE[1]) <= 0.5


def sketchpad_conventions(bright: np.ndarray) -> dict[str, np.ndarray]:
    """One drawing in every accepted convention."""
    on = bright > 127
    rgba_transparent = np.zeros((*bright.shape, 4), dtype=np.uint8)
    rgba_transparent[on] = (0, 0, 0, 255)  # black strokes on a transparent canvas
    rgba_white = np.full((*bright.shape, 4), 255, dtype=np.uint8)
    rgba_white[on, :3] = 0  # flattened onto an opaque white canvas: alpha is 255 everywhere
    return {
        "bright on dark, uint8": bright,
        "bright on dark, float": bright.astype(np.float32) / 255,
        "bright on dark, bool": on,
        "dark on white": 255 - bright,
        "dark on white, RGB": np.repeat((255 - bright)[..., None], 3, axis=2),
        "black strokes, transparent canvas": rgba_transparent,
        "white strokes, transparent canvas": np.where(on[..., None], 255, 0).astype(np.uint8).repeat(4, axis=2),
        "black strokes, opaque white RGBA": rgba_white,
        "dark on grey paper": (200 - bright.astype(np.int64) * 200 // 255).astype(np.uint8),
        "16-bit": bright.astype(np.uint16) * 257,
    }


@pytest.mark.parametrize("convention", list(sketchpad_conventions(small_drawing())))
def test_every_accepted_convention_gives_the_same_ink(convention: str) -> None:
    bright = small_drawing()
    expected = (bright > 127).astype(np.float32)
    np.testing.assert_allclose(ink(sketchpad_conventions(bright)[convention]), expected, atol=1 / 255)


def test_conventions_give_the_same_digit() -> None:
    digits = [to_mnist(d) for d in sketchpad_conventions(stroke_drawing()).values()]
    for digit in digits[1:]:
        np.testing.assert_allclose(digit, digits[0], atol=0.02)


def test_an_mnist_digit_passes_through_unchanged() -> None:
    """A digit already in MNIST's form (box 20 px long, centre of mass at the centre) is left as it is."""
    digit = np.zeros((SIZE, SIZE), dtype=np.float32)
    digit[4:24, 11:17] = 1.0
    digit[18:24, 17:19] = 0.5  # a foot, so that the centre of mass is not on a half-pixel boundary
    row, col = centre_of_mass(digit)
    assert abs(row - CENTRE[0]) < 0.5 and abs(col - CENTRE[1]) < 0.5
    np.testing.assert_allclose(to_mnist(digit), digit, atol=1e-6)


@pytest.mark.parametrize(
    "drawing",
    [
        np.zeros((40, 30), dtype=np.uint8),
        np.full((40, 30), 255, dtype=np.uint8),
        np.zeros((40, 30, 4), dtype=np.uint8),  # a transparent canvas with nothing on it
        np.full((40, 30), 0.03, dtype=np.float32),  # below the ink level
    ],
    ids=["black", "white", "transparent", "faint"],
)
def test_an_empty_drawing_is_a_clear_error(drawing: np.ndarray) -> None:
    with pytest.raises(ValueError, match="the drawing is empty"):
        to_mnist(drawing)


@pytest.mark.parametrize(
    "drawing, reason",
    [
        (np.zeros((4, 4, 5), dtype=np.uint8), "a drawing must be"),
        (np.zeros((2, 4, 4, 1), dtype=np.uint8), "a drawing must be"),
        (np.full((4, 4), 2.0), r"values in \[0, 1\]"),
        (np.zeros((4, 4), dtype=np.int64), "dtype int64"),
    ],
)
def test_unusable_arrays_are_refused(drawing: np.ndarray, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        to_mnist(drawing)


def test_images_load_in_a_convention_ink_accepts(tmp_path: Path) -> None:
    bright = small_drawing()
    Image.fromarray(255 - bright).save(tmp_path / "grey.png")
    conventions = sketchpad_conventions(bright)
    Image.fromarray(conventions["black strokes, transparent canvas"], mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(conventions["dark on white, RGB"], mode="RGB").save(tmp_path / "rgb.png")
    for name in ("grey.png", "rgba.png", "rgb.png"):
        np.testing.assert_allclose(ink(load_image(tmp_path / name)), bright > 127, atol=1 / 255)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(tmp_path / "bad.png")


@pytest.mark.parametrize("keep", HALVES)
def test_half_masks_keep_one_half(keep: str) -> None:
    mask = half_mask(keep)
    assert mask.shape == (SIZE, SIZE) and mask.dtype == bool and mask.sum() == SIZE * SIZE // 2
    corner = {"top": (0, 27), "bottom": (27, 0), "left": (27, 0), "right": (0, 27)}[keep]
    assert mask[corner]
    assert (mask | {"top": half_mask("bottom"), "bottom": half_mask("top"), "left": half_mask("right"),
                    "right": half_mask("left")}[keep]).all()
    with pytest.raises(ValueError, match="keep must be one of"):
        half_mask("middle")


def test_a_mask_image_is_white_where_known(tmp_path: Path) -> None:
    pixels = np.zeros((SIZE, SIZE), dtype=np.uint8)
    pixels[3:10, 5:20] = 255
    Image.fromarray(pixels).save(tmp_path / "mask.png")
    np.testing.assert_array_equal(mask_from_image(tmp_path / "mask.png"), pixels == 255)
    Image.fromarray(np.zeros((27, 28), dtype=np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match="a mask must be 28×28"):
        mask_from_image(tmp_path / "small.png")

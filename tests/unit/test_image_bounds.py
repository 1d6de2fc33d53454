"""Input images are bounded by pixels before they are decoded (`bfn.digits.open_image`, `load_image`): a pixel bomb
is refused from its header, a large image is reduced to a working size right after decoding, and whatever is
not an image says so in one line."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bfn.cli.score import read_png
from bfn.digits import MAX_IMAGE_PIXELS, WORKING_SIDE, ink, load_image, mask_from_image, open_image, to_mnist


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


BOMB = png(Image.new("1", (12000, 12000)))  # 144 M one-bit pixels in a few tens of KB


def test_a_pixel_bomb_is_refused_from_its_header_before_any_pixel_is_decoded(tmp_path: Path, monkeypatch) -> None:
    assert len(BOMB) < 100_000
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size))
    started = time.perf_counter()
    for source in (io.BytesIO(BOMB), (tmp_path / "bomb.png")):
        if isinstance(source, Path):
            source.write_bytes(BOMB)
        with pytest.raises(ValueError, match=r"may have at most 2048×2048 \(4,194,304\) pixels; got 12000×12000"):
            load_image(source, name="drawing")
    with pytest.raises(ValueError, match="got 12000×12000"):
        mask_from_image(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match="got 12000×12000"):
        read_png(tmp_path / "bomb.png", (28, 28))  # `python -m bfn.cli.score`
    assert decoded == [] and time.perf_counter() - started < 2


def test_one_pixel_over_the_limit_is_refused_and_the_limit_itself_is_decoded() -> None:
    with pytest.raises(ValueError, match="got 2049×2048"):
        load_image(io.BytesIO(png(Image.new("L", (2049, 2048)))))
    assert load_image(io.BytesIO(png(Image.new("L", (2048, 2048)))), fit=None).shape == (2048, 2048)
    assert MAX_IMAGE_PIXELS == 2048 * 2048


def test_a_large_drawing_is_reduced_to_the_working_size_and_keeps_its_digit() -> None:
    """A 2000×1600 drawing becomes at most WORKING_SIDE pixels a side before any float conversion, and the
    MNIST digit made of it is the one made of the same drawing at a small size."""
    canvas = Image.new("RGBA", (2000, 1600), (0, 0, 0, 0))
    small = Image.new("RGBA", (250, 200), (0, 0, 0, 0))
    for image, scale in ((canvas, 8), (small, 1)):  # the same black bar, at 8× and at 1×
        ImageDraw.Draw(image).rectangle([100 * scale, 40 * scale, 130 * scale - 1, 160 * scale - 1], fill=(0, 0, 0, 255))
    big = load_image(io.BytesIO(png(canvas)))
    assert max(big.shape[:2]) == WORKING_SIDE and big.shape[2] == 4 and big.dtype == np.uint8
    np.testing.assert_allclose(to_mnist(big), to_mnist(load_image(io.BytesIO(png(small)))), atol=0.25)
    assert ink(big).max() == 1.0


def test_a_jpeg_is_decoded_at_a_reduced_scale_so_a_photo_over_the_limit_passes() -> None:
    """A 4032×3024 photo (12 MP, three times the limit) is decoded at a quarter of each side (`Image.draft`)."""
    buffer = io.BytesIO()
    Image.new("RGB", (4032, 3024), "white").save(buffer, "JPEG")
    with open_image(io.BytesIO(buffer.getvalue()), fit=WORKING_SIDE) as img:
        assert img.size[0] * img.size[1] <= MAX_IMAGE_PIXELS
    photo = load_image(io.BytesIO(buffer.getvalue()))
    assert max(photo.shape) == WORKING_SIDE and photo.ndim == 2
    with pytest.raises(ValueError, match="got 4032×3024"):
        load_image(io.BytesIO(buffer.getvalue()), fit=None)  # not reduced: then it counts whole


def test_sixteen_bit_grey_keeps_its_depth_when_reduced() -> None:
    deep = Image.fromarray(np.full((1024, 600), 40000, dtype=np.uint16))
    loaded = load_image(io.BytesIO(png(deep)))
    assert loaded.dtype == np.uint16 and loaded.shape == (WORKING_SIDE, 300) and int(loaded.max()) == 40000


@pytest.mark.parametrize(
    "content, formats, message",
    [
        (b"hello world", None, "drawing must be an image Pillow reads; got a file that is not a readable image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>", ("PNG",), "must be a PNG image; got a file that is not"),
        (png(Image.new("L", (280, 280), 255))[:120], None, "got one that cannot be decoded (image file is truncated"),
        (png(Image.new("L", (28, 28))), ("JPEG", "WEBP"), "drawing must be a JPEG or WEBP image"),
    ],
)
def test_what_is_not_a_usable_image_is_told_in_one_line(content: bytes, formats, message: str) -> None:
    with pytest.raises(ValueError) as error:
        load_image(io.BytesIO(content), name="drawing", formats=formats)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_pillows_own_bomb_limit_is_told_in_the_same_words(monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses above twice this as it opens
    with pytest.raises(ValueError, match=r"drawing may have at most 2048×2048 \(4,194,304\) pixels; got far more"):
        load_image(io.BytesIO(png(Image.new("L", (100, 100)))), name="drawing")

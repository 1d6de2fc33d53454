"""The generation's exports: the run as an animated GIF, and its final grid as a PNG, enlarged and labelled here
(the live images are enlarged by the browser instead, `app.ui.images`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.core.frames import Frames
from app.ui.figures import clamp, shared_time
from app.ui.images import image_grid

_FONT_CACHE: dict[int, ImageFont.ImageFont] = {}


def _font(size: int) -> ImageFont.ImageFont:
    if size not in _FONT_CACHE:
        try:
            _FONT_CACHE[size] = ImageFont.load_default(size=size)
        except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
            _FONT_CACHE[size] = ImageFont.load_default()
    return _FONT_CACHE[size]


def _labelled_rows(rows: Sequence[tuple[str, np.ndarray]], caption: str | None, scale: int) -> np.ndarray:
    """Stack (label, uint8 picture) rows under an optional caption into one picture with text drawn in."""
    gap, text_h = 6 * scale // 2 + 4, 18
    width = max(img.shape[1] for _, img in rows) + 2 * gap
    height = (text_h + gap if caption else gap) + sum(text_h + img.shape[0] + gap for _, img in rows)
    canvas = Image.new("L", (width, height), 24)
    draw = ImageDraw.Draw(canvas)
    y = gap // 2
    if caption:
        draw.text((gap, y), caption, fill=235, font=_font(14))
        y += text_h + gap // 2
    for label, img in rows:
        draw.text((gap, y), label, fill=200, font=_font(13))
        y += text_h
        canvas.paste(Image.fromarray(img, mode="L"), (gap, y))
        y += img.shape[0] + gap
    return np.asarray(canvas)


def step_picture(frames_by_model: Mapping[str, Frames], step: int, scale: int = 2) -> np.ndarray:
    """One animation frame: per model, θ and the output distribution side by side, with labels."""
    rows = []
    t = shared_time(frames_by_model, step)  # None: the models' samplers reach this step at different times
    for fr in frames_by_model.values():
        s = clamp(step, fr)
        theta = image_grid(fr.theta[s], fr.value_range, scale)
        out = image_grid(fr.output[s], fr.value_range, scale)
        spacer = np.full((theta.shape[0], 4 * scale), 24, np.uint8)
        own = "" if t is not None else f"   t = {float(fr.t[s]):.3f}"
        rows.append((f"{fr.title}: input distribution | output distribution{own}", np.concatenate([theta, spacer, out], axis=1)))
    any_fr = next(iter(frames_by_model.values()))
    caption = f"step {clamp(step, any_fr)} / {any_fr.num_steps}" + ("" if t is None else f"   t = {t:.3f}")
    return _labelled_rows(rows, caption, scale)


def gif_steps(count: int, max_frames: int = 60) -> list[int]:
    """Evenly spaced steps 0 … count−1 (always the first and the last), at most `max_frames` of them."""
    if count <= 0:
        return []
    return sorted({round(x) for x in np.linspace(0, count - 1, min(count, max_frames))})


GIF_LEVELS = 16  # grey levels in the GIF: 4-bit codes make a much smaller file than 256 levels, and look the same


def animation_gif(frames_by_model: Mapping[str, Frames], max_frames: int = 60, frame_ms: int = 80, hold_ms: int = 1500) -> bytes:
    """The run as an animated GIF (looping; the last frame is held), up to the last recorded step.

    At most `max_frames` evenly spaced steps, so a long run makes a file no larger than a short one.
    """
    count = min(fr.count for fr in frames_by_model.values())
    steps = gif_steps(count, max_frames)
    if not steps:
        raise ValueError("nothing to export yet: no step has been recorded")
    palette = [round(v * 255 / (GIF_LEVELS - 1)) for v in range(GIF_LEVELS) for _ in range(3)]
    pictures = []
    for s in steps:
        levels = np.rint(step_picture(frames_by_model, s).astype(np.float32) * ((GIF_LEVELS - 1) / 255)).astype(np.uint8)
        picture = Image.fromarray(levels, mode="P")
        picture.putpalette(palette)
        pictures.append(picture)
    buf = io.BytesIO()
    durations = [frame_ms] * (len(pictures) - 1) + [hold_ms]
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0, optimize=True)
    return buf.getvalue()


def final_picture(frames_by_model: Mapping[str, Frames], scale: int = 4) -> np.ndarray:
    """Per model, labelled: the last output distribution (what the screen shows), then the final sample drawn
    from it, if the run got that far.

    The two differ where a sample is a draw rather than the distribution's mean (binarised pixels are on or off,
    so the sample looks jaggier than the greys on screen); both are given, each saying which it is.
    """
    rows = []
    for fr in frames_by_model.values():
        last = max(fr.latest, 0)
        shown = f"output distribution at step {last}, as on screen" + ("" if fr.finished else " (stopped)")
        rows.append((f"{fr.title}: {shown}", image_grid(fr.output[last], fr.value_range, scale)))
        if fr.sample is not None:
            rows.append((f"{fr.title}: the final sample, drawn from it", image_grid(fr.sample, fr.value_range, scale)))
    return _labelled_rows(rows, None, scale)


def png_bytes(picture: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG", optimize=True)
    return buf.getvalue()

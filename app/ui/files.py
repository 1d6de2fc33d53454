"""Files the app serves, never rewritten while a response may be reading them.

Gradio caches an image output as a PNG file named by a hash of its bytes, so identical frames of different
sessions (the same settings and seed) share one file; it writes that file in place (`Path.write_bytes`, which
truncates first), and a response streaming the file for another session then sends fewer bytes than it
declared (h11's "Too little data for declared Content-Length": a torn or empty image). Here every file is
written under a temporary name in its folder and renamed into place (`os.replace`, atomic on POSIX): a reader
has the old file or the new one, whole, and files named by their content have the same bytes either way.
`AtomicImage` is `gr.Image` with its outputs cached that way; exports use `write_atomically` too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from gradio.processing_utils import encode_pil_to_bytes
from PIL import Image

RETRIES = 3  # the cache sweeper may remove a hash's folder between its mkdir and the write into it


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` under a temporary name in its folder, then rename it into place."""
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def cache_file(data: bytes, name: str, cache_dir: str | Path) -> str:
    """`data` as the file `name` in a folder of `cache_dir` named by its hash (as Gradio names cached files),
    written atomically; → its path."""
    path = Path(cache_dir) / hashlib.sha256(data).hexdigest() / name
    for attempt in range(RETRIES):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_atomically(path, data)
            break
        except FileNotFoundError:  # the folder went meanwhile (`app.server.CacheSweeper`): make it again
            if attempt == RETRIES - 1:
                raise
    return str(path.resolve())


class AtomicImage(gr.Image):
    """`gr.Image` (the same component in the browser) whose array outputs are cached as PNG files written once
    and renamed into place (`cache_file`), never rewritten while another response streams them."""

    def get_block_name(self) -> str:
        return "image"

    def postprocess(self, value: Any) -> ImageData | None:
        plain = isinstance(value, np.ndarray) and value.dtype == np.uint8 and self.format == "png"
        if not plain or getattr(self.watermark, "watermark", None) is not None:  # Gradio's conversions, as before
            return super().postprocess(value)
        data = encode_pil_to_bytes(Image.fromarray(value), "png")
        path = cache_file(data, "image.png", self.GRADIO_CACHE)
        return ImageData(path=path, orig_name="image.png")

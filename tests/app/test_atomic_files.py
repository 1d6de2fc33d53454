"""Files the app serves are never rewritten in place (`app.ui.files`): identical frames of different sessions share
one cached file, and a reader streaming it while another session caches it again gets every byte."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.ui import files
from app.ui.files import AtomicImage, cache_file, write_atomically


def test_an_image_cached_again_is_never_torn_for_a_reader(tmp_path, monkeypatch):
    """Two sessions cache the same frame over and over while a third reads it: every read is the whole file.
    (Gradio's own `gr.Image` truncates and rewrites it: most such reads came back empty.)"""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    image = AtomicImage(type="numpy", format="png")
    frame = (np.random.default_rng(0).random((62, 152)) * 255).astype(np.uint8)
    path = image.postprocess(frame).path
    size, stop, reads, torn = os.path.getsize(path), threading.Event(), [0], []

    def cache_again() -> None:
        while not stop.is_set():
            assert image.postprocess(frame).path == path  # named by its content: the same file every time

    def read() -> None:
        while not stop.is_set():
            with open(path, "rb") as f:
                data = f.read()
            reads[0] += 1
            if len(data) != size:
                torn.append(len(data))

    threads = [threading.Thread(target=cache_again) for _ in range(2)] + [threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert reads[0] > 50 and torn == [], f"{len(torn)} of {reads[0]} reads torn"
    assert sorted(p.name for p in Path(path).parent.iterdir()) == ["image.png"]  # no staging file left behind


def test_other_values_are_cached_as_gradio_caches_them(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    image = AtomicImage(type="numpy", format="png")
    assert image.postprocess(None) is None
    floats = image.postprocess(np.full((4, 4), 0.5))  # not uint8: Gradio's conversion, as before
    assert Path(floats.path).is_file()
    assert AtomicImage().get_block_name() == "image"


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "export.png"
    write_atomically(path, b"first")
    write_atomically(path, b"second")
    assert path.read_bytes() == b"second" and os.listdir(tmp_path) == ["export.png"]

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, b"third")
    assert path.read_bytes() == b"second" and os.listdir(tmp_path) == ["export.png"]  # the old one, and no litter


def test_a_cache_folder_swept_away_meanwhile_is_made_again(tmp_path, monkeypatch):
    """The cache sweeper removes an emptied hash folder: a write racing it makes the folder again."""
    real, calls = files.write_atomically, []

    def swept_once(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 1:
            path.parent.rmdir()
        real(path, data)

    monkeypatch.setattr(files, "write_atomically", swept_once)
    path = cache_file(b"png bytes", "image.png", tmp_path)
    assert Path(path).read_bytes() == b"png bytes" and len(calls) == 2

"""The app for the tests: tiny models as a weights folder, the app served in this process, its handlers on a
context of their own, and what a browser or an API caller would send."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from app.core.models import ModelBank, load_models
from app.server import Server
from app.ui.context import Context
from bfn.model import BFNModel
from tools.serving import free_port

FAST = {"stream_interval": 0.05, "plot_interval": 0.2}  # a served app's streams, faster than a user's


def save_weights(folder: Path, models: Mapping[str, BFNModel], guidance: float | None = None) -> Path:
    """`models` saved as `python -m app --weights folder` takes them (one sub-folder each); `guidance` replaces
    the recommended guidance in their configs (the page's sliders start from it)."""
    for name, model in models.items():
        model.save_pretrained(folder / name)
        if guidance is not None:
            config = json.loads((folder / name / "config.json").read_text())
            config["sampling"]["guidance"] = guidance
            (folder / name / "config.json").write_text(json.dumps(config))
    return folder


@contextmanager
def served(bank: ModelBank, **options: Any) -> Iterator[tuple[str, Server]]:
    """The app for `bank` as `python -m app` serves it (`app.server.Server`), in this process, on a free port;
    → (its URL, the server)."""
    port = free_port()
    with Server(bank, **{**FAST, **options}) as server:
        server.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        server.trimmer.stop()  # the tests measure this process's memory (tests/app/test_app_server.py): no trims behind their back
        yield f"http://127.0.0.1:{port}/", server


def context(models: Mapping[str, BFNModel], **options: Any) -> Context:
    """A context for handlers under test: `models` (and `options`: a classifier, stream pacing) in a bank."""
    classifier = options.pop("classifier", None)
    return Context(ModelBank(models=dict(models), classifier=classifier), **options)


def request(session: str, **fields: Any) -> SimpleNamespace:
    """What Gradio passes a handler as its request: the session, and any other field (the query)."""
    return SimpleNamespace(session_hash=session, **fields)


def stroke_drawing(size: int = 280) -> dict:
    """A sketchpad value: a black, slightly slanted "1" on a transparent canvas, as the browser's RGBA composite."""
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line([(0.55 * size, 0.2 * size), (0.45 * size, 0.8 * size)], fill=(0, 0, 0, 255), width=size // 12)
    array = np.asarray(canvas)
    return {"background": None, "layers": [array], "composite": array}


def grey(file_data: dict) -> np.ndarray:
    """An image an API caller received, as grey levels."""
    return np.asarray(Image.open(file_data["path"]).convert("L"))


MIXED = ("discrete", "continuous", "two-digit", "animals")  # MNIST's two models, then other labels and sizes


@contextmanager
def served_mixed(folder: Path, models: Mapping[str, BFNModel]) -> Iterator[tuple[str, Server]]:
    """The app over a weights folder with the shipped layout and a third and fourth model folder (`MIXED`: a
    two-digit model and one whose labels are names), served in this process."""
    bank = load_models([str(save_weights(folder, {name: models[name] for name in MIXED}))])
    assert bank.menu.names == MIXED
    with served(bank) as serving:
        yield serving

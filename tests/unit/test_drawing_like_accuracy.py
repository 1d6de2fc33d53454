"""`python -m training typical-bounds` and `python -m training bayes-accuracy --drawing-like` on the tiny MNIST fixture:
the bounds of test images written beside the model and read back, and Bayes' rule on digits redrawn as a
sketchpad draws them, with how often the far-from-the-data warning fires."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bfn import typicality
from bfn.hub import load_model
from bfn.model import BFNModel
from tests.support.mnist import write_mnist
from bfn.strokes import as_drawn
from training import bayes_accuracy
from training.__main__ import main as training_main
from training.bayes_accuracy import drawing_like
from training.data import test_split as mnist_test_split

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def measured(discrete_model: BFNModel, tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[Path, Path]:
    """(a tiny model folder with its typical bounds, written by the command, whose output `capsys` holds; the fixture's
    data folder)."""
    folder, root = tmp_path / "model", write_mnist(tmp_path / "data", train=10, test=12)
    discrete_model.save_pretrained(folder)
    assert training_main(["typical-bounds", "--model", str(folder), "--data-dir", str(root), "--first", "4", "--every", "1", "--limit", "8",
                          "--samples", "2", "--write"]) == 0
    return folder, root


def test_typical_bounds_are_written_beside_the_weights_and_loaded_with_them(measured, capsys) -> None:
    folder, _ = measured
    out = capsys.readouterr().out.splitlines()
    printed = json.loads(out[0])
    assert out[1] == f"wrote {folder / typicality.FILE}"
    reference = load_model(folder).typical_bounds
    assert reference is not None and reference.to_dict() == printed
    assert reference.images == 8 and reference.samples == 2 and reference.unit == "nats/image"
    assert reference.data == "mnist test images 4–11"
    assert "--first 4 --every 1 --limit 8 --samples 2" in reference.command
    assert reference.threshold(50) <= reference.threshold() <= reference.threshold(99.9)


def test_bayes_accuracy_on_drawing_like_digits_says_how_often_the_warning_fires(measured, capsys, monkeypatch) -> None:
    folder, root = measured
    capsys.readouterr()
    drawn = []
    monkeypatch.setattr(bayes_accuracy, "as_drawn", lambda *a: drawn.append(a[1:]) or as_drawn(*a))
    assert training_main(["bayes-accuracy", "--model", str(folder), "--data-dir", str(root), "--limit", "4", "--samples", "1",
                          "--drawing-like", "--canvas", "84", "--brush-radius", "3",
                          "--classifier", str(REPO_ROOT / "weights" / "classifier")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    classifier, row = json.loads(out[0]), json.loads(out[1])
    assert drawn == [(84, 3)] * 4  # every digit drawn, on the canvas and with the brush asked for
    inputs = "test digits 0–3, drawn with a brush of radius 3 on a 84-pixel canvas"
    assert classifier["inputs"] == row["inputs"] == inputs
    assert classifier["images"] == 4 and 0 <= classifier["accuracy"] <= 1
    assert row["images"] == 4 and 0 <= row["accuracy"] <= 1 and 0 <= row["far"] <= 1
    assert 0 <= row["confidently_wrong_unwarned"] <= row["confidently_wrong"] <= 4
    assert "far from the data" in out[2] and len(out) == 5  # the table: header, rule, one row


@pytest.mark.parametrize("threshold, far", [(-1e9, 1.0), (1e9, 0.0)])
def test_the_warning_rate_counts_the_images_above_the_threshold(measured, capsys, threshold: float, far: float) -> None:
    folder, root = measured
    reference = load_model(folder).typical_bounds
    typicality.save(folder, dataclasses.replace(reference, percentiles={p: threshold for p in reference.percentiles}))
    capsys.readouterr()
    assert training_main(["bayes-accuracy", "--model", str(folder), "--data-dir", str(root), "--limit", "3", "--samples", "1"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["far"] == far and row["inputs"] == "test digits 0–2"
    assert set(row["by_percentile"]) == {f"{p:g}" for p in reference.percentiles}
    assert all(at["far"] == far for at in row["by_percentile"].values())
    if far:  # every answer warned: none is confidently wrong without a warning, and no accuracy where not far
        assert row["accuracy_not_far"] is None and row["confidently_wrong_unwarned"] == 0
    else:
        assert row["accuracy_not_far"] == row["accuracy"] and row["confidently_wrong_unwarned"] == row["confidently_wrong"]


def test_every_nth_test_image(discrete_model: BFNModel, tmp_path: Path, capsys) -> None:
    """MNIST's test set is unshuffled: --every spreads the images scored over all of it."""
    discrete_model.save_pretrained(tmp_path / "model")
    root = write_mnist(tmp_path / "data", train=10, test=12)
    assert training_main(["bayes-accuracy", "--model", str(tmp_path / "model"), "--data-dir", str(root), "--first", "1",
                          "--every", "4", "--limit", "5", "--samples", "1"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["images"] == 3 and row["inputs"] == "test digits 1, 5, …, 9"  # 1, 5, 9: the test set ends at 11


def test_without_typical_bounds_the_rows_say_nothing_of_the_warning(discrete_model: BFNModel, tmp_path: Path, capsys) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    root = write_mnist(tmp_path / "data", train=10, test=6)
    assert training_main(["bayes-accuracy", "--model", str(tmp_path / "model"), "--data-dir", str(root), "--limit", "2",
                          "--samples", "1", "--drawing-like"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert "far" not in row and row["images"] == 2 and row["inputs"].startswith("test digits 0–1, drawn")


def test_drawing_like_digits_are_redrawn_and_keep_their_labels(tmp_path: Path) -> None:
    data = mnist_test_split(write_mnist(tmp_path / "data", train=10, test=6)).subset(slice(0, 3))
    drawn = drawing_like(data, 84, 3)
    assert drawn.images.shape == data.images.shape and drawn.images.dtype == data.images.dtype
    assert (drawn.labels == data.labels).all()
    assert np.abs(drawn.images.numpy().astype(int) - data.images.numpy()).mean() > 5


@pytest.mark.parametrize("args, message", [(["--first", "-1"], "--first"), (["--first", "99"], "no images"),
                                           (["--brush-radius", "0"], "--brush-radius")])
def test_bad_options_end_on_one_line(discrete_model: BFNModel, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    root = write_mnist(tmp_path / "data", train=10, test=6)
    assert training_main(["bayes-accuracy", "--model", str(tmp_path / "model"), "--data-dir", str(root), "--samples", "1",
                          "--drawing-like", *args]) == 1
    assert message in capsys.readouterr().err

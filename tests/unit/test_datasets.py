"""`python -m training train --dataset ...`: Fashion-MNIST and EMNIST from their raw files in torchvision's
layout, and every data set's labels and image size carried into the trained model's config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bfn.hub import load_model
from tests.support.mnist import synthetic_digits, write_mnist, write_split
from training.__main__ import main as training_cli
from training.datasets import DATASETS, EMNIST_BALANCED_LABELS, FASHION_LABELS, get_dataset


def upright_glyphs(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class c: a bar across the top rows whose length is c + 1 (so transposing it makes a vertical bar)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for k, c in enumerate(labels):
        images[k, 2:5, 1 : 2 + c % 26] = rng.integers(150, 256)
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """MNIST, Fashion-MNIST and EMNIST balanced stand-ins, each where torchvision keeps its raw files."""
    root = write_mnist(tmp_path_factory.mktemp("data"), train=60, test=30)
    for split, n, seed in (("train", 60, 3), ("t10k", 30, 4)):
        write_split(root / "FashionMNIST" / "raw", split, *synthetic_digits(n, seed), gz=True)
        images, labels = upright_glyphs(n, 47, seed)
        # EMNIST's files hold every image transposed
        write_split(root / "EMNIST" / "raw", split, images.transpose(0, 2, 1), labels, prefix="emnist-balanced-")
    return root


def test_label_counts_and_names_of_every_data_set():
    assert {name: len(d.label_names) for name, d in DATASETS.items()} == {
        "mnist": 10, "fashion-mnist": 10, "emnist-balanced": 47, "two-digit": 100}
    assert DATASETS["mnist"].label_names == tuple("0123456789")
    assert FASHION_LABELS[0] == "T-shirt/top" and FASHION_LABELS[9] == "Ankle boot"
    assert EMNIST_BALANCED_LABELS[10] == "A" and EMNIST_BALANCED_LABELS[36] == "a" and EMNIST_BALANCED_LABELS[-1] == "t"
    assert DATASETS["two-digit"].label_names[7] == "07" and DATASETS["two-digit"].image_size == (64, 64)
    with pytest.raises(ValueError, match="choose one of mnist, fashion-mnist"):
        get_dataset("cifar")


def test_fashion_and_emnist_read_from_their_raw_folders(data_root):
    fashion = get_dataset("fashion-mnist").test(data_root)
    images, labels = synthetic_digits(30, 4)
    np.testing.assert_array_equal(fashion.images.numpy(), images)
    np.testing.assert_array_equal(fashion.labels.numpy(), labels)
    emnist_train, emnist_val = get_dataset("emnist-balanced").train_val(data_root, val_size=10, seed=0)
    assert len(emnist_train) == 50 and len(emnist_val) == 10
    emnist = get_dataset("emnist-balanced").test(data_root)
    upright, labels = upright_glyphs(30, 47, 4)
    np.testing.assert_array_equal(emnist.images.numpy(), upright)  # turned upright on reading
    np.testing.assert_array_equal(emnist.labels.numpy(), labels)


def test_a_missing_file_names_the_folder_it_looked_in(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"EMNIST balanced file emnist-balanced-train-images-idx3-ubyte\(\.gz\) not found in .*EMNIST/raw"):
        get_dataset("emnist-balanced").train_val(tmp_path, val_size=10, seed=0)


TINY = ["--kind", "discrete", "--channels", "8,16", "--batch-size", "4", "--max-steps", "2", "--warmup-steps", "1",
        "--checkpoint-every", "2", "--log-every", "1", "--val-size", "10", "--val-images", "4", "--sample-steps", "2",
        "--threads", "1"]


@pytest.mark.parametrize("name, size", [("fashion-mnist", 28), ("emnist-balanced", 28), ("two-digit", 64)])
def test_a_trained_model_carries_its_data_sets_labels_and_image_size(tmp_path, data_root, name, size, capsys):
    run, folder = tmp_path / "run", tmp_path / "model"
    args = ["train", *TINY, "--dataset", name, "--data-dir", str(data_root), "--out", str(run), "--patch", "2"]
    assert training_cli(args) == 0
    assert training_cli(["export", str(run), "--to", str(folder)]) == 0
    config = json.loads((folder / "config.json").read_text())
    labels = list(DATASETS[name].label_names)
    assert config["labels"] == labels and config["unet"]["num_labels"] == len(labels)
    assert config["unet"]["image_size"] == [size, size]
    model = load_model(folder)
    assert model.label_names == tuple(labels) and model.data_shape == (1, size, size)
    assert list((run / "samples").glob("*.png"))  # the preview grid sampled the model at its size
    assert training_cli(["train", *TINY, "--out", str(run), "--resume", "--max-steps", "3", "--data-dir", str(data_root)]) == 0
    assert json.loads((run / "config.json").read_text())["dataset"] == name  # --resume keeps the data set


def test_a_two_digit_model_is_evaluated_by_nll_and_by_the_digits_of_its_numbers(tmp_path, data_root, capsys):
    run, folder = tmp_path / "run", tmp_path / "model"
    assert training_cli(["train", *TINY, "--dataset", "two-digit", "--data-dir", str(data_root), "--out", str(run)]) == 0
    assert training_cli(["export", str(run), "--to", str(folder)]) == 0
    capsys.readouterr()
    assert training_cli(["evaluate", "--model", str(folder), "--dataset", "two-digit", "--data-dir", str(data_root),
                         "--limit", "6", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["unit"] == "nats/image" and result["test_images"] == 6
    for mode in ("conditional", "unconditional"):
        assert result[f"nll_{mode}_nats_per_pixel"] == pytest.approx(result[f"nll_{mode}"] / 4096, abs=1e-4)
        assert np.isfinite(result[f"nll_{mode}"]) and result[f"nll_{mode}"] > 0
    assert training_cli(["evaluate-two-digit", "--model", str(folder), "--per-label", "1", "--steps", "2"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["numbers"] == 100 and 0 <= line["both_digits"] <= min(line["tens_digit"], line["units_digit"])
    assert line["steps"] == 2 and line["sampler"] == "solver"  # few steps: the model's recommended few-step sampler
    assert training_cli(["evaluate-two-digit", "--model", str(folder), "--real", str(data_root)]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["real"] and line["numbers"] == 30  # the fixture's 30 test numbers (of the 1,000 asked for)
    assert training_cli(["evaluate", "--model", str(folder), "--data-dir", str(data_root), "--limit", "6"]) == 1
    err = capsys.readouterr().err
    assert "64×64 images with 100 labels" in err and "--dataset mnist has 28×28 images with 10" in err

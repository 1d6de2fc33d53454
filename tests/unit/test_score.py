"""Bayes' rule over the BFN's bounds: `bfn.objective.label_bounds`, `bfn.scoring`, `bfn.cli.score` and `python -m training bayes-accuracy`.

The bounds under many labels must be the objective's own loss, only with draws shared across labels; the
CLI must print one JSON line per image and refuse bad inputs on one line.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bfn.model import BFNModel
from bfn.objective import curve_times, label_bounds, nll_terms, output_at
from bfn.cli.score import build_parser, main
from bfn.scoring import label_posterior
from tests.support.mnist import synthetic_digits, write_mnist
from training.__main__ import main as training_main

REPO_ROOT = Path(__file__).resolve().parents[2]
ALL_LABELS = torch.arange(11)  # the ten digits and "no class"


def data(model: BFNModel, n: int = 2, seed: int = 0) -> torch.Tensor:
    images = torch.from_numpy(synthetic_digits(n, seed)[0])
    return model.flow.data_from_images(images, torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_bounds_are_the_objectives_loss_on_the_same_draws(model: BFNModel) -> None:
    """Unstratified, the draws are those nll_terms makes for each image repeated S times, for every label."""
    x, s = data(model), 3
    bounds = label_bounds(model.flow, model, x, ALL_LABELS, s, torch.Generator().manual_seed(7), stratified=False)
    for label in ALL_LABELS.tolist():
        labels = torch.full((x.shape[0] * s,), label)
        terms = nll_terms(model.flow, model, x.repeat_interleave(s, 0), labels, 0, torch.Generator().manual_seed(7))
        torch.testing.assert_close(bounds.loss[:, label], terms.loss.reshape(-1, s).mean(1), rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(bounds.reconstruction[:, label], terms.reconstruction.reshape(-1, s).mean(1),
                                   rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(bounds.total, bounds.loss + bounds.reconstruction)
    assert bounds.dims == 28 * 28 and bounds.curve is None


@torch.no_grad()
def test_stratified_bounds_estimate_the_same_bound(model: BFNModel) -> None:
    """Stratified times change the draws, not what is estimated: a many-sample plain estimate agrees."""
    x = data(model, 1)
    stratified = label_bounds(model.flow, model, x, torch.tensor([3]), 64, torch.Generator().manual_seed(1))
    plain = nll_terms(model.flow, model, x.repeat(512, 1, 1, 1), torch.full((512,), 3), 0, torch.Generator().manual_seed(2))
    standard_error = plain.total.std() / 512**0.5
    assert abs(stratified.total.item() - plain.total.mean().item()) < 4 * standard_error


@torch.no_grad()
def test_curve_is_the_integrand_and_its_mean_the_continuous_time_part(model: BFNModel) -> None:
    x, points = data(model), 8
    bounds = label_bounds(model.flow, model, x, ALL_LABELS, 2, torch.Generator().manual_seed(4), curve_points=points)
    times = curve_times(points)
    torch.testing.assert_close(bounds.times, times)
    assert times.tolist() == pytest.approx([(k + 0.5) / points for k in range(points)])
    assert bounds.curve.shape == (x.shape[0], 11, points)
    torch.testing.assert_close(bounds.loss, bounds.curve.mean(-1))
    # the curve's θ draws come first: the objective's output at the grid, from the same seed, scores the same
    x_t, t = x.repeat_interleave(points, 0), times.repeat(x.shape[0])
    for label in (0, 10):
        output = output_at(model.flow, model, x_t, torch.full_like(t, label, dtype=torch.long), t, torch.Generator().manual_seed(4))
        expected = model.flow.continuous_time_loss(x_t, output, t).reshape(x.shape[0], points)
        torch.testing.assert_close(bounds.curve[:, label], expected, rtol=1e-4, atol=1e-3)


@torch.no_grad()
def test_common_random_numbers_make_label_differences_reproducible_and_precise(model: BFNModel) -> None:
    x = data(model, 1)
    first = label_bounds(model.flow, model, x, ALL_LABELS, 2, torch.Generator().manual_seed(5))
    again = label_bounds(model.flow, model, x, ALL_LABELS, 2, torch.Generator().manual_seed(5))
    torch.testing.assert_close(first.total, again.total, rtol=0, atol=0)
    shared, independent = [], []
    for seed in range(20):
        both = label_bounds(model.flow, model, x, torch.tensor([3, 5]), 2, torch.Generator().manual_seed(seed))
        shared.append((both.total[0, 0] - both.total[0, 1]).item())
        generator = torch.Generator().manual_seed(seed)  # one label after the other: each its own draws
        three, five = (label_bounds(model.flow, model, x, torch.tensor([k]), 2, generator).total[0, 0] for k in (3, 5))
        independent.append((three - five).item())
    # The trained models' labels nudge an output that θ mostly decides, and there the gain is largest; a random
    # tiny continuous model's label moves x̂ as much as θ does, so its differences still vary with the draws.
    gain = {"discrete": 10, "continuous": 2}[model.kind]
    assert np.var(shared) * gain < np.var(independent), (np.var(shared), np.var(independent))


def test_in_unit_is_the_flows_unit(model: BFNModel) -> None:
    with torch.no_grad():
        bounds = label_bounds(model.flow, model, data(model), ALL_LABELS, 1, torch.Generator().manual_seed(0))
    expected = bounds.total / (784 * math.log(2)) if model.kind == "continuous" else bounds.total
    torch.testing.assert_close(bounds.in_unit(model.flow.nll_unit), expected)


def test_posterior_is_bayes_rule_on_hand_set_bounds() -> None:
    nll = torch.tensor([[100.0, 101.0, 103.0], [5000.0, 5000.0, 4000.0]])
    posterior = label_posterior(nll)
    torch.testing.assert_close(posterior.sum(-1), torch.ones(2))
    assert posterior[0, 0] / posterior[0, 1] == pytest.approx(math.e, rel=1e-5)  # one nat apart: a factor e
    assert posterior[0, 0] / posterior[0, 2] == pytest.approx(math.e**3, rel=1e-5)
    assert posterior[1].tolist() == pytest.approx([0.0, 0.0, 1.0])  # large bounds do not overflow
    prior = torch.tensor([0.5, 0.25, 0.25])
    weighted = label_posterior(nll[:1], prior.log())
    assert weighted[0, 0] / weighted[0, 1] == pytest.approx(2 * math.e, rel=1e-5)
    torch.testing.assert_close(weighted.sum(-1), torch.ones(1))


# ---- the command line


@pytest.fixture
def saved(model: BFNModel, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    return folder


def png(path: Path, image: np.ndarray) -> Path:
    Image.fromarray(image).save(path)
    return path


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.strip().splitlines()]


def test_images_give_one_json_line_each(model: BFNModel, saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    images = synthetic_digits(2, 3)[0]
    paths = [str(png(tmp_path / f"{k}.png", image)) for k, image in enumerate(images)]
    args = ["--model", str(saved), "--images", *paths, "--samples", "2", "--seed", "3", "--threads", "1"]
    assert main(args) == 0
    lines = json_lines(capsys.readouterr().out)
    assert [line["image"] for line in lines] == paths
    names = [str(k) for k in range(10)] + ["none"]
    for line in lines:
        assert list(line["nll"]) == names and all(v > 0 for v in line["nll"].values())
        assert len(line["posterior"]) == 10 and sum(line["posterior"]) == pytest.approx(1, abs=1e-3)
        assert line["predicted"] == int(np.argmax(line["posterior"]))
        assert line["predicted"] == min(range(10), key=lambda k: line["nll"][str(k)])
        assert ("bits_per_dim" in line) == (model.kind == "continuous") and "curve" not in line
        if model.kind == "continuous":
            assert line["bits_per_dim"]["3"] == pytest.approx(line["nll"]["3"] / (784 * math.log(2)), abs=1e-4)
    assert main(args) == 0
    assert json_lines(capsys.readouterr().out) == lines  # the seed fixes the binarisation and every draw


def test_curve_option(discrete_model: BFNModel, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    path = png(tmp_path / "d.png", synthetic_digits(1, 0)[0][0])
    assert main(["--model", str(tmp_path / "model"), "--images", str(path), "--curve", "--curve-points", "16"]) == 0
    (line,) = json_lines(capsys.readouterr().out)
    curve = line["curve"]
    assert curve["t"] == pytest.approx([(k + 0.5) / 16 for k in range(16)])
    assert list(curve["nats_per_unit_time"]) == list(line["nll"]) and all(len(c) == 16 for c in curve["nats_per_unit_time"].values())


def test_npz_with_labels_prints_the_accuracy(discrete_model: BFNModel, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    images, _ = synthetic_digits(3, 1)
    npz = tmp_path / "digits.npz"
    np.savez(npz, images=images.astype(np.float32) / 255, labels=np.array([4, -1, 7]))
    assert main(["--model", str(tmp_path / "model"), "--npz", str(npz), "--samples", "1"]) == 0
    *lines, summary = json_lines(capsys.readouterr().out)
    assert [(line["image"], line["label"]) for line in lines] == [(0, 4), (1, -1), (2, 7)]
    hits = sum(line["predicted"] == line["label"] for line in lines)
    assert summary["labelled"] == 2 and summary["correct"] == hits and summary["accuracy"] == hits / 2
    assert summary["samples"] == 1 and summary["ms_per_image"] > 0


def test_npz_without_labels_prints_no_accuracy(discrete_model: BFNModel, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    npz = tmp_path / "digits.npz"
    np.savez(npz, images=np.zeros((2, 28, 28), np.float32))
    assert main(["--model", str(tmp_path / "model"), "--npz", str(npz), "--samples", "1"]) == 0
    lines = json_lines(capsys.readouterr().out)
    assert [line["image"] for line in lines] == [0, 1] and "label" not in lines[0]


def bad_npz(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


GOOD = np.zeros((2, 28, 28), np.float32)
BAD_INPUTS = {
    "missing png": (lambda d: ["--images", str(d / "absent.png")], "absent.png: no such file"),
    "not an image": (lambda d: ["--images", str((d / "x.png").write_text("hello") and d / "x.png")], "is not a readable image"),
    "wrong size": (lambda d: ["--images", str(png(d / "big.png", np.zeros((40, 30), np.uint8)))], "is 30×40 pixels"),
    "missing npz": (lambda d: ["--npz", str(d / "absent.npz")], "absent.npz: no such file"),
    "not an npz": (lambda d: ["--npz", str((d / "x.npz").write_text("hello") and d / "x.npz")], "is not an .npz archive"),
    "broken npz": (lambda d: ["--npz", str((d / "x.npz").write_bytes(b"PK\x03\x04 cut short") and d / "x.npz")],
                   "not a readable .npz"),
    "no images": (lambda d: ["--npz", bad_npz(d, labels=np.zeros(2, int))], "has no 'images' array"),
    "empty npz": (lambda d: ["--npz", bad_npz(d, images=np.zeros((0, 28, 28)))], "holds no images"),
    "wrong shape": (lambda d: ["--npz", bad_npz(d, images=np.zeros((2, 28, 27)))], "expected N×28×28"),
    "NaN": (lambda d: ["--npz", bad_npz(d, images=np.where(np.eye(28)[None], np.nan, 0.0))], "NaN or infinite"),
    "out of range": (lambda d: ["--npz", bad_npz(d, images=GOOD + 255)], "expected [0, 1]"),
    "text images": (lambda d: ["--npz", bad_npz(d, images=np.full((1, 28, 28), "a"))], "expected real numbers"),
    "label count": (lambda d: ["--npz", bad_npz(d, images=GOOD, labels=np.zeros(3, int))], "'labels' must be 2 integers"),
    "label value": (lambda d: ["--npz", bad_npz(d, images=GOOD, labels=np.array([1, 12]))], "found 12"),
    "samples": (lambda d: ["--npz", bad_npz(d, images=GOOD), "--samples", "0"], "--samples must be"),
    "threads": (lambda d: ["--npz", bad_npz(d, images=GOOD), "--threads", "0"], "--threads must be"),
    "no input": (lambda d: [], "one of the arguments --images --npz is required"),
    "two inputs": (lambda d: ["--npz", "a.npz", "--images", "b.png"], "not allowed with argument"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_with_one_line(discrete_model: BFNModel, tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    make_args, reason = BAD_INPUTS[case]
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(tmp_path / "model"), *make_args(tmp_path)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m bfn.cli.score: error:") and reason in lines[0], captured.err
    assert captured.out == ""


@pytest.mark.process
def test_in_a_subprocess_and_a_missing_model(discrete_model: BFNModel, tmp_path: Path) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    path = png(tmp_path / "d.png", synthetic_digits(1, 0)[0][0])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "bfn.cli.score", "--threads", "1", "--images", str(path), "--samples", "1"]
    ok = subprocess.run([*command, "--model", str(tmp_path / "model")], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json_lines(ok.stdout)[0]["image"] == str(path) and "scoring" in ok.stderr  # the progress bar
    absent = subprocess.run([*command, "--model", str(tmp_path / "absent")], env=env, capture_output=True, text=True, timeout=120)
    assert absent.returncode == 1 and "Traceback" not in absent.stderr
    assert len(absent.stderr.strip().splitlines()) == 1 and "no such folder" in absent.stderr and absent.stdout == ""


def test_bayes_accuracy_command(discrete_model: BFNModel, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    root = write_mnist(tmp_path / "data", train=10, test=6)
    assert training_main(["bayes-accuracy", "--model", str(tmp_path / "model"), "--data-dir", str(root), "--limit", "4",
                          "--samples", "1", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in out[:2]]
    assert [(r["samples"], r["network_passes_per_image"], r["images"]) for r in rows] == [(1, 22, 4), (2, 44, 4)]
    assert all(0 <= r["accuracy"] <= 1 and r["ms_per_image"] > 0 for r in rows)
    assert out[2].startswith("| S |") and len(out) == 6  # the Markdown table: header, rule, one row per S


def test_help_explains_every_option() -> None:
    parser = build_parser()
    text = parser.format_help()
    for action in parser._actions:
        assert action.help, action.option_strings
    assert "28×28" in text and "2·S·11" in text and "Hub repo id" in text

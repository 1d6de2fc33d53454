"""`python -m bfn.cli.sample` end to end on a tiny saved model, and its one-line refusals of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bfn.model import BFNModel
from bfn.cli.sample import build_parser, main
from bfn.sampling import sample

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def saved(model: BFNModel, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    return folder


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bfn.cli.sample", "--threads", "1", *args],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(stderr: str, reason: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and lines[0].startswith("python -m bfn.cli.sample: error:") and reason in lines[0]


@pytest.mark.process
def test_end_to_end_in_a_subprocess(discrete_model: BFNModel, tmp_path: Path) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    result = run_cli(
        "--model", "model", "--digits", "3", "none", "7", "--steps", "4", "--guidance", "2", "--seed", "1",
        "--guidance-interval", "0.2", "0.7",
        "--out", "out/grid.png", "--npz", "out/samples.npz", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "sampling" in result.stderr  # the progress bar

    grid = Image.open(tmp_path / "out" / "grid.png")
    assert grid.size == ((3 * 30 + 2) * 4, 32 * 4)  # one row of three 28×28 tiles, 2 px padding, scaled 4×
    with np.load(tmp_path / "out" / "samples.npz") as archive:
        images, labels = archive["images"], archive["labels"]
    assert images.shape == (3, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert labels.tolist() == [3, -1, 7]


@pytest.mark.process
def test_missing_model_in_a_subprocess(tmp_path: Path) -> None:
    result = run_cli("--model", str(tmp_path / "absent"), "--out", "grid.png", cwd=tmp_path)
    assert result.returncode != 0
    assert_one_line_error(result.stderr, f"{tmp_path / 'absent'}: no such folder")
    assert not (tmp_path / "grid.png").exists()


def test_npz_holds_the_final_output_distribution(model: BFNModel, saved: Path, tmp_path: Path) -> None:
    """p(on) for discrete models, (x + 1)/2 of the sample for continuous ones, from the one shared sampler."""
    npz = tmp_path / "s.npz"
    args = [
        "--model",
        str(saved),
        "--digits",
        "none",
        "2",
        "--steps",
        "3",
        "--seed",
        "4",
        "--out",
        str(tmp_path / "g.png"),
    ]
    assert main([*args, "--npz", str(npz), "--threads", "1"]) == 0
    # No --sampler or --guidance: the model's recommended settings, here the few-step sampler for 3 steps.
    recommended = model.sampling
    assert recommended.sampler_for(3) == "solver"
    final = sample(model, [None, 2], sampler="solver", steps=3, guidance=recommended.guidance, seed=4)
    expected = final.output if model.kind == "discrete" else (final.sample + 1) / 2
    with np.load(npz) as archive:
        np.testing.assert_allclose(archive["images"], expected.numpy(), atol=1e-4)
        assert archive["labels"].tolist() == [-1, 2]


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--digits", "10"], "'10' is not a label of this model; give a number 0–9, or 'none'"),
        (["--digits", "x"], "'x' is not a label of this model"),
        (["--steps", "0"], "steps must be"),
        (["--guidance", "-1"], "guidance must be"),
        (["--guidance", "nan"], "guidance must be"),
        (["--guidance-interval", "0.6", "0.2"], "guidance_interval must satisfy"),
        (["--sampler", "nope"], "invalid choice: 'nope'"),
        (["--threads", "0"], "--threads"),
        (["--scale", "0"], "--scale"),
        (["--kind", "continuous"], "but a continuous model was asked for"),
    ],
)
def test_bad_input_exits_with_one_line(
    discrete_model: BFNModel, tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], reason: str
) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(tmp_path / "model"), "--out", str(tmp_path / "g.png"), *args])
    assert exit_info.value.code != 0
    assert_one_line_error(capsys.readouterr().err, reason)
    assert not (tmp_path / "g.png").exists()


def test_help_explains_every_option() -> None:
    parser = build_parser()
    text = parser.format_help()
    for action in parser._actions:
        assert action.help, action.option_strings
        assert all(option in text for option in action.option_strings)
    assert "none" in text and "Hub repo id" in text

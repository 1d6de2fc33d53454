"""Completion: known pixels observed as the data they are, in every sampler, with and without resampling; the
evidence bridge that resampling steps back with; and `python -m bfn.cli.complete` end to end and its refusals."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bfn.cli.complete import build_parser, main
from bfn.digits import half_mask
from bfn.model import BFNModel
from bfn.sampling import SAMPLERS, StepState, forget, sample
from tests.support.runs import assert_same_run

STEPS = 5
LABELS = [3, None, 7]
REPO_ROOT = Path(__file__).resolve().parents[2]


def data(model: BFNModel, n: int = len(LABELS), seed: int = 0) -> torch.Tensor:
    """Random data in the model's data space, one image per label."""
    images = torch.randint(0, 256, (n, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return model.flow.data_from_images(images, torch.Generator().manual_seed(seed))


def top_half() -> torch.Tensor:
    return torch.from_numpy(half_mask("top"))[None, None]


def kept_error(model: BFNModel, final: StepState, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """|sample − x| at the known pixels, in the views' units."""
    known = model.flow.sample_view(x)[:, 0]
    return (final.sample - known)[mask.expand(len(x), 1, 28, 28)[:, 0]].abs()


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("resample", [1, 3])
def test_known_pixels_are_kept(model: BFNModel, sampler: str, resample: int) -> None:
    x, mask = data(model), top_half()
    final = sample(model, LABELS, sampler=sampler, steps=STEPS, guidance=2.0, seed=1, known=(x, mask), resample=resample)
    # exactly, for both kinds: the final sample is drawn from the point mass at x there (continuous data would
    # only need to stay within the model's final σ, σ1)
    assert kept_error(model, final, x, mask).max() == 0
    assert torch.isfinite(final.theta).all() and torch.isfinite(final.output).all()


@pytest.mark.parametrize("sampler", ["bfn", "solver"])
def test_with_every_pixel_known_the_result_is_the_input(model: BFNModel, sampler: str) -> None:
    x = data(model)
    everything = torch.ones(1, 1, 28, 28, dtype=torch.bool)
    final = sample(model, LABELS, sampler=sampler, steps=STEPS, guidance=1.0, seed=2, known=(x, everything), resample=2)
    torch.testing.assert_close(final.sample, model.flow.sample_view(x)[:, 0], rtol=0, atol=0)


@pytest.mark.parametrize("sampler", ["bfn", "solver", "ode2"])
@pytest.mark.parametrize("resample", [1, 4])
def test_with_no_pixel_known_the_run_is_the_ordinary_sample_bit_for_bit(model: BFNModel, sampler: str, resample: int) -> None:
    nothing = torch.zeros(len(LABELS), 1, 28, 28, dtype=torch.bool)
    kwargs = {"steps": STEPS, "guidance": 2.0, "seed": 4}
    ordinary = list(SAMPLERS[sampler](model, LABELS, **kwargs))
    completed = list(SAMPLERS[sampler](model, LABELS, known=(data(model), nothing), resample=resample, **kwargs))
    assert_same_run(completed, ordinary)
    assert_same_run([sample(model, LABELS, sampler=sampler, known=None, **kwargs)], ordinary[-1:])


@pytest.mark.parametrize("sampler", ["bfn", "solver"])
def test_a_completion_reports_one_state_per_step_and_is_reproducible(model: BFNModel, sampler: str) -> None:
    x, mask = data(model), top_half()
    run = lambda: list(SAMPLERS[sampler](model, LABELS, steps=STEPS, guidance=2.0, seed=3, known=(x, mask), resample=3))  # noqa: E731
    a, b = run(), run()
    assert [s.step for s in a] == list(range(STEPS + 1)) and a[-1].is_final
    assert_same_run(a, b)
    single = list(SAMPLERS[sampler](model, LABELS, steps=STEPS, guidance=2.0, seed=3, known=(x, mask)))
    assert not torch.equal(a[-1].sample, single[-1].sample)  # resampling did draw anew


def test_the_states_show_the_networks_output_and_theta_follows_the_known_data(discrete_model: BFNModel) -> None:
    """θ at the known pixels is the Bayesian flow of the data (here at t = 1: its mean belief in the data matches
    p_F's), while `output` stays the network's prediction, which a random network does not make certain."""
    model, n = discrete_model, 8
    x = data(model, n)
    everything = torch.ones(1, 1, 28, 28, dtype=torch.bool)
    final = sample(model, [None] * n, sampler="bfn", steps=50, guidance=1.0, seed=5, known=(x, everything))
    belief_in_data = torch.where(x[:, 0] == 1, final.theta, 1 - final.theta).mean()
    flow_theta = model.flow.bayesian_flow(x, torch.ones(n), torch.Generator().manual_seed(0))
    expected = torch.gather(flow_theta, -1, x.unsqueeze(-1)).mean()
    assert belief_in_data.item() == pytest.approx(expected.item(), abs=0.01)
    assert not torch.equal(final.output, final.sample)


@pytest.mark.parametrize("t, earlier", [(0.6, 0.3), (0.9, 0.2), (0.5, 0.0)])
def test_forgetting_evidence_from_the_flow_at_t_gives_the_flow_at_an_earlier_time(model: BFNModel, t: float, earlier: float) -> None:
    """The evidence bridge needs no data: applied to p_F(θ | x; t) it gives p_F(θ | x; t') (compared through the
    evidence's mean and variance per pixel, over many draws of one image)."""
    flow, n = model.flow, 4000
    x = data(model, 1).expand(n, -1, -1, -1).contiguous()
    generator = torch.Generator().manual_seed(6)
    stepped_back = forget(flow, flow.bayesian_flow(x, torch.full((n,), t), generator), flow.accuracy(t), flow.accuracy(earlier), generator)
    direct = flow.bayesian_flow(x, torch.full((n,), earlier), generator)
    a, b = flow.evidence(stepped_back), flow.evidence(direct)
    if model.kind == "discrete":  # ln θ is z up to a constant per pixel: compare the class-1 − class-0 difference
        a, b = a[..., 1] - a[..., 0], b[..., 1] - b[..., 0]
    beta = flow.accuracy(earlier)
    scale = math.sqrt(flow.evidence_noise_var * max(beta, 1e-12) * 2)
    assert (a.mean(0) - b.mean(0)).abs().max().item() <= 0.3 * scale + 1e-6
    assert a.var(0).mean().item() == pytest.approx(b.var(0).mean().item(), rel=0.05, abs=1e-6)


@pytest.mark.parametrize(
    "known, resample, reason",
    [
        ((torch.zeros(2, 1, 28, 28, dtype=torch.long), torch.ones(1, 1, 28, 28, dtype=torch.bool)), 1, "shape (3, 1, 28, 28)"),
        ((None, torch.ones(1, 1, 28, 28)), 1, "bool"),
        ((None, torch.ones(2, 1, 28, 28, dtype=torch.bool)), 1, "does not broadcast"),
        ((None, torch.ones(1, 1, 28, 28, dtype=torch.bool)), 0, "resample must be"),
    ],
)
def test_bad_completions_are_refused(discrete_model: BFNModel, known, resample: int, reason: str) -> None:
    x, mask = known
    x = data(discrete_model) if x is None else x
    with pytest.raises(ValueError, match=re.escape(reason)):
        sample(discrete_model, LABELS, steps=2, known=(x, mask), resample=resample)


# ---- python -m bfn.cli.complete


@pytest.fixture
def saved(model: BFNModel, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    return folder


def drawing(path: Path, size: tuple[int, int] = (200, 300)) -> Path:
    """A dark stroke on white, off-centre, as a sketchpad exports it."""
    canvas = np.full((size[1], size[0]), 255, dtype=np.uint8)
    canvas[40:220, 30:50] = 0
    canvas[40:60, 30:150] = 0
    Image.fromarray(canvas).save(path)
    return path


def assert_one_line_error(capsys: pytest.CaptureFixture, reason: str) -> None:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("python -m bfn.cli.complete: error:") and reason in lines[0], lines[0]


def test_cli_writes_completions_with_the_kept_pixels_as_given(model: BFNModel, saved: Path, tmp_path: Path) -> None:
    png = drawing(tmp_path / "d.png")
    archive = tmp_path / "in.npz"
    np.savez(archive, images=np.linspace(0, 1, 2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28))
    out, npz = tmp_path / "out" / "grid.png", tmp_path / "out" / "c.npz"
    args = ["--model", str(saved), "--images", str(png), str(archive), "--keep", "left", "--digits", "2", "none", "5",
            "--steps", "3", "--seed", "1", "--resample", "2", "--out", str(out), "--npz", str(npz), "--threads", "1"]
    assert main(args) == 0
    assert Image.open(out).size == ((3 * 30 + 2) * 4, (2 * 30 + 2) * 4)  # kept parts above completions
    with np.load(npz) as result:
        images, labels, known = result["images"], result["labels"], result["known"]
    assert images.shape == (3, 28, 28) and images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
    assert labels.tolist() == [2, -1, 5]
    assert known.shape == (3, 28, 28) and known.dtype == bool and (known == half_mask("left")).all()
    # No --sampler or --guidance: the model's recommended settings for 3 steps, as bfn.cli.sample takes them.
    from bfn.cli.complete import read_images
    from bfn.completion import completed_images, known_data

    x = known_data(model.flow, read_images([png, archive], model), seed=1)
    rec = model.sampling
    final = sample(model, [2, None, 5], sampler=rec.sampler_for(3), steps=3, guidance=rec.guidance, seed=1,
                   known=(x, torch.from_numpy(known[:1, None])), resample=2)
    np.testing.assert_allclose(images, completed_images(model.flow, final, x, torch.from_numpy(known)), atol=1e-4)
    kept = model.flow.sample_view(x)[:, 0].numpy()[known]
    np.testing.assert_allclose(images[known], (kept - final.value_range[0]) / (final.value_range[1] - final.value_range[0]), atol=1e-6)


def test_cli_keeping_every_pixel_returns_the_input(discrete_model: BFNModel, tmp_path: Path) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    white = tmp_path / "all.png"
    Image.fromarray(np.full((28, 28), 255, dtype=np.uint8)).save(white)
    binary = np.zeros((1, 28, 28), dtype=np.float32)
    binary[0, 5:20, 10:14] = 1
    np.savez(tmp_path / "in.npz", images=binary)
    assert main(["--model", str(tmp_path / "model"), "--images", str(tmp_path / "in.npz"), "--keep", str(white), "--steps", "2",
                 "--out", str(tmp_path / "g.png"), "--npz", str(tmp_path / "c.npz")]) == 0
    with np.load(tmp_path / "c.npz") as result:
        np.testing.assert_array_equal(result["images"], binary)


@pytest.mark.process
def test_cli_end_to_end_in_a_subprocess(discrete_model: BFNModel, tmp_path: Path) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    drawing(tmp_path / "d.png")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "bfn.cli.complete", "--threads", "1", "--model", "model", "--images", "d.png", "--keep", "top",
         "--steps", "3", "--resample", "2", "--out", "grid.png"],
        cwd=tmp_path, env=env, check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sampling" in result.stderr and "Traceback" not in result.stderr and (tmp_path / "grid.png").exists()


def _files(tmp_path: Path) -> dict[str, Path]:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((50, 40), 255, dtype=np.uint8)).save(blank)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    big_mask = tmp_path / "mask40.png"
    Image.fromarray(np.full((40, 40), 255, dtype=np.uint8)).save(big_mask)
    black_mask = tmp_path / "none.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(black_mask)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((2, 20, 20), dtype=np.float32))
    loud = tmp_path / "loud.npz"
    np.savez(loud, images=np.full((1, 28, 28), 255.0, dtype=np.float32))
    return {"blank": blank, "text": text, "big_mask": big_mask, "black_mask": black_mask, "wrong": wrong, "loud": loud,
            "drawing": drawing(tmp_path / "d.png"), "missing": tmp_path / "absent.png"}


@pytest.mark.parametrize(
    "images, keep, extra, reason",
    [
        ("blank", "top", [], "the drawing is empty"),
        ("text", "top", [], "not a readable image"),
        ("missing", "top", [], "absent.png: no such file"),
        ("wrong", "top", [], "must be N×28×28"),
        ("loud", "top", [], "values in [0, 1]"),
        ("drawing", "big_mask", [], "a mask must be 28×28"),
        ("drawing", "text", [], "not a readable image"),
        ("drawing", "black_mask", [], "keeps no pixel"),
        ("drawing", "middle", [], "neither one of top, bottom, left, right nor a mask image"),
        ("drawing", "top", ["--digits", "1", "2"], "one entry for all images or one per image"),
        ("drawing", "top", ["--digits", "12"], "'12' is not a label of this model; give a number 0–9"),
        ("drawing", "top", ["--resample", "0"], "resample must be"),
        ("drawing", "top", ["--steps", "0"], "steps must be"),
    ],
)
def test_cli_refuses_bad_input_with_one_line(discrete_model: BFNModel, tmp_path: Path, capsys: pytest.CaptureFixture,
                                             images: str, keep: str, extra: list[str], reason: str) -> None:
    discrete_model.save_pretrained(tmp_path / "model")
    files = _files(tmp_path)
    keep_arg = str(files[keep]) if keep in files else keep
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(tmp_path / "model"), "--images", str(files[images]), "--keep", keep_arg, *extra,
              "--out", str(tmp_path / "g.png")])
    assert exit_info.value.code == 2
    assert_one_line_error(capsys, reason)
    assert not (tmp_path / "g.png").exists()


def test_help_explains_every_option_and_the_conventions() -> None:
    parser = build_parser()
    text = " ".join(parser.format_help().split())
    unexplained = [a.option_strings for a in parser._actions if not a.help or not all(o in text for o in a.option_strings)]
    assert not unexplained
    assert "Bernoulli" in text and "white = known" in text and "returns the input" in text and "transparent" in text

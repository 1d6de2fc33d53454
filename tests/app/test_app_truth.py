"""Every measurable claim of "What am I looking at?" and the "Which digit?" caption, measured on the shipped models.

The text (`app.features.generate.words.explanation`, each flow's `FlowDisplay.explanation`, the caption under "Which digit?")
says what the views show at the default settings: both models side by side, all ten digits, the recommended
guidance, steps and sampler, seed 0. These tests run exactly that run and check each claim against the
frames the views are drawn from, so a change to the weights, the sampler or the words that makes a sentence
false fails here. Each test also checks that the sentence it pins is still in the text.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from app.core.frames import Frames, decision_step
from app.features.generate.words import BELIEFS_CAPTION, explanation
from app.core.models import ModelBank, load_models
from app.core.menu import BOTH
from app.core.settings import parse_settings
from app.core.runs import generation
from training.data import load_mnist

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "weights"
MID_GREY = (0.2, 0.8)  # an output pixel between these (on [0, 1]) is neither background nor ink


@pytest.fixture(scope="module")
def bank() -> ModelBank:
    if not all((WEIGHTS / name / "config.json").exists() for name in ("discrete", "continuous", "classifier")):
        pytest.skip("the shipped weights are not in weights/")
    # the two shipped MNIST models the sentences were measured on (each model of a run samples on its own, so
    # their frames are the same with or without other models loaded)
    return load_models([str(WEIGHTS / "discrete"), str(WEIGHTS / "continuous")])


@pytest.fixture(scope="module")
def run(bank: ModelBank) -> dict[str, Frames]:
    """The run the page makes when Generate is pressed without touching a setting."""
    menu = bank.menu
    settings = parse_settings(BOTH, "all", 0, menu.recommended.guidance, menu.recommended.steps, 0, "recommended", menu=menu)
    run = generation(settings, bank.models, bank.classifier).start()
    run.join()
    assert all(fr.finished for fr in run.frames.values())
    return run.frames


@pytest.fixture(scope="module")
def text(bank: ModelBank) -> str:
    return explanation(bank)


def unit_output(fr: Frames, step: int) -> np.ndarray:
    lo, hi = fr.value_range
    return (fr.output[step].astype(np.float32) - lo) / (hi - lo)


def mid_grey_share(fr: Frames, step: int) -> float:
    out = unit_output(fr, step)
    return float(((out > MID_GREY[0]) & (out < MID_GREY[1])).mean())


def star_steps(fr: Frames) -> list[int | None]:
    """The ★ of every image (`decision_step`, what "Which digit?" marks)."""
    return [decision_step(fr.digit_probs[: fr.count, i]) for i in range(fr.batch)]


def guided(fr: Frames) -> tuple[int, int]:
    """The first and last step of the shaded guidance band."""
    steps = np.flatnonzero(fr.guidance[: fr.count] > 1)
    return int(steps[0]), int(steps[-1])


def test_binarised_output_starts_as_a_blurry_grey_average_of_the_digit_asked_for(run, text):
    assert "starts as a blurry grey average of the digit asked for and its strokes sharpen" in text
    fr = run["discrete"]
    first, last = mid_grey_share(fr, 0), mid_grey_share(fr, fr.latest)
    assert first > 0.15 and last < 0.03, (first, last)  # grey blur at first, on/off pixels at the end


def digit_means() -> np.ndarray:
    """MNIST's average image of each digit 0–9 (the test set; skips the test where it is not on this machine)."""
    data = Path(os.environ.get("BFN_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not (data / "MNIST" / "raw").is_dir():
        pytest.skip(f"no MNIST in {data} (set BFN_DATA_DIR)")
    images, labels = load_mnist(data, train=False)
    x, y = images.numpy().reshape(len(images), -1) / 255.0, labels.numpy()
    return np.stack([x[y == digit].mean(axis=0) for digit in range(10)])


def correlation_with_digit_means(output: np.ndarray) -> np.ndarray:
    """Correlation of the ten outputs of a run of the digits 0–9, in order, with MNIST's average of each digit."""
    return np.corrcoef(output.reshape(10, -1), digit_means())[:10, 10:]


def test_the_binarised_blur_is_the_average_of_the_digit_asked_for(run):
    """Against MNIST's own average of each digit."""
    corr = correlation_with_digit_means(unit_output(run["discrete"], 0))
    assert (corr.argmax(axis=1) == np.arange(10)).all() and np.diag(corr).min() > 0.95, corr.round(2)


def test_continuous_output_is_flat_grey_at_t0_then_a_sharp_digit(run, text):
    assert "At t = 0 x̂ is flat grey" in text and "from the first step on it is a sharp, speckled digit" in text
    fr = run["continuous"]
    assert float(fr.t[0]) == 0.0
    assert float(np.ptp(unit_output(fr, 0))) == 0.0  # one grey level everywhere
    assert mid_grey_share(fr, 1) < 0.15 < mid_grey_share(run["discrete"], 1)  # sharp, unlike the binarised blur


def test_the_classifier_reads_the_first_outputs_as_an_8(run):
    assert "reads them as an 8 whatever the digit" in BELIEFS_CAPTION
    for name, fr in run.items():
        reads = fr.digit_probs[0].argmax(axis=1)
        assert (reads == 8).sum() >= 8, (name, reads)  # 8 or more of the ten digits asked for


def test_binarised_star_falls_before_the_guidance_band(run, text):
    assert "a digit classifier usually names the final digit early, before the guidance interval" in text
    fr = run["discrete"]
    start, _ = guided(fr)
    stars = star_steps(fr)
    before = [s for s in stars if s is not None and s < start]
    assert len(before) >= 8, (stars, start)


def test_continuous_star_falls_early_inside_the_guidance_band(run, text):
    assert "within the first tenth of the steps, inside the guidance interval" in text
    fr = run["continuous"]
    start, end = guided(fr)
    stars = star_steps(fr)
    inside = [s for s in stars if s is not None and start <= s <= end]
    early = [s for s in stars if s is not None and s <= fr.num_steps / 10]
    assert len(inside) >= 8 and len(early) >= 8, (stars, (start, end))


def test_each_model_names_its_own_guidance_interval(bank, text):
    for name, model in bank.models.items():
        start, end = model.sampling.guidance_interval
        assert f"Guidance above 1 acts at t = {start:g}–{end:g}." in text, name
    assert "while the digit is being decided" not in text and "sharp early on" not in text
    assert text.count("What am I looking at?") == 0  # the accordion's own label says it, once


def test_a_preconditioned_networks_words_match_its_views():
    """The words of a continuous network that is preconditioned (`bfn.continuous.preconditioning`), on the one in
    training/warm-starts: at t = 0 flat grey, then a blurry grey average of the digit asked for that sharpens."""
    folder = ROOT / "training" / "warm-starts" / "continuous-preconditioned"
    if not (folder / "model.safetensors").exists():
        pytest.skip(f"no preconditioned network in {folder}")
    bank = load_models([str(folder)])
    [model] = bank.models.values()
    text = model.flow.display.explanation
    assert "At t = 0 x̂ is flat grey" in text
    assert "in the first steps it is a blurry grey average of the digit asked for" in text and "its strokes sharpen" in text
    menu = bank.menu
    settings = parse_settings(next(iter(bank.models)), "all", 0, menu.recommended.guidance, menu.recommended.steps, 0, "recommended", menu=menu)
    run = generation(settings, bank.models, bank.classifier).start()
    run.join()
    [fr] = run.frames.values()
    assert float(np.ptp(unit_output(fr, 0))) == 0.0  # one grey level everywhere
    first, last = mid_grey_share(fr, 1), mid_grey_share(fr, fr.latest)
    assert first > 0.15 and last < 0.5 * first, (first, last)  # grey blur at first, sharper strokes at the end
    corr = correlation_with_digit_means(unit_output(fr, 1))
    assert (corr.argmax(axis=1) == np.arange(10)).all() and np.diag(corr).min() > 0.8, corr.round(2)

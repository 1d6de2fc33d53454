"""Your digit, honestly: beside each model's answer, a warning exactly when the digit's bound lies above the stored
percentile of real test digits' (`bfn.typicality`), in the words the view shows; and the sketchpad that
`python -m training bayes-accuracy --drawing-like` imitates is the app's."""

from __future__ import annotations

import argparse
import copy
import json
from types import SimpleNamespace

import pytest

from app.core.models import ModelBank
from app.features.digit.figures import FAR_MARK
from app.features.digit.handlers import SCORED, DigitHandlers
from app.features.digit.inputs import BRUSH_RADIUS, CANVAS
from app.ui.context import Context
from bfn.typicality import FAR_PERCENTILE, TypicalBounds, unconditional
from tests.support.apps import stroke_drawing
from training import bayes_accuracy

REQUEST = SimpleNamespace(session_hash="s")


@pytest.fixture
def digit(discrete_model, continuous_model) -> DigitHandlers:
    bank = ModelBank(models={"discrete": copy.deepcopy(discrete_model), "continuous": copy.deepcopy(continuous_model)})
    return DigitHandlers(Context(bank, stream_interval=0.0), samples=4, curve_points=5)


def score(digit: DigitHandlers) -> tuple[str, dict]:
    """(the status line, the posterior figure) of scoring the same drawing with the same seed."""
    out = digit.score(stroke_drawing(), "drawing", "discrete", 0, 0, 0.5, "predicted", REQUEST)
    assert SCORED[:4] == ("status", "prepared", "data", "posterior")  # one view, one, one per model, then the figure
    return out[0], json.loads(out[2 + len(digit.names)].plot)


def bounds_of(digit: DigitHandlers) -> dict[str, float]:
    """Each model's unconditional bound of the digit scored last, in its unit."""
    scores = digit._session(REQUEST).scores
    return {name: float(unconditional(s.bounds, digit.models[name].flow.nll_unit)[0]) for name, s in scores.items()}


def reference(threshold: float, unit: str) -> TypicalBounds:
    return TypicalBounds(unit, {50.0: threshold - 1, FAR_PERCENTILE: threshold}, 1000, 4, "test digits", "0" * 64)


def titles(figure: dict) -> list[str]:
    return [a["text"] for a in figure["layout"]["annotations"]]


def test_the_warning_shows_exactly_above_the_stored_percentile(digit: DigitHandlers) -> None:
    status, _ = score(digit)
    assert "no bounds of test digits stored beside the weights" in status  # nothing measured: said, not hidden
    bound = bounds_of(digit)
    units = {name: model.flow.nll_unit.name for name, model in digit.models.items()}
    # the continuous model's bound lies just above its threshold, the discrete model's exactly at its own
    digit.models["continuous"].typical_bounds = reference(bound["continuous"] - 1e-3, units["continuous"])
    digit.models["discrete"].typical_bounds = reference(bound["discrete"], units["discrete"])
    status, figure = score(digit)
    assert bounds_of(digit) == bound  # the same digit and seed: the same bounds
    b, y = bound["continuous"], bound["continuous"] - 1e-3
    assert (f"⚠ **Continuous**: this drawing is far from the digits the model learned from: its bound, {b:.2f} "
            f"{units['continuous']}, is above {FAR_PERCENTILE:g} % of test digits (≤ {y:.2f}); read its answer with care.") in status
    assert status.count("far from the digits the model learned from") == 1  # not the binarised model: at, not above
    assert status.count(FAR_MARK) == 1 and f"%, {FAR_MARK}) in" in status  # beside the continuous model's answer
    marked = [t for t in titles(figure) if FAR_MARK in t]
    assert len(marked) == 1 and "Continuous" in marked[0]
    assert "no bounds of test digits stored" not in status

    digit.models["continuous"].typical_bounds = reference(bound["continuous"] + 1e-3, units["continuous"])
    digit.models["discrete"].typical_bounds = reference(bound["discrete"] - 1e-3, units["discrete"])
    status, figure = score(digit)
    assert f"⚠ **{digit.menu.titles['discrete']}**: this drawing is far" in status
    assert "⚠ **Continuous**" not in status and status.count(FAR_MARK) == 1
    assert [t for t in titles(figure) if FAR_MARK in t] and not any("Continuous" in t for t in titles(figure) if FAR_MARK in t)


def test_the_measured_sketchpad_is_the_apps() -> None:
    """`bayes-accuracy --drawing-like` draws with the sketchpad's canvas and brush by default."""
    sub = argparse.ArgumentParser().add_subparsers()
    bayes_accuracy.register(sub)
    parser = sub.choices["bayes-accuracy"]
    assert (parser.get_default("canvas"), parser.get_default("brush_radius")) == (CANVAS, BRUSH_RADIUS)

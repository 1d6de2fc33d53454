"""The Autoguidance setting: each model's recommended weight by default, a chosen weight where it has a guide."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.core.models import ModelBank, model_menu
from app.core.runs import generation
from app.core.settings import RECOMMENDED, parse_settings
from app.features.generate.words import autoguidance_words
from tests.conftest import make_tiny_model


@pytest.fixture(scope="module")
def models():
    """A guided binarised model recommending 3 without a digit and 1 with one, and a continuous model with no guide."""
    guided = make_tiny_model("discrete")
    guided.sampling = dataclasses.replace(guided.sampling, autoguidance_unconditional=3.0, autoguidance_interval=(0.0, 0.5))
    guided.attach_guide(make_tiny_model("discrete", seed=1))
    return {"discrete": guided, "continuous": make_tiny_model("continuous")}


@pytest.fixture(scope="module")
def menu(models):
    return model_menu(models)


def final(models, menu, digits: str, autoguidance, model: str = "discrete") -> np.ndarray:
    settings = parse_settings(model, digits, 3, 1.0, 4, 0, "bfn", autoguidance, menu=menu)
    run = generation(settings, models).start()
    run.join()
    return run.frames[model].sample


def test_recommended_is_each_models_own_weight_for_the_labels(models, menu) -> None:
    settings = parse_settings("both", "none", 3, 1.0, 4, 0, "bfn", menu=menu)
    assert settings.autoguidance is None
    assert settings.autoguidance_for(models["discrete"]) == 3.0 and settings.autoguidance_for(models["continuous"]) == 1.0
    assert parse_settings("both", "all", 3, 1.0, 4, 0, "bfn", menu=menu).autoguidance_for(models["discrete"]) == 1.0
    np.testing.assert_array_equal(final(models, menu, "none", RECOMMENDED), final(models, menu, "none", "3"))
    assert not np.array_equal(final(models, menu, "none", RECOMMENDED), final(models, menu, "none", "1"))


def test_a_chosen_weight_applies_to_models_with_a_guide_only(models, menu) -> None:
    settings = parse_settings("both", "all", 3, 1.0, 4, 0, "bfn", "2.5", menu=menu)
    assert settings.autoguidance_for(models["discrete"]) == 2.5 and settings.autoguidance_for(models["continuous"]) == 1.0
    assert not np.array_equal(final(models, menu, "all", "2.5"), final(models, menu, "all", RECOMMENDED))
    np.testing.assert_array_equal(final(models, menu, "all", "2.5", "continuous"), final(models, menu, "all", "1", "continuous"))
    assert "autoguidance 2.5" in settings.describe() and "autoguidance" not in parse_settings(
        "both", "all", 3, 1.0, 4, 0, "bfn", menu=menu).describe()


def test_the_words_name_each_models_recommended_weights(models) -> None:
    words = autoguidance_words(ModelBank(models=models))
    assert "w = 3 with no digit and 1 with one, at t = 0–0.5" in words and "no guide, so off" in words

"""What a newcomer hit (issue 26), held in process: the two-digit model's update in numbers, the words that must
match what the views show, and the views after switching model. The browser's side of the same is
tests/e2e/test_newcomer_e2e.py."""

from __future__ import annotations

import pytest

from app.core.models import model_menu
from app.core.runs import RunState, generation
from app.core.settings import parse_settings
from app.features.update import schedule_figure, update_markdown

STEPS = 4


@pytest.fixture(scope="module")
def models(discrete_model, continuous_model, two_digit_model) -> dict:
    return {"discrete": discrete_model, "continuous": continuous_model, "two-digit": two_digit_model}


@pytest.fixture(scope="module")
def menu(models):
    return model_menu(models)


def finished(menu, models, model: str, digits: str, digit=None):
    """A finished run of the bfn sampler."""
    run = generation(parse_settings(model, digits, digit, 2.0, STEPS, 0, "bfn", menu=menu), models).start()
    run.join(120)
    assert run.state is RunState.DONE, run.error
    return run


# ------------------------------------------------------------------------------ 1. the update in numbers


@pytest.mark.parametrize(("digits", "digit", "image", "named"), [("one", "42", 0, "number 42"), ("all", None, 7, "number 77")])
def test_the_update_in_numbers_names_a_two_digit_runs_number(menu, models, digits, digit, image, named):
    run = finished(menu, models, "two-digit", digits, digit)
    text = update_markdown(run.frames, 1, (image, 40, 50), run.settings.labels)
    assert f"**Pixel (row 40, column 50) of image {image} · {named}**" in text
    assert "θ′" in text or "θ after" in text
    schedule_figure(run.frames, 1)  # and its β(t) beside it

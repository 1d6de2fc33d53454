"""What a newcomer hit (issue 26), held in process: the two-digit model's update in numbers, the words that must
match what the views show, and the views after switching model. The browser's side of the same is
tests/e2e/test_newcomer_e2e.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.core.models import model_menu
from app.core.runs import RunState, generation
from app.core.settings import parse_settings
from app.features.generate.layout import SETTINGS
from app.features.links import LinkHandlers
from app.features.update import schedule_figure, update_markdown
from app.page import assemble
from tests.support.apps import context

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


# -------------------------------------------------------------------------- 2. a two-digit link, number ≥ 10


def test_a_two_digit_link_restores_the_number_with_a_picker_that_offers_it(models):
    ctx = context(models, stream_interval=0.0, plot_interval=0.0)
    try:
        page = assemble(ctx)
        links = LinkHandlers(page.linked, {k: c.value for entry in page.linked for k, c in entry.fields.items()}, ["heatmap"])
        request = SimpleNamespace(session_hash="two-digit-link", query_params={"model": "two-digit", "digits": "one", "digit": "42"})
        first = next(links.restore(request))
        digits, digit = first[SETTINGS.index("digits")], first[SETTINGS.index("digit")]
        assert digit.value == 42 and (42, 42) not in digit.choices and ("42", 42) in digit.choices and len(digit.choices) == 100
        assert digit.label == "Which number"
        assert digits.value == "one" and ("One number", "one") in digits.choices
    finally:
        ctx.close()

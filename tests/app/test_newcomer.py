"""What a newcomer hit (issue 26), held in process: the two-digit model's update in numbers, the words that must
match what the views show, and the views after switching model. The browser's side of the same is
tests/e2e/test_newcomer_e2e.py."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from app.core.menu import BOTH, ModelMenu
from app.core.models import model_menu
from app.core.runs import RunState, generation
from app.core.settings import parse_settings
from app.features.duel.figures import Side, timeline
from app.features.duel.layout import INTRO as DUEL_INTRO
from app.features.generate.handlers import GenerateHandlers
from app.features.generate.layout import SETTINGS
from app.features.generate.words import BELIEFS_CAPTION, sampler_info
from app.features.links import LinkHandlers, read_link
from app.features.update import schedule_figure, update_markdown
from app.page import assemble
from bfn.hub import WEIGHTS_DIR
from bfn.settings import SamplingSettings
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


def test_a_two_digit_link_without_guidance_takes_its_models_recommended_guidance(models):
    """As choosing the model does: a link of the two-digit model that names no guidance runs at its model's own,
    not at the page's (the first model's); a guidance the link names is kept."""
    models = {**models, "two-digit": copy.deepcopy(models["two-digit"])}
    models["two-digit"].sampling = dataclasses.replace(models["two-digit"].sampling, guidance=3.5)
    ctx = context(models, stream_interval=0.0, plot_interval=0.0)
    try:
        page = assemble(ctx)
        defaults = {k: c.value for entry in page.linked for k, c in entry.fields.items()}
        assert defaults["guidance"] != 3.5
        named = {"model": "two-digit", "digits": "one", "digit": "42"}
        assert read_link(named, defaults, ["heatmap"], page.linked).values["guidance"] == 3.5
        assert read_link({**named, "guidance": "1.5"}, defaults, ["heatmap"], page.linked).values["guidance"] == 1.5
        assert read_link({"model": "discrete"}, defaults, ["heatmap"], page.linked).values["guidance"] == defaults["guidance"]
    finally:
        ctx.close()


# ------------------------------------------------------------------------ 8. words that match what is shown


def shipped_sampling() -> dict[str, SamplingSettings]:
    """The shipped models' recommended sampling, read from their config.json as the app reads it."""
    return {name: SamplingSettings.from_dict(json.loads((WEIGHTS_DIR / name / "config.json").read_text())["sampling"])
            for name in ("discrete", "continuous", "two-digit")}  # fmt: skip


@pytest.fixture(scope="module")
def shipped_menu(menu) -> ModelMenu:
    """The menu of the shipped models: their titles and labels (as the tiny models'), their own sampling."""
    return dataclasses.replace(menu, sampling=shipped_sampling())


@pytest.mark.parametrize("choice", ["discrete", "continuous", "two-digit", BOTH])
def test_the_sampler_hint_names_what_recommended_runs_for_each_model(shipped_menu, choice):
    hint = sampler_info(shipped_menu, choice)
    for name in shipped_menu.models(choice):
        own = shipped_menu.sampling[name]
        ran = {own.sampler_for(steps) for steps in range(1, 1001)}  # what a run of the recommended sampler uses
        said = own.sampler if ran == {own.sampler} else f"{own.sampler}, {own.few_steps_sampler} below {own.few_steps_below} steps"
        assert len(ran) == 1 or own.sampler_for(own.few_steps_below - 1) == own.few_steps_sampler
        assert said in hint, (name, hint)
    if choice == "continuous":  # the continuous model uses the solver at every step count: no "bfn" for it
        assert hint.startswith("recommended: the model's own (solver) ·"), hint
    if choice == BOTH:
        assert "Binarised (discrete): bfn, solver below 50 steps; Continuous: solver" in hint, hint


def test_each_choice_recommends_its_own_models_guidance(shipped_menu):
    assert shipped_menu.recommended_for("two-digit").guidance == 3.0
    assert shipped_menu.recommended_for(BOTH) == shipped_menu.sampling["discrete"]
    assert shipped_menu.recommended == shipped_menu.sampling["discrete"]


def test_the_digits_choice_says_which_numbers_a_run_of_every_label_draws(menu):
    every = menu.mode_labels("two-digit")["all"]
    drawn = [menu.label_set("two-digit").names[k] for k in parse_settings("two-digit", "all", None, 1, 1, 0, menu=menu).labels]
    assert every == "10 numbers: 00, 11, …, 99" and drawn[:2] == ["00", "11"] and drawn[-1] == "99"


def test_the_which_digit_caption_does_not_ask_for_what_may_be_chosen():
    assert "Choose *Unconditional*" not in BELIEFS_CAPTION and "In an unconditional run" in BELIEFS_CAPTION


def test_the_status_tells_the_steps_sampled_apart_from_the_views_refreshed(models):
    ctx = context(models, stream_interval=0.0, plot_interval=0.0)
    try:
        updates = list(GenerateHandlers(ctx).generate("discrete", "all", 0, 1.0, 20, 0, "bfn", "recommended", SimpleNamespace(session_hash="rate")))
        final = updates[-1][0]
        assert re.search(r"20 steps in [0-9.]+ s · views refreshed [0-9.]+ times/s", final), final
        assert "updates/s" not in final
    finally:
        ctx.close()


# --------------------------------------------------------------------- 9. switching model leaves no stale run


def test_switching_model_clears_the_views_and_forgets_the_last_run(models):
    ctx = context(models, stream_interval=0.0, plot_interval=0.0)
    try:
        handlers, request, images = GenerateHandlers(ctx), SimpleNamespace(session_hash="switch"), 2 * len(ctx.menu.names)
        list(handlers.generate("discrete", "all", 0, 1.0, STEPS, 0, "bfn", "recommended", request))
        out = handlers.switch_model("two-digit", request)  # the SHOWN views, then the guidance
        status, pictures, figures, guidance = out[0], out[1 : 1 + images], out[2 + images : 6 + images], out[-1]
        assert status == "Two digits (64×64), at its recommended guidance 1: press **Generate**."
        assert guidance == ctx.menu.recommended_for("two-digit").guidance
        assert pictures == [None] * images and figures == [None] * 4
        assert ctx.session(request).run is None  # a scrub or a click no longer brings the old run back
        assert "Press **Generate** first" in handlers.scrub(3, request)[0]
    finally:
        ctx.close()


def test_the_switch_leaves_alone_a_run_of_the_model_it_chose(models):
    """Generate pressed right after a model choice can reach the server first: the switch must not end that run
    (it did, and the page stood at "Running — step 6 of 60" until the run idled out)."""
    ctx = context(models, stream_interval=0.0, plot_interval=0.0)
    try:
        handlers, request = GenerateHandlers(ctx), SimpleNamespace(session_hash="race")
        updates = handlers.generate("two-digit", "all", 0, 1.0, 30, 0, "bfn", "recommended", request)
        next(updates)
        run = ctx.session(request).run
        out = handlers.switch_model("two-digit", request)
        assert all(v == gr.skip() for v in out)  # nothing to clear, and the run keeps the guidance it runs with
        assert ctx.session(request).run is run
        final = list(updates)[-1][0]
        assert run.state is RunState.DONE and "30 steps in" in final, final
    finally:
        ctx.close()


def test_a_run_ended_by_the_switch_sends_nothing_over_the_cleared_views(models):
    ctx = context(models, stream_interval=0.0, plot_interval=0.0)
    try:
        handlers, request = GenerateHandlers(ctx), SimpleNamespace(session_hash="after")
        updates = handlers.generate("discrete", "all", 0, 1.0, 1000, 0, "bfn", "recommended", request)
        next(updates)
        handlers.switch_model("continuous", request)
        rest = list(updates)
        assert rest and all(v == gr.skip() for update in rest for v in update)
    finally:
        ctx.close()


# --------------------------------------------------------------------- 6. the duel's timeline labels whole


def test_the_duels_step_labels_stay_inside_the_figure_at_either_end():
    sides = [Side("bfn · 100 steps", np.linspace(0, 1, 101), 100), Side("solver · 20 steps", np.linspace(0, 1, 21), 0)]
    labels = [trace for trace in timeline(sides, 1.0)["data"] if trace["mode"] == "markers+text"]
    assert [(t["text"], t["textposition"]) for t in labels] == [(["step 100"], "top left"), (["step 0"], "top right")]
    assert all(t["cliponaxis"] is False for t in labels)


def test_the_duel_says_where_its_shared_settings_are_at_any_width():
    assert "on the left" not in DUEL_INTRO and "the page's Model, Digits, Guidance and Seed" in DUEL_INTRO

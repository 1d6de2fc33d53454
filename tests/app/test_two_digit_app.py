"""The app with a model of other labels and size beside the MNIST models: a tiny two-digit model (64×64, "00" …
"99") gets its own "Two digits (64×64)" choice and number picker, its views, pixels, classifier reading (each
half's digit) and exports; a model whose labels are names says the digit classifier does not apply; side by
side runs only models of one label set. Unit level first, then through the public API of a served app (and in a
browser: tests/e2e/test_two_digit_e2e.py)."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app.core.menu import BOTH  # noqa: E402
from app.core.models import ModelBank, model_menu, warm_up  # noqa: E402
from app.core.runs import RunState, generation  # noqa: E402
from app.core.settings import parse_settings  # noqa: E402
from app.features.digit.handlers import COMPLETION, FEATURE, DigitHandlers, DigitSession  # noqa: E402
from app.features.generate import exports  # noqa: E402
from app.features.generate import figures as run_figures  # noqa: E402
from app.features.generate.handlers import GenerateHandlers  # noqa: E402
from app.features.generate.layout import label_pickers  # noqa: E402
from app.ui import figures, images  # noqa: E402
from app.ui.context import Context  # noqa: E402
from bfn.classifier import classify_states, load_classifier  # noqa: E402
from tests.support.apps import context, served_mixed  # noqa: E402
from tests.support.models import ANIMALS  # noqa: E402

STEPS = 4


@pytest.fixture(scope="module")
def models(discrete_model, continuous_model, two_digit_model, named_model) -> dict:
    return {"discrete": discrete_model, "continuous": continuous_model, "two-digit": two_digit_model, "animals": named_model}


@pytest.fixture(scope="module")
def menu(models):
    return model_menu(models)


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


def run(menu, models, classifier, model: str, digits: str, digit=None):
    done = generation(parse_settings(model, digits, digit, 2.0, STEPS, 0, "bfn", menu=menu), models, classifier).start()
    done.join(120)
    assert done.state is RunState.DONE, done.error
    return done


@pytest.fixture(scope="module")
def numbers_run(menu, models, classifier):
    return run(menu, models, classifier, "two-digit", "all")


# ------------------------------------------------------------------------------------------------ the menu


def test_the_two_digit_model_is_a_choice_of_its_own_and_side_by_side_keeps_to_one_label_set(menu):
    assert menu.titles["two-digit"] == "Two digits (64×64)"
    assert menu.titles["animals"] == "animals · Binarised (discrete) (28×28)"
    assert menu.models(BOTH) == ("discrete", "continuous")
    assert menu.choices[BOTH] == "Binarised (discrete) + Continuous, side by side"
    assert menu.label_choices("two-digit")[:2] == [("00", 0), ("01", 1)] and len(menu.label_choices("two-digit")) == 100
    assert menu.label_choices("animals") == [("cat", 0), ("dog", 1), ("bird", 2)]
    assert menu.mode_labels("two-digit") == {"all": "10 numbers: 00, 11, …, 99", "one": "One number", "none": "Unconditional"}
    assert menu.mode_labels(BOTH)["all"] == "All ten digits" and menu.mode_labels("animals")["all"] == "All 3 labels"


def test_settings_pick_numbers_by_index_or_name_and_runs_draw_a_row_of_them(menu):
    one = parse_settings("two-digit", "one", "42", 2.0, 10, 0, "bfn", menu=menu)
    assert one.labels == [42] and "number 42" in one.describe()
    assert parse_settings("two-digit", "one", "07", 2.0, 10, 0, menu=menu).labels == [7]
    every = parse_settings("two-digit", "all", None, 2.0, 10, 0, menu=menu)
    assert every.labels == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99] and "numbers 00, 11, 22" in every.describe()
    assert parse_settings("two-digit", "none", None, 2.0, 10, 0, menu=menu).labels == [None] * 10
    assert parse_settings("animals", "one", "dog", 2.0, 10, 0, menu=menu).labels == [1]
    assert parse_settings("animals", "all", None, 2.0, 10, 0, menu=menu).labels == [0, 1, 2]
    with pytest.raises(ValueError, match="digit must be from 0 to 99"):
        parse_settings("two-digit", "one", 100, 2.0, 10, 0, menu=menu)
    with pytest.raises(ValueError, match="digit must be one of the model's labels \\('cat' … 'bird'\\)"):
        parse_settings("animals", "one", "cow", 2.0, 10, 0, menu=menu)


def test_side_by_side_of_different_label_sets_is_refused_by_name(discrete_model, two_digit_model):
    mixed = model_menu({"discrete": discrete_model, "two-digit": two_digit_model})
    assert BOTH not in mixed.choices
    with pytest.raises(ValueError, match="runs models of the same labels and image size side by side, but the models here "
                                         "differ \\(discrete: 10 digits at 28×28; two-digit: 100 numbers at 64×64\\)"):
        parse_settings(BOTH, "all", None, 2.0, 10, 0, menu=mixed)


def test_choosing_a_model_offers_its_labels_in_the_picker(menu):
    modes, picker = label_pickers(menu, "two-digit", 42)
    assert picker.value is None and len(picker.choices) == 100 and picker.label == "Which number"  # 42 left as it is
    modes, picker = label_pickers(menu, BOTH, 42)  # 42 is no digit: back to a default one
    assert picker.value == 3 and [c[0] for c in picker.choices] == [str(d) for d in range(10)]
    assert [c[0] for c in modes.choices][0] == "All ten digits"


def test_warm_up_runs_each_model_at_its_own_image_size(models):
    bank, shapes = ModelBank(), []
    for name in ("discrete", "two-digit"):
        bank.add(name, models[name], name)
    hooks = [m.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape[-2:]))) for m in bank.models.values()]
    try:
        warm_up(bank)
    finally:
        for hook in hooks:
            hook.remove()
    assert shapes == [(28, 28)] * 4 + [(64, 64)] * 4


# ------------------------------------------------------------------------------------- runs and their views


def test_a_two_digit_run_records_64_by_64_frames_and_each_halfs_digit(numbers_run, classifier):
    fr = numbers_run.frames["two-digit"]
    assert fr.theta.shape == fr.output.shape == (STEPS + 1, 10, 64, 64) and fr.sample.shape == (10, 64, 64)
    assert fr.digit_probs.shape == (STEPS + 1, 10, 20)
    np.testing.assert_allclose(fr.digit_probs.reshape(STEPS + 1, 10, 2, 10).sum(-1), 1.0, rtol=1e-5)
    expected = classify_states(classifier, torch.from_numpy(fr.output.astype(np.float32)), fr.value_range, parts=2).numpy()
    np.testing.assert_allclose(fr.digit_probs, expected, atol=0.02)  # the frames keep outputs as float16
    assert list(numbers_run.frames) == ["two-digit"]


def test_the_views_and_clicks_follow_the_models_image_size(numbers_run):
    fr = numbers_run.frames["two-digit"]
    picture = images.theta_image(fr, STEPS)
    layout = images.GridLayout(10, (64, 64))
    assert picture.shape == (layout.height, layout.width) == (2 * 66 + 2, 5 * 66 + 2)
    assert layout.locate(2 + 66 + 63.5, 2 + 66 + 40.2) == (6, 40, 63) and layout.locate(1, 1) is None
    heatmap = figures.pixel_heatmap(numbers_run.frames, STEPS, image=4, pixels=[(4, 63, 0)], labels=numbers_run.settings.labels)
    assert heatmap["layout"]["xaxis"]["range"] == [-0.5, 63.5] and heatmap["layout"]["yaxis"]["range"] == [63.5, -0.5]
    assert heatmap["layout"]["title"]["text"].startswith("image 4 · number 44")
    traj = run_figures.trajectories(numbers_run.frames, STEPS, [(4, 63, 0)])
    np.testing.assert_allclose(traj["data"][0]["y"], fr.theta[:, 4, 63, 0].astype(np.float32))


def test_the_classifier_view_reads_a_number_digit_by_digit(numbers_run):
    fr = numbers_run.frames["two-digit"]
    fig = run_figures.digit_beliefs(numbers_run.frames, STEPS, image=4, labels=numbers_run.settings.labels)
    titles = [a["text"] for a in fig["layout"]["annotations"]][:2]
    assert titles == ["Two digits (64×64) · tens digit", "Two digits (64×64) · units digit"]
    lines = [t for t in fig["data"] if t["mode"] == "lines"]
    assert len(lines) == 20 and {t["xaxis"] for t in lines} == {"x", "x2"}
    np.testing.assert_allclose(lines[13]["y"], fr.digit_probs[:, 4, 13])  # units digit 3's line
    assert [t["line"]["width"] for t in lines].count(3.5) == 2  # number 44: the 4 of each half drawn thick
    reading = "".join(str(int(fr.digit_probs[STEPS, 4, 10 * p : 10 * p + 10].argmax())) for p in range(2))
    assert fig["layout"]["title"]["text"] == f"Which number does the classifier see in the output distribution?<br>image 4 · number 44 · it reads {reading} at step {STEPS}"


def test_a_model_whose_labels_are_names_shows_them_and_the_classifier_view_says_it_does_not_apply(menu, models, classifier):
    named = run(menu, models, classifier, "animals", "one", "dog")
    fr = named.frames["animals"]
    assert fr.digit_probs is None and fr.theta.shape == (STEPS + 1, 1, 28, 28)
    fig = run_figures.digit_beliefs(named.frames, STEPS, image=0, labels=named.settings.labels)
    assert fig["data"] == [] and "image 0 · label dog" in fig["layout"]["title"]["text"]
    assert "The labels of animals · Binarised (discrete) (28×28) are not digits (cat, dog, bird, …): the digit classifier does not apply" in [
        a["text"] for a in fig["layout"]["annotations"]]


def test_exports_of_a_two_digit_run_are_its_64_by_64_grids(numbers_run):
    frames = numbers_run.frames
    png = Image.open(io.BytesIO(exports.png_bytes(exports.final_picture(frames, scale=1))))
    assert png.width >= 5 * 66 + 2 and png.height >= 2 * 66 + 2
    gif = Image.open(io.BytesIO(exports.animation_gif(frames)))
    assert gif.n_frames == STEPS + 1 and gif.width >= 2 * (5 * 66 + 2) * 2


# --------------------------------------------------------------------------------------------- public API


@pytest.fixture(scope="module")
def client(tmp_path_factory, models):
    """A served app over a weights folder with the shipped layout and a third and fourth model folder."""
    with served_mixed(tmp_path_factory.mktemp("weights"), models) as (url, app_server):
        client = Client(url, verbose=False, download_files=False)
        client.context = app_server.context  # for the page-only events (a click on an image)
        yield client


def pictures(outputs) -> list[np.ndarray]:
    return [np.asarray(Image.open(o["path"]).convert("L")) for o in outputs if isinstance(o, dict) and str(o.get("path", "")).endswith(".png")]


def plots(outputs) -> list[dict]:
    return [json.loads(o["plot"]) for o in outputs if isinstance(o, dict) and o.get("type") == "plotly"]


def titled(outputs, start: str) -> dict:
    return next(p for p in plots(outputs) if p["layout"].get("title", {}).get("text", "").startswith(start))


def test_the_api_generates_scrubs_follows_pixels_and_exports_a_number(client):
    client.predict(api_name="/clear_pixels")  # no pixel to follow: the run follows its images' centre
    final = client.submit("two-digit", "one", "42", 2.0, 6, 0, "bfn", api_name="/generate").result()
    assert "Done" in final[0] and "number 42" in final[0]
    assert any("image 0, row 32, col 32" in t.get("name", "") for p in plots(final) for t in p["data"])
    assert [p.shape for p in pictures(final)] == [(68, 68), (68, 68)]  # θ and the output: one 64×64 number
    assert "image 0 · number 42 · it reads" in titled(final, "Which number")["layout"]["title"]["text"]
    scrubbed = client.predict(3, api_name="/scrub")
    assert "step 3 of 6" in scrubbed[0] and not np.array_equal(pictures(scrubbed)[0], pictures(final)[0])
    followed = client.predict(0, 63, 62, api_name="/add_pixel")
    names = [t.get("name", "") for p in plots(followed) for t in p["data"]]
    assert any("image 0, row 63, col 62" in n for n in names)
    with pytest.raises(AppError, match="row must be from 0 to 63"):
        client.predict(0, 64, 0, api_name="/add_pixel")
    click = GenerateHandlers(client.context).click_pixel("65.5,41.2,1", SimpleNamespace(session_hash=client.session_hash))  # past 28×28
    names = [t.get("name", "") for o in click if hasattr(o, "plot") for t in json.loads(o.plot)["data"]]
    assert any("image 0, row 39, col 63" in n for n in names)
    png = np.asarray(Image.open(client.predict(api_name="/export_png")["path"]))
    assert png.shape[1] >= 4 * 68
    gif = Image.open(client.predict(api_name="/export_gif")["path"])
    assert gif.n_frames == 7


def test_the_api_runs_a_named_model_and_refuses_mixing_label_sets(client):
    final = client.submit("animals", "one", "dog", 2.0, 3, 0, "bfn", api_name="/generate").result()
    assert "label dog" in final[0] and [p.shape for p in pictures(final)] == [(32, 32), (32, 32)]
    assert any("does not apply" in a["text"] for a in titled(final, "Which digit")["layout"]["annotations"])
    both = client.submit(BOTH, "all", 0, 2.0, 3, 0, "bfn", api_name="/generate").result()
    assert "Binarised (discrete) + Continuous, side by side" in both[0] and len(pictures(both)) == 4
    with pytest.raises(AppError, match="digit must be from 0 to 99"):
        client.submit("two-digit", "one", 100, 2.0, 3, 0, "bfn", api_name="/generate").result()


def test_your_digit_runs_the_models_of_the_first_label_set_beside_a_two_digit_model(client):
    digit = DigitHandlers(client.context, samples=1, curve_points=2)
    assert digit.names == ("discrete", "continuous") and digit.labels.shape == (28, 28)
    drawing = np.zeros((140, 140), np.uint8)
    drawing[20:120, 60:80] = 255
    digit.score(drawing, "drawing", "discrete", 0, 0, 0.5, "predicted", SimpleNamespace(session_hash="digit"))
    kept = digit.ctx.store.kept("digit", FEATURE, DigitSession)
    assert list(kept.scores) == ["discrete", "continuous"] and kept.image.shape == (28, 28)


def digit_section(models, names, classifier) -> DigitHandlers:
    """Your digit over the models `names`, each recommending 8 steps (a completion takes every step 10 times)."""
    bank = ModelBank(classifier=classifier)
    for name in names:
        model = copy.deepcopy(models[name])
        model.sampling = dataclasses.replace(model.sampling, steps=8)
        bank.add(name, model, name)
    return DigitHandlers(Context(bank), samples=1, curve_points=2)


def test_your_digit_with_a_two_digit_model_first_takes_a_drawn_number(models, classifier):
    digit = digit_section(models, ("two-digit",), classifier)
    sid = SimpleNamespace(session_hash="numbers")
    stroke = np.full((120, 240), 255, np.uint8)
    stroke[20:100, 50:60] = stroke[20:100, 150:190] = 0  # two digits, one in each half
    out = digit.score(stroke, "drawing", "two-digit", 0, 0, 0.5, "7", sid)
    session = digit.ctx.store.kept("numbers", FEATURE, DigitSession)
    assert session.image.shape == (64, 64) and session.classifier is None  # the classifier reads digits, not numbers
    assert any("the digit classifier reads single digits, not numbers" in o for o in out if isinstance(o, str))
    assert any("number 07" in o for o in out if isinstance(o, str))  # the bound given the label picked, by its name
    assert any(isinstance(o, str) and "07" in o for o in digit.flow_at(0.3, "7", sid))
    done = list(digit.complete(stroke, "drawing", "two-digit", 0, 0, "left", "42", 2.0, sid))
    assert done and digit.ctx.store.get("numbers").runs[COMPLETION].outcome["two-digit"].shape == (64, 64)


def test_your_digit_names_the_labels_of_a_named_model(models, classifier):
    digit = digit_section(models, ("animals",), classifier)
    drawing = np.zeros((140, 140), np.uint8)
    drawing[20:120, 60:80] = 255
    out = digit.score(drawing, "drawing", "animals", 0, 0, 0.5, "predicted", SimpleNamespace(session_hash="named"))
    (table,) = [o for o in out if isinstance(o, pd.DataFrame)]
    assert table["label"].tolist() == [*ANIMALS, "none"]
    posterior = next(json.loads(o.plot) for o in out if hasattr(o, "plot") and "Bayes' rule" in o.plot)
    assert posterior["layout"]["xaxis"]["ticktext"] == ANIMALS


def test_a_run_whose_frames_would_pass_the_bound_is_refused_saying_how_many_steps_fit(menu, models, classifier):
    """64×64 numbers keep 5× the bytes of MNIST digits per step: 1000 bfn steps pass `MAX_RUN_BYTES`."""
    from app.core.runs import MAX_RUN_BYTES, RunTooLarge

    with pytest.raises(RunTooLarge, match=r"1000 steps would keep \d+ MB of frames, over the 128 MB one run may keep: choose at most (\d+) steps") as e:
        generation(parse_settings("two-digit", "all", None, 2.0, 1000, 0, "bfn", menu=menu), models, classifier)
    fits = int(str(e.value).rsplit("at most ", 1)[1].split()[0])
    largest = generation(parse_settings("two-digit", "all", None, 2.0, fits, 0, "bfn", menu=menu), models, classifier)
    assert sum(fr.nbytes for fr in largest.frames.values()) <= MAX_RUN_BYTES
    with pytest.raises(RunTooLarge):
        generation(parse_settings("two-digit", "all", None, 2.0, fits + 2, 0, "bfn", menu=menu), models, classifier)
    generation(parse_settings(BOTH, "all", None, 2.0, 1000, 0, "bfn", menu=model_menu({k: models[k] for k in ("discrete", "continuous")})),
        models, classifier)  # the largest MNIST run fits


def test_generate_answers_a_run_too_large_with_its_message(models):
    import gradio as gr

    handlers = GenerateHandlers(context(dict(models)))
    with pytest.raises(gr.Error, match="choose at most"):
        next(handlers.generate("two-digit", "all", None, 2.0, 1000, 0, "bfn", "recommended", None))
    handlers.ctx.close()

"""The "Your digit through the BFN" handlers without a server: tiny models, fast sampling settings."""

from __future__ import annotations

import copy
import dataclasses
import json
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from app.core.models import ModelBank
from app.core.store import SessionStore
from app.features.digit.handlers import COMPLETED, COMPLETION, FEATURE, FLOW, SCORED, DigitHandlers, DigitSession, DigitViews
from app.features.digit.inputs import known_mask
from app.ui.context import Context
from app.core.settings import RunSettings
from bfn.classifier import fast_classifier, load_classifier
from bfn.completion import known_view
from bfn.images import to_unit
from bfn.settings import SamplingSettings
from tests.support.apps import stroke_drawing

WIDTHS = {f.name: f.metadata.get("per_model") for f in dataclasses.fields(DigitViews)}


@pytest.fixture(scope="module")
def bank(discrete_model, continuous_model) -> ModelBank:
    """Both tiny models, recommending few steps (a completion takes each step RESAMPLE times), and the classifier."""
    models = {"discrete": copy.deepcopy(discrete_model), "continuous": copy.deepcopy(continuous_model)}
    models["discrete"].sampling = SamplingSettings(sampler="bfn", steps=8, few_steps_below=2, guidance=2.0)
    models["continuous"].sampling = SamplingSettings(sampler="solver", steps=6, guidance=2.0)
    return ModelBank(models=models, classifier=fast_classifier(load_classifier()))


@pytest.fixture
def digit(bank) -> DigitHandlers:
    return DigitHandlers(Context(bank, stream_interval=0.0), samples=4, curve_points=5)


def request(sid: str = "s") -> SimpleNamespace:
    return SimpleNamespace(session_hash=sid)


def named(names, fields, values: list) -> dict:
    """An event's outputs by view: "field" or "field:model" (or "field:model:k" for views of several parts)."""
    keys = []
    for f in fields:
        width = WIDTHS[f]
        if width is None:
            keys.append(f)
            continue
        for m in names:
            keys += [f"{f}:{m}"] if width == 1 else [f"{f}:{m}:{k}" for k in range(width)]
    assert len(keys) == len(values)
    return dict(zip(keys, values))


def score(digit, drawing=None, source="drawing", generated_by="discrete", image=0, seed=0, t=0.5, label="predicted", sid="s"):
    out = digit.score(stroke_drawing() if drawing is None else drawing, source, generated_by, image, seed, t, label, request(sid))
    return named(digit.menu.names, SCORED, out)


def test_a_drawing_is_scored_by_every_model_beside_the_classifier(digit):
    v = score(digit)
    status = v["status"]
    assert "Scored your drawing" in status and "2·4·11 = 88 network passes per model" in status and "classifier: **1**" in status
    assert v["prepared"].shape == (32, 32) and v["data:discrete"].shape == (32, 32)
    assert set(np.unique(v["data:discrete"][2:-2, 2:-2])) <= {0, 255}  # binarised: the discrete model's data
    fig = json.loads(v["posterior"].plot)
    bars = [trace for trace in fig["data"] if trace["type"] == "bar"]
    assert len(bars) == 3  # two BFNs and the classifier
    assert "Digit classifier" in fig["layout"]["annotations"][2]["text"]
    for name in digit.menu.names:
        table = v[f"tables:{name}"]
        assert isinstance(table, pd.DataFrame) and list(table["label"]) == [*map(str, range(10)), "none"]
        assert np.allclose(table["L∞"] + table["Lʳ"], table["nats"], atol=0.02)
        assert table["p(y|x)"][:10].sum() == pytest.approx(1, abs=1e-3)
    assert "bits/dim" in v["tables:continuous"].columns and "bits/dim" not in v["tables:discrete"].columns
    assert "bits/dim" in v["bounds:continuous"] and "unconditional" in v["bounds:discrete"]
    costs = json.loads(v["costs"].plot)
    assert costs["layout"]["yaxis"]["type"] == "log" and len(costs["data"]) == 2 * 11
    assert v["flow_images:discrete:0"].shape == (32, 32) and "t = 0.500" in v["flow_status"]


def test_scores_are_seeded_and_the_seed_reaches_the_binarisation(digit):
    a, b, c = score(digit), score(digit), score(digit, seed=1)
    assert a["status"].split("in ")[0] == b["status"].split("in ")[0]
    assert a["tables:discrete"].equals(b["tables:discrete"])
    assert not np.array_equal(a["data:discrete"], c["data:discrete"])  # another Bernoulli draw
    assert np.array_equal(a["data:continuous"], c["data:continuous"])  # scaling draws nothing


def test_the_training_view_moves_one_draw_along_t_and_follows_the_label(digit):
    before = named(digit.menu.names, FLOW, digit.flow_at(0.5, "3", request("fresh")))
    assert "Score a digit first" in before["flow_status"]
    score(digit)
    start = named(digit.menu.names, FLOW, digit.flow_at(0.0, "3", request()))
    assert np.all(start["flow_images:discrete:0"][2:-2, 2:-2] == 128)  # at t = 0 θ is the prior: p = ½ everywhere
    mid, again = (named(digit.menu.names, FLOW, digit.flow_at(0.4, "3", request())) for _ in range(2))
    assert np.array_equal(mid["flow_images:continuous:0"], again["flow_images:continuous:0"])  # seeded
    assert not np.array_equal(mid["flow_images:continuous:0"], start["flow_images:continuous:0"])
    assert "digit 3" in mid["bounds:discrete"] and "Continuous: 3" in mid["flow_status"]
    assert mid["flow_status"].count("ρ =") == 1  # only the θ that holds a precision has a ρ to report
    heatmap = json.loads(mid["flow_heatmaps:continuous"].plot)
    assert "σ =" in heatmap["data"][0]["hovertemplate"] and "digit 3" in heatmap["data"][0]["hovertemplate"]
    with pytest.raises(gr.Error, match="t must be from 0 to 1"):
        digit.flow_at(1.5, "3", request())
    with pytest.raises(gr.Error, match="label must be a digit from 0 to 9 or 'predicted'"):
        digit.flow_at(0.5, "12", request())


@pytest.mark.parametrize(
    ("drawing", "message"),
    [
        (None, "the drawing is empty: draw a digit"),
        ({"background": None, "layers": [], "composite": None}, "the drawing is empty: draw a digit"),
        ({"background": None, "layers": [], "composite": np.zeros((50, 50, 4), np.uint8)}, "no pixel stands out"),
        ({"background": None, "layers": [], "composite": np.full((50, 50, 3), 255, np.uint8)}, "no pixel stands out"),
    ],
)
def test_an_empty_drawing_is_refused_with_a_clear_message(digit, drawing, message):
    with pytest.raises(gr.Error, match=message):
        digit.score(drawing, "drawing", "discrete", 0, 0, 0.5, "predicted", request())
    with pytest.raises(gr.Error, match=message):
        list(digit.complete(drawing, "drawing", "discrete", 0, 0, "top", "none", 1.0, request()))


def test_masks_that_keep_nothing_or_everything_are_refused(digit):
    ink = np.zeros((28, 28), np.float32)
    with pytest.raises(ValueError, match="keeps no pixel"):
        known_mask("strokes", ink)
    with pytest.raises(ValueError, match="keeps every pixel"):
        known_mask("strokes", ink + 1)
    ink[5:20, 13:15] = 1
    assert known_mask("strokes", ink).sum() == 30 and known_mask("left", ink).sum() == 28 * 14
    with pytest.raises(gr.Error, match="keep must be one of 'top', 'bottom', 'left', 'right', 'strokes'"):
        list(digit.complete(stroke_drawing(), "drawing", "discrete", 0, 0, "middle", "none", 1.0, request()))
    with pytest.raises(gr.Error, match="digit must be a digit from 0 to 9 or 'none'"):
        list(digit.complete(stroke_drawing(), "drawing", "discrete", 0, 0, "top", "x", 1.0, request()))


def test_a_completion_streams_keeps_the_known_pixels_and_can_be_scrubbed(digit):
    updates = [named(digit.menu.names, COMPLETED, out)
               for out in digit.complete(stroke_drawing(), "drawing", "discrete", 0, 0, "strokes", "1", 2.0, request())]  # fmt: skip
    assert len(updates) >= 3
    final = updates[-1]
    assert "Done" in final["completion_status"] and "step 8 of 8" in final["completion_status"] and "step 6 of 6" in final["completion_status"]
    assert isinstance(final["completion_slider"], gr.Slider)
    completion = digit.ctx.store.get("s").runs[COMPLETION]
    mask = completion.settings.mask
    for name in digit.menu.names:
        assert final[f"completion:{name}:3"].shape == (32, 32)  # the completion itself
        fr = completion.frames[name]
        known = to_unit(known_view(fr.flow, completion.settings.data[name])[0].numpy(), fr.value_range)
        assert np.allclose(completion.outcome[name][mask], known[mask])
    start = named(digit.menu.names, COMPLETED, digit.complete_scrub(0.0, request()))
    assert "step 0 of 8" in start["completion_status"] and "step 0 of 6" in start["completion_status"]
    assert np.all(start["completion:discrete:1"][2:-2, 2:-2] == 128)  # θ at step 0: the prior
    assert isinstance(start["completion_slider"], type(gr.skip()))  # scrubbing leaves the slider where it was
    assert "Press **Complete** first" in named(digit.menu.names, COMPLETED, digit.complete_scrub(0.5, request("other")))["completion_status"]


def test_a_completion_stops_when_asked(digit):
    stream = digit.complete(stroke_drawing(), "drawing", "discrete", 0, 0, "top", "none", 1.0, request())
    next(stream)
    stopped = named(digit.menu.names, COMPLETED, digit.stop(request()))
    rest = [named(digit.menu.names, COMPLETED, out) for out in stream]
    assert "Stopped" in stopped["completion_status"] and "Stopped" in rest[-1]["completion_status"]
    assert "Nothing to stop" in named(digit.menu.names, COMPLETED, digit.stop(request("other")))["completion_status"]


def test_a_digit_just_generated_can_be_taken_instead(digit, bank):
    with pytest.raises(gr.Error, match="no digit has been generated in this session yet"):
        score(digit, source="generated")
    settings = RunSettings("discrete", "all", 0, 1.0, 4, 0, "bfn", bank.menu)
    run = digit.ctx.store.start_run("s", settings, bank.models)
    run.join(30)
    v = score(digit, source="generated", generated_by="discrete", image=2)
    assert "image 2 of the last generation (Binarised (discrete), digit 2)" in v["status"]
    sample = to_unit(run.frames["discrete"].sample[2].astype(np.float32), (0.0, 1.0))
    assert np.array_equal(v["prepared"][2:-2, 2:-2] > 127, sample > 0.5)  # the final sample as it is, not re-centred
    with pytest.raises(gr.Error, match="did not run the Continuous model"):
        score(digit, source="generated", generated_by="continuous")
    with pytest.raises(gr.Error, match="image must be from 0 to 9"):
        score(digit, source="generated", image=10)
    with pytest.raises(gr.Error, match="source must be one of 'drawing', 'generated'"):
        score(digit, source="camera")


def test_the_store_bounds_what_the_digit_keeps_and_forgets_closed_tabs(digit):
    """What the digit keeps of a session is in the one store, bounded with its sessions and gone with them."""
    store = SessionStore(max_sessions=2)
    for sid in "abc":
        store.kept(sid, FEATURE, DigitSession).seed = 1
    assert store.kept("a", FEATURE, DigitSession).seed == 0  # "a" was the least recently used: dropped for "c"
    score(digit)
    assert digit.ctx.store.kept("s", FEATURE, DigitSession).scores
    digit.ctx.forget(request())
    assert digit.ctx.store.kept("s", FEATURE, DigitSession).scores == {}

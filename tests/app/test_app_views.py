"""What the page says and how its figures are laid out, without a browser: typed values out of range, the
status line, the figures' sizes and labels, the exports, and a click that names its pixel.

The browser checks of the same (what is on screen at 390×844 and 1440×900) are in tests/test_app_layout_e2e.py.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from app.ui import images
from app.ui import figures
from app.features.generate import figures as run_figures
from app.features.generate import exports
from app.core.frames import Frames
from app.features.generate.handlers import GENERATED, PIXEL, GenerateHandlers
from tests.support.apps import context
from app.core.settings import MAX_GUIDANCE, MAX_SEED, MAX_APP_STEPS, parse_settings, plural
from bfn.sampling import get_sampler


def record(model, labels, steps: int, guidance: float = 3.0, interval=(0.0, 1.0)) -> Frames:
    frames = Frames(model.flow, len(labels), steps, digit_classes=10)
    for state in get_sampler("bfn")(model, list(labels), steps=steps, guidance=guidance, seed=0, guidance_interval=interval):
        frames.record(state, np.full((len(labels), 10), 0.1, np.float32))
    return frames


@pytest.fixture(scope="module")
def handlers(discrete_model, continuous_model):
    handlers = GenerateHandlers(context({"discrete": discrete_model, "continuous": continuous_model}, stream_interval=0.0))
    yield handlers
    handlers.ctx.close()


@pytest.fixture(scope="module")
def both(discrete_model, continuous_model) -> dict[str, Frames]:
    return {"discrete": record(discrete_model, range(10), 8), "continuous": record(continuous_model, range(10), 8)}


# ------------------------------------------------------------------------------------ typed values, the status

# What a user can type in each box, out of its range, as the page sends it (text: see app/ui/page.js, rememberTyped).
OUT_OF_RANGE = [
    ("steps", "5000", f"steps must be from 1 to {MAX_APP_STEPS}; got '5000'"),
    ("steps", "0", f"steps must be from 1 to {MAX_APP_STEPS}; got '0'"),
    ("steps", "-3", f"steps must be from 1 to {MAX_APP_STEPS}; got '-3'"),
    ("steps", "2.5", f"steps must be a whole number from 1 to {MAX_APP_STEPS}; got '2.5'"),
    ("steps", "", f"steps must be a number from 1 to {MAX_APP_STEPS}; got ''"),
    ("guidance", "25", f"guidance must be from 0 to {MAX_GUIDANCE:g}; got '25'"),
    ("guidance", "-1", f"guidance must be from 0 to {MAX_GUIDANCE:g}; got '-1'"),
    ("guidance", "", f"guidance must be a number from 0 to {MAX_GUIDANCE:g}; got ''"),
    ("seed", -1, f"seed must be from 0 to {MAX_SEED}; got -1"),
    ("seed", MAX_SEED + 1, f"seed must be from 0 to {MAX_SEED}; got {MAX_SEED + 1}"),
    ("seed", 1.5, f"seed must be a whole number from 0 to {MAX_SEED}; got 1.5"),
    ("digit", 10, "digit must be from 0 to 9; got 10"),
    ("autoguidance", "0.5", "autoguidance must be from 1 to 4; got '0.5'"),
    ("autoguidance", "much", "autoguidance must be a number from 1 to 4; got 'much'"),
]


@pytest.mark.parametrize("field, typed, message", OUT_OF_RANGE)
def test_every_typed_value_out_of_range_is_refused_with_a_message(handlers, field, typed, message):
    """Nothing is clamped on the server: the run is refused, and the message names the field, its range and
    what was typed."""
    values = dict(model="both", digits="one", digit=3, guidance=2.0, steps=8, seed=0, sampler="bfn", autoguidance="recommended")
    values[field] = typed
    request = SimpleNamespace(session_hash=f"typed-{field}-{typed}")
    with pytest.raises(gr.Error) as e:
        next(handlers.generate(*values.values(), request))
    assert e.value.message == message
    assert handlers.ctx.store.get(request.session_hash).run is None  # nothing ran


def test_the_status_counts_steps_in_words(handlers):
    assert [plural(n, "step") for n in (0, 1, 2)] == ["0 steps", "1 step", "2 steps"]
    request = SimpleNamespace(session_hash="one-step")
    *_, last = handlers.generate("discrete", "one", 3, 2.0, 1, 0, "bfn", "recommended", request)
    status = last[0]
    assert "step 1 of 1" in status and "1 step in" in status and "· 1 step ·" in status, status
    assert "1 steps" not in status and "2 steps" not in status, status


def test_the_first_update_is_the_images_and_status_and_the_figures_follow(handlers):
    """The first update of a run is the cheapest one (its images and status): with many runs starting at once
    it reaches every user quickly; the figures come with the next updates, and the last has them all."""
    models = len(handlers.menu.names)  # each model has its two images and its column
    names = ["status", *["image"] * 2 * models, "slider", "heatmap", "trajectories", "summary", "beliefs", *["column"] * models]
    assert len(names) == len(GENERATED) + 3 * models - 2
    updates = [dict(zip(names, u)) for u in handlers.generate("discrete", "all", 0, 1.0, 12, 0, "bfn", "recommended",
                                                               SimpleNamespace(session_hash="first-update"))]
    figures = ("heatmap", "trajectories", "beliefs", "summary")
    first, last = updates[0], updates[-1]
    assert len(updates) >= 2 and "**Running**" in first["status"]  # an early update (on a busy host step 1, not 0)
    assert all(first[name] == gr.skip() for name in figures), {name: type(first[name]) for name in figures}
    assert all(last[name] != gr.skip() for name in figures)


# ----------------------------------------------------------------------------------------------- figures


def test_the_heatmap_takes_its_box_width_with_each_colour_bar_under_its_map(both):
    layout = (fig := figures.pixel_heatmap(both, 8))["layout"]
    assert "width" not in layout and layout.get("autosize", True)  # a phone's 326 px as well as a laptop's 900
    for k, trace in enumerate(t for t in fig["data"] if t["type"] == "heatmap"):
        domain = layout["xaxis" if k == 0 else f"xaxis{k + 1}"]["domain"]
        bar = trace["colorbar"]
        assert bar["orientation"] == "h" and bar["y"] < 0  # under the map, not beside it
        assert domain[0] - 1e-9 <= bar["x"] - bar["len"] / 2 and bar["x"] + bar["len"] / 2 <= domain[1] + 1e-9


def test_the_heatmap_hover_is_one_box_with_the_model_name_inside(both):
    for trace in (t for t in figures.pixel_heatmap(both, 8)["data"] if t["type"] == "heatmap"):
        assert trace["hovertemplate"].endswith("<extra></extra>")  # Plotly's second box, outside the first: empty
        assert trace["hovertemplate"].startswith(f"<b>{trace['name']}</b>")


def test_trajectories_hold_every_plotted_value(both):
    """A continuous μ overshoots ±1 on its way (the shipped model's reaches about ±2.5): the axis holds it."""
    fr = both["continuous"]
    fr.theta[3, 0, 14, 14] = 2.4  # a value beyond the data's range, as the shipped model's μ takes
    fig = run_figures.trajectories(both, 8, [(0, 14, 14)])
    for k, sx in ((1, ""), (2, "2")):
        lo, hi = fig["layout"][f"yaxis{sx}"]["range"]
        for trace in (t for t in fig["data"] if t["yaxis"] == f"y{sx}"):
            assert lo <= float(trace["y"].min()) and float(trace["y"].max()) <= hi, (k, lo, hi)
    assert fig["layout"]["yaxis2"]["range"][1] > 2.4
    assert fig["layout"]["legend"]["y"] < 0  # the pixels' legend grows downwards, away from the titles


def test_which_digit_labels_keep_clear_of_each_other_and_the_axis(discrete_model):
    """The guidance band's label starts at the band's left edge at its foot; the ★'s label sits above it, on
    the side of the star that stays inside the panel."""
    early = record(discrete_model, range(10), 20, interval=(0.0, 0.3))  # guided from step 0: the band at the y axis
    early.digit_probs[:] = np.eye(10, dtype=np.float32)[None] * 0.9 + 0.01  # each image its own digit, from step 0
    fig = run_figures.digit_beliefs({"discrete": early}, 20, image=7, labels=list(range(10)))
    band = next(a for a in fig["layout"]["annotations"] if a["text"].startswith("guidance"))
    x_range = fig["layout"]["xaxis"]["range"]
    assert band["xanchor"] == "left" and band["yanchor"] == "bottom" and band["y"] < 0.1
    assert x_range[0] <= band["x"] <= x_range[1]  # inside the axis' range, where Plotly draws it
    star = next(t for t in fig["data"] if t.get("mode") == "markers+text")
    assert star["y"][0] >= 0.5 and star["textposition"] == "bottom right"  # the ★ high, its label right of it
    late = record(discrete_model, range(10), 20, interval=(0.0, 0.3))
    late.digit_probs[:] = 0.1
    late.digit_probs[15:, 7] = np.eye(10, dtype=np.float32)[7] * 0.9 + 0.01  # digit 7 decided at step 15 of 20
    star = next(t for t in run_figures.digit_beliefs({"discrete": late}, 20, image=7)["data"] if t.get("mode") == "markers+text")
    assert star["x"] == [15] and star["textposition"] == "bottom left"  # near the right edge: its label to the left
    late.digit_probs[:] = 0.1
    late.digit_probs[10:, 7] = np.eye(10, dtype=np.float32)[7] * 0.9 + 0.01  # decided at step 10 of 20
    star = next(t for t in run_figures.digit_beliefs({"discrete": late}, 20, image=7)["data"] if t.get("mode") == "markers+text")
    assert star["x"] == [10] and star["textposition"] == "bottom center"  # mid-panel: centred, clear of the y axis


# ----------------------------------------------------------------------------------------------- exports


def test_the_png_shows_what_the_screen_shows_and_the_sample_each_labelled(both, discrete_model):
    picture = exports.final_picture(both, scale=2)
    rows_of_images = images.image_grid(both["discrete"].output[8], both["discrete"].value_range, 2).shape[0]
    assert picture.shape[0] > 4 * rows_of_images  # two rows per model: the output distribution and the sample
    # the first row is the last output distribution itself, as on screen
    shown = images.image_grid(both["discrete"].output[8], both["discrete"].value_range, 2)
    found = any((picture[y : y + shown.shape[0], x : x + shown.shape[1]] == shown).all()
                for y in range(0, 60) for x in range(0, 12))  # fmt: skip
    assert found
    stopped = record(discrete_model, range(10), 8)
    stopped.sample, stopped.count = None, 5  # stopped after step 4: no sample to show
    assert exports.final_picture({"discrete": stopped}, scale=2).shape[0] < picture.shape[0] / 2 + 40
    assert Image.open(io.BytesIO(exports.png_bytes(picture))).size == (picture.shape[1], picture.shape[0])


def test_a_click_names_its_pixel_for_the_coordinate_boxes(handlers):
    request = SimpleNamespace(session_hash="boxes")
    handlers.ctx.store.start_run("boxes", parse_settings("discrete", "all", None, 1.0, 3, 0, menu=handlers.menu), handlers.ctx.bank.models).join(30)
    out = handlers.click_pixel("76.5,16.5,0", request)  # image 2, row 14, col 14
    assert out[len(PIXEL) :] == [2, 14, 14]
    assert out[len(PIXEL) :] != [gr.skip()] * 3
    on_padding = handlers.click_pixel("0.5,0.5,1", request)
    assert all(v == gr.skip() for v in on_padding)

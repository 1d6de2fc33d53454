"""The app's plain parts, without a server: settings checks, frame storage, sessions, images, figures, exports."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import time

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from app import render
from app.frames import Frames, decision_step, step_stats
from app.params import MAX_STEPS, RunSettings, parse_settings
from app.session import Run, Session, SessionStore, run_bytes
from bfn.classifier import classify_states, load_classifier
from bfn.sampling import StepState, get_sampler

SETTINGS = dict(model="both", digits="all", digit=None, guidance=2.0, steps=6, seed=0, sampler="bfn")


def record(model, labels=(0, 1, 2), steps=6, guidance=2.0, seed=0) -> Frames:
    frames = None
    for state in get_sampler("bfn")(model, list(labels), steps=steps, guidance=guidance, seed=seed):
        if frames is None:
            frames = Frames(model.kind, len(labels), state.num_steps, state.value_range)
        frames.record(state)
    return frames


@pytest.fixture(scope="module")
def both(discrete_model, continuous_model) -> dict[str, Frames]:
    return {"discrete": record(discrete_model, range(10)), "continuous": record(continuous_model, range(10))}


# ------------------------------------------------------------------------------------------------ settings


def test_parse_settings_accepts_widget_and_api_values():
    s = parse_settings("both", "one", 7.0, "2.5", 100.0, "42", "bfn")
    assert s == RunSettings("both", "one", 7, 2.5, 100, 42, "bfn")
    assert s.kinds == ("discrete", "continuous") and s.labels == [7]
    assert parse_settings("discrete", "none", None, 0, 1, 0).labels == [None] * 10
    assert parse_settings("continuous", "all", None, 10, MAX_STEPS, 2**32 - 1).labels == list(range(10))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model", "gan", "model must be one of"),
        ("model", None, "model must be one of"),
        ("digits", "some", "digits must be one of"),
        ("digit", 12, "digit must be from 0 to 9"),
        ("digit", "seven", "digit must be a number"),
        ("guidance", -0.5, "guidance must be from 0 to 10"),
        ("guidance", 10.5, "guidance must be from 0 to 10"),
        ("guidance", float("nan"), "guidance must be a finite number"),
        ("guidance", "abc", "guidance must be a number"),
        ("guidance", True, "guidance must be a number"),
        ("steps", 0, "steps must be from 1 to 1000"),
        ("steps", 1001, "steps must be from 1 to 1000"),
        ("steps", 2.5, "steps must be a whole number"),
        ("steps", [10], "steps must be a number"),
        ("seed", -1, "seed must be from 0 to 4294967295"),
        ("seed", float("inf"), "seed must be a finite number"),
        ("sampler", "magic", "sampler must be one of"),
    ],
)
def test_parse_settings_rejects_bad_values_with_a_clear_message(field, value, message):
    values = dict(SETTINGS, digits="one", digit=3)
    values[field] = value
    with pytest.raises(ValueError, match=message):
        parse_settings(**values)


def test_parse_settings_refuses_a_model_that_is_not_loaded():
    with pytest.raises(ValueError, match="continuous model is not loaded"):
        parse_settings(**SETTINGS, available=("discrete",))


# -------------------------------------------------------------------------------------------------- frames


def test_frames_store_every_step_compactly(discrete_model, continuous_model):
    for model in (discrete_model, continuous_model):
        fr = record(model, labels=(0, 1, 2), steps=6)
        assert fr.count == 7 and fr.latest == 6 and fr.finished
        assert fr.theta.dtype == np.float16 and fr.theta.shape == (7, 3, 28, 28)
        assert fr.output.dtype == np.float16 and fr.sample.shape == (3, 28, 28)
        assert np.all((fr.stats >= 0) & (fr.stats <= 1))
        assert fr.stats[0, 1] == 0  # nothing is decided at the prior
        assert 0.99 * run_bytes(6, 3, 1, classified=False) <= fr.nbytes <= run_bytes(6, 3, 1, classified=False)
        lo, hi = fr.value_range
        assert fr.theta[: fr.count].min() >= lo - 1e-3 or model.kind == "continuous"
        assert (fr.precision is None) == (model.kind == "discrete")


def test_frames_refuse_states_out_of_order():
    fr = Frames("discrete", 1, 3, (0.0, 1.0))
    state = StepState(step=1, num_steps=3, t=1 / 3, theta=torch.zeros(1, 28, 28), precision=None, output=torch.zeros(1, 28, 28))
    with pytest.raises(ValueError, match="expected step 0 of 3"):
        fr.record(state)


def test_run_bytes_bound_matches_the_documented_maximum():
    worst = run_bytes(MAX_STEPS, 10, 2)
    assert 60e6 < worst < 64e6  # "≤ 64 MB per session"
    assert run_bytes(100, 10, 2) < 6.5e6


def test_step_stats_range_from_undecided_to_decided():
    half = np.full((2, 28, 28), 0.5, np.float32)
    assert step_stats("discrete", half, None) == pytest.approx((1.0, 0.0))
    sure = np.zeros((2, 28, 28), np.float32)
    sure[0] = 1
    uncertainty, decided = step_stats("discrete", sure, None)
    assert uncertainty < 1e-5 and decided == 1
    assert step_stats("continuous", np.zeros((2, 28, 28), np.float32), np.ones(2)) == pytest.approx((1.0, 0.0))
    ink = np.ones((2, 28, 28), np.float32)
    uncertainty, decided = step_stats("continuous", ink, np.full(2, 1e4))
    assert uncertainty == pytest.approx(0.01) and decided == 1


# ------------------------------------------------------------------------------------------------- sessions


def test_session_pixels_toggle_and_are_capped():
    s = Session(pixels=[])
    s.add_pixel((1, 2, 3))
    assert s.pixels == [(1, 2, 3)] and s.image == 1
    s.add_pixel((1, 2, 3))
    assert s.pixels == []
    for k in range(12):
        s.add_pixel((0, k, k))
    assert len(s.pixels) == 8 and s.pixels[0] == (0, 4, 4)


def test_runs_are_independent_stoppable_and_evicted_by_memory(discrete_model, continuous_model):
    models = {"discrete": discrete_model, "continuous": continuous_model}
    small = parse_settings("discrete", "one", 3, 1.0, 5, 0)
    store = SessionStore(max_bytes=int(2.5 * run_bytes(5, 1, 1)))
    runs = []
    for sid in ("a", "b", "c"):
        runs.append(store.start_run(sid, small, models))
        runs[-1].join(30)
    assert all(r.status == "done" for r in runs)
    # the third run pushed the total over the budget: the least recently used finished run went
    assert store.get("a").run is None and store.get("b").run is runs[1] and store.get("c").run is runs[2]
    assert store.nbytes <= store.max_bytes

    long = parse_settings("both", "all", None, 2.0, 1000, 0)
    run = store.start_run("b", long, models)
    assert run.wait(-1, timeout=30) >= 0
    run.stop(wait=30)
    assert run.done and run.status == "stopped" and 0 <= run.latest < 1000
    store.drop("c")
    assert "c" not in store._sessions


def test_a_run_reports_sampler_errors(discrete_model):
    settings = parse_settings("discrete", "all", None, 1.0, 5, 0)
    run = Run(settings, {"discrete": discrete_model})
    run.frames["discrete"] = Frames("discrete", 10, 4, (0.0, 1.0))  # wrong length: record() must refuse
    run.start().join(30)
    assert run.status == "failed" and "expected step" in run.error


def test_a_run_nobody_watches_stops_by_itself(discrete_model, monkeypatch):
    monkeypatch.setattr("app.session.IDLE_STOP_S", 0.0)
    run = Run(parse_settings("discrete", "all", None, 1.0, 1000, 0), {"discrete": discrete_model})
    run.last_seen = time.monotonic() - 1
    run.start().join(30)
    assert run.status == "stopped" and run.latest < 1000


# --------------------------------------------------------------------------------------------------- images


@pytest.mark.parametrize("batch", [1, 3, 10])
def test_grid_layout_locates_every_pixel(batch):
    layout = render.GridLayout(batch, scale=3)
    values = np.zeros((batch, 28, 28), np.float32)
    picture = render.image_grid(values, (0.0, 1.0), scale=3)
    assert picture.shape == layout.shape and picture.dtype == np.uint8
    for b in range(batch):
        for r, c in ((0, 0), (13, 27), (27, 5)):
            top = render.PAD + (b // layout.cols) * (28 + render.PAD) + r
            left = render.PAD + (b % layout.cols) * (28 + render.PAD) + c
            assert layout.locate(left * 3 + 1, top * 3 + 2) == (b, r, c)
    assert layout.locate(0, 0) is None  # padding
    assert layout.locate(layout.shape[1] + 5, 5) is None


def test_images_map_values_to_grey_levels(both):
    d, c = both["discrete"], both["continuous"]
    img = render.theta_image(d, 0)
    assert img.shape == (62, 152) and img.dtype == np.uint8
    inner = img[2:30, 2:30]
    assert np.all(inner == 128)  # θ0 = 1/2 everywhere: mid grey
    assert np.all(render.theta_image(c, 0)[2:30, 2:30] == 128)  # μ0 = 0 in [−1, 1]: mid grey
    assert render.image_grid(np.array([[[-1.0, 1.0]]]), (-1.0, 1.0)).max() == 255
    out = render.output_image(c, c.latest)
    assert out.shape == (62, 152) and 0 <= out.min() and out.max() <= 255


# -------------------------------------------------------------------------------------------------- figures


def decode(spec):
    """A typed-array spec from figure_json back to numpy."""
    arr = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
    return arr.reshape([int(x) for x in spec["shape"].split(",")]) if "shape" in spec else arr


def test_pixel_heatmap_has_per_pixel_hover_values(both):
    pixels = [(3, 14, 14), (3, 5, 6), (0, 1, 1)]
    fig = render.pixel_heatmap(both, 4, image=3, pixels=pixels, labels=list(range(10)))
    go.Figure(fig)  # a valid Plotly figure
    heatmaps = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 2
    for trace, fr in zip(heatmaps, both.values()):
        assert trace["z"].shape == (28, 28) and trace["customdata"].shape == (28, 28)
        np.testing.assert_allclose(trace["z"], fr.theta[4, 3].astype(np.float32))
        np.testing.assert_allclose(trace["customdata"], fr.output[4, 3].astype(np.float32))
        assert "%{z" in trace["hovertemplate"] and "%{customdata" in trace["hovertemplate"]
        assert [trace["zmin"], trace["zmax"]] == list(fr.value_range)
    assert "digit 3" in heatmaps[0]["hovertemplate"] and "σ = " in heatmaps[1]["hovertemplate"]
    markers = [t for t in fig["data"] if t["type"] == "scatter"]
    assert [m["x"] for m in markers] == [[14, 6], [14, 6]]  # pixels of image 3 only
    sent = json.loads(render.figure_json(fig))
    np.testing.assert_allclose(decode(sent["data"][0]["z"]), heatmaps[0]["z"])


def test_trajectories_follow_chosen_pixels_over_all_steps(both):
    fig = render.trajectories(both, 2, [(0, 14, 14), (9, 3, 4)])
    go.Figure(fig)
    assert len(fig["data"]) == 2 * 2 * 2  # models × pixels × (θ, output)
    theta = fig["data"][0]
    assert len(theta["x"]) == len(theta["y"]) == both["discrete"].count
    np.testing.assert_allclose(theta["y"], both["discrete"].theta[:, 0, 14, 14].astype(np.float32))
    assert [s["x0"] for s in fig["layout"]["shapes"]] == [2, 2]
    empty = render.trajectories(both, 2, [])
    assert empty["data"] == [] and "Click a pixel" in empty["layout"]["annotations"][-1]["text"]


def test_step_summary_shows_histogram_and_per_step_curves(both):
    fig = render.step_summary(both, 3)
    go.Figure(fig)
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    assert len(bars) == 2 and all(math.isclose(float(b["y"].sum()), 1.0, rel_tol=1e-5) for b in bars)
    lines = [t for t in fig["data"] if t["type"] == "scatter"]
    assert len(lines) == 4 and all(len(t["y"]) == both["discrete"].count for t in lines)
    assert all(0 <= float(t["y"].min()) and float(t["y"].max()) <= 1 for t in lines)
    single = render.step_summary({"discrete": both["discrete"]}, 99)  # a step beyond the run is clamped
    assert single["layout"]["shapes"][0]["x0"] == both["discrete"].latest


def test_decision_step_is_where_the_final_digit_becomes_sure():
    def probs(tops, sure=0.91):
        p = np.full((len(tops), 10), (1 - sure) / 9, np.float32)
        p[np.arange(len(tops)), tops] = sure
        return p

    assert decision_step(probs([3, 3, 3])) == 0
    assert decision_step(probs([1, 7, 1, 7, 7])) == 3
    assert decision_step(probs([2, 2, 9])) == 2  # decided only at the last step
    unsure = probs([4, 4, 4, 4])
    unsure[:2] = probs([4, 4], sure=0.3)  # the right digit on top, but not sure yet
    assert decision_step(unsure) == 2
    assert decision_step(probs([6, 6], sure=0.3)) is None


def with_beliefs(frames: Frames, tops: list[int]) -> Frames:
    """A copy of `frames` whose every image's classifier probabilities have top digit tops[step]."""
    out = copy.deepcopy(frames)
    out.digit_probs = np.full((out.num_steps + 1, out.batch, 10), 0.02, np.float32)
    out.digit_probs[np.arange(len(tops)), :, tops] = 0.82
    return out


def test_digit_beliefs_plots_ten_probabilities_and_the_decision(both, discrete_model):
    tops = [5, 1, 7, 7, 9, 7, 7]  # top digit 7 for good from step 5
    frames = {kind: with_beliefs(fr, tops) for kind, fr in both.items()}
    fig = render.digit_beliefs(frames, 2, image=4, labels=list(range(10)))
    go.Figure(fig)
    lines = [t for t in fig["data"] if t["mode"] == "lines"]
    assert len(lines) == 2 * 10
    np.testing.assert_allclose(lines[7]["y"], frames["discrete"].digit_probs[:, 4, 7])
    assert lines[4]["line"]["width"] > lines[3]["line"]["width"]  # image 4 asked for digit 4: drawn thick
    stars = [t for t in fig["data"] if t["mode"] == "markers+text"]
    assert [(m["x"], m["text"]) for m in stars] == [([5], ["7 from step 5"])] * 2
    assert [s["x0"] for s in fig["layout"]["shapes"] if s["type"] == "line"] == [2, 2]
    # Shaded: the steps where guidance 2 acted, t 0.3–0.6 (steps 2, 3 of 6) binarised and t 0–0.1 (step 0) continuous.
    bands = [(s["x0"], s["x1"]) for s in fig["layout"]["shapes"] if s["type"] == "rect"]
    assert bands == [(1.5, 3.5), (-0.5, 0.5)]
    np.testing.assert_array_equal(frames["discrete"].guidance, [1, 1, 2, 2, 1, 1, 1])
    assert sum(a["text"] == "guidance 2" for a in fig["layout"]["annotations"]) == 2
    plain = render.digit_beliefs({"discrete": record(discrete_model, range(10), guidance=1.0)}, 2)
    assert not [s for s in plain["layout"]["shapes"] if s["type"] == "rect"]
    hedging = {kind: with_beliefs(fr, tops) for kind, fr in both.items()}
    for fr in hedging.values():
        fr.digit_probs[:, :, 7] = 0.3  # 7 stays on top, but never sure
    unsure = render.digit_beliefs(hedging, 2, image=4)
    assert not [t for t in unsure["data"] if t["mode"] == "markers+text"]
    assert [a["text"] for a in unsure["layout"]["annotations"] if "undecided" in a["text"]] == ["undecided: 7 at 30%"] * 2
    off = render.digit_beliefs(both, 2)  # frames recorded without a classifier
    assert off["data"] == [] and "No digit classifier" in off["layout"]["annotations"][-1]["text"]


def test_runs_record_what_the_classifier_sees(discrete_model):
    classifier = load_classifier()
    run = Run(parse_settings("discrete", "all", None, 2.0, 5, 0), {"discrete": discrete_model}, classifier).start()
    run.join(60)
    fr = run.frames["discrete"]
    assert run.finished and fr.digit_probs.shape == (6, 10, 10)
    assert fr.nbytes <= run_bytes(5, 10, 1)
    np.testing.assert_allclose(fr.digit_probs.sum(axis=-1), 1.0, rtol=1e-5)
    expected = classify_states(classifier, torch.from_numpy(fr.output.astype(np.float32)), fr.value_range).numpy()
    np.testing.assert_allclose(fr.digit_probs, expected, atol=0.02)  # the frames keep outputs as float16


def test_figure_json_encodes_arrays_compactly_and_refuses_nan():
    fig = {"data": [{"type": "scatter", "x": np.arange(3), "y": np.array([0.5, 1, 2], np.float16)}], "layout": {}}
    sent = json.loads(render.figure_json(fig))
    assert decode(sent["data"][0]["x"]).tolist() == [0, 1, 2]
    assert decode(sent["data"][0]["y"]).tolist() == [0.5, 1, 2]
    with pytest.raises(ValueError):
        render.figure_json({"data": [], "layout": {"x": float("nan")}})


# -------------------------------------------------------------------------------------------------- exports


def test_gif_animates_the_run_and_holds_the_last_frame(both):
    data = render.animation_gif(both, max_frames=5)
    gif = Image.open(io.BytesIO(data))
    assert gif.format == "GIF" and gif.n_frames == 5
    gif.seek(4)
    assert gif.info["duration"] == 1500
    assert render.gif_steps(7, 5) == [0, 2, 3, 4, 6] and render.gif_steps(3, 60) == [0, 1, 2]


def test_final_png_shows_samples_of_each_model(both):
    data = render.png_bytes(render.final_picture(both, scale=2))
    png = Image.open(io.BytesIO(data))
    assert png.format == "PNG" and png.mode == "L"
    assert png.width >= 152 * 2 and png.height >= 2 * 62 * 2

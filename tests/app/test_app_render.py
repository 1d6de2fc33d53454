"""The app's plain parts, without a server: settings checks, frame storage, sessions, images, figures, exports."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import re
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from app.ui import images
from app.ui import figures
from app.features.generate import figures as run_figures
from app.features.generate import exports
from app.core.frames import Frames, decision_step
from app.features.generate.handlers import GENERATED, PIXEL, SHOWN, GenerateHandlers, Views
from tests.support.apps import context
from tests.support.runs import wait_for_step
from app.core.models import ModelBank, model_menu
from app.core.menu import BOTH, ModelMenu
from app.core.settings import ECHO_CHARS, MAX_APP_STEPS, RunSettings, echo, parse_click, parse_float, parse_int, parse_settings
from app.core.runs import RunState, generation
from app.core.store import GENERATION, Session, SessionStore
from bfn.classifier import classify_states, load_classifier
from bfn.hub import ModelLoadError
from bfn.sampling import StepState, get_sampler

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = dict(model="both", digits="all", digit=None, guidance=2.0, steps=6, seed=0, sampler="bfn")


def record(model, labels=(0, 1, 2), steps=6, guidance=2.0, seed=0, states: list | None = None) -> Frames:
    """Sample with `model` and record every state (collected into `states` when given)."""
    frames = Frames(model.flow, len(labels), steps)
    for state in get_sampler("bfn")(model, list(labels), steps=steps, guidance=guidance, seed=seed):
        frames.record(state)
        if states is not None:
            states.append(state)
    return frames


def frames_bound(steps: int, images: int, models: int, digit_classes: int) -> int:
    """The documented upper bound on a run's frames once complete (app/session.py: ≤ 64 MB per session):
    float16 θ and output per step and image, the small per-step extras (t, guidance, statistics, ρ, the
    digit probabilities) and the final sample."""
    per_step = 4 + 4 + 8 + 4 * images + 4 * digit_classes * images
    per_model = (steps + 1) * images * 28 * 28 * 2 * 2 + (steps + 1) * per_step + images * 28 * 28 * 2
    return per_model * models


@pytest.fixture(scope="module")
def both(discrete_model, continuous_model) -> dict[str, Frames]:
    return {"discrete": record(discrete_model, range(10)), "continuous": record(continuous_model, range(10))}


@pytest.fixture(scope="module")
def models(discrete_model, continuous_model) -> dict:
    """The tiny models under the shipped models' names, as the app keys them."""
    return {"discrete": discrete_model, "continuous": continuous_model}


@pytest.fixture(scope="module")
def menu(models) -> ModelMenu:
    return model_menu(models)


# ------------------------------------------------------------------------------------------------ settings


def test_parse_settings_accepts_widget_and_api_values(menu):
    s = parse_settings("both", "one", 7.0, "2.5", 100.0, "42", "bfn", menu=menu)
    assert s == RunSettings("both", "one", 7, 2.5, 100, 42, "bfn", menu)
    assert s.models == ("discrete", "continuous") and s.labels == [7]
    assert s.describe().startswith("Both, side by side · digit 7 · guidance 2.5 · 100 steps")
    assert parse_settings("discrete", "none", None, 0, 1, 0, menu=menu).labels == [None] * 10
    assert parse_settings("continuous", "all", None, 10, MAX_APP_STEPS, 2**32 - 1, menu=menu).labels == list(range(10))


def test_the_model_menu_comes_from_the_models_flows(models, menu):
    """Titles are the flows' own; the choices are the models' names, then side by side; labels are the models'."""
    assert menu.titles == {name: m.flow.display.title for name, m in models.items()}
    assert menu.titles == {"discrete": "Binarised (discrete)", "continuous": "Continuous"}
    assert menu.choices == {**menu.titles, BOTH: "Both, side by side"}
    assert menu.num_labels == models["discrete"].num_labels == 10
    twins = model_menu({"a": models["discrete"], "b": models["discrete"], "c": models["continuous"]})
    assert twins.titles == {"a": "Binarised (discrete) · a", "b": "Binarised (discrete) · b", "c": "Continuous"}
    assert twins.models(BOTH) == ("a", "b", "c") and twins.models("b") == ("b",)
    assert model_menu({"b": models["discrete"]}).choices == {"b": "Binarised (discrete)"}  # one model: no side by side


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
        # integers too large for a float: named, with the range, not "int too large to convert to float"
        ("seed", 2**1100, "seed must be from 0 to 4294967295; got an integer of 332 digits"),
        ("seed", -(10**400), "seed must be from 0 to 4294967295; got a negative integer of 401 digits"),
        ("digit", 10**400, "digit must be from 0 to 9; got an integer of 401 digits"),
        ("steps", 2**1100, "steps must be from 1 to 1000"),
        ("guidance", 10**400, "guidance must be from 0 to 10; got an integer of 401 digits"),
        ("guidance", "1e400", "guidance must be a finite number from 0 to 10; got '1e400'"),
        ("seed", "9" * 5000, "seed must be a finite number from 0 to 4294967295"),
    ],
)
def test_parse_settings_rejects_bad_values_with_a_clear_message(field, value, message, menu):
    values = dict(SETTINGS, digits="one", digit=3)
    values[field] = value
    with pytest.raises(ValueError, match=message):
        parse_settings(**values, menu=menu)


def test_numbers_too_large_for_a_float_get_the_fields_message_at_every_input():
    """Every numeric input's parser (scrub's step, add_pixel's image/row/col, a click's x and y) names the
    field and its range, whatever the size of the integer; nothing but ValueError comes out."""
    for parse, args, message in (
        (parse_int, ("step", 2**1100, 0, MAX_APP_STEPS), "step must be from 0 to 1000; got an integer of 332 digits"),
        (parse_int, ("row", -(2**1100), 0, 27), "row must be from 0 to 27; got a negative integer"),
        (parse_float, ("click x", 10**400, 0, 152), "click x must be from 0 to 152; got an integer of 401 digits"),
        (parse_click, (f"{10**400},3", 152, 62), "click x must be a finite number from 0 to 152"),
        (parse_click, ("3,1e999,7", 152, 62), "click y must be a finite number from 0 to 62"),
        (parse_click, ("3", 152, 62), 'click must be "x,y" in image pixels'),
        (parse_click, (["3", "4"], 152, 62), 'click must be "x,y" in image pixels'),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse(*args)
    assert parse_click("3.5,4.25,1700000000000", 152, 62) == (3.5, 4.25)
    assert parse_int("seed", 4294967295.0, 0, 2**32 - 1) == 4294967295


def test_messages_quote_received_values_cut_short(menu):
    """A 12 MB string sent as the model comes back as a short message, not a 12-million-character one."""
    with pytest.raises(ValueError) as e:
        parse_settings(**dict(SETTINGS, model="x" * 12_000_000), menu=menu)
    message = str(e.value)
    assert message.startswith("model must be one of 'discrete', 'continuous', 'both'; got 'xxx") and message.endswith("…")
    assert len(echo("x" * 12_000_000)) == ECHO_CHARS and len(message) < 150
    for value in ([1] * 10**6, {"a": "b" * 10**6}, 10**5000, b"\0" * 10**6):
        assert len(echo(value)) <= ECHO_CHARS
    assert echo("short") == "'short'" and echo(2.5) == "2.5" and echo(None) == "None"
    with pytest.raises(ValueError) as e:
        parse_int("steps", [7] * 10**6, 1, 1000)
    assert len(str(e.value)) < 150


def test_parse_settings_refuses_a_model_that_is_not_loaded(discrete_model):
    only_discrete = model_menu({"discrete": discrete_model})
    with pytest.raises(ValueError, match="continuous model is not loaded on this server; available: discrete"):
        parse_settings(**dict(SETTINGS, model="continuous"), menu=only_discrete)
    with pytest.raises(ValueError, match="'both' runs several models side by side, but this server has loaded only discrete"):
        parse_settings(**SETTINGS, menu=only_discrete)
    with pytest.raises(ValueError, match="model must be one of 'discrete'; got 'gan'"):
        parse_settings(**dict(SETTINGS, model="gan"), menu=only_discrete)


def test_models_are_known_by_name_and_a_name_is_taken_once(discrete_model, continuous_model):
    bank = ModelBank()
    bank.add("discrete", discrete_model, "weights/discrete")
    with pytest.raises(ModelLoadError, match="two models named 'discrete' \\(weights/discrete and elsewhere/discrete\\)"):
        bank.add("discrete", continuous_model, "elsewhere/discrete")
    with pytest.raises(ModelLoadError, match="may not be named 'both'"):
        bank.add("both", continuous_model, "x/both")
    bank.add("mine", continuous_model, "owner/mine")
    assert bank.menu.names == ("discrete", "mine") and bank.menu.titles["mine"] == "Continuous"


# -------------------------------------------------------------------------------------------------- frames


def test_frames_store_every_step_compactly(model):
    states = []
    fr = record(model, labels=(0, 1, 2), steps=6, states=states)
    assert fr.count == 7 and fr.latest == 6 and fr.finished
    assert fr.theta.dtype == np.float16 and fr.theta.shape == (7, 3, 28, 28)
    assert fr.output.dtype == np.float16 and fr.sample.shape == (3, 28, 28)
    assert np.all((fr.stats >= 0) & (fr.stats <= 1))
    assert fr.stats[0, 1] == 0  # nothing is decided at the prior
    assert 0.99 * frames_bound(6, 3, 1, digit_classes=0) <= fr.nbytes <= frames_bound(6, 3, 1, digit_classes=0)
    assert fr.title == model.flow.display.title and fr.value_range == model.flow.display.value_range
    # every step is kept as sampled, to float16's three significant digits
    for state in states:
        np.testing.assert_allclose(fr.theta[state.step], state.theta.numpy(), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(fr.output[state.step], state.output.numpy(), rtol=1e-3, atol=1e-3)
        assert fr.t[state.step] == pytest.approx(state.t) and fr.guidance[state.step] == state.guidance
    np.testing.assert_allclose(fr.sample, states[-1].sample.numpy(), rtol=1e-3, atol=1e-3)
    # the output distribution and the sample lie in the display range (θ of a continuous flow, a mean of noisy
    # observations, may leave it)
    lo, hi = fr.value_range
    for values in (fr.output[: fr.count], fr.sample):
        assert lo - 1e-3 <= values.min() and values.max() <= hi + 1e-3
    # a precision is kept exactly when the states carry one
    assert (fr.precision is None) == (states[0].precision is None)
    if fr.precision is not None:
        np.testing.assert_allclose(fr.precision, np.stack([s.precision.numpy() for s in states]), rtol=1e-6)


def test_frames_keep_the_flows_statistics_of_the_unrounded_states(model):
    states = []
    fr = record(model, labels=(0, 1, 2), steps=6, states=states)
    for state in states:
        expected = model.flow.display.step_statistics(state.theta.float(), None if state.precision is None else state.precision.float())
        np.testing.assert_allclose(fr.stats[state.step], expected, rtol=1e-6)


def test_frames_refuse_states_out_of_order(discrete_model):
    fr = Frames(discrete_model.flow, 1, 3)
    state = StepState(step=1, num_steps=3, t=1 / 3, theta=torch.zeros(1, 28, 28), precision=None, output=torch.zeros(1, 28, 28))
    with pytest.raises(ValueError, match="expected step 0 of 3"):
        fr.record(state)


def test_the_frames_bound_matches_the_documented_maximum():
    worst = frames_bound(MAX_APP_STEPS, 10, 2, digit_classes=10)
    assert 60e6 < worst < 64e6  # "≤ 64 MB for 1000 steps side by side"
    assert frames_bound(100, 10, 2, digit_classes=10) < 6.5e6  # README: "6.5 MB for 100 steps side by side"


def test_step_statistics_range_from_undecided_to_decided(discrete_model, continuous_model):
    """What the summary plot shows per step, as the flows compute it for `Frames.record`."""
    discrete, continuous = discrete_model.flow, continuous_model.flow
    assert discrete.display.step_statistics(torch.full((2, 28, 28), 0.5), None) == pytest.approx((1.0, 0.0))
    sure = torch.zeros(2, 28, 28)
    sure[0] = 1
    uncertainty, decided = discrete.display.step_statistics(sure, None)
    assert uncertainty < 1e-5 and decided == 1
    assert continuous.display.step_statistics(torch.zeros(2, 28, 28), torch.ones(2)) == pytest.approx((1.0, 0.0))
    uncertainty, decided = continuous.display.step_statistics(torch.ones(2, 28, 28), torch.full((2,), 1e4))
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


def test_runs_are_independent_stoppable_and_evicted_by_memory(models, menu):
    small = parse_settings("discrete", "one", 3, 1.0, 5, 0, menu=menu)
    store = SessionStore(max_bytes=int(2.5 * frames_bound(5, 1, 1, digit_classes=0)))
    runs = []
    for sid in ("a", "b", "c"):
        runs.append(store.start_run(sid, small, models))
        assert runs[-1].running
        runs[-1].join(30)
    assert all(r.state is RunState.DONE and not r.running for r in runs)
    # the third run pushed the total over the budget: the least recently used ended run went
    assert store.get("a").run is None and store.get("b").run is runs[1] and store.get("c").run is runs[2]
    assert sum(store.get(sid).run.nbytes for sid in ("b", "c")) <= store.max_bytes

    long = parse_settings("both", "all", None, 2.0, 1000, 0, menu=menu)
    run = store.start_run("b", long, models)
    assert wait_for_step(run, 0) >= 0
    run.stop(wait=30)
    assert run.state is RunState.STOPPED and not run.running and 0 <= run.latest < 1000
    assert list(run.frames) == ["discrete", "continuous"]
    assert [fr.title for fr in run.frames.values()] == ["Binarised (discrete)", "Continuous"]
    store.drop("c")
    assert "c" not in store._sessions


def test_ending_a_generation_spares_the_run_it_is_told_to_keep(models, menu):
    """Choosing a model ends the last run unless it is a run of that model (Generate pressed right after the choice):
    the test and the end are one step of the store, which says whether it kept the run."""
    store = SessionStore()
    binarised = store.start_run("s", parse_settings("discrete", "one", 3, 1.0, 1000, 0, menu=menu), models)
    assert store.end("s", GENERATION, keep=lambda run: run.settings.model == "discrete") is True
    assert store.get("s").run is binarised and not binarised.dismissed
    assert store.end("s", GENERATION, keep=lambda run: run.settings.model == "continuous") is False
    assert store.get("s").run is None and binarised.dismissed
    binarised.join(30)
    assert binarised.state is RunState.STOPPED
    assert store.end("s", GENERATION) is False and store.end("nobody", GENERATION) is False


def test_each_session_has_its_own_export_folder_and_forgets_only_its_own(models):
    """Sessions whose ids are equal once stripped to safe characters ("a.b", "ab"), or empty ("...."), keep
    their exports apart, and a session's forget() removes its own exports only."""
    handlers = GenerateHandlers(context(dict(models)))
    try:
        settings = parse_settings("discrete", "one", 3, 1.0, 3, 0, menu=handlers.menu)
        requests = [SimpleNamespace(session_hash=sid) for sid in ("a.b", "ab", "....", "x" * 40, "x" * 41)]
        paths = []
        for request in requests:
            handlers.ctx.store.start_run(request.session_hash, settings, handlers.ctx.bank.models).join(30)
            paths.append(Path(handlers.export_png(request)))
        folders = {p.parent for p in paths}
        assert len(folders) == len(requests) and all(f.parent == handlers.export_dir for f in folders)
        handlers.ctx.forget(requests[2])  # "....": once the export root itself
        assert handlers.export_dir.is_dir() and not paths[2].exists()
        assert all(p.exists() for k, p in enumerate(paths) if k != 2)
        handlers.ctx.forget(requests[0])
        assert not paths[0].exists() and paths[1].exists()
    finally:
        handlers.ctx.close()
    assert not handlers.export_dir.exists()


def test_a_stream_ends_well_when_its_run_is_dropped_while_it_draws_the_last_update(models):
    """Another session's run may need the memory just as this run ends: the store then drops this ended run
    from its session while the stream still draws the final views from it."""
    handlers = GenerateHandlers(context(dict(models), stream_interval=0.0))
    try:
        request = SimpleNamespace(session_hash="dropped")
        stream = handlers.generate("discrete", "one", 3, 1.0, 3, 0, "bfn", "recommended", request)
        first = next(stream)  # on a loaded machine the run may have ended already, and this is the final update
        session = handlers.ctx.store.get("dropped")
        session.run.join(30)
        del session.runs[GENERATION]  # what `SessionStore._evict` does to an ended run beyond the budget
        updates = [first, *stream]
        assert updates and "Done" in updates[-1][0] and "step 3 of 3" in updates[-1][0]
    finally:
        handlers.ctx.close()


def test_click_coordinates_are_checked_by_name(models):
    """A click arrives as "x,y,stamp" from the page's script (a private event that raw API callers can still
    post to): x and y are checked like every other number, against the picture's size."""
    handlers = GenerateHandlers(context(dict(models)))
    try:
        request = SimpleNamespace(session_hash="clicker")
        assert all(v == gr.skip() for v in handlers.click_pixel("80.5,16.5,0", request))  # no run yet: nothing changes
        handlers.ctx.store.start_run("clicker", parse_settings("discrete", "all", None, 1.0, 3, 0, menu=handlers.menu), handlers.ctx.bank.models).join(30)
        for value, message in (
            (f"{10**400},3,0", "click x must be a finite number from 0 to 152; got '1000000"),
            (f"3,{2**1100}", "click y must be a finite number from 0 to 62"),
            ("3,500", "click y must be from 0 to 62; got '500'"),
            ("3,nan,0", "click y must be a finite number from 0 to 62; got 'nan'"),
            ("here", 'click must be "x,y" in image pixels; got \'here\''),
            (None, 'click must be "x,y" in image pixels; got None'),
        ):
            with pytest.raises(gr.Error) as e:
                handlers.click_pixel(value, request)
            assert message in e.value.message
        handlers.click_pixel("76.5,16.5,0", request)  # image 2, row 14, col 14
        assert handlers.ctx.store.get("clicker").pixels[-1] == (2, 14, 14)
    finally:
        handlers.ctx.close()


def test_a_run_reports_sampler_errors(discrete_model, menu):
    settings = parse_settings("discrete", "all", None, 1.0, 5, 0, menu=menu)
    run = generation(settings, {"discrete": discrete_model})
    run.frames["discrete"] = Frames(discrete_model.flow, 10, 4)  # wrong length: record() must refuse
    run.start().join(30)
    assert run.state is RunState.FAILED and "expected step" in run.error


def test_a_run_nobody_watches_stops_by_itself(discrete_model, menu, monkeypatch):
    monkeypatch.setattr("app.core.runs.IDLE_STOP_S", 0.0)
    run = generation(parse_settings("discrete", "all", None, 1.0, 1000, 0, menu=menu), {"discrete": discrete_model})
    run.last_seen = time.monotonic() - 1
    run.start().join(30)
    assert run.state is RunState.STOPPED and run.latest < 1000


# --------------------------------------------------------------------------------------------------- images


@pytest.mark.parametrize("batch", [1, 3, 10])
def test_grid_layout_locates_every_pixel(batch):
    layout = images.GridLayout(batch, scale=3)
    values = np.zeros((batch, 28, 28), np.float32)
    picture = images.image_grid(values, (0.0, 1.0), scale=3)
    cell = 28 + images.PAD
    assert picture.shape == ((layout.rows * cell + images.PAD) * 3, (layout.cols * cell + images.PAD) * 3)
    assert picture.shape == (layout.height, layout.width)  # the range a click is checked against
    assert picture.dtype == np.uint8
    for b in range(batch):
        for r, c in ((0, 0), (13, 27), (27, 5)):
            top = images.PAD + (b // layout.cols) * (28 + images.PAD) + r
            left = images.PAD + (b % layout.cols) * (28 + images.PAD) + c
            assert layout.locate(left * 3 + 1, top * 3 + 2) == (b, r, c)
    assert layout.locate(0, 0) is None  # padding
    assert layout.locate(picture.shape[1] + 5, 5) is None


def test_images_map_values_to_grey_levels(both):
    d, c = both["discrete"], both["continuous"]
    img = images.theta_image(d, 0)
    assert img.shape == (62, 152) and img.dtype == np.uint8
    inner = img[2:30, 2:30]
    assert np.all(inner == 128)  # θ0 = 1/2 everywhere: mid grey
    assert np.all(images.theta_image(c, 0)[2:30, 2:30] == 128)  # μ0 = 0 in [−1, 1]: mid grey
    assert images.image_grid(np.array([[[-1.0, 1.0]]]), (-1.0, 1.0)).max() == 255
    out = images.output_image(c, c.latest)
    assert out.shape == (62, 152) and 0 <= out.min() and out.max() <= 255


# -------------------------------------------------------------------------------------------------- figures


def decode(spec):
    """A typed-array spec from figure_json back to numpy."""
    arr = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
    return arr.reshape([int(x) for x in spec["shape"].split(",")]) if "shape" in spec else arr


def test_pixel_heatmap_has_per_pixel_hover_values(both):
    pixels = [(3, 14, 14), (3, 5, 6), (0, 1, 1)]
    fig = figures.pixel_heatmap(both, 4, image=3, pixels=pixels, labels=list(range(10)))
    go.Figure(fig)  # a valid Plotly figure
    heatmaps = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 2
    for trace, fr in zip(heatmaps, both.values()):
        assert trace["z"].shape == (28, 28) and trace["customdata"].shape == (28, 28)
        np.testing.assert_allclose(trace["z"], fr.theta[4, 3].astype(np.float32))
        np.testing.assert_allclose(trace["customdata"], fr.output[4, 3].astype(np.float32))
        assert "%{z" in trace["hovertemplate"] and "%{customdata" in trace["hovertemplate"]
        assert f"{fr.display.theta_name} = %{{z" in trace["hovertemplate"]  # the flow's names for its views
        assert f"{fr.display.output_name} = %{{customdata" in trace["hovertemplate"]
        assert [trace["zmin"], trace["zmax"]] == list(fr.value_range) and trace["name"] == fr.title
    assert [a["text"] for a in fig["layout"]["annotations"]] == ["Binarised (discrete)", "Continuous"]
    assert "digit 3" in heatmaps[0]["hovertemplate"] and "σ = " in heatmaps[1]["hovertemplate"]
    markers = [t for t in fig["data"] if t["type"] == "scatter"]
    assert [m["x"] for m in markers] == [[14, 6], [14, 6]]  # pixels of image 3 only
    sent = json.loads(figures.figure_json(fig))
    np.testing.assert_allclose(decode(sent["data"][0]["z"]), heatmaps[0]["z"])


def test_trajectories_follow_chosen_pixels_over_all_steps(both):
    fig = run_figures.trajectories(both, 2, [(0, 14, 14), (9, 3, 4)])
    go.Figure(fig)
    assert len(fig["data"]) == 2 * 2 * 2  # models × pixels × (θ, output)
    theta = fig["data"][0]
    assert len(theta["x"]) == len(theta["y"]) == both["discrete"].count
    np.testing.assert_allclose(theta["y"], both["discrete"].theta[:, 0, 14, 14].astype(np.float32))
    assert [s["x0"] for s in fig["layout"]["shapes"]] == [2, 2]
    empty = run_figures.trajectories(both, 2, [])
    assert empty["data"] == [] and "Click a pixel" in empty["layout"]["annotations"][-1]["text"]


def test_step_summary_shows_histogram_and_per_step_curves(both):
    fig = run_figures.step_summary(both, 3)
    go.Figure(fig)
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    assert len(bars) == 2 and all(math.isclose(float(b["y"].sum()), 1.0, rel_tol=1e-5) for b in bars)
    lines = [t for t in fig["data"] if t["type"] == "scatter"]
    assert len(lines) == 4 and all(len(t["y"]) == both["discrete"].count for t in lines)
    assert all(0 <= float(t["y"].min()) and float(t["y"].max()) <= 1 for t in lines)
    # each model's uncertainty is named as its flow names it, its colour is its position's
    assert [t["name"] for t in lines] == [
        "Binarised (discrete): mean entropy of θ (bits)", "Binarised (discrete): decided",
        "Continuous: σ of θ (1/√ρ)", "Continuous: decided",
    ]  # fmt: skip
    assert [b["marker"]["color"] for b in bars] == [figures.model_colour(0), figures.model_colour(1)]
    np.testing.assert_allclose(lines[2]["y"], both["continuous"].stats[:, 0])
    assert "Decided pixels<br>(θ ≥ 97.5% sure)" in [a["text"] for a in fig["layout"]["annotations"]]
    # a third of a phone's width per panel: titles of two short lines, and no y-axis title between panels
    titles = [a["text"] for a in fig["layout"]["annotations"]][:3]
    assert all(len(line) <= 16 for title in titles for line in title.split("<br>")) and all(t.count("<br>") <= 1 for t in titles)
    assert "title" not in fig["layout"]["yaxis2"] and "title" not in fig["layout"]["yaxis3"]
    single = run_figures.step_summary({"discrete": both["discrete"]}, 99)  # a step beyond the run is clamped
    assert single["layout"]["shapes"][0]["x0"] == both["discrete"].latest


def test_views_lay_out_every_output_in_the_layouts_order_and_skip_what_is_unset():
    names = ("discrete", "continuous")
    views = Views(status="hi", images={"discrete": ("dθ", "dout"), "continuous": (None, None)}, beliefs="b")
    skip = {"__type__": "update"}  # what gr.skip() sends: leave the component as it is
    assert views.outputs(names, SHOWN) == ["hi", "dθ", "dout", None, None, skip, skip, skip, skip, "b"]
    assert views.outputs(names, PIXEL) == [skip, skip, "b"]
    views.columns = {"discrete": "col d", "continuous": "col c"}
    assert views.outputs(names, GENERATED)[-2:] == ["col d", "col c"]
    assert Views().outputs(names, GENERATED) == [skip] * 12


def test_the_app_never_asks_a_flow_its_kind():
    """Every per-kind fact comes from the model's flow (bfn/): nothing in app/ branches on a kind."""
    pattern = re.compile(r"kind ?(==|!=)|\.kind in|getattr\([^)]*flow")
    hits = [f"{path.name}:{n}" for path in sorted((ROOT / "app").glob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]  # fmt: skip
    assert not hits


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
    frames = {name: with_beliefs(fr, tops) for name, fr in both.items()}
    fig = run_figures.digit_beliefs(frames, 2, image=4, labels=list(range(10)))
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
    plain = run_figures.digit_beliefs({"discrete": record(discrete_model, range(10), guidance=1.0)}, 2)
    assert not [s for s in plain["layout"]["shapes"] if s["type"] == "rect"]
    hedging = {name: with_beliefs(fr, tops) for name, fr in both.items()}
    for fr in hedging.values():
        fr.digit_probs[:, :, 7] = 0.3  # 7 stays on top, but never sure
    unsure = run_figures.digit_beliefs(hedging, 2, image=4)
    assert not [t for t in unsure["data"] if t["mode"] == "markers+text"]
    assert [a["text"] for a in unsure["layout"]["annotations"] if "undecided" in a["text"]] == ["undecided: 7 at 30%"] * 2
    off = run_figures.digit_beliefs(both, 2)  # frames recorded without a classifier
    assert off["data"] == [] and "No digit classifier" in off["layout"]["annotations"][-1]["text"]


def test_runs_record_what_the_classifier_sees(discrete_model, menu):
    classifier = load_classifier()
    run = generation(parse_settings("discrete", "all", None, 2.0, 5, 0, menu=menu), {"discrete": discrete_model}, classifier).start()
    run.join(60)
    fr = run.frames["discrete"]
    assert run.state is RunState.DONE and fr.digit_probs.shape == (6, 10, 10)
    assert fr.nbytes <= frames_bound(5, 10, 1, digit_classes=10)
    np.testing.assert_allclose(fr.digit_probs.sum(axis=-1), 1.0, rtol=1e-5)
    expected = classify_states(classifier, torch.from_numpy(fr.output.astype(np.float32)), fr.value_range).numpy()
    np.testing.assert_allclose(fr.digit_probs, expected, atol=0.02)  # the frames keep outputs as float16


def test_figure_json_encodes_arrays_compactly_and_refuses_nan():
    fig = {"data": [{"type": "scatter", "x": np.arange(3), "y": np.array([0.5, 1, 2], np.float16)}], "layout": {}}
    sent = json.loads(figures.figure_json(fig))
    assert decode(sent["data"][0]["x"]).tolist() == [0, 1, 2]
    assert decode(sent["data"][0]["y"]).tolist() == [0.5, 1, 2]
    with pytest.raises(ValueError):
        figures.figure_json({"data": [], "layout": {"x": float("nan")}})


# -------------------------------------------------------------------------------------------------- exports


def test_gif_animates_the_run_and_holds_the_last_frame(both):
    data = exports.animation_gif(both, max_frames=5)
    gif = Image.open(io.BytesIO(data))
    assert gif.format == "GIF" and gif.n_frames == 5
    gif.seek(4)
    assert gif.info["duration"] == 1500
    assert exports.gif_steps(7, 5) == [0, 2, 3, 4, 6] and exports.gif_steps(3, 60) == [0, 1, 2]


def test_final_png_shows_samples_of_each_model(both):
    data = exports.png_bytes(exports.final_picture(both, scale=2))
    png = Image.open(io.BytesIO(data))
    assert png.format == "PNG" and png.mode == "L"
    assert png.width >= 152 * 2 and png.height >= 2 * 62 * 2

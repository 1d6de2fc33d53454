"""Hostile input through the app's API (the session's app served here, `conftest.py`): every event, public or
private, called raw with values no widget sends; drawings that are not drawings, or pixel bombs; Unicode digits.
Every error is one line in the app's own words naming the field and what is allowed, never Gradio's or
pydantic's."""

from __future__ import annotations

import inspect
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.features.digit.pad import Blobs
from app.features.links import read_link
from app.page import assemble
from tests.support.apps import context, grey
from tests.support.calls import call, call_fn, drawing, png, upload

# What Gradio or pydantic say of an input, never the app: none of these may reach a caller.
FOREIGN = ("Could not preprocess", "validation error", "less than minimum", "greater than maximum", "is not in the list of choices",
           "Traceback", "NoneType", "unpack", "Expected a", "pydantic", "object has no attribute", "KeyError")


def assert_in_app_words(message: str | None, *expected: str) -> None:
    assert message is not None and message not in ("None", "")
    assert "\n" not in message and len(message) < 300, message
    assert not any(word in message for word in FOREIGN), message
    for part in expected:
        assert part in message, (part, message)


def score(url: str, picture=None, *, seed=0, t=0.5, label="predicted", source="drawing", image=0, session=None):
    return call(url, "score", [picture, source, "discrete", image, seed, t, label], session)


def seven() -> Image.Image:
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=(0, 0, 0, 255), width=24)
    return image


# ------------------------------------------------------------------------------------------------- drawings


def test_a_drawing_that_is_not_a_drawing_is_told_by_name(server):
    url, _ = server
    for value in ("hello", 5, [], 2.5):
        assert_in_app_words(score(url, value).error, "drawing must be the sketchpad's value", "got")
    for name, content, message in (
        ("text.png", b"hello world", "drawing must be a PNG, JPEG or WEBP image; got a file that is not a readable image"),
        ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg' width='9' height='9'/>", "not a readable image"),
        ("t.png", png(seven())[:200], "cannot be decoded (image file is truncated"),
        ("bomb.png", png(Image.new("1", (12000, 12000))), "drawing may have at most 2048×2048 (4,194,304) pixels; got 12000×12000"),
        ("tiff.tif", b"II*\x00" + b"\x00" * 100, "must be a PNG, JPEG or WEBP image"),
    ):
        picture = drawing(upload(url, name, content))
        for event in ("score", "complete"):
            args = [picture, "drawing", "discrete", 0, 0] + ([0.5, "predicted"] if event == "score" else ["top", "none", 1.0])
            assert_in_app_words(call(url, event, args).error, message)
    outside = drawing({"path": "/etc/passwd"})  # no FileData meta: Gradio never looked at it
    assert_in_app_words(score(url, outside).error, "drawing must be a file uploaded to this app")
    assert_in_app_words(score(url, drawing(layers=["hello"])).error, "drawing layer 1 must be an uploaded image file")


def test_a_drawing_sent_only_as_a_background_is_used(server):
    url, _ = server
    picture = upload(url, "seven.png", png(seven()))
    alone = score(url, drawing(background=picture))
    assert alone.ok and "Scored your drawing" in alone.data[0], alone.error
    as_composite = score(url, drawing(composite=picture))
    assert np.array_equal(grey(alone.data[1]), grey(as_composite.data[1]))  # the same MNIST digit made of it
    strokes = upload(url, "strokes.png", png(seven()))
    white = upload(url, "white.png", png(Image.new("RGBA", (280, 280), "white")))
    layered = score(url, drawing(background=white, layers=[strokes]))  # strokes over a white canvas
    assert layered.ok and np.array_equal(grey(layered.data[1]), grey(as_composite.data[1]))


def test_a_browsers_uploads_wait_bounded_and_are_read_by_id(server):
    """The browser uploads its drawing ahead of /score (`accept_blobs`) and sends its id: it is read, once."""
    url, app_server = server
    pad = next(b for b in app_server.demo.blocks.values() if type(b).__name__ == "DrawingPad")
    pad.blobs.put("upload-1", "composite", None, png(seven()))
    assert "Scored your drawing" in score(url, {"id": "upload-1"}).data[0]
    assert_in_app_words(score(url, {"id": "upload-1"}).error, "the drawing is empty")  # taken: gone
    blobs = Blobs(max_ids=3, max_bytes=1000)
    for k in range(5):
        blobs.put(f"u{k}", "composite", None, b"x" * 100)
    assert len(blobs) == 3 and blobs.take("u0") is None and blobs.take("u4")["composite"] == b"x" * 100
    blobs.put("big", "layer", 0, b"x" * 2000)  # alone over the budget: kept no longer than it takes to drop it
    assert blobs.nbytes <= 1000 and blobs.take(["not", "an", "id"]) is None


# ------------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seed": "abc"}, "seed must be a number from 0 to 4294967295; got 'abc'"),
        ({"seed": float("nan")}, "seed must be a finite number from 0 to 4294967295; got nan"),
        ({"seed": -1}, "seed must be from 0 to 4294967295; got -1"),
        ({"t": 2}, "t must be from 0 to 1; got 2"),
        ({"label": "eleven"}, "label must be a digit from 0 to 9 or 'predicted'; got 'eleven'"),
        ({"label": 10}, "label must be a digit from 0 to 9 or 'predicted'; got 10"),
        ({"source": "camera"}, "source must be one of 'drawing', 'generated'; got 'camera'"),
        ({"source": "generated", "image": -1}, "no digit has been generated in this session yet"),
    ],
)
def test_every_input_of_score_is_checked_in_the_apps_words(server, change, message):
    url, _ = server
    picture = drawing(upload(url, "seven.png", png(seven())))
    assert_in_app_words(score(url, picture, **change).error, message)


def test_complete_names_its_own_fields(server):
    url, _ = server
    picture = drawing(upload(url, "seven.png", png(seven())))
    for keep, digit, guidance, message in (
        ("middle", "none", 1.0, "keep must be one of 'top', 'bottom', 'left', 'right', 'strokes'; got 'middle'"),
        ("top", 5.5, 1.0, "digit must be a digit from 0 to 9 or 'none'; got 5.5"),
        ("top", "none", -1, "guidance must be from 0 to 10; got -1"),
        ("top", "none", "lots", "guidance must be a number from 0 to 10; got 'lots'"),
    ):
        assert_in_app_words(call(url, "complete", [picture, "drawing", "discrete", 0, 0, keep, digit, guidance]).error, message)


def test_the_preset_loader_and_the_model_choice_say_what_is_allowed(server):
    url, app_server = server
    fns = {fn.api_name: fn for fn in app_server.demo.fns.values()}
    assert_in_app_words(call_fn(url, fns["load_preset"], [None]).error, "preset must be a number from 0 to 5; got None")
    assert_in_app_words(call_fn(url, fns["load_preset"], [99]).error, "preset must be from 0 to 5; got 99")
    loaded = call_fn(url, fns["load_preset"], [3])  # "Only 10 steps"
    assert loaded.ok and loaded.data[4] == 10
    model_choice = next(fn for fn in app_server.demo.fns.values() if fn.name == "show_models")
    assert_in_app_words(call_fn(url, model_choice, [None, None]).error, "model must be one of 'discrete', 'continuous', 'both'; got None")
    assert call_fn(url, model_choice, ["continuous", None]).ok  # no digit picked yet: the picker's default


# ----------------------------------------------------------------------------------------- Unicode digits


def test_unicode_digits_are_refused_as_numbers_and_labels_in_calls_and_links(server, discrete_model, continuous_model):
    """'٣' is a digit to Python (int('٣') == 3) but not a label a link or a caller means: refused, by name."""
    url, _ = server
    assert_in_app_words(call(url, "flow_at", [0.5, "٣"]).error, "label must be a digit from 0 to 9 or 'predicted'; got '٣'")
    generate = ["discrete", "one", "٣", 1.0, 10, 0, "bfn", "recommended"]
    assert_in_app_words(call(url, "generate", generate).error, "digit must be a number from 0 to 9 in ASCII digits; got '٣'")
    generate = ["discrete", "all", 0, 1.0, "١٠", 0, "bfn", "recommended"]
    assert_in_app_words(call(url, "generate", generate).error, "steps must be a number from 1 to 1000 in ASCII digits")
    picture = drawing(upload(url, "seven.png", png(seven())))
    assert_in_app_words(call(url, "complete", [picture, "drawing", "discrete", 0, 0, "top", "٣", 1.0]).error, "got '٣'")
    ctx = context({"discrete": discrete_model, "continuous": continuous_model})
    try:
        linked = assemble(ctx).linked
        defaults = {"model": "both", "digits": "one", "digit": 3, "guidance": 1.0, "steps": 10, "seed": 0, "sampler": "bfn",
                    "autoguidance": "recommended", "left_sampler": "bfn", "left_steps": 10, "right_sampler": "bfn", "right_steps": 5}  # fmt: skip
        link = read_link(dict(parse_qsl("model=discrete&digits=one&digit=%D9%A3&seed=%D9%A3")), defaults, ("heatmap",), linked)
        assert not link.runs and len(link.problems) == 2
        assert "digit must be a number from 0 to 9 in ASCII digits" in link.problems[0] and "seed" in link.problems[1]
        assert link.values["digit"] == 3 and link.values["model"] == "discrete"  # the good ones restored
    finally:
        ctx.close()


# ----------------------------------------------------------------------------------------------- the fuzz


def _default(block) -> object:
    """What the browser would send for `block` as the page opens."""
    value = getattr(block, "value", None)
    return value if isinstance(value, (str, int, float, bool, type(None))) else None


FUZZ = (None, "hello", -1)  # per input of every event (~230 calls): a missing value, a wrong type, out of range


def _fuzz_calls(fns) -> list[tuple]:
    """(event, position, value, inputs) for every event (one of those that run the same function), each input in
    turn given each `FUZZ` value, the others what the page starts with; the others of a stream None instead
    (valid settings would run; its inputs are all checked above)."""
    calls, seen = [], set()
    for fn in fns:
        if fn.fn in seen:  # a preset's run is /generate's, the label's redraw /flow_at's
            continue
        seen.add(fn.fn)
        stream = inspect.isgeneratorfunction(fn.fn)
        defaults = [None if stream else _default(block) for block in fn.inputs]
        for position in range(len(fn.inputs)):
            calls += [(fn, position, value, [value if k == position else d for k, d in enumerate(defaults)]) for value in FUZZ]
    return calls


def test_no_event_lets_gradio_judge_its_inputs(server):
    """Gradio's preprocessing answers a bad value in its own words ("Value -1 is less than minimum value 0."), and
    a component's data model in pydantic's: every event with inputs takes them raw and checks them itself, and
    its inputs' data models accept any value (`app.features.digit.pad.AnyValue`)."""
    _, app_server = server
    fns = [fn for fn in app_server.demo.fns.values() if fn.fn is not None and fn.inputs and fn.name != "forget"]
    assert [fn.api_name or fn.name for fn in fns if fn.preprocess] == []
    strict = {type(block).__name__ for fn in fns for block in fn.inputs if getattr(block, "data_model", None) is not None}
    assert strict <= {"DrawingPad"}, strict
    assert next(b for fn in fns for b in fn.inputs if type(b).__name__ == "DrawingPad").data_model.model_validate("hello")


def test_every_event_answers_hostile_values_in_the_apps_words(server):
    """Every event with inputs, public or private, by index as the browser calls it (`_fuzz_calls`): it succeeds,
    or says what is wrong in one line of the app's words."""
    url, app_server = server
    fns = [fn for fn in app_server.demo.fns.values() if fn.fn is not None and fn.inputs and fn.name != "forget"]
    assert len(fns) >= 20
    calls = _fuzz_calls(fns)

    def failure(fn, position: int, value: object, data: list) -> str | None:
        outcome = call_fn(url, fn, data)
        try:
            outcome.ok or assert_in_app_words(outcome.error)
        except AssertionError:
            return f"{fn.api_name or fn.name}[{position}] = {value!r:.30}: {outcome.error!r:.200}"
        return None

    with ThreadPoolExecutor(2) as pool:
        failures = [f for f in pool.map(lambda c: failure(*c), calls) if f]
    assert not failures, "\n".join(failures[:20])
    assert len(calls) > 200


def test_every_event_without_inputs_answers_a_session_that_has_nothing(server):
    """The events that take no input (/stop, /complete_stop, /duel_stop, /update_numbers, exports, the page's
    restore), called from a fresh session as a flood of cheap calls makes them: each answers every output, or
    says why not in one line of the app's words."""
    url, app_server = server
    fns = [fn for fn in app_server.demo.fns.values() if fn.fn is not None and not fn.inputs and fn.name != "forget"]
    assert {"stop", "complete_stop", "duel_stop", "update_numbers"} <= {fn.api_name for fn in fns}
    for fn in fns:
        outcome = call_fn(url, fn, [])
        if outcome.ok:
            assert outcome.data is not None and len(outcome.data) == len(fn.outputs), (fn.api_name or fn.name, outcome)
        else:
            assert_in_app_words(outcome.error)

""""Your digit through the BFN" through its public API: `gradio_client` against the app served here (tiny models)."""

from __future__ import annotations

import json
import time

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

ENDPOINTS = {"/score", "/flow_at", "/complete", "/complete_scrub", "/complete_stop"}


@pytest.fixture(scope="module")
def drawings(tmp_path_factory) -> dict[str, dict]:
    """Sketchpad values as a client sends them: a "7" drawn in black on a transparent canvas, and a blank canvas."""
    folder = tmp_path_factory.mktemp("drawings")
    seven = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(seven).line([(70, 60), (210, 60), (120, 230)], fill=(0, 0, 0, 255), width=24)
    seven.save(folder / "seven.png")
    Image.new("RGBA", (280, 280), (0, 0, 0, 0)).save(folder / "blank.png")
    return {name: {"background": None, "layers": [], "composite": handle_file(str(folder / f"{name}.png"))} for name in ("seven", "blank")}


def test_the_digit_endpoints_have_stable_names(client):
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_score_a_drawing_then_move_t(client, drawings):
    started = time.monotonic()
    out = client.predict(drawings["seven"], "drawing", "discrete", 0, 0, 0.5, "predicted", api_name="/score")
    seconds = time.monotonic() - started
    status, prepared, *_ = out
    assert "Scored your drawing" in status and "2·32·11 = 704 network passes per model" in status and "classifier:" in status
    posterior = next(json.loads(v["plot"]) for v in out if isinstance(v, dict) and "Bayes' rule" in v.get("plot", ""))
    assert [trace["type"] for trace in posterior["data"]] == ["bar"] * 3
    tables = [v for v in out if isinstance(v, dict) and "headers" in v]
    assert len(tables) == 2 and tables[1]["headers"][-2:] == ["bits/dim", "p(y|x)"] and len(tables[0]["data"]) == 11
    assert Image.open(prepared["path"]).size == (32, 32)
    assert seconds < 20, seconds
    costs, *rest = client.predict(0.2, "3", api_name="/flow_at")
    assert "t = 0.200" in rest[-1] and "Continuous: 3" in rest[-1]
    assert "digit 3" in rest[0] and "bits/dim" in rest[1]  # the bounds of each model under the digit asked for


def test_bad_drawings_and_settings_get_clear_errors(client, drawings):
    with pytest.raises(AppError, match="the drawing is empty: no pixel stands out"):
        client.predict(drawings["blank"], "drawing", "discrete", 0, 0, 0.5, "predicted", api_name="/score")
    with pytest.raises(AppError, match="the drawing is empty: draw a digit"):
        client.predict(None, "drawing", "discrete", 0, 0, 0.5, "predicted", api_name="/score")
    with pytest.raises(AppError, match="the drawing is empty"):
        client.predict(drawings["blank"], "drawing", "discrete", 0, 0, "top", "none", 1.0, api_name="/complete")
    with pytest.raises(AppError, match="no digit has been generated in this session yet"):
        client.predict(drawings["seven"], "generated", "discrete", 0, 0, 0.5, "predicted", api_name="/score")
    with pytest.raises(AppError, match="t must be from 0 to 1"):
        client.predict(2, "3", api_name="/flow_at")


def test_complete_streams_stops_and_scrubs(client, drawings):
    job = client.submit(drawings["seven"], "drawing", "discrete", 0, 0, "top", "7", 2.0, api_name="/complete")
    seen = 0
    for update in job:
        seen += 1
        if seen == 2:
            break  # under way: two updates streamed
    assert "Stopped" in client.predict(api_name="/complete_stop")[-1]
    deadline = time.monotonic() + 30
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.done() and "Stopped" in job.result()[-1]
    scrubbed = client.predict(0.0, api_name="/complete_scrub")
    assert "step 0 of 100" in scrubbed[-1] and "towards digit 7, guidance 2" in scrubbed[-1]
    known = Image.open(scrubbed[0]["path"])  # the discrete model's known pixels: the top half of the 7
    assert known.size == (32, 32)

"""The sampler duel through its public API: `gradio_client` against the app served here (tiny models)."""

from __future__ import annotations

import json
import re

import pytest
from gradio_client.exceptions import AppError

from tests.support.apps import grey

ENDPOINTS = {"/duel", "/duel_scrub", "/duel_stop"}
CAPTION = re.compile(r"step (\d+) of (\d+), t = ([0-9.]+)")


def test_the_duel_endpoints_have_stable_names(client):
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_a_duel_streams_then_scrubs_both_sides_to_one_t(client):
    job = client.submit("both", "all", 0, 1.0, 3, "bfn", 30, "solver", 6, api_name="/duel")
    updates = list(job)
    status, left, right, *images, slider, timeline = job.result()
    assert len(updates) >= 2 and "Both at t = 1.000" in status
    assert CAPTION.search(left).groups() == ("30", "30", "1.000") and CAPTION.search(right).groups() == ("6", "6", "1.000")
    assert len(images) == 8 and all(grey(image).shape == (62, 152) for image in images)  # per model: left θ, output, right θ, output
    assert slider["value"] == 1.0
    assert [trace["name"] for trace in json.loads(timeline["plot"])["data"][::2]] == ["bfn · 30 steps", "solver · 6 steps"]

    status, left, right, *_ = client.predict(0.25, api_name="/duel_scrub")
    assert "Both at t = 0.250" in status and CAPTION.search(left).groups() == ("7", "30", "0.233")
    step, steps, t = CAPTION.search(right).groups()
    assert steps == "6" and 0 < int(step) < 6 and float(t) <= 0.25
    assert "Both at t = 1.000" in client.predict(api_name="/duel_stop")[0]  # an ended duel stops where it ended


def test_bad_duel_settings_get_clear_errors(client):
    with pytest.raises(AppError, match="right steps must be from 1 to 1000; got 0"):
        client.predict("discrete", "all", 0, 1.0, 3, "bfn", 30, "solver", 0, api_name="/duel")
    with pytest.raises(AppError, match="left sampler must be one of"):
        client.predict("discrete", "all", 0, 1.0, 3, "euler", 30, "solver", 6, api_name="/duel")
    with pytest.raises(AppError, match="t must be from 0 to 1"):
        client.predict(-0.5, api_name="/duel_scrub")

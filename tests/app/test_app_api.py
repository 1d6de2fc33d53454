"""The app through its public API: `gradio_client` against the session's app served here on 127.0.0.1 (`conftest.py`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app.core.models import load_models  # noqa: E402
from app.server import MAX_UPLOAD_BYTES  # noqa: E402
from bfn.hub import ModelLoadError  # noqa: E402
from tests.support.apps import grey  # noqa: E402
from tools.serving import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = {"/generate", "/stop", "/scrub", "/play", "/add_pixel", "/clear_pixels", "/export_gif", "/export_png"}


def generate(client: Client, model="discrete", digits="all", digit=0, guidance=2.0, steps=20, seed=0, sampler="bfn"):
    return client.submit(model, digits, digit, guidance, steps, seed, sampler, api_name="/generate")


def test_endpoints_have_stable_names(client):
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_models_are_named_by_their_folders_and_one_name_is_one_model(weights_dir, tmp_path, discrete_model):
    bank = load_models([str(weights_dir)])  # the shipped layout: one sub-folder per shipped model
    assert bank.menu.names == ("discrete", "continuous")
    assert bank.sources == {name: str(weights_dir / name) for name in ("discrete", "continuous")}
    discrete_model.save_pretrained(tmp_path / "mine")
    bank = load_models([str(tmp_path / "mine"), str(weights_dir / "continuous")])
    assert bank.menu.choices == {"mine": "Binarised (discrete)", "continuous": "Continuous", "both": "Both, side by side"}
    discrete_model.save_pretrained(tmp_path / "again" / "continuous")
    with pytest.raises(ModelLoadError, match="two models named 'continuous'"):
        load_models([str(weights_dir), str(tmp_path / "again" / "continuous")])


def test_a_streamed_generation_yields_several_updates_and_a_final_result(client):
    job = generate(client, model="both", steps=120)
    updates = list(job)
    assert len(updates) >= 3
    final = job.result()
    status, d_theta, d_out, c_theta, c_out, slider, heatmap, traj, summary, beliefs = final
    assert "Done" in status and "step 120 of 120" in status
    assert "continuous ρ = " in status and "discrete ρ" not in status  # only θ with a precision has a ρ
    assert slider["value"] == 120 and slider["maximum"] == 120
    for image in (d_theta, d_out, c_theta, c_out):
        assert grey(image).shape == (62, 152)
    for plot in (heatmap, traj, summary, beliefs):
        assert plot["type"] == "plotly" and json.loads(plot["plot"])["data"]
    assert "digit 0" in json.loads(beliefs["plot"])["layout"]["title"]["text"]  # the shipped classifier is loaded
    steps_seen = [u[5]["value"] for u in updates if isinstance(u[5], dict) and "value" in u[5]]
    assert steps_seen == sorted(steps_seen) and steps_seen[-1] == 120  # live, in order, always ending on the final step


BAD_INPUTS = [
    ({"steps": 0}, "steps must be from 1 to 1000"),
    ({"steps": 5000}, "steps must be from 1 to 1000"),
    ({"steps": 2.5}, "steps must be a whole number"),
    ({"steps": "many"}, "steps must be a number"),
    ({"guidance": "abc"}, "guidance must be a number"),
    ({"guidance": -1}, "guidance must be from 0 to 10"),
    ({"guidance": None}, "guidance must be a number"),
    ({"model": "gan"}, "model must be one of"),
    ({"digits": "one", "digit": 12}, "digit must be from 0 to 9"),
    ({"seed": -5}, "seed must be from 0 to"),
    ({"seed": [1, 2]}, "seed must be a number"),
    ({"sampler": "nope"}, "sampler must be one of"),
]


def test_bad_inputs_get_clear_errors_and_the_app_keeps_serving(client):
    for change, message in BAD_INPUTS:
        with pytest.raises(AppError, match=message):
            generate(client, **change).result()
    with pytest.raises(AppError, match=r"step must be"):
        client.predict(-3, api_name="/scrub")
    with pytest.raises(AppError, match=r"step must be a number"):
        client.predict("last", api_name="/scrub")
    status = generate(client, steps=3).result()[0]
    assert "Done" in status and "ρ =" not in status  # a discrete run's θ has no precision to report


def test_integers_too_large_for_a_float_are_refused_by_name_at_every_endpoint(client):
    """Not "int too large to convert to float": each numeric input says which it is and what it may be."""
    for change, message in (
        ({"seed": 2**1100}, "seed must be from 0 to 4294967295; got an integer of 332 digits"),
        ({"digits": "one", "digit": 10**400}, "digit must be from 0 to 9; got an integer of 401 digits"),
        ({"guidance": -(10**400)}, "guidance must be from 0 to 10; got a negative integer of 401 digits"),
        ({"steps": 2**1100}, "steps must be from 1 to 1000"),
    ):
        with pytest.raises(AppError, match=re.escape(message)):
            generate(client, **change).result()
    generate(client, steps=3).result()
    with pytest.raises(AppError, match=re.escape("step must be from 0 to 1000; got an integer of 401 digits")):
        client.predict(10**400, api_name="/scrub")
    for args, message in (((10**400, 3, 3), "image must be from 0 to 9"), ((0, 2**1100, 3), "row must be from 0 to 27"), ((0, 3, -(2**1100)), "col must be from 0 to 27")):
        with pytest.raises(AppError, match=re.escape(message)):
            client.predict(*args, api_name="/add_pixel")


def test_a_huge_value_is_echoed_and_logged_cut_short(client, capfd, caplog):
    """A 12 MB string sent as the model comes back as a one-line message of under 200 characters, and the
    server logs no more than that (no traceback quoting it whole)."""
    caplog.set_level("INFO")
    with pytest.raises(AppError) as e:
        generate(client, model="x" * 12_000_000).result()
    message = str(e.value)
    assert "model must be one of" in message and "…" in message and len(message) < 200
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "xxxxxxxxxx" * 10 not in logged and max(map(len, logged.splitlines()), default=0) < 1000
    assert "invalid input: model must be one of" in caplog.text


def test_uploads_are_capped_at_what_the_app_takes(server):
    """The app has no upload widget yet; a drawing (up to MAX_UPLOAD_BYTES) may come, nothing larger."""
    url, _ = server
    small = httpx.post(url + "gradio_api/upload", files={"files": ("drawing.png", b"\x89PNG" + b"\0" * 1000)}, timeout=30)
    assert small.status_code == 200, small.text
    big = httpx.post(url + "gradio_api/upload", files={"files": ("big.png", b"\0" * (MAX_UPLOAD_BYTES + 1))}, timeout=60)
    assert big.status_code == 413, (big.status_code, big.text[:200])


def test_four_concurrent_clients_get_their_own_runs(server):
    """Seeds 0, 1, 2, 0 at once: distinct seeds give distinct digits, the repeated seed the same ones."""
    url, _ = server
    clients = [Client(url, verbose=False, download_files=False) for _ in range(4)]
    seeds = [0, 1, 2, 0]

    def run(k):
        return generate(clients[k], steps=60, seed=seeds[k]).result()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(4)))
    assert all("Done" in r[0] for r in results), [r[0] for r in results]
    finals = [grey(r[2]) for r in results]  # the final output distribution of each run
    assert not np.array_equal(finals[0], finals[1]) and not np.array_equal(finals[1], finals[2])
    assert np.array_equal(finals[0], finals[3])
    # each client's session keeps its own run: scrubbing shows that client's seed
    scrubbed = [grey(clients[k].predict(60, api_name="/scrub")[2]) for k in range(4)]
    for k in range(4):
        assert np.array_equal(scrubbed[k], finals[k])


def test_scrub_pixels_play_and_exports(client):
    final = generate(client, model="both", steps=40).result()
    status, d_theta, *_ = client.predict(5, api_name="/scrub")
    assert "step 5 of 40" in status and not np.array_equal(grey(d_theta), grey(final[1]))
    heatmap, traj, beliefs = client.predict(3, 10, 11, api_name="/add_pixel")
    names = [t.get("name", "") for t in json.loads(traj["plot"])["data"]]
    assert any("image 3, row 10, col 11" in n for n in names)
    assert "image 3 · digit 3" in json.loads(beliefs["plot"])["layout"]["title"]["text"]
    with pytest.raises(AppError, match="row must be from 0 to 27"):
        client.predict(3, 40, 11, api_name="/add_pixel")
    _, traj, _ = client.predict(api_name="/clear_pixels")
    assert json.loads(traj["plot"])["data"] == []
    played = client.submit(api_name="/play")
    frames = list(played)
    assert len(frames) >= 2 and "step 40 of 40" in played.result()[0]
    gif = Image.open(client.predict(api_name="/export_gif")["path"])
    assert gif.format == "GIF" and gif.n_frames == 41
    png = Image.open(client.predict(api_name="/export_png")["path"])
    assert png.format == "PNG"


def test_stop_ends_a_running_generation(client):
    job = generate(client, model="both", steps=1000)
    for _ in job:
        break  # the first frame is out: the run is under way
    status = client.predict(api_name="/stop")[0]
    assert "Stopped" in status
    deadline = time.monotonic() + 20
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.done()


@pytest.mark.process
def test_cli_reports_missing_weights_in_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--weights", str(tmp_path / "nothing"), "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "error: cannot load a BFN model" in proc.stderr and "Traceback" not in proc.stderr

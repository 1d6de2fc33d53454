"""Identical runs in concurrent sessions against the session's `python -m app` (`conftest.py`): every image of
every update is fetched as it streams, and every fetch gets every byte.

Identical frames (the same settings and seed) share one file in the cache, which each session's stream caches
again while the others' browsers fetch it: a file rewritten in place was served short ("peer closed
connection … 0 bytes") or empty (`app.ui.files`).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402

pytestmark = pytest.mark.e2e  # the session's app server (no browser)

SESSIONS, RUNS = 4, 3
SETTINGS = ("both", "all", 0, 1.0, 10, 0, "bfn")  # every run the same: the same frames
IMAGES = slice(1, 5)  # an update's θ and output images of each model, after the status


def fetch_all(url: str, session: int) -> list[tuple[str, bytes | str]]:
    """A session's `RUNS` runs, each image of each update fetched as it arrives: (image's place, its bytes, or
    what went wrong)."""
    client = Client(url, verbose=False, download_files=False)
    fetched = []
    with httpx.Client(timeout=30) as http:
        for _ in range(RUNS):
            job = client.submit(*SETTINGS, api_name="/generate")
            for update in job:
                step = update[5]["value"] if isinstance(update[5], dict) else None
                for k, image in enumerate(update[IMAGES]):
                    if not isinstance(image, dict) or not image.get("url"):
                        continue
                    try:
                        r = http.get(image["url"])
                        body = r.content if r.status_code == 200 else f"HTTP {r.status_code}"
                    except httpx.HTTPError as e:  # the connection closed before the declared length
                        body = f"{type(e).__name__}: {e}"
                    fetched.append((f"step {step} image {k}", body))
    client.close()
    return fetched


def test_every_image_of_identical_concurrent_runs_arrives_whole(app_url):
    with ThreadPoolExecutor(SESSIONS) as pool:
        sessions = list(pool.map(lambda s: fetch_all(app_url, s), range(SESSIONS)))
    problems, by_place = [], defaultdict(set)
    for fetched in sessions:
        assert fetched
        for place, body in fetched:
            if isinstance(body, str):
                problems.append(f"{place}: {body}")
                continue
            try:
                Image.open(io.BytesIO(body)).load()
            except OSError as e:
                problems.append(f"{place}: {len(body)} bytes, not a whole PNG ({e})")
                continue
            by_place[place].add(hashlib.sha256(body).hexdigest())
    total = sum(map(len, sessions))
    assert not problems, f"{len(problems)} of {total} fetches: {problems[:5]}"
    assert total >= SESSIONS * RUNS * 4 * 2  # at least a first and a last update of four images, every run
    finals = [place for place in by_place if place.startswith("step 10 ")]
    assert len(finals) == 4 and all(len(by_place[place]) == 1 for place in finals)  # the same run, the same bytes

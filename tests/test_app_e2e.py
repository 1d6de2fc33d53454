"""End to end in a real browser: `python -m app` on 127.0.0.1, driven by headless Chromium through Playwright.

Uses the system Chromium (/usr/bin/chromium, installed by .ci/run; Playwright's own browser download is not
needed). Without it the test is skipped, unless BFN_REQUIRE_BROWSER=1 (as in CI), where it fails instead.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("BFN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

if not CHROMIUM.exists():
    reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)"
    if os.environ.get("BFN_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + ", and BFN_REQUIRE_BROWSER=1", pytrace=False)
    pytest.skip(reason, allow_module_level=True)

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

from app.loadtest import free_port, stop_server, wait_until_serving  # noqa: E402


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, discrete_model, continuous_model):
    """`python -m app` as a user starts it, with tiny random models in weights/discrete, weights/continuous."""
    weights = tmp_path_factory.mktemp("e2e-weights")
    for name, model in (("discrete", discrete_model), ("continuous", continuous_model)):
        model.save_pretrained(weights / name)
        # recommend guidance 3 in config.json, as the shipped models do: the page's sliders start from it
        config = json.loads((weights / name / "config.json").read_text())
        config["sampling"]["guidance"] = 3.0
        (weights / name / "config.json").write_text(json.dumps(config))
    port = free_port()
    log = open(tmp_path_factory.mktemp("e2e-log") / "server.log", "w+")
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--weights", str(weights), "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        if not wait_until_serving(url, proc, timeout=240):
            log.seek(0)
            pytest.fail(f"the app did not start:\n{log.read()}")
        yield url
    finally:
        stop_server(proc)
        log.close()


def image_src(page, elem_id: str) -> str | None:
    """The image's current URL, read atomically (Gradio replaces the <img> element as frames arrive)."""
    return page.evaluate("id => { const i = document.querySelector(`#${id} img`); return i ? i.src : null; }", elem_id)


def status_text(page) -> str:
    return page.evaluate("() => document.querySelector('#status')?.innerText ?? ''")


def wait_for_status(page, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in status_text(page):
        assert time.monotonic() < deadline, f"status never said {text!r}: {status_text(page)!r}"
        time.sleep(0.05)


def set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_generate_watch_scrub_and_compare_in_a_browser(app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        outside = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((app_url, "data:", "blob:")) else None)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(app_url, wait_until="load")
            page.wait_for_selector("#generate-btn", timeout=60_000)
            assert "BFN Studio" in page.title()
            page.screenshot(path=ARTIFACTS / "app-initial.png", full_page=True)

            # one model: the other panel hides
            page.get_by_label("Binarised (discrete)").check()
            page.locator("#continuous-theta").wait_for(state="hidden", timeout=10_000)
            set_number(page, "steps", 300)

            # press Generate and watch the image change while the run is going
            page.click("#generate-btn")
            seen, running_shot = [], False
            deadline = time.monotonic() + 600
            while "Done" not in status_text(page):
                assert time.monotonic() < deadline, "the run never finished"
                src = image_src(page, "discrete-theta")
                if src and (not seen or seen[-1] != src):
                    seen.append(src)
                    if len(seen) == 2 and not running_shot:
                        page.screenshot(path=ARTIFACTS / "app-running.png", full_page=True)
                        running_shot = True
                time.sleep(0.02)
            assert len(seen) >= 2, "the θ image did not change during the run"
            assert "step 300 of 300" in status_text(page)
            page.wait_for_selector("#heatmap .js-plotly-plot", timeout=30_000)
            final = image_src(page, "discrete-theta")

            # click a pixel (image 2, row 14, col 14) and follow it in the trajectories tab
            img = page.locator("#discrete-theta img").bounding_box()
            natural = page.evaluate("() => { const i = document.querySelector('#discrete-theta img'); return [i.naturalWidth, i.naturalHeight]; }")
            scale = min(img["width"] / natural[0], img["height"] / natural[1])
            left = img["x"] + (img["width"] - natural[0] * scale) / 2
            top = img["y"] + (img["height"] - natural[1] * scale) / 2
            x, y = 2 + 2 * 30 + 14 + 0.5, 2 + 14 + 0.5  # grid padding 2, cell 28 + 2
            page.mouse.click(left + x * scale, top + y * scale)
            page.get_by_role("tab", name="Pixel trajectories").click()
            page.locator("#trajectories").get_by_text("image 2, row 14, col 14").first.wait_for(timeout=60_000)
            page.screenshot(path=ARTIFACTS / "app-trajectories.png", full_page=True)
            # the clicked image's digit probabilities per step, with the step where its top digit settles
            page.get_by_role("tab", name="Which digit?").click()
            page.locator("#digit-beliefs").get_by_text("image 2 · digit 2").first.wait_for(timeout=60_000)
            page.locator("#digit-beliefs").get_by_text(re.compile("from step|undecided")).first.wait_for(timeout=10_000)
            page.locator("#digit-beliefs").get_by_text("guidance 3").first.wait_for(timeout=10_000)  # the guided steps' band
            page.screenshot(path=ARTIFACTS / "app-digits.png", full_page=True)
            page.get_by_role("tab", name="Pixel heatmap").click()

            # move the step slider: every view goes back to that step
            slider = page.locator("#step-slider input[type=range]")
            slider.focus()
            slider.press("Home")
            wait_for_status(page, "step 0 of 300", timeout=30)
            page.wait_for_function(
                "src => { const i = document.querySelector('#discrete-theta img'); return i && i.src !== src; }",
                arg=final,
                timeout=30_000,
            )
            page.screenshot(path=ARTIFACTS / "app-scrubbed.png", full_page=True)

            # the side-by-side comparison
            page.get_by_label("Both, side by side").check()
            page.locator("#continuous-theta").wait_for(state="visible", timeout=10_000)
            set_number(page, "steps", 60)
            page.click("#generate-btn")
            wait_for_status(page, "Both, side by side", timeout=60)
            wait_for_status(page, "Done", timeout=180)
            assert image_src(page, "discrete-theta") and image_src(page, "continuous-theta")
            assert image_src(page, "discrete-output") and image_src(page, "continuous-output")
            page.screenshot(path=ARTIFACTS / "app-side-by-side.png", full_page=True)

            # a preset fills the settings and runs at once
            page.get_by_text("Only 10 steps", exact=True).click()
            wait_for_status(page, "10 steps", timeout=60)
            wait_for_status(page, "Done", timeout=120)

            assert not outside, f"the page reached beyond the app: {outside[:5]}"
            assert not errors, errors
        finally:
            browser.close()

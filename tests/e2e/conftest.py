"""The browser tests' one app and one browser, for the whole session: `python -m app` as a user starts it (tiny
random models in weights/discrete and weights/continuous, on 127.0.0.1), and headless Chromium driven by
Playwright. Every test module here marks its tests `e2e` (`pytest -m "not e2e"` leaves them out).

Without Chromium the tests are skipped, unless BFN_REQUIRE_BROWSER=1 (as in CI), where they fail instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.apps import save_weights
from tests.support.browser import ARTIFACTS, BROWSER_ARGS, CHROMIUM, ROOT
from tools.serving import free_port, stop_server, wait_until_serving


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, discrete_model, continuous_model):
    """`python -m app` as a user starts it, with tiny random models in weights/discrete, weights/continuous, which
    recommend guidance 3 as the shipped models do (the page's sliders start from it)."""
    weights = save_weights(tmp_path_factory.mktemp("e2e-weights"), {"discrete": discrete_model, "continuous": continuous_model}, guidance=3.0)
    port = free_port()
    log = open(tmp_path_factory.mktemp("e2e-log") / "server.log", "w+")
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--weights", str(weights), "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        if not wait_until_serving(url, proc, timeout=240):
            log.seek(0)
            pytest.fail(f"the app did not start:\n{log.read()}")
        yield url
    finally:
        stop_server(proc)
        log.close()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (the system's), one for every browser test; each test opens pages of its own."""
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)"
        if os.environ.get("BFN_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + ", and BFN_REQUIRE_BROWSER=1", pytrace=False)
        pytest.skip(reason)
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()

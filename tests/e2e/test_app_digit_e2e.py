""""Your digit through the BFN" in a real browser: draw a stroke with the mouse, score it, complete it, scrub it.

The session's app and browser (`conftest.py`: `python -m app` with tiny models, the system Chromium).
"""

from __future__ import annotations

import time

import pytest

from tests.support.browser import ARTIFACTS, draw, text, wait_for_text

pytestmark = pytest.mark.e2e  # drives a browser


def test_draw_score_complete_and_scrub_in_a_browser(app_url, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    outside, errors = [], []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((app_url, "data:", "blob:")) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(app_url, wait_until="load")
        page.wait_for_selector("#score-btn", timeout=60_000)
        page.locator("#digit-sketch button[aria-label='Brush']").wait_for(timeout=30_000)
        time.sleep(0.5)  # the page's load script picks the brush for the user
        draw(page, [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)])  # a 7

        page.click("#score-btn")
        wait_for_text(page, "digit-status", "Scored your drawing", timeout=120)
        assert "network passes per model" in text(page, "digit-status")
        page.locator("#digit-posterior .barlayer .trace").nth(2).wait_for(timeout=30_000)  # BFN × 2 and the classifier
        assert page.locator("#digit-posterior .barlayer .trace").count() == 3
        assert page.evaluate("() => document.querySelector('#digit-prepared img')?.naturalWidth") == 32
        page.locator("#digit-intro").scroll_into_view_if_needed()
        page.screenshot(path=ARTIFACTS / "app-digit-scored.png")

        # the training view at the end of the flow
        slider = page.locator("#digit-t input[type=range]")
        slider.focus()
        slider.press("End")
        wait_for_text(page, "digit-flow-status", "t = 1.000", timeout=30)

        # complete the top half, stop it under way, then scrub back to the start
        page.get_by_role("tab", name="Complete it").click()
        page.click("#complete-btn")
        wait_for_text(page, "digit-complete-status", "Running", timeout=60)
        page.wait_for_function("() => !!document.querySelector('#digit-discrete-complete-theta img')", timeout=30_000)
        page.click("#complete-stop-btn")
        # stopped under way, or (on a loaded machine, where the click can come after the last step) told so
        page.wait_for_function("() => /Stopped|nothing to stop: it was already done/.test("
                               "document.querySelector('#digit-complete-status')?.innerText ?? '')", timeout=30_000)
        live = page.evaluate("() => document.querySelector('#digit-discrete-complete-theta img').src")
        scrub = page.locator("#digit-complete-t input[type=range]")
        scrub.focus()
        scrub.press("Home")
        wait_for_text(page, "digit-complete-status", "step 0 of", timeout=30)
        page.wait_for_function(
            "src => document.querySelector('#digit-discrete-complete-theta img')?.src !== src", arg=live, timeout=30_000
        )
        page.screenshot(path=ARTIFACTS / "app-digit-completion.png")
        assert not outside, f"the page reached beyond the app: {outside[:5]}"
        assert not errors, errors
    finally:
        page.close()

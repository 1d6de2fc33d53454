"""The two explaining tabs in a real browser (the session's app and browser, `conftest.py`): one variable's
flow, its ternary plot drawn by plotly.js and redrawn when the true class changes, and one update in numbers,
typeset by KaTeX after a run."""

from __future__ import annotations

import pytest

from tests.support.browser import ARTIFACTS, choose_model, set_number, wait_for_status

pytestmark = pytest.mark.e2e  # drives a browser
PlaywrightTimeout = pytest.importorskip("playwright.sync_api").TimeoutError

SIMPLEX_POINTS = "() => document.querySelectorAll('#flow-simplex .ternarylayer .point, #flow-simplex .scatterlayer .point').length"


def open_tab(page, name: str) -> None:
    """Click the tab `name`: in the tab bar, or among the tabs Gradio moves out of it where it has no room (shown
    as buttons of their own by the layout's CSS, or behind Gradio's "More tabs" button), once Gradio has placed
    the tabs (it measures the bar after the page loads)."""
    shown = page.locator("#views [role=tablist] button:visible, #views .overflow-dropdown button:visible", has_text=name)
    try:
        shown.first.wait_for(timeout=15_000)
    except PlaywrightTimeout:
        page.locator("#views .overflow-menu > button").click()
    shown.first.click()


def test_the_flow_and_update_tabs_render_in_a_browser(app_url, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(app_url, wait_until="load")
        page.wait_for_selector("#generate-btn", timeout=60_000)

        # one variable's flow: the simplex of three classes, every draw a point, redrawn for another class
        open_tab(page, "One variable's flow")
        page.wait_for_selector("#flow-simplex .js-plotly-plot g.ternary", timeout=30_000)
        page.wait_for_function(f"() => ({SIMPLEX_POINTS})() === 600", timeout=30_000)
        page.locator("#flow-simplex").get_by_text("Three classes, x = 0,").first.wait_for(timeout=10_000)
        page.locator("#flow-simplex-x").get_by_label("2").check()
        page.locator("#flow-simplex").get_by_text("Three classes, x = 2,").first.wait_for(timeout=30_000)
        assert page.evaluate(SIMPLEX_POINTS) == 600
        for panel in ("#flow-binary", "#flow-continuous"):
            page.wait_for_selector(f"{panel} .js-plotly-plot .main-svg", timeout=30_000)
        page.screenshot(path=ARTIFACTS / "app-flow-of-one-variable.png", full_page=True)

        # one update in numbers, after a run of the bfn sampler, for the pixel followed from the start
        choose_model(page, "Binarised (discrete)")
        set_number(page, "steps", 60)
        page.click("#generate-btn")
        wait_for_status(page, "Done", timeout=180)
        open_tab(page, "One update, in numbers")
        page.locator("#update-numbers").get_by_text("Pixel (row 14, column 14)").first.wait_for(timeout=30_000)
        page.locator("#update-numbers").get_by_text("is the last: no update follows").first.wait_for(timeout=10_000)
        slider = page.locator("#step-slider input[type=range]")
        # the run's last update redraws the slider (its new maximum): a key pressed before that lands nowhere
        page.wait_for_function("() => { const s = document.querySelector('#step-slider input[type=range]'); "
                               "return s && s.max === '60' && s.value === '60'; }", timeout=30_000)
        slider.focus()
        slider.press("Home")  # back to step 0: the first update, from the prior
        page.locator("#update-numbers").get_by_text("from step 0 to step 1 of 60").first.wait_for(timeout=30_000)
        page.wait_for_selector("#update-numbers .katex-display", timeout=30_000)
        assert page.locator("#update-numbers .katex-display").count() >= 4  # k, y, e^y θ and θ' as equations
        page.wait_for_selector("#update-schedule .js-plotly-plot .main-svg", timeout=30_000)
        page.screenshot(path=ARTIFACTS / "app-update-in-numbers.png", full_page=True)

        # on a phone, every equation and figure of both tabs fits the width
        page.set_viewport_size({"width": 390, "height": 844})
        for name, parts in (("One update, in numbers", "#update-numbers .katex-display, #update-schedule .main-svg"),
                            ("One variable's flow", "[id^=flow-] .main-svg")):
            open_tab(page, name)
            page.wait_for_timeout(1500)  # plotly.js resizes its figures to the new width
            widths = page.evaluate(f"() => [...document.querySelectorAll('{parts}')].map(e => Math.max(e.scrollWidth, e.getBoundingClientRect().right))")
            assert widths and max(widths) <= 390, (name, widths)
        page.screenshot(path=ARTIFACTS / "app-flow-phone.png", full_page=True)
        assert not errors, errors
    finally:
        page.close()

"""The page on a phone (390×844) and a laptop (1440×900), in a real browser: what is in view, and what fits.

The session's app and browser (`conftest.py`: `python -m app` with tiny models, the system Chromium).
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.support.browser import ARTIFACTS, click_pixel, image_src, status_text, wait_for_status

pytestmark = pytest.mark.e2e  # drives a browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1440, "height": 900}


def open_page(browser, url: str, viewport: dict, phone: bool = False):
    page = browser.new_page(viewport=viewport, is_mobile=phone, has_touch=phone)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    page.wait_for_selector("#generate-btn", timeout=60_000)
    page.wait_for_timeout(500)  # the layout settles (fonts, tab bar measurement)
    return page, errors


def box(page, selector: str) -> dict:
    return page.locator(selector).first.bounding_box()


def in_view(b: dict, viewport: dict) -> bool:
    """The whole box lies on the screen as it is (no scrolling)."""
    return b is not None and b["y"] >= 0 and b["x"] >= 0 and b["y"] + b["height"] <= viewport["height"] and b["x"] + b["width"] <= viewport["width"] + 0.5


def scroll_y(page) -> float:
    return page.evaluate("() => window.scrollY")


def figures_fit(page, width: int) -> list:
    """Every Plotly figure and the page itself, as [what, right edge], where wider than `width`."""
    too_wide = page.evaluate(
        """w => [...document.querySelectorAll('.js-plotly-plot .main-svg')].map(s => s.getBoundingClientRect())
                 .filter(r => r.width > 0 && r.right > w + 0.5).map(r => ['figure', r.right])""",
        width,
    )
    page_width = page.evaluate("() => document.documentElement.scrollWidth")
    return too_wide + ([["page", page_width]] if page_width > width else [])


def wait_for_image(page, elem_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not image_src(page, elem_id):
        assert time.monotonic() < deadline, f"#{elem_id} never showed an image"
        time.sleep(0.05)


def tab_names(page) -> list[str]:
    """Every tab of the views (they wrap onto rows: none hides in a menu)."""
    return page.evaluate("() => [...document.querySelectorAll('#views [role=tablist] [role=tab]')].map(b => b.innerText.trim())")


def test_on_a_phone_generate_and_the_live_images_share_the_first_screen(browser, app_url):
    page, errors = open_page(browser, app_url, PHONE, phone=True)
    try:
        page.screenshot(path=ARTIFACTS / "phone-initial.png")
        assert in_view(box(page, "#generate-btn"), PHONE), box(page, "#generate-btn")
        page.locator("#generate-btn").tap()
        wait_for_image(page, "discrete-theta")
        page.screenshot(path=ARTIFACTS / "phone-after-tap.png")
        assert scroll_y(page) == 0
        for view in ("#generate-btn", "#discrete-theta img", "#discrete-output img"):
            assert in_view(box(page, view), PHONE), (view, box(page, view))
        # the results come before the presets
        presets = page.get_by_text("Presets (click one: it runs at once)").bounding_box()
        assert box(page, "#live")["y"] + box(page, "#live")["height"] <= presets["y"]
        wait_for_status(page, "Done", timeout=120)
        page.wait_for_selector("#heatmap .js-plotly-plot", timeout=30_000)
        assert not figures_fit(page, PHONE["width"]), figures_fit(page, PHONE["width"])
        # both heatmaps and their colour bars inside the figure
        heatmap = box(page, "#heatmap .js-plotly-plot")
        for part in page.locator("#heatmap .heatmaplayer .hm, #heatmap .colorbar").all():
            b = part.bounding_box()
            assert b["x"] >= heatmap["x"] - 0.5 and b["x"] + b["width"] <= heatmap["x"] + heatmap["width"] + 0.5, b
        assert page.locator("#heatmap .colorbar").count() == 2
        # every view is one tap away: no tab hides behind "•••"
        names = tab_names(page)
        assert len(names) >= 5
        shown = "#views [role=tablist] button, #views .overflow-dropdown button"  # not the hidden copy
        for name in names:
            assert page.locator(shown, has_text=re.compile(f"^{re.escape(name)}$")).first.is_visible(), name
        page.locator(shown, has_text="Which digit?").first.tap()
        page.locator("#digit-beliefs").get_by_text(re.compile("from step|undecided")).first.wait_for(timeout=30_000)
        assert not figures_fit(page, PHONE["width"]), figures_fit(page, PHONE["width"])
        page.screenshot(path=ARTIFACTS / "phone-full.png", full_page=True)
        assert not errors, errors
    finally:
        page.close()


def test_on_a_laptop_the_first_plot_is_in_view(browser, app_url):
    page, errors = open_page(browser, app_url, LAPTOP)
    try:
        assert in_view(box(page, "#generate-btn"), LAPTOP)
        page.click("#generate-btn")
        wait_for_status(page, "Done", timeout=120)
        page.wait_for_selector("#heatmap .js-plotly-plot", timeout=30_000)
        page.wait_for_timeout(300)
        page.screenshot(path=ARTIFACTS / "laptop-done.png")
        assert scroll_y(page) == 0
        for view in ("#generate-btn", "#discrete-theta img", "#continuous-output img", "#heatmap .js-plotly-plot"):
            assert in_view(box(page, view), LAPTOP), (view, box(page, view))
        assert not figures_fit(page, LAPTOP["width"])
        assert not errors, errors
    finally:
        page.close()


def test_what_the_page_says_and_where(browser, app_url):
    """The small defects: one explanation heading, placeholder text, Random in the Seed card, a click fills
    the pixel boxes, one hover box, the Which digit? labels apart, the status pluralises, a preview of the GIF."""
    page, errors = open_page(browser, app_url, LAPTOP)
    try:
        assert page.evaluate("() => document.body.innerText.split('What am I looking at?').length - 1") == 1
        placeholder = page.evaluate("() => getComputedStyle(document.querySelector('#discrete-theta .empty'), '::after').content")
        assert "Press Generate" in placeholder
        seed_card, dice = box(page, "#seed-card"), box(page, "#dice")
        assert seed_card["x"] <= dice["x"] and dice["x"] + dice["width"] <= seed_card["x"] + seed_card["width"]
        assert seed_card["y"] <= dice["y"] and dice["y"] + dice["height"] <= seed_card["y"] + seed_card["height"]

        steps = page.locator("#steps input[type=number]")
        steps.fill("1")
        steps.press("Enter")
        page.click("#generate-btn")
        wait_for_status(page, "Done", timeout=60)
        assert "1 step ·" in status_text(page) and "1 steps" not in status_text(page), status_text(page)
        steps.fill("60")
        steps.press("Enter")
        page.click("#generate-btn")
        wait_for_status(page, "60 steps", timeout=60)
        wait_for_status(page, "Done", timeout=120)

        # a click on image 1, row 5, col 7 of the θ image fills the boxes that name a pixel
        click_pixel(page, "discrete-theta", 1, 5, 7, 28)
        page.get_by_role("tab", name="Pixel trajectories").click()
        page.locator("#trajectories").get_by_text("image 1, row 5, col 7").first.wait_for(timeout=30_000)
        assert [page.locator(f"#{box_id} input").input_value() for box_id in ("px-image", "px-row", "px-col")] == ["1", "5", "7"]

        # the heatmap's hover label: one box, the model's name inside it
        page.get_by_role("tab", name="Pixel heatmap").click()
        cell = box(page, "#heatmap .heatmaplayer .hm")
        page.mouse.move(cell["x"] + cell["width"] / 2, cell["y"] + cell["height"] / 2)
        page.locator("#heatmap .hoverlayer .hovertext").first.wait_for(timeout=10_000)
        hover = page.locator("#heatmap .hoverlayer .hovertext").first
        assert "Binarised (discrete)" in hover.text_content()
        names = page.locator("#heatmap .hoverlayer .hovertext text.name")  # Plotly's second box, beside the first
        assert names.count() == 0 or not names.first.text_content().strip()

        # Which digit?: the ★'s label, the guidance band's label and the y axis do not run into each other
        page.get_by_role("tab", name="Which digit?").click()
        beliefs = page.locator("#digit-beliefs")
        beliefs.get_by_text("guidance 3").first.wait_for(timeout=30_000)
        labels = [b.bounding_box() for b in beliefs.get_by_text(re.compile(r"^guidance 3$|from step")).all()]
        axes = [b.bounding_box() for b in page.locator("#digit-beliefs .ytick").all()]
        for i, a in enumerate(labels):
            for b in labels[i + 1 :] + axes:
                apart = a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"] or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"]
                assert apart, (a, b)

        # the GIF is shown, not only offered as a file
        page.get_by_role("tab", name="Export").click()
        page.click("#gif-btn")
        page.wait_for_function("() => { const i = document.querySelector('#export-preview img'); return i && i.naturalWidth > 0; }", timeout=60_000)
        assert page.get_by_text("looks jaggier than the greys on screen").first.is_visible()
        page.screenshot(path=ARTIFACTS / "laptop-export.png", full_page=True)
        assert not errors, errors
    finally:
        page.close()


@pytest.mark.parametrize(
    "field, typed, message",
    [
        ("steps", "5000", "steps must be from 1 to 1000; got '5000'"),
        ("guidance", "25", "guidance must be from 0 to 10; got '25'"),
        ("seed", "-1", "seed must be from 0 to 4294967295; got -1"),
    ],
)
def test_a_typed_value_out_of_range_is_refused_with_its_message_alone(browser, app_url, field, typed, message):
    page, errors = open_page(browser, app_url, LAPTOP)
    try:
        number = page.locator(f"#{field} input[type=number], #{field} input").first
        number.fill(typed)
        number.press("Enter")
        page.click("#generate-btn")
        page.get_by_text(message).first.wait_for(timeout=30_000)  # the message, in a toast
        page.wait_for_timeout(500)
        assert not re.search("Running|Done|Stopped", status_text(page)), status_text(page)  # nothing ran
        badges = page.locator("[data-testid=status-tracker] .error:visible")
        assert badges.count() == 0, "an Error badge covers a view"
        if field == "seed":
            page.screenshot(path=ARTIFACTS / "laptop-invalid.png")
        assert not errors, errors
    finally:
        page.close()

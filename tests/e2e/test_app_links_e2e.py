"""Shareable links and the sampler duel in a real browser: a link restores its settings and makes the very run
the same settings make by hand; the page's address follows the settings and "Copy link" copies it; a bad link
is told; a duel link runs both samplers, and one t slider moves both to the same moment.

The session's app and browser (`conftest.py`: `python -m app` with tiny models, the system Chromium).
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.support.browser import ARTIFACTS, choose_model, set_number, status_text, text, wait_for_status, wait_for_text

pytestmark = pytest.mark.e2e  # drives a browser

SETTINGS = {"model": "discrete", "digits": "one", "digit": "7", "guidance": "2", "steps": "12", "seed": "42", "sampler": "bfn", "tab": "classifier"}
DUEL = {"model": "continuous", "digits": "all", "digit": "3", "guidance": "1", "steps": "100", "seed": "5", "sampler": "recommended",
        "left_sampler": "bfn", "left_steps": "40", "right_sampler": "solver", "right_steps": "8", "tab": "duel"}  # fmt: skip
CAPTION = re.compile(r"step (\d+) of (\d+), t = ([0-9.]+)")


def written(settings: dict) -> dict:
    """A link's settings as the page writes its address: every field (a link written before the Autoguidance
    choice existed restores it as "recommended"), then the tab."""
    fields = {k: v for k, v in settings.items() if k != "tab"}
    return {**fields, "autoguidance": settings.get("autoguidance", "recommended"), "tab": settings["tab"]}


def query(settings: dict) -> str:
    return "&".join(f"{k}={v}" for k, v in settings.items())


def image_bytes(page, elem_id: str) -> bytes:
    """The bytes of the picture an image component shows (its URL may differ between sessions)."""
    values = page.evaluate(
        "async id => { const r = await fetch(document.querySelector(`#${id} img`).src); return Array.from(new Uint8Array(await r.arrayBuffer())); }",
        elem_id,
    )
    return bytes(values)


def widget_values(page) -> dict:
    return page.evaluate("""() => ({
        model: document.querySelector('#model input:checked')?.value,
        digits: document.querySelector('#digits input:checked')?.value,
        digit: document.querySelector('#digit input:checked')?.value,
        guidance: document.querySelector('#guidance input[type=number]')?.value,
        steps: document.querySelector('#steps input[type=number]')?.value,
        seed: document.querySelector('#seed input')?.value,
        sampler: document.querySelector('#sampler input')?.value,
    })""")


def address(page) -> dict:
    return dict(parse_qsl(urlsplit(page.url).query))


@pytest.fixture
def browser(browser):
    """The session's browser, and the page errors of every page opened by `new_page` (none may occur); each
    test's pages closed after it."""
    browser.page_errors, browser.contexts_opened = [], []
    try:
        yield browser
        assert not browser.page_errors, browser.page_errors
    finally:
        for context in browser.contexts_opened:
            context.close()


def new_page(browser, width: int = 1440, height: int = 900, clipboard: bool = False):
    """A page in a context (a session) of its own."""
    context = browser.new_context(viewport={"width": width, "height": height})
    browser.contexts_opened.append(context)
    if clipboard:
        context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.on("pageerror", lambda e: browser.page_errors.append(str(e)))
    return page


def test_a_link_restores_its_settings_and_makes_the_run_made_by_hand(app_url, browser):
    # opened from a link: the settings come back, the tab opens, and it runs at once
    page = new_page(browser, clipboard=True)
    page.goto(f"{app_url}?{query(SETTINGS)}", wait_until="load")
    wait_for_status(page, "Done", timeout=180)
    assert "step 12 of 12" in status_text(page)
    wanted = {k: v for k, v in SETTINGS.items() if k != "tab"}
    for _ in range(50):  # the pickers re-render once the model's labels are offered: read them once they settle
        if widget_values(page) == wanted:
            break
        page.wait_for_timeout(200)
    assert widget_values(page) == wanted
    page.get_by_role("tab", name="Which digit?", selected=True).wait_for(timeout=10_000)
    by_link = {view: image_bytes(page, f"discrete-{view}") for view in ("theta", "output")}
    page.click("#copy-link-btn")
    page.locator("#share-link textarea, #share-link input").first.wait_for(timeout=10_000)
    page.wait_for_function("() => (document.querySelector('#share-link textarea, #share-link input')?.value ?? '').includes('?')", timeout=10_000)
    page.locator("#copy-link-btn").get_by_text("Link copied").wait_for(timeout=10_000)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == page.url and dict(parse_qsl(urlsplit(copied).query)) == written(SETTINGS)
    page.screenshot(path=ARTIFACTS / "links-opened.png", full_page=False)

    # the same settings entered by hand, in a session of its own: the page's address follows them
    by_hand = new_page(browser)
    by_hand.goto(app_url, wait_until="load")
    by_hand.wait_for_selector("#generate-btn", timeout=60_000)
    assert urlsplit(by_hand.url).query == ""  # a bare address stays bare until a setting changes
    choose_model(by_hand, "Binarised (discrete)")  # the model's guidance set, before ours is typed
    by_hand.locator("#digits").get_by_label("One digit").check()
    by_hand.locator("#digit").get_by_label("7", exact=True).check()
    set_number(by_hand, "guidance", 2)
    set_number(by_hand, "steps", 12)
    set_number(by_hand, "seed", 42)
    by_hand.locator("#sampler input").click()
    by_hand.get_by_role("option", name="bfn", exact=True).click()
    by_hand.get_by_role("tab", name="Which digit?").click()
    by_hand.wait_for_function("q => location.search === '?' + q", arg=query(written(SETTINGS)), timeout=10_000)
    by_hand.click("#generate-btn")
    wait_for_status(by_hand, "Done", timeout=180)
    assert "step 12 of 12" in status_text(by_hand)
    assert {view: image_bytes(by_hand, f"discrete-{view}") for view in ("theta", "output")} == by_link
    assert address(by_hand) == written(SETTINGS)

    # a bad link says what is wrong, restores the rest and runs nothing
    bad = new_page(browser, 390, 844)
    outside = []
    bad.on("request", lambda r: outside.append(r.url) if not r.url.startswith((app_url, "data:", "blob:")) else None)
    picture = "![x](http://example.invalid/x.png)"  # quoted as it is, never fetched
    bad.goto(f"{app_url}?steps=5000&seed=3&tab=nowhere&sampler={picture}", wait_until="load")
    wait_for_status(bad, "not all usable", timeout=60)
    assert "steps must be from 1 to 1000; got '5000'" in status_text(bad) and "tab must be one of" in status_text(bad)
    assert f"got '{picture}'" in status_text(bad) and not outside and not bad.locator("#status a, #status img").count()
    assert widget_values(bad)["seed"] == "3" and widget_values(bad)["steps"] != "5000"
    bad.screenshot(path=ARTIFACTS / "links-bad.png", full_page=False)


def test_a_duel_link_runs_both_samplers_on_one_clock(app_url, browser):
    page = new_page(browser)
    page.goto(f"{app_url}?{query(DUEL)}", wait_until="load")
    wait_for_text(page, "duel-status", "Both at t = 1.000", timeout=240)
    wait_for_text(page, "duel-status", "right: 8 steps")
    assert "left: 40 steps" in text(page, "duel-status") and "(done)" in text(page, "duel-status")
    assert CAPTION.search(text(page, "duel-left-caption")).groups() == ("40", "40", "1.000")
    assert CAPTION.search(text(page, "duel-right-caption")).groups() == ("8", "8", "1.000")
    assert page.locator("#duel-discrete-theta, #duel-left-discrete-theta").first.is_hidden()  # the duel runs one model here
    final = {side: image_bytes(page, f"duel-{side}-continuous-theta") for side in ("left", "right")}
    page.locator("#duel-timeline .js-plotly-plot").wait_for(timeout=30_000)
    page.screenshot(path=ARTIFACTS / "duel-done.png", full_page=True)

    # one slider: both sides go to the same moment, each to its latest step at or before it
    assert page.locator("#duel-t input[type=range]").count() == 1
    set_number(page, "duel-t", 0.5)
    wait_for_text(page, "duel-status", "Both at t = 0.500", timeout=30)
    (ls, ln, lt), (rs, rn, rt) = (CAPTION.search(text(page, f"duel-{side}-caption")).groups() for side in ("left", "right"))
    assert (ls, ln, lt) == ("20", "40", "0.500")  # the paper's sampler steps evenly in t
    assert rn == "8" and 0 < int(rs) < 8 and float(rt) <= 0.5  # the solver's steps are spaced otherwise
    assert all(image_bytes(page, f"duel-{side}-continuous-theta") != final[side] for side in ("left", "right"))
    page.screenshot(path=ARTIFACTS / "duel-scrubbed.png", full_page=True)
    assert address(page) == written(DUEL)

    # on a phone the duel fits the width: its pictures and its figure
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#duel-t").scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#duel-timeline .main-svg, [id^=duel-] img')].every(e => e.getBoundingClientRect().right <= 390)",
        timeout=10_000,
    )
    page.screenshot(path=ARTIFACTS / "duel-phone.png", full_page=False)

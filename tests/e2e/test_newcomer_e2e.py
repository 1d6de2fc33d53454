"""What a newcomer hit (issue 26), in a real browser: the two-digit model through generate, scrub, a pixel click,
the update in numbers and a link of number 42, with no error toast and no 5xx response; choosing a model; the bin
of the sketchpad; icons beside the live images, not over them; the duel's step labels whole; tabs that stay in
place; a compact number picker on a phone.

The two-digit tests serve their own page (`tests.support.apps.served`: the shipped layout's three models, each
recommending its shipped guidance); the others use the session's app. The browser is the session's
(`conftest.py`). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from app.core.models import load_models
from tests.support.apps import save_weights, served
from tests.support.browser import ARTIFACTS, click_pixel, draw, text, wait_for_text

pytestmark = pytest.mark.e2e  # drives a browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1440, "height": 900}
GUIDANCE = {"discrete": 1.8, "continuous": 1.8, "two-digit": 3.0}  # what the shipped models recommend
TOAST = '[data-testid="toast-body"]'


@pytest.fixture(scope="module")
def numbers_url(tmp_path_factory, discrete_model, continuous_model, two_digit_model):
    """The app over the shipped layout's three models (tiny ones), each recommending its shipped guidance."""
    folder = save_weights(tmp_path_factory.mktemp("weights"), {"discrete": discrete_model, "continuous": continuous_model,
                                                                "two-digit": two_digit_model})  # fmt: skip
    for name, guidance in GUIDANCE.items():
        config = json.loads((folder / name / "config.json").read_text())
        config["sampling"]["guidance"] = guidance
        (folder / name / "config.json").write_text(json.dumps(config))
    with served(load_models([str(folder)])) as (url, _):
        yield url


class Watched:
    """A page in a context (a session) of its own, with what went wrong on it: error toasts, 5xx responses, page
    errors."""

    def __init__(self, browser, viewport: dict, phone: bool = False):
        self.context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
        self.context.grant_permissions(["clipboard-read", "clipboard-write"])
        self.page = self.context.new_page()
        self.failures: list[str] = []
        self.page.on("response", lambda r: self.failures.append(f"{r.status} {r.url}") if r.status >= 500 else None)
        self.page.on("pageerror", lambda e: self.failures.append(f"page error: {e}"))

    def problems(self) -> list[str]:
        """Every 5xx response and page error so far, and every toast on show."""
        toasts = [f"toast: {t}" for t in self.page.locator(TOAST).all_inner_texts()]
        return self.failures + toasts

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser):
    """Open watched pages (`Watched`) with `watched(viewport)`; each is closed after the test, which fails if any
    went wrong."""
    pages: list[Watched] = []

    def open_page(viewport: dict = LAPTOP, phone: bool = False) -> Watched:
        pages.append(Watched(browser, viewport, phone))
        return pages[-1]

    try:
        yield open_page
        for w in pages:
            assert not w.problems(), w.problems()
    finally:
        for w in pages:
            w.close()


def open_tab(page, name: str) -> None:
    page.locator("#views [role=tab]", has_text=re.compile(f"^{re.escape(name)}$")).click()


def scrub_to_start(page) -> None:
    """Drag the step slider to step 0 (a key press: the slider's input event, as a drag sends it)."""
    slider = page.locator("#step-slider input[type=range]")
    slider.focus()
    slider.press("Home")
    wait_for_text(page, "status", "step 0 of", timeout=30)


def checked(page, elem_id: str, wanted: str, timeout: float = 15) -> str | None:
    """The label of a radio group's checked choice, once it is `wanted` or after `timeout` seconds (a group of a
    hundred choices can still be rendering when the status that came with it already shows)."""
    deadline = time.monotonic() + timeout
    while (label := page.evaluate("id => document.querySelector(`#${id} input:checked`)?.parentElement.innerText.trim() ?? null", elem_id)) != wanted:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return label


def wait_for_guidance(page, value: str) -> None:
    page.wait_for_function("v => document.querySelector('#guidance input[type=number]')?.value === v", arg=value, timeout=15_000)


def done(page, describing: str = "", elem_id: str = "status", timeout: float = 120) -> str:
    """The status once it says "Done" of the run `describing` names (the last run's "Done" stays until the next
    run's first update)."""
    deadline = time.monotonic() + timeout
    while not ("Done" in (said := text(page, elem_id)) and describing in said):
        assert time.monotonic() < deadline, f"#{elem_id} never said Done of {describing!r}: {said!r}"
        time.sleep(0.05)
    return said


# ------------------------------------------------------------------------------------- the two-digit model


def test_two_digit_numbers_generate_scrub_click_and_show_their_update_in_numbers(numbers_url, watched):
    page = watched().page
    page.goto(numbers_url, wait_until="load")
    page.locator("#model").get_by_label("Two digits (64×64)", exact=True).check()
    wait_for_guidance(page, "3")  # its own recommended guidance
    page.get_by_label("One number").check()
    page.locator("#digit").get_by_label("42", exact=True).check()
    page.locator("#steps input[type=number]").fill("50")  # the fewest the bfn sampler takes when recommended
    page.locator("#steps input[type=number]").press("Enter")
    page.click("#generate-btn")
    done(page, "number 42 · guidance 3")
    open_tab(page, "One update, in numbers")
    scrub_to_start(page)
    click_pixel(page, "two-digit-theta", 0, 30, 40, 64)
    wait_for_text(page, "update-numbers", "Pixel (row 30,", timeout=30)
    assert "of image 0 · number 42 · the update from step 0 to step 1" in text(page, "update-numbers")
    assert "From t = " in text(page, "update-numbers")  # its numbers, not an error

    # every number of the row, and a click on image 7: number 77
    page.get_by_label("10 numbers: 00, 11, …, 99").check()
    page.click("#generate-btn")
    done(page, "numbers 00, 11, 22")
    scrub_to_start(page)
    click_pixel(page, "two-digit-theta", 7, 20, 50, 64)
    wait_for_text(page, "update-numbers", "Pixel (row 20,", timeout=30)
    assert "of image 7 · number 77 · the update from step 0 to step 1" in text(page, "update-numbers")
    assert "From t = " in text(page, "update-numbers")
    page.screenshot(path=ARTIFACTS / "newcomer-two-digit-update.png")


def test_a_two_digit_link_of_number_42_restores_its_picker_and_follows_the_settings(numbers_url, watched):
    w = watched()
    page = w.page
    page.goto(f"{numbers_url}?model=two-digit&digits=one&digit=42&guidance=3&steps=10&seed=4&sampler=bfn&tab=update", wait_until="load")
    done(page, "Two digits (64×64) · number 42")
    assert checked(page, "digits", "One number") == "One number" and checked(page, "digit", "42") == "42"
    assert page.locator("#digit").get_by_label("99", exact=True).count() == 1
    click_pixel(page, "two-digit-theta", 0, 10, 10, 64)
    wait_for_text(page, "update-numbers", "of image 0 · number 42", timeout=30)
    # the address follows the settings, and Copy link copies it
    page.locator("#digit").get_by_label("57", exact=True).check()
    page.wait_for_function("() => location.search.includes('digit=57')", timeout=15_000)
    page.click("#copy-link-btn")
    page.wait_for_function("() => document.querySelector('#share-link textarea, #share-link input')?.value.includes('digit=57')", timeout=15_000)
    copied = dict(parse_qsl(urlsplit(page.evaluate("() => navigator.clipboard.readText()")).query))
    assert copied["model"] == "two-digit" and copied["digit"] == "57" and copied["digits"] == "one"
    page.screenshot(path=ARTIFACTS / "newcomer-two-digit-link.png")


def test_choosing_a_model_takes_its_guidance_and_leaves_no_stale_run(numbers_url, watched):
    page = watched().page
    page.goto(numbers_url, wait_until="load")
    page.locator("#steps input[type=number]").fill("6")
    page.locator("#steps input[type=number]").press("Enter")
    page.click("#generate-btn")
    done(page, "Binarised (discrete) + Continuous")
    page.locator("#heatmap .js-plotly-plot").wait_for(timeout=30_000)
    info = text(page, "sampler")
    assert "Binarised (discrete): bfn, solver below 50 steps; Continuous: bfn, solver below 50 steps" in info, info
    page.locator("#model").get_by_label("Two digits (64×64)", exact=True).check()
    wait_for_text(page, "status", "Two digits (64×64), at its recommended guidance 3: press Generate.", timeout=30)
    wait_for_guidance(page, "3")
    assert "Binarised" not in text(page, "status")
    page.wait_for_function("() => !document.querySelector('#heatmap .js-plotly-plot')", timeout=15_000)  # no old heatmap
    assert not page.evaluate("() => document.querySelector('#two-digit-theta img')?.src")
    assert "recommended: the model's own (bfn, solver below 50 steps)" in text(page, "sampler")
    page.locator("#model").get_by_label("Continuous", exact=True).check()
    wait_for_text(page, "status", "Continuous, at its recommended guidance 1.8", timeout=30)
    wait_for_guidance(page, "1.8")


def test_on_a_phone_the_hundred_numbers_leave_generate_on_the_first_screen(numbers_url, watched):
    page = watched(PHONE, phone=True).page
    page.goto(numbers_url, wait_until="load")
    page.locator("#model").get_by_label("Two digits (64×64)", exact=True).tap()
    page.get_by_label("One number").tap()
    page.locator("#digit").get_by_label("99", exact=True).wait_for(timeout=15_000)
    picker, generate = page.locator("#digit").bounding_box(), page.locator("#generate-btn").bounding_box()
    page.screenshot(path=ARTIFACTS / "newcomer-phone-picker.png")
    assert picker["height"] < 360 and generate["y"] + generate["height"] <= PHONE["height"], (picker, generate)
    page.locator("#digit").get_by_label("42", exact=True).tap()
    assert checked(page, "digit", "42") == "42"


# ----------------------------------------------------------------------------------------- the session's app


def covered(page, elem_id: str) -> dict | None:
    """Where an image's buttons overlap the picture it shows (object-fit: contain), or None."""
    return page.evaluate(
        """id => { const b = document.querySelector(`#${id}`), i = b.querySelector('img'), w = b.querySelector('.icon-button-wrapper');
            const r = i.getBoundingClientRect(), s = Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight);
            const x = r.left + (r.width - i.naturalWidth * s) / 2, y = r.top + (r.height - i.naturalHeight * s) / 2;
            const c = w.getBoundingClientRect();
            const apart = c.right <= x || c.left >= x + i.naturalWidth * s || c.bottom <= y || c.top >= y + i.naturalHeight * s;
            return apart ? null : {icons: [c.left, c.top, c.right, c.bottom], picture: [x, y, x + i.naturalWidth * s, y + i.naturalHeight * s]}; }""",
        elem_id,
    )


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_live_images_buttons_sit_beside_the_digits_not_on_them(app_url, watched, viewport):
    page = watched(viewport, phone=viewport is PHONE).page
    page.goto(app_url, wait_until="load")
    page.click("#generate-btn")
    done(page)
    live = [f"{m}-{v}" for m in ("discrete", "continuous") for v in ("theta", "output")]
    page.screenshot(path=ARTIFACTS / f"newcomer-live-images-{viewport['width']}.png")
    open_tab(page, "Sampler duel")
    page.click("#duel-btn")
    wait_for_text(page, "duel-status", "Both at t = 1.000", timeout=120)
    duel = [f"duel-{side}-{m}-{v}" for side in ("left", "right") for m in ("discrete", "continuous") for v in ("theta", "output")]
    for view in live + duel:
        page.wait_for_function("id => document.querySelector(`#${id} img`)?.naturalWidth > 0", arg=view, timeout=30_000)
        assert covered(page, view) is None, (view, covered(page, view))


def test_the_duels_step_labels_are_whole_at_t_1(app_url, watched):
    page = watched().page
    page.goto(app_url, wait_until="load")
    open_tab(page, "Sampler duel")
    page.click("#duel-btn")
    wait_for_text(page, "duel-status", "Both at t = 1.000", timeout=120)
    wait_for_text(page, "duel-timeline", "step 100", timeout=30)
    inside = page.evaluate(
        """() => { const svg = document.querySelector('#duel-timeline .main-svg').getBoundingClientRect();
            return [...document.querySelectorAll('#duel-timeline .textpoint text')].map(t => {
                const r = t.getBoundingClientRect(), clip = t.closest('[clip-path]');
                return [t.textContent, r.left >= svg.left && r.right <= svg.right, clip ? clip.getAttribute('clip-path') : null]; }); }"""
    )
    assert sorted(label for label, _, _ in inside) == ["step 100", "step 20"], inside
    assert all(whole and clip is None for _, whole, clip in inside), inside
    page.locator("#duel-timeline").screenshot(path=ARTIFACTS / "newcomer-duel-timeline.png")


def test_a_tab_of_the_second_row_opens_in_place(app_url, watched):
    page = watched().page
    page.goto(app_url, wait_until="load")
    order = """() => { const bar = document.querySelector('#views [role=tablist]').getBoundingClientRect().top;
        return [...document.querySelectorAll('#views [role=tablist] [role=tab]')].map(b => [b.innerText.trim(), Math.round(b.getBoundingClientRect().top - bar)]); }"""  # rows within the tab bar: the page above may still settle
    page.locator("#views [role=tab]").first.wait_for(timeout=30_000)
    before = page.evaluate(order)
    assert len({top for _, top in before}) == 2, before  # the tabs wrap onto a second row at 1440 px
    open_tab(page, before[-1][0])
    time.sleep(0.5)
    assert page.evaluate(order) == before
    assert page.locator("#views .overflow-menu").count() == 0 or not page.locator("#views .overflow-menu").is_visible()


def test_the_bin_keeps_the_brush(app_url, watched):
    page = watched().page
    page.goto(app_url, wait_until="load")
    brush = page.locator("#digit-sketch button[aria-label='Brush']")
    brush.wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector(`#digit-sketch button[aria-label='Brush']`).classList.contains('highlight')", timeout=15_000)
    draw(page, [(0.5, 0.2), (0.5, 0.8)])
    page.locator("#digit-sketch button[aria-label='Clear canvas']").click()
    page.wait_for_function("() => document.querySelector(`#digit-sketch button[aria-label='Brush']`).classList.contains('highlight')", timeout=15_000)
    draw(page, [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)])  # a 7, after the bin
    page.click("#score-btn")
    wait_for_text(page, "digit-status", "Scored your drawing", timeout=120)



def boxes_apart(boxes: list[dict]) -> list[tuple[dict, dict]]:
    """The pairs of `boxes` that overlap."""
    def apart(a: dict, b: dict) -> bool:
        return a["right"] <= b["left"] or b["right"] <= a["left"] or a["bottom"] <= b["top"] or b["bottom"] <= a["top"]
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if not apart(a, b)]


def rects(page, selector: str) -> list[dict]:
    return page.evaluate(
        "s => [...document.querySelectorAll(s)].map(e => { const r = e.getBoundingClientRect(); "
        "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, text: e.textContent, size: parseFloat(getComputedStyle(e).fontSize)}; })",
        selector,
    )


def test_on_a_phone_your_digit_reads_whole(app_url, watched):
    page = watched(PHONE, phone=True).page
    page.goto(app_url, wait_until="load")
    page.locator("#digit-sketch button[aria-label='Brush']").wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector(`#digit-sketch button[aria-label='Brush']`).classList.contains('highlight')", timeout=15_000)
    draw(page, [(0.5, 0.2), (0.5, 0.8)])
    page.locator("#score-btn").tap()
    wait_for_text(page, "digit-status", "Scored your drawing", timeout=120)
    page.locator("#digit-posterior .barlayer .trace").nth(2).wait_for(timeout=30_000)
    page.locator("#digit-posterior").scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "newcomer-phone-posterior.png")
    figure = rects(page, "#digit-posterior .main-svg")[0]
    titles = rects(page, "#digit-posterior .infolayer .annotation")
    assert len(titles) == 3 and not boxes_apart(titles), titles  # each model's verdict, none over another
    assert all(t["left"] >= figure["left"] and t["right"] <= figure["right"] for t in titles), (figure, titles)
    for k in ("", "2", "3"):  # each panel's labels 0–9 side by side, not over each other
        ticks = rects(page, f"#digit-posterior .xaxislayer-above .x{k}tick text")
        assert len(ticks) == 10 and not boxes_apart(ticks), ticks
    shares = [r for r in rects(page, "#digit-posterior .bartext") if r["text"]]
    assert shares and all(r["size"] >= 10 and r["left"] >= figure["left"] and r["right"] <= figure["right"] for r in shares), shares
    # no Plotly toolbar over a title, and every tab of your digit in view (no "⋯")
    assert not page.evaluate("() => [...document.querySelectorAll('.modebar-container')].some(m => m.offsetParent !== null)")
    for name in ("What the network sees in training", "What the digit costs", "Complete it"):
        assert page.get_by_role("tab", name=name).is_visible(), name
    for heatmap in ("digit-discrete-flow-heatmap", "digit-continuous-flow-heatmap"):
        page.locator(f"#{heatmap} .gtitle").wait_for(timeout=30_000)
        title, svg = rects(page, f"#{heatmap} .gtitle")[0], rects(page, f"#{heatmap} .main-svg")[0]
        assert title["right"] <= svg["right"] + 0.5, (heatmap, title, svg)

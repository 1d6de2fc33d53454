"""Driving the page in a real browser: the system Chromium (/usr/bin/chromium, installed by .ci/run; Playwright's
own browser download is not needed) and what the browser tests read off the page. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def image_src(page, elem_id: str) -> str | None:
    """The image's current URL, read atomically (Gradio replaces the <img> element as frames arrive)."""
    return page.evaluate("id => { const i = document.querySelector(`#${id} img`); return i ? i.src : null; }", elem_id)


def text(page, elem_id: str) -> str:
    return page.evaluate("id => document.querySelector(`#${id}`)?.innerText ?? ''", elem_id)


def wait_for_text(page, elem_id: str, wanted: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in text(page, elem_id):
        assert time.monotonic() < deadline, f"#{elem_id} never said {wanted!r}: {text(page, elem_id)!r}"
        time.sleep(0.05)


def status_text(page) -> str:
    return text(page, "status")


def wait_for_status(page, wanted: str, timeout: float = 120) -> None:
    wait_for_text(page, "status", wanted, timeout)


def wait_for_event_end(page, elem_id: str = "status", timeout: float = 30) -> None:
    """Wait until the event streaming into `elem_id` has ended, not just sent its last update: until then Gradio
    ignores another click of the button that started it (`trigger_mode="once"`), and under load the gap between
    the two can outlast a test's next click. The component's progress tracker is hidden when the event ends."""
    hidden = f"() => {{ const w = document.querySelector('#{elem_id} .wrap'); return !w || w.classList.contains('hide'); }}"
    page.wait_for_function(hidden, timeout=timeout * 1000)


def choose_model(page, label: str) -> None:
    """Check the model `label` and wait until the app has made the choice (its status names the model's recommended
    guidance), so that the guidance slider and the views that follow are the new model's."""
    page.get_by_label(label).check()
    wait_for_status(page, "at its recommended guidance", timeout=30)


def set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def draw(page, points: list[tuple[float, float]]) -> None:
    """One stroke on the sketchpad of "Your digit" through `points` (fractions of its canvas), with the mouse button
    held down."""
    canvas = page.locator("#digit-sketch canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    at = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(at, at[1:]):
        for k in range(1, 6):  # few moves: the canvas redraws (WebGL in software here) on each
            page.mouse.move(x0 + (x1 - x0) * k / 5, y0 + (y1 - y0) * k / 5)
    page.mouse.up()


def click_pixel(page, elem_id: str, image: int, row: int, col: int, size: int, cols: int = 5) -> None:
    """Click pixel (row, col) of image `image` of the live grid `elem_id` of `size`×`size` images, `cols` to a row,
    2 apart. It waits for the picture to load: on a loaded machine a new frame's <img> can still be empty."""
    natural = page.wait_for_function(
        "id => { const i = document.querySelector(`#${id} img`); return i && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null; }",
        arg=elem_id, timeout=30_000,
    ).json_value()
    img = page.locator(f"#{elem_id} img").bounding_box()
    scale = min(img["width"] / natural[0], img["height"] / natural[1])
    left, top = img["x"] + (img["width"] - natural[0] * scale) / 2, img["y"] + (img["height"] - natural[1] * scale) / 2
    r, c = divmod(image, cols)
    page.mouse.click(left + (2 + c * (size + 2) + col + 0.5) * scale, top + (2 + r * (size + 2) + row + 0.5) * scale)

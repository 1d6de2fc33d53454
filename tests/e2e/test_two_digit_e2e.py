"""A model of other labels and size in a real browser: choosing the two-digit model offers numbers, generates one
at its size, and choosing an MNIST model offers digits again. Its page is not the session's app (`conftest.py`)
but the app over four models of three label sets, served in this process (`tests.support.apps.served_mixed`);
the browser is the session's."""

from __future__ import annotations

import pytest

from tests.support.apps import served_mixed

pytestmark = pytest.mark.e2e  # drives a browser


@pytest.fixture(scope="module")
def mixed_url(tmp_path_factory, discrete_model, continuous_model, two_digit_model, named_model):
    models = {"discrete": discrete_model, "continuous": continuous_model, "two-digit": two_digit_model, "animals": named_model}
    with served_mixed(tmp_path_factory.mktemp("weights"), models) as (url, _):
        yield url


def test_in_a_browser_choosing_two_digits_offers_numbers_and_generates_one(mixed_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(mixed_url, wait_until="load")
        page.locator("#model").get_by_label("Two digits (64×64)", exact=True).check()
        page.get_by_label("One number").check()  # the Digits choice speaks of numbers now
        page.locator("#digit").get_by_label("42", exact=True).check()  # the picker offers 00 … 99
        assert page.locator("#digit").get_by_label("07", exact=True).count() == 1
        page.click("#generate-btn")
        page.locator("#status").get_by_text("Done").wait_for(timeout=120_000)
        assert "number 42" in page.locator("#status").inner_text()
        # the status and the picture arrive together, but the browser decodes the picture after it shows the status
        loaded = "() => { const img = document.querySelector('#two-digit-theta img'); return img && img.complete && img.naturalWidth }"
        page.wait_for_function(loaded, timeout=30_000)
        width = page.evaluate(loaded)
        assert width == 68  # one 64×64 number with its padding
        page.locator("#model").get_by_label("Binarised (discrete)", exact=True).check()  # back to digits: the picker offers 0 … 9 again
        page.locator("#digit").get_by_label("9", exact=True).wait_for(timeout=10_000)
        assert page.locator("#digit").get_by_label("42", exact=True).count() == 0
    finally:
        page.close()

"""Shared test setup: one CPU thread (the machine is shared with training) and tiny random models, one per session.

The tests are in three folders: `unit/` (the maths, the library, training and the CLIs), `app/` (the app in
process and through its API), `e2e/` (the app in a real browser: one `python -m app` and one Chromium for
the whole session, started by `e2e/conftest.py`; marked `e2e`, so `pytest -m "not e2e"` is the fast loop).
The browser tests and the tests that start processes of their own (marked `process`) run alongside the
others, each group in a pytest process of its own (`tests.support.alongside`; BFN_ALONGSIDE=0 runs them here,
in turn).
"""

from __future__ import annotations

import os

import pytest
import torch

from bfn.model import BFNModel
from tests.support import alongside
from tests.support.http import share_one_ssl_context
from tests.support.models import ANIMALS, KINDS, NUMBERS, make_tiny_model

torch.set_num_threads(1)
share_one_ssl_context()


@pytest.hookimpl(trylast=True)  # after `-m` has chosen the tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for runner in alongside.arrange(config, items):
        config.add_cleanup(runner.stop)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if alongside.RESULTS in os.environ:  # this is the second process: tell the first how each test went
        alongside.record(report)


@pytest.fixture(scope="session")
def discrete_model() -> BFNModel:
    return make_tiny_model("discrete")


@pytest.fixture(scope="session")
def continuous_model() -> BFNModel:
    return make_tiny_model("continuous")


@pytest.fixture(scope="session")
def two_digit_model() -> BFNModel:
    """A tiny binarised model of two-digit numbers: 64×64 images, labels "00" … "99"."""
    return make_tiny_model("discrete", unet={"image_size": [64, 64], "num_labels": 100}, labels=NUMBERS)


@pytest.fixture(scope="session")
def named_model() -> BFNModel:
    """A tiny binarised 28×28 model of three labels with names that are not digits."""
    return make_tiny_model("discrete", unet={"num_labels": len(ANIMALS)}, labels=ANIMALS)


@pytest.fixture(params=KINDS)
def model(request: pytest.FixtureRequest, discrete_model: BFNModel, continuous_model: BFNModel) -> BFNModel:
    """Each kind of tiny model in turn."""
    return discrete_model if request.param == "discrete" else continuous_model

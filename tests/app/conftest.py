"""The app tests' one served app: tiny models in a weights folder, served in this process for the whole session
(`tests.support.apps.served`), and a `gradio_client` of it per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402

from app.core.models import load_models  # noqa: E402
from tests.support.apps import save_weights, served  # noqa: E402


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory, discrete_model, continuous_model) -> Path:
    """Tiny random models in the layout the app ships: weights/discrete, weights/continuous."""
    return save_weights(tmp_path_factory.mktemp("weights"), {"discrete": discrete_model, "continuous": continuous_model})


@pytest.fixture(scope="session")
def server(weights_dir):
    """The app as `python -m app` serves it, in this process, with a faster stream: (URL, `app.server.Server`)."""
    with served(load_models([str(weights_dir)])) as (url, app_server):
        yield url, app_server


@pytest.fixture
def client(server) -> Client:
    return Client(server[0], verbose=False, download_files=False)

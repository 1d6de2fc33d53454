"""`python -m training loss-curve` on a tiny model and the MNIST fixture."""

from __future__ import annotations

import json

import pytest

from tests.support.mnist import write_mnist
from training.__main__ import main


def test_the_mean_rate_integrates_to_the_continuous_time_loss(tmp_path, discrete_model, capsys):
    discrete_model.save_pretrained(tmp_path / "m")
    mnist = write_mnist(tmp_path / "data", train=20, test=12)
    out = tmp_path / "curve.svg"
    assert main(["loss-curve", "--model", str(tmp_path / "m"), "--data-dir", str(mnist), "--limit", "12",
                 "--points", "8", "--out", str(out)]) == 0
    curve = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert curve["t"] == pytest.approx([(k + 0.5) / 8 for k in range(8)])
    # the bound's diffusion part is the grid's mean rate: total = mean(rate) + reconstruction
    mean_rate = sum(curve["nats_per_unit_time"]) / 8
    assert curve["total_nats"] == pytest.approx(mean_rate + curve["reconstruction_nats"], rel=1e-6)
    text = out.read_text()
    assert text.startswith("<svg") and "<polyline" in text and "12 test digits" in text

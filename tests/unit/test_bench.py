"""`python -m bfn.cli.bench` runs and reports (its timings are reported, never asserted)."""

from __future__ import annotations

import json

import torch

from bfn.benchmark import reference_model
from bfn.cli.bench import main


def test_reference_is_the_size_of_the_official_mnist_unet():
    model = reference_model("discrete", "cpu", channels_last=False)
    params = sum(p.numel() for p in model.parameters())
    assert 24e6 < params < 27e6
    assert model.net.config.channels == (128, 256, 256) and model.net.config.res_blocks == 2 and model.net.config.patch == 1


def test_bench_prints_one_json_line_per_measurement(capsys):
    torch.set_num_threads(1)
    assert main(["--steps", "2", "--threads", "1", "--kinds", "discrete", "--reference-steps", "0", "--repeats", "1",
                 "--sampler", "bfn", "solver", "--no-gpu"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.strip().splitlines()]
    runs = [l for l in lines if "ms_per_step" in l]
    assert [r["sampler"] for r in runs] == ["bfn", "solver"]
    assert all(r["ms_per_step"] > 0 and r["total_s"] > 0 and r["threads"] == 1 and r["device"] == "cpu" for r in runs)

"""The models in weights/ load and still produce the samples they produced when they were exported.

A change to the weights (or to the sampling maths) changes these numbers. After an intentional change,
print the new values with `PYTHONPATH=. python tests/unit/test_shipped_weights.py` and update EXPECTED.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bfn.hub import load_model
from bfn.sampling import sample

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
LABELS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, None]
PROBE = slice(400, 406)  # a few pixels in the middle of the first image, where the digit is

EXPECTED = {  # folder in weights/: (kind, probe values)
    "discrete": ("discrete", [0.1363, 0.3359, 0.991, 0.0004, 0.0, 0.0, 0.0, 0.0]),
    "continuous": ("continuous", [-0.552, 0.5718, -0.4795, -1.0, -1.0, -0.7709, 0.284, -0.2078]),
}


def probe(folder: str) -> list[float]:
    """The batch's mean and std of the final output distribution, then a few pixels of the first image."""
    # guidance everywhere: the probe checks the weights, not the default guidance interval
    output = sample(load_model(WEIGHTS / folder), LABELS, steps=8, guidance=2.0, seed=0, guidance_interval=(0.0, 1.0)).output
    values = [output.mean().item(), output.std().item(), *output[0].flatten()[PROBE].tolist()]
    return [round(v, 4) for v in values]


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_shipped_model_loads_and_reproduces_its_sample(folder):
    kind, expected = EXPECTED[folder]
    assert load_model(WEIGHTS / folder).kind == kind
    assert probe(folder) == pytest.approx(expected, abs=2e-3)


def test_default_weights_are_the_shipped_folders():
    """load_model(kind=...) (what the app and CLI use by default) reads weights/<kind>, not another folder."""
    for kind in ("discrete", "continuous"):
        default, folder = load_model(kind=kind).state_dict(), load_model(WEIGHTS / kind).state_dict()
        assert default.keys() == folder.keys() and all(torch.equal(default[k], folder[k]) for k in default)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for folder, (kind, _) in EXPECTED.items():
        print(f'    "{folder}": ("{kind}", {probe(folder)}),')

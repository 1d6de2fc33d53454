"""The models in weights/ load and still produce the samples they produced when they were exported.

A change to the weights (or to the sampling maths) changes these numbers. After an intentional change,
print the new values with `python tests/test_shipped_weights.py` and update EXPECTED.
"""

from __future__ import annotations

import pytest
import torch

from bfn.hub import load_model
from bfn.sampling import sample

LABELS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, None]
PROBE = slice(400, 406)  # a few pixels in the middle of the first image, where the digit is

EXPECTED = {
    "discrete": [0.1437, 0.342, 0.9948, 0.0044, 0.0011, 0.0003, 0.0003, 0.0004],
    "continuous": [-0.4296, 0.5566, -0.4904, -1.0, -0.9844, -0.7818, -0.381, -0.0733],
}


def probe(kind: str) -> list[float]:
    """The batch's mean and std of the final output distribution, then a few pixels of the first image."""
    output = sample(load_model(kind=kind), LABELS, steps=8, guidance=2.0, seed=0).output
    values = [output.mean().item(), output.std().item(), *output[0].flatten()[PROBE].tolist()]
    return [round(v, 4) for v in values]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_shipped_model_loads_and_reproduces_its_sample(kind):
    assert load_model(kind=kind).kind == kind
    assert probe(kind) == pytest.approx(EXPECTED[kind], abs=2e-3)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for kind in EXPECTED:
        print(f'    "{kind}": {probe(kind)},')

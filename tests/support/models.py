"""Tiny random models for the tests: every flow kind, two-digit numbers at 64×64, and labels that are not digits."""

from __future__ import annotations

import torch

from bfn.model import BFNModel

KINDS = ("discrete", "continuous")  # the flow kinds, each tested in turn by the `model` fixture
TINY_UNET = {"channels": [8, 16], "groups": 2}
TINY_FLOW = {"discrete": {"beta1": 3.0}, "continuous": {"sigma1": 0.02}}


def make_tiny_model(kind: str, seed: int = 0, unet: dict | None = None, labels: list[str] | None = None) -> BFNModel:
    """A randomly initialised tiny model whose output depends on θ, t and the label (`unet` adds to the tiny
    U-Net's fields, e.g. image_size and num_labels; `labels` names the labels).

    The U-Net zero-initialises its last layer so that training starts at the prior; left that way every
    output would be the same for every label and the guidance and round-trip tests could not fail, so the
    last layer gets random weights here. Two GroupNorm groups keep four channels per group as in the default
    configuration: with one channel per group the constant prior input makes GroupNorm divide rounding noise
    by √eps, and outputs would then depend on the order of floating-point sums (e.g. the memory format).
    """
    torch.manual_seed(seed)
    model = BFNModel(kind, flow=TINY_FLOW[kind], unet={**TINY_UNET, **(unet or {})}, labels=labels)
    head = model.net.head[-1]
    with torch.no_grad():
        head.weight.normal_(0, 0.3)
        head.bias.normal_(0, 0.1)
    return model.eval().requires_grad_(False)


NUMBERS = [f"{n:02d}" for n in range(100)]  # the labels of two-digit numbers
ANIMALS = ["cat", "dog", "bird"]  # labels that are not digits (as Fashion-MNIST's names are not)

"""The small interface both Bayesian flows share, and the factory that builds one from a config.

The sampler, the training loop and the evaluation are written once against `Flow`; the discrete and
continuous modules supply the equations. θ is whatever the flow needs (a probability tensor for discrete
data, a (μ, ρ) pair for continuous data); only the flow looks inside it.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from bfn.continuous import ContinuousFlow
from bfn.discrete import DiscreteFlow

Theta = Any  # Tensor for discrete data, (μ, ρ) for continuous data


class Flow(Protocol):
    kind: str
    channels_per_dim: int

    def prior(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Theta:
        """θ_0, the input distribution before any observation."""

    def network_input(self, theta: Theta) -> Tensor:
        """θ as image channels for the network."""

    def output(self, net_out: Tensor, theta: Theta, t: Tensor) -> Tensor:
        """The output distribution (class probabilities, or x̂) from the network's raw output."""

    def bayesian_flow(self, x: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Theta:
        """A draw of θ from the Bayesian flow distribution p_F(θ | x; t), for training."""

    def continuous_time_loss(self, x: Tensor, output: Tensor, t: Tensor) -> Tensor:
        """L^∞ per image."""

    def discrete_time_loss(self, x: Tensor, output: Tensor, i: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """L^n per image, with the output distribution taken at t_{i−1}."""

    def reconstruction_loss(self, x: Tensor, output: Tensor) -> Tensor:
        """L^r per image, with the output distribution taken at t = 1."""

    def step_accuracy(self, i: int, n: int) -> float:
        """α_i, the accuracy of sender sample i of n."""

    def sample_step(self, theta: Theta, output: Tensor, alpha: float, generator: torch.Generator | None = None) -> Theta:
        """Draw from the receiver distribution and apply the Bayesian update."""

    def final_sample(self, output: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The generated data from the output distribution at t = 1."""

    value_range: tuple[float, float]  # the range of the views below, for display

    def theta_view(self, theta: Theta) -> Tensor:
        """θ as an image: p(pixel on) for binarised data, μ for continuous data."""

    def precision_view(self, theta: Theta) -> Tensor | None:
        """ρ per image for continuous data; None for discrete data."""

    def output_view(self, output: Tensor) -> Tensor:
        """The output distribution as an image: p_O(pixel on), or x̂."""

    def sample_view(self, sample: Tensor) -> Tensor:
        """A final sample as an image in `value_range`."""


KINDS = ("discrete", "continuous")


def make_flow(kind: str, **params: float) -> Flow:
    """Build the flow named `kind` ("discrete" or "continuous") with its hyperparameters."""
    if kind == "discrete":
        return DiscreteFlow(**params)
    if kind == "continuous":
        return ContinuousFlow(**params)
    raise ValueError(f"unknown flow kind {kind!r}; expected one of {KINDS}")

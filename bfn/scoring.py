"""Which digit is this? Bayes' rule over a class-conditional BFN's likelihood bounds.

    p(y | x) = exp(−L_y(x)) p(y) / Σ_y' exp(−L_y'(x)) p(y'),

with L_y(x) = L^∞ + L^r ≥ −ln p(x | y) the bound under label y (bfn.objective.label_bounds) standing in for
the negative log-likelihood, and a uniform prior over the model's labels (the ten digits, the hundred
two-digit numbers, or whatever names its config gives them). The bounds are estimated with common
random numbers: every label sees the same times and the same draws from the Bayesian flow, so the
differences between labels, which are all that Bayes' rule reads, are precise with few network passes
(2 · S · 11 per image for S samples).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from bfn.objective import LabelBounds, label_bounds
from bfn.sampling import Network


def label_posterior(nll: Tensor, log_prior: Tensor | None = None) -> Tensor:
    """p(y | x) ∝ exp(−L_y(x)) p(y) over the last axis of `nll` (nats); a uniform prior unless `log_prior`."""
    return torch.softmax(-nll if log_prior is None else log_prior - nll, dim=-1)


def score_images(model: Network, x: Tensor, samples: int, generator: torch.Generator, curve_points: int = 0,
                 batch: int = 1) -> Iterator[LabelBounds]:
    """The bounds of the flow data `x` (N, C, H, W) under every digit and "no class" (the last column),
    `batch` images at a time (one by default: what scoring a single drawing costs)."""
    labels = torch.arange(model.num_labels + 1, device=x.device)
    for start in range(0, x.shape[0], batch):
        with torch.inference_mode():  # not around the yield: the caller's code would run in inference mode too
            bounds = label_bounds(model.flow, model, x[start : start + batch], labels, samples, generator, curve_points)
        yield bounds


def predictions(bounds: LabelBounds, num_labels: int) -> tuple[Tensor, Tensor]:
    """(posterior over the digits (B, num_labels), the most probable digit (B,)); "no class" takes no part."""
    posterior = label_posterior(bounds.total[:, :num_labels])
    return posterior, posterior.argmax(-1)

"""Toy BFN "networks" that output the exact posterior, so a sampler's result has a known right answer.

GaussianToy (continuous flow): every pixel is independently x ~ N(m, v); the exact x̂ = E[x | μ, t] is
linear in the precision-weighted mean z = ρμ, and a perfect sampler draws pixels from N(m, v).

BlockToy (discrete flow, K = 2): the image is 196 independent 2×2 blocks, each all on (probability q) or
all off. Pixels within a block are perfectly correlated, which a sampler that draws pixels independently
only gets right with small steps. The exact posterior of a block is a logistic function of the summed
logit differences; a perfect sampler gives all-on blocks with frequency q and no mixed blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bfn.continuous import gamma
from bfn.kinds import make_flow
from bfn.settings import SamplingSettings


class _Toy(nn.Module):
    num_labels = 10
    sampling = SamplingSettings()
    data_shape = (1, 28, 28)
    guide = None  # no autoguidance guide

    def __init__(self, kind: str, **flow):
        super().__init__()
        self.kind = kind
        self.flow = make_flow(kind, **flow)
        self.anchor = nn.Parameter(torch.zeros(1))  # samplers read the device from the parameters


class GaussianToy(_Toy):
    def __init__(self, mean: float = 0.2, var: float = 0.04, sigma1: float = 0.001):
        super().__init__("continuous", sigma1=sigma1)
        self.mean, self.var = mean, var

    def forward(self, mu: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        t = t.double().reshape(-1, 1, 1, 1)
        mu = mu.double()
        rho = self.flow.sigma1 ** (-2 * t)
        x_hat = (self.mean / self.var + rho * mu) / (1 / self.var + rho - 1)
        g = gamma(t, self.flow.sigma1).clamp_min(1e-12)
        return ((mu - g * x_hat) / (g * (1 - g)).sqrt()).float()  # ε̂ such that eq. 84 gives x̂


class BlockToy(_Toy):
    def __init__(self, q: float = 0.3, beta1: float = 3.0):
        super().__init__("discrete", beta1=beta1)
        self.q = q

    def forward(self, net_input: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        p_on = ((net_input.double() + 1) / 2).clamp(1e-12, 1 - 1e-12)
        d = torch.log(p_on) - torch.log1p(-p_on)  # y_on − y_off per pixel
        evidence = F.avg_pool2d(d, 2) * 4 + torch.logit(torch.tensor(self.q, dtype=torch.float64))
        return F.interpolate(evidence, scale_factor=2, mode="nearest").float()  # the logit of "on"


def gaussian_error(samples: Tensor, mean: float, var: float) -> float:
    """W2 distance between N(sample mean, sample var) and N(mean, var)."""
    return float(((samples.mean() - mean) ** 2 + (samples.std() - var**0.5) ** 2).sqrt())


def block_error(samples: Tensor, q: float) -> float:
    """Total variation between the blocks' empirical law (off / mixed / on) and the truth (1 − q, 0, q)."""
    ons = F.avg_pool2d(samples.float().unsqueeze(1), 2).flatten()
    freq = torch.stack([(ons == 0).float().mean(), ((ons > 0) & (ons < 1)).float().mean(), (ons == 1).float().mean()])
    return float(0.5 * (freq - torch.tensor([1 - q, 0.0, q])).abs().sum())

"""Bayesian Flow Networks (Graves et al. 2023) for MNIST: the maths, the network, sampling and loading.

This package has no UI and no training code; `app/` and `training/` build on it, never the reverse.
"""

from bfn.model import BFNModel
from bfn.sampling import SAMPLERS, StepState, get_sampler, sample

__all__ = ["BFNModel", "SAMPLERS", "StepState", "get_sampler", "sample"]

"""Completion (inpainting) as a library: a digit's known pixels as a flow's data, as the views show them, and
the finished completions with the known data kept. The sampler itself completes (`bfn.sampling.run_sampler`'s
`known` and `resample`); the completion CLI (`bfn.cli.complete`) and the app's "Your digit" read these.
"""

from __future__ import annotations

import numpy as np
import torch

from bfn.flow import Flow
from bfn.images import to_uint8, to_unit
from bfn.sampling import StepState

# Each step is taken this many times, as in RePaint: in a single pass the generated pixels commit to a digit
# before the known ones are observed well enough for the two to agree.
RESAMPLE = 10
UNKNOWN_GREY = 64  # how the grid shows pixels that were not kept: the grid's padding grey, as if cut out


def known_data(flow: Flow, images: np.ndarray, seed: int) -> torch.Tensor:
    """Images in [0, 1] → the flow's data (N, 1, H, W), through uint8 as the models were trained; a discrete
    flow binarises by a Bernoulli draw seeded by `seed`."""
    return flow.data_from_images(torch.from_numpy(to_uint8(images)), torch.Generator().manual_seed(seed))


def known_view(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """The known data as the views show an output distribution (B, H, W): in the flow's `display.value_range`."""
    return flow.output_view(flow.point_output(x))[:, 0].cpu()


def completed_images(flow: Flow, final: StepState, x: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The completions in [0, 1] as `python -m bfn.cli.sample` writes samples (the final output distribution), with the known data
    at the known pixels: the final state reports the network's output there (`StepState.output`)."""
    return to_unit(torch.where(mask, known_view(flow, x), final.output), final.value_range).numpy().astype(np.float32)

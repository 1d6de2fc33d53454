"""A BFN model = a flow (the maths, with its hyperparameters) + a U-Net (the learned part).

`BFNModel` is what gets saved and loaded: huggingface_hub's `PyTorchModelHubMixin` writes its constructor
arguments to `config.json` and its weights to `model.safetensors`, so `save_pretrained`, `from_pretrained`
and `push_to_hub` work as for any Hub model. Loading is overridden to be strict and safetensors-only: a
checkpoint that does not match the architecture, or a pickle file, is refused rather than half-loaded.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import safetensors.torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import Tensor, nn

from bfn.flow import Flow
from bfn.flows import make_flow
from bfn.nets import UNet, UNetConfig
from bfn.settings import SamplingSettings

WEIGHTS_FILE = "model.safetensors"


class BFNModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="bfn-studio",
    tags=["bayesian-flow-network", "mnist"],
    license="mit",
):
    """A class-conditional Bayesian Flow Network.

    Args:
        kind: the flow kind, a name in `bfn.flows.FLOWS`: "discrete" (binarised MNIST) or "continuous"
            (pixels in [−1, 1]).
        flow: the flow's hyperparameters, e.g. {"beta1": 3.0} or {"sigma1": 0.001}.
        unet: `UNetConfig` fields; in/out channels are derived from the flow when absent.
        sampling: `SamplingSettings` fields, the model's recommended way to sample it.
    """

    def __init__(self, kind: str = "discrete", flow: dict | None = None, unet: dict | None = None, sampling: dict | None = None):
        super().__init__()
        self.kind = kind
        self.flow: Flow = make_flow(kind, **(flow or {}))
        self.sampling = SamplingSettings.from_dict(sampling)
        unet = dict(unet or {})
        unet.setdefault("in_channels", self.flow.channels_per_dim)
        unet.setdefault("out_channels", self.flow.channels_per_dim)
        if unet.get("evidence") and not self.flow.binary:
            raise ValueError(f"the evidence skip is for binary data (one probability channel), not a {kind} flow like this one")
        self.net = UNet(UNetConfig.from_dict(unet))
        # The mixin would save only the arguments as passed ("flow": null for defaults); record every
        # hyperparameter instead, so a saved config.json keeps its meaning if a default changes later.
        self._hub_mixin_config = {"kind": kind, "flow": dataclasses.asdict(self.flow), "unet": self.net.config.to_dict(),
                                  "sampling": self.sampling.to_dict()}

    @property
    def num_labels(self) -> int:
        """Number of real class labels; this index itself is the "no class" label."""
        return self.net.config.num_labels

    def forward(self, theta_input: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        return self.net(theta_input, t, labels)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        **model_kwargs,
    ) -> "BFNModel":
        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, WEIGHTS_FILE)
        else:
            weights = hf_hub_download(
                repo_id=model_id,
                filename=WEIGHTS_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        safetensors.torch.load_model(model, weights, strict=True, device=map_location)
        return model.eval()

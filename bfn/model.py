"""A BFN model = a flow (the maths, with its hyperparameters) + a U-Net (the learned part).

`BFNModel` is what gets saved and loaded: huggingface_hub's `PyTorchModelHubMixin` writes its constructor
arguments to `config.json` and its weights to `model.safetensors`, so `save_pretrained`, `from_pretrained`
and `push_to_hub` work as for any Hub model. Loading is overridden to be strict and safetensors-only: a
checkpoint that does not match the architecture, or a pickle file, is refused rather than half-loaded, and so
are weights holding NaN or infinity, which would sample a blank grid without any error. The configuration is
checked field by field before anything is allocated (`ConfigError`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import safetensors.torch
import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import Tensor, nn

from bfn.flow import Flow
from bfn.kinds import FLOWS, make_flow
from bfn.nets import UNet, UNetConfig, check_network
from bfn.settings import SamplingSettings

if TYPE_CHECKING:
    from bfn.typicality import TypicalBounds

WEIGHTS_FILE = "model.safetensors"


class ConfigError(ValueError):
    """The configuration (a config.json's kind, flow, unet or sampling) is invalid; the message names the field."""


def check_labels(labels: object, num_labels: int) -> tuple[str, ...]:
    """The label names of a config (None: the digits 0 … num_labels−1) → a tuple; ConfigError if they do not fit."""
    if labels is None:
        return tuple(str(k) for k in range(num_labels))
    if not (isinstance(labels, (list, tuple)) and all(isinstance(n, str) and n.strip() for n in labels)):
        raise ConfigError(f"labels must be a list of non-empty names, got {str(labels)[:60]!r}")
    if len(labels) != num_labels:
        raise ConfigError(f"labels names {len(labels)} classes but unet.num_labels is {num_labels}")
    if len(set(labels)) != len(labels):
        raise ConfigError("labels must be distinct: a name picks its class")
    return tuple(labels)


class BFNModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="bfn-studio",
    tags=["bayesian-flow-network", "mnist"],
    license="mit",
):
    """A class-conditional Bayesian Flow Network.

    Args:
        kind: the flow kind, a name in `bfn.kinds.FLOWS`: "discrete" (binarised MNIST) or "continuous"
            (pixels in [−1, 1]).
        flow: the flow's hyperparameters, e.g. {"beta1": 3.0} or {"sigma1": 0.001}.
        unet: `UNetConfig` fields; in/out channels are derived from the flow when absent.
        sampling: `SamplingSettings` fields, the model's recommended way to sample it.
        labels: the name of each class label, in label order (e.g. "00" … "99", or "T-shirt/top", …); by
            default the digits "0", "1", …, as many as the network has labels.
    """

    def __init__(
        self,
        kind: str = "discrete",
        flow: dict | None = None,
        unet: dict | None = None,
        sampling: dict | None = None,
        labels: list[str] | None = None,
    ):
        super().__init__()
        if kind not in FLOWS:
            raise ConfigError(f"kind must be one of {tuple(FLOWS)}, got {kind!r}")
        for name, value in (("flow", flow), ("unet", unet), ("sampling", sampling)):
            if not isinstance(value, (dict, type(None))):
                raise ConfigError(f"{name} must be a JSON object of hyperparameters, got {value!r}")
        self.kind = kind
        try:
            self.flow: Flow = make_flow(kind, **(flow or {}))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"flow: {e}") from None
        try:
            self.sampling = SamplingSettings.from_dict(sampling)
        except (TypeError, ValueError) as e:
            raise ConfigError(str(e)) from None  # its messages name the field (sampling.steps, ...)
        unet = dict(unet or {})
        unet.setdefault("in_channels", self.flow.channels_per_dim)
        unet.setdefault("out_channels", self.flow.channels_per_dim)
        if unet.get("evidence") and not self.flow.binary:
            raise ConfigError(f"the evidence skip is for binary data (one probability channel), not a {kind} flow "
                              "like this one")
        try:
            config = UNetConfig.from_dict(unet)
            check_network(config)  # before allocating: a typo in channels could ask for billions of weights
        except ValueError as e:
            raise ConfigError(f"unet: {e}") from None
        self.net = UNet(config)
        self.label_names: tuple[str, ...] = check_labels(labels, config.num_labels)
        # The mixin would save only the arguments as passed ("flow": null for defaults); record every
        # hyperparameter instead, so a saved config.json keeps its meaning if a default changes later.
        self._guide: BFNModel | None = None
        # The bounds of real test images, where measured (bfn.typicality; `bfn.hub.load_model` reads them from the
        # model's folder): what tells an image far from the data from one the model knows. None: never measured.
        self.typical_bounds: TypicalBounds | None = None
        self._hub_mixin_config = {"kind": kind, "flow": dataclasses.asdict(self.flow), "unet": self.net.config.to_dict(),
                                  "sampling": self.sampling.to_dict(), "labels": list(self.label_names)}

    @property
    def guide(self) -> "BFNModel | None":
        """The model's autoguidance guide (`bfn.sampling.autoguided`), if it has one; see `attach_guide`."""
        return self._guide

    def attach_guide(self, guide: "BFNModel") -> None:
        """Give the model its guide: a weaker model of the same flow, labels and image size.

        The guide is a model of its own, saved in its own folder (guide/ beside the weights), so it is held as a
        plain reference: registered as a sub-module it would enter this model's state_dict and its weights file.
        """
        if guide.kind != self.kind or guide.flow != self.flow:
            raise ConfigError(f"the guide's flow ({guide.kind} {dataclasses.asdict(guide.flow)}) differs from the "
                              f"model's ({self.kind} {dataclasses.asdict(self.flow)}); a guide must share the flow")
        if guide.label_names != self.label_names or guide.data_shape != self.data_shape:
            raise ConfigError("the guide's labels or image size differ from the model's; a guide must share both")
        object.__setattr__(self, "_guide", guide)  # not nn.Module.__setattr__, which would register it

    @property
    def num_labels(self) -> int:
        """Number of real class labels; this index itself is the "no class" label."""
        return self.net.config.num_labels

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """The shape of one data item, (1, height, width): one value per pixel (a level or an intensity)."""
        return (1, *self.net.config.image_size)

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
        bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:
            raise ValueError(f"NaN or infinite values in {', '.join(bad[:3])}{', …' if len(bad) > 3 else ''}")
        return model.eval()

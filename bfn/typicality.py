"""Is an image far from the data a model learned from? Its bound against the bounds of real test images.

Bayes' rule over the bounds (`bfn.scoring`) answers "which label?" among the model's labels, and its
posterior sums to one whatever the image: an image unlike every training image still gets a confident
answer, because only the differences between the labels' bounds count. The unconditional bound L(x) (the
"no class" label) says how well the model explains the image at all. Its distribution over real test images,
measured once per model (`measure`) and stored beside the weights (`FILE`, with a digest of the weights it
was measured on), turns it into a check: an image whose bound lies above a high percentile of the test
images' (`FAR_PERCENTILE`) is far from the data, and the posterior alone is no reason to trust its answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bfn.flow import NllUnit
from bfn.model import WEIGHTS_FILE
from bfn.objective import LabelBounds, label_bounds
from bfn.sampling import Network

FILE = "typical_bounds.json"  # beside config.json and model.safetensors in a model's folder
# An image above this percentile of the test images' bounds is far from the data: a warning on 1 in 20 real test
# digits, chosen for the many fewer confidently wrong answers it leaves unwarned on drawings than the 99th
# (docs/measurements.md, "Your digit": the trade-off at every stored percentile).
FAR_PERCENTILE = 95.0
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)  # what `measure` stores: the median, the tail, and the threshold


@dataclass(frozen=True)
class TypicalBounds:
    """Percentiles of the unconditional bound over real test images, in the model's likelihood unit.

    Attributes:
        unit: the flow's `NllUnit` name (bits/dim, nats/image): bounds in another unit cannot be compared.
        percentiles: percentile (0–100) → the bound below which that share of the test images lie.
        images: how many test images were scored; samples: S, the Monte-Carlo draws per image (the spread of
            the percentiles includes the estimate's noise at this S, as an app's score at the same S does).
        data: which images, in words (e.g. "MNIST test digits 5000–5999").
        weights_sha256: the digest of the model.safetensors measured; other weights make the file stale.
        command: the command that measured it, to measure again.
    """

    unit: str
    percentiles: Mapping[float, float]
    images: int
    samples: int
    data: str
    weights_sha256: str
    command: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)  # anything else the file records (kept on saving)

    def threshold(self, percentile: float = FAR_PERCENTILE) -> float:
        """The bound at `percentile`; ValueError if the file does not hold that percentile."""
        if float(percentile) not in self.percentiles:
            held = ", ".join(f"{p:g}" for p in sorted(self.percentiles))
            raise ValueError(f"no {percentile:g}th percentile among the stored ones ({held})")
        return self.percentiles[float(percentile)]

    def to_dict(self) -> dict:
        return {
            "what": "percentiles of the unconditional bound (label 'none') of real test images, in the model's unit: an "
                    "image above the one bfn.typicality.FAR_PERCENTILE names is far from the data",
            "unit": self.unit,
            "percentiles": {f"{p:g}": round(v, 6) for p, v in sorted(self.percentiles.items())},
            "images": self.images, "samples": self.samples, "data": self.data, "weights_sha256": self.weights_sha256,
            "command": self.command, **self.extra,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: object) -> "TypicalBounds":
        """The inverse of `to_dict`; ValueError naming the field that is missing or wrong."""
        if not isinstance(d, dict):
            raise ValueError("expected a JSON object")
        for key, kind in (("unit", str), ("percentiles", dict), ("images", int), ("samples", int), ("data", str),
                          ("weights_sha256", str)):  # fmt: skip
            if not isinstance(d.get(key), kind) or isinstance(d.get(key), bool):
                raise ValueError(f"'{key}' must be a {kind.__name__}, got {d.get(key)!r}")
        try:
            percentiles = {float(p): float(v) for p, v in d["percentiles"].items()}
        except (TypeError, ValueError):
            raise ValueError(f"'percentiles' must map percentiles to bounds, got {d['percentiles']!r}") from None
        if not percentiles or not all(0 <= p <= 100 and math.isfinite(v) for p, v in percentiles.items()):
            raise ValueError("'percentiles' must hold percentiles in [0, 100] with finite bounds")
        ordered = [percentiles[p] for p in sorted(percentiles)]
        if ordered != sorted(ordered):
            raise ValueError("'percentiles' must not decrease as the percentile grows")
        if d["images"] < 1 or d["samples"] < 1:
            raise ValueError("'images' and 'samples' must be at least 1")
        known = {"what", "unit", "percentiles", "images", "samples", "data", "weights_sha256", "command"}
        return cls(d["unit"], percentiles, d["images"], d["samples"], d["data"], d["weights_sha256"],
                   str(d.get("command", "")), {k: v for k, v in d.items() if k not in known})  # fmt: skip


@dataclass(frozen=True)
class Typicality:
    """Where one image's unconditional bound lies against the test images': `far` when above the threshold."""

    bound: float
    threshold: float
    percentile: float
    unit: str

    @property
    def far(self) -> bool:
        return self.bound > self.threshold


def typicality(bound: float, reference: TypicalBounds, percentile: float = FAR_PERCENTILE) -> Typicality:
    """An image's unconditional bound (in `reference.unit`) against the `percentile`-th of the test images'."""
    return Typicality(float(bound), reference.threshold(percentile), float(percentile), reference.unit)


def unconditional(bounds: LabelBounds, unit: NllUnit) -> Tensor:
    """The bound under "no class" (the last label `bfn.scoring.score_images` scores), per image, in `unit`."""
    return bounds.in_unit(unit)[:, -1]


def unconditional_bounds(model: Network, x: Tensor, samples: int, generator: torch.Generator, batch: int = 16) -> Tensor:
    """The unconditional bound of each image of the flow data `x` (N, C, H, W), in the flow's unit, with the
    S stratified times of Bayes' rule's scoring: what an app compares with `TypicalBounds`."""
    none = torch.tensor([model.num_labels], device=x.device)
    out = []
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch):
            b = label_bounds(model.flow, model, x[start : start + batch], none, samples, generator)
            out.append(unconditional(b, model.flow.nll_unit))
    return torch.cat(out)


def summarise(values: Iterable[float], unit: str, samples: int, data: str, weights_sha256: str, command: str = "",
              percentiles: Iterable[float] = PERCENTILES) -> TypicalBounds:
    """The percentiles (numpy's linear interpolation) of measured unconditional bounds, as a `TypicalBounds`."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError("need at least one finite bound")
    stored = {float(p): float(np.percentile(v, p)) for p in percentiles}
    extra = {"mean": round(float(v.mean()), 6), "max": round(float(v.max()), 6)}
    return TypicalBounds(unit, stored, int(v.size), samples, data, weights_sha256, command, extra)


def weights_digest(folder: str | Path) -> str:
    """The sha256 of the folder's model.safetensors (what ties a measurement to the weights it was made on)."""
    digest = hashlib.sha256()
    with (Path(folder) / WEIGHTS_FILE).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save(folder: str | Path, reference: TypicalBounds) -> Path:
    """Write `reference` as the folder's `FILE`; returns its path."""
    path = Path(folder) / FILE
    path.write_text(json.dumps(reference.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load(folder: str | Path, unit: str | None = None) -> TypicalBounds | None:
    """The folder's `FILE`, or None where there is none, or where it was measured on other weights or in
    another unit than `unit` (with a warning: a stale reference would warn about the wrong images). A file
    that is not a valid measurement is a ValueError naming the file."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        reference = TypicalBounds.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise ValueError(f"{path} is not a measurement of typical bounds ({' '.join(str(e).split())})") from None
    if (Path(folder) / WEIGHTS_FILE).is_file() and reference.weights_sha256 != weights_digest(folder):
        warnings.warn(f"{path} was measured on other weights than {Path(folder) / WEIGHTS_FILE}; it is ignored. Measure "
                      f"again: {reference.command or 'python -m training typical-bounds'}", stacklevel=2)
        return None
    if unit is not None and reference.unit != unit:
        warnings.warn(f"{path} is in {reference.unit}, the model's bounds in {unit}; it is ignored", stacklevel=2)
        return None
    return reference

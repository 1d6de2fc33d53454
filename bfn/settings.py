"""A model's recommended sampling settings, stored in its config.json so that they travel with its weights.

Which sampler, how many steps, how much guidance and when it acts are properties of a trained model (they
were chosen by measuring its samples; see its model card), not of the code: the app, its presets and
`python -m bfn.cli.sample` read them from the model instead of keeping defaults of their own. Runs with few
steps switch to the few-step solver, as the original sampler's first, blind steps waste a short run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from bfn.sampling import SAMPLERS


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample a model: its config's "sampling" entry.

    Attributes:
        sampler / steps: the recommended sampler and step count.
        guidance: the recommended classifier-free guidance weight.
        guidance_interval: where guidance above 1 acts; None: the flow's default.
        rescaled_phi: rescaled guidance φ (0: plain guidance).
        autoguidance / autoguidance_unconditional / autoguidance_interval: the recommended autoguidance weight
            (1: off; it needs the model's guide) of runs with a label, and of runs whose every image has none
            (a guide may help the one and hurt the other: see the model card), and where it acts (None: the
            whole run).
        few_steps_sampler / few_steps_below: the sampler for runs of fewer than `few_steps_below` steps.
    """

    sampler: str = "bfn"
    steps: int = 100
    guidance: float = 1.0
    guidance_interval: tuple[float, float] | None = None
    rescaled_phi: float = 0.0
    autoguidance: float = 1.0
    autoguidance_unconditional: float = 1.0
    autoguidance_interval: tuple[float, float] | None = None
    few_steps_sampler: str = "solver"
    few_steps_below: int = 50

    def __post_init__(self) -> None:
        for name in ("sampler", "few_steps_sampler"):
            if getattr(self, name) not in SAMPLERS:
                raise ValueError(f"sampling.{name} must be one of {', '.join(SAMPLERS)}, got {getattr(self, name)!r}")
        for name in ("steps", "few_steps_below"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"sampling.{name} must be a whole number ≥ 1, got {value!r}")
        if isinstance(self.guidance, bool) or not isinstance(self.guidance, (int, float)) or not math.isfinite(self.guidance) or self.guidance < 0:
            raise ValueError(f"sampling.guidance must be a finite number ≥ 0, got {self.guidance!r}")
        if not isinstance(self.rescaled_phi, (int, float)) or not 0 <= self.rescaled_phi <= 1:
            raise ValueError(f"sampling.rescaled_phi must lie in [0, 1], got {self.rescaled_phi!r}")
        for name in ("autoguidance", "autoguidance_unconditional"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1:
                raise ValueError(f"sampling.{name} must be a finite number ≥ 1 (1: off), got {value!r}")
        for name in ("guidance_interval", "autoguidance_interval"):
            value = getattr(self, name)
            if value is None:
                continue
            interval = tuple(value)
            if len(interval) != 2 or not all(isinstance(v, (int, float)) for v in interval) or not 0 <= interval[0] <= interval[1] <= 1:
                raise ValueError(f"sampling.{name} must be [start, end] with 0 ≤ start ≤ end ≤ 1, got {value!r}")
            object.__setattr__(self, name, (float(interval[0]), float(interval[1])))

    def sampler_for(self, steps: int) -> str:
        """The sampler a run of `steps` steps should use."""
        return self.few_steps_sampler if steps < self.few_steps_below else self.sampler

    def autoguidance_for(self, labels: Sequence[int | None]) -> float:
        """The recommended autoguidance weight of a run of `labels` (None: no class): the unconditional one only
        when no image has a label."""
        return self.autoguidance_unconditional if all(label is None for label in labels) else self.autoguidance

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("guidance_interval", "autoguidance_interval"):
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "SamplingSettings":
        d = dict(d or {})
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"sampling has unknown field(s) {', '.join(unknown)}")
        return cls(**d)

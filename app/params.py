"""The settings of one generation, checked on the server.

Browsers send what the widgets allow, but API callers can send anything: strings for numbers, NaN, booleans,
unknown choices. `parse_settings` turns raw values into a `RunSettings` or raises `ValueError` with a message
that names the field, what was received and what is allowed; the UI shows that message as is. The limits here
are the app's own (what stays responsive on a small CPU host); `bfn.sampling.validate_run` still checks the
run itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import bfn  # noqa: F401  (importing the package registers every sampler in SAMPLERS)
from bfn.flow import KINDS
from bfn.sampling import SAMPLERS

MODEL_CHOICES = (*KINDS, "both")
MODEL_LABELS = {"discrete": "Binarised (discrete)", "continuous": "Continuous", "both": "Both, side by side"}
DIGIT_MODES = ("all", "one", "none")
DIGIT_MODE_LABELS = {"all": "All ten digits", "one": "One digit", "none": "Unconditional"}
NUM_DIGITS = 10

MIN_STEPS, MAX_STEPS, DEFAULT_STEPS = 1, 1000, 100
MIN_GUIDANCE, MAX_GUIDANCE, DEFAULT_GUIDANCE = 0.0, 10.0, 3.0  # 3: see README (classifier accuracy and looks)
MAX_SEED = 2**32 - 1
DEFAULT_SAMPLER = "bfn"


@dataclass(frozen=True)
class RunSettings:
    model: str  # "discrete", "continuous" or "both"
    digits: str  # "all", "one" or "none"
    digit: int
    guidance: float
    steps: int
    seed: int
    sampler: str

    @property
    def kinds(self) -> tuple[str, ...]:
        return KINDS if self.model == "both" else (self.model,)

    @property
    def labels(self) -> list[int | None]:
        """One entry per image: a digit, or None for "no class"."""
        if self.digits == "all":
            return list(range(NUM_DIGITS))
        if self.digits == "one":
            return [self.digit]
        return [None] * NUM_DIGITS

    def describe(self) -> str:
        what = {"all": "digits 0–9", "one": f"digit {self.digit}", "none": "10 unconditional samples"}[self.digits]
        return f"{MODEL_LABELS[self.model]} · {what} · guidance {self.guidance:g} · {self.steps} steps · seed {self.seed} · sampler {self.sampler}"


def _choice(name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def _number(name: str, value: Any) -> float:
    """A finite real number; numeric strings are accepted (form posts), booleans and NaN are not."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be a number; got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number; got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    return float(value)


def parse_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; whole floats such as 100.0 are accepted, 2.5 is not."""
    x = _number(name, value)
    if not x.is_integer():
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}; got {value!r}")
    if not lo <= x <= hi:
        raise ValueError(f"{name} must be from {lo} to {hi}; got {value!r}")
    return int(x)


def parse_float(name: str, value: Any, lo: float, hi: float) -> float:
    x = _number(name, value)
    if not lo <= x <= hi:
        raise ValueError(f"{name} must be from {lo:g} to {hi:g}; got {value!r}")
    return x


def parse_settings(
    model: Any,
    digits: Any,
    digit: Any,
    guidance: Any,
    steps: Any,
    seed: Any,
    sampler: Any = DEFAULT_SAMPLER,
    *,
    available: tuple[str, ...] = KINDS,
) -> RunSettings:
    """Raw widget/API values → `RunSettings`, or `ValueError` naming the first bad field."""
    model = _choice("model", model, MODEL_CHOICES)
    missing = [k for k in (KINDS if model == "both" else (model,)) if k not in available]
    if missing:
        raise ValueError(f"the {' and '.join(missing)} model is not loaded on this server; available: {', '.join(available)}")
    digits = _choice("digits", digits, DIGIT_MODES)
    digit = parse_int("digit", digit, 0, NUM_DIGITS - 1) if digits == "one" or digit is not None else 0
    return RunSettings(
        model=model,
        digits=digits,
        digit=digit,
        guidance=parse_float("guidance", guidance, MIN_GUIDANCE, MAX_GUIDANCE),
        steps=parse_int("steps", steps, MIN_STEPS, MAX_STEPS),
        seed=parse_int("seed", seed, 0, MAX_SEED),
        sampler=_choice("sampler", sampler, sorted(SAMPLERS)),
    )

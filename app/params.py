"""The settings of one generation, checked on the server.

Browsers send what the widgets allow, but API callers can send anything: strings for numbers, NaN, booleans,
unknown choices. `parse_settings` turns raw values into a `RunSettings` or raises `ValueError` with a message
that names the field, what was received and what is allowed; the UI shows that message as is. The limits here
are the app's own (what stays responsive on a small CPU host); `bfn.sampling.validate_run` still checks the
run itself.

Which models there are is not known here: a `ModelMenu` (built from the loaded models, `app.models`) says
what the Model choice may be and how many digits the models know.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bfn.hub import SHIPPED_MODELS
from bfn.model import BFNModel
from bfn.sampling import SAMPLERS
from bfn.settings import SamplingSettings

BOTH = "both"  # the Model choice that runs every loaded model side by side
DIGIT_MODES = ("all", "one", "none")
DIGIT_MODE_LABELS = {"all": "All ten digits", "one": "One digit", "none": "Unconditional"}

MIN_STEPS, MAX_STEPS = 1, 1000
MIN_GUIDANCE, MAX_GUIDANCE = 0.0, 10.0
MAX_SEED = 2**32 - 1
RECOMMENDED = "recommended"  # the sampler choice that lets each model use its own (`SamplingSettings.sampler_for`)
DEFAULT_SAMPLER = RECOMMENDED
SAMPLER_CHOICES = (RECOMMENDED, *sorted(SAMPLERS))


@dataclass(frozen=True)
class ModelMenu:
    """What the Model choice offers: the loaded models by name (in display order) and the digits they know.

    Attributes:
        titles: model name → its title on screen (the flow's title, `app.models.model_titles`).
        num_labels: the class labels every model knows; an "all" or "none" run has this many images.
        recommended: the first model's recommended sampling settings (its config), which the settings
            widgets start from.
    """

    titles: Mapping[str, str]
    num_labels: int
    recommended: SamplingSettings = SamplingSettings()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.titles)

    @property
    def choices(self) -> dict[str, str]:
        """Choice value → label: every model by its title, then `BOTH` where there is more than one model."""
        choices = dict(self.titles)
        if len(choices) > 1:
            choices[BOTH] = "Both, side by side" if len(choices) == 2 else f"All {len(choices)}, side by side"
        return choices

    def models(self, choice: str) -> tuple[str, ...]:
        """The names of the models a choice runs."""
        return self.names if choice == BOTH else (choice,)


@dataclass(frozen=True)
class RunSettings:
    model: str  # a model's name, or BOTH
    digits: str  # "all", "one" or "none"
    digit: int
    guidance: float
    steps: int
    seed: int
    sampler: str
    menu: ModelMenu

    @property
    def models(self) -> tuple[str, ...]:
        """The names of the models in this run, in display order."""
        return self.menu.models(self.model)

    def sampler_for(self, model: BFNModel) -> str:
        """The sampler `model` runs: the one chosen, or with RECOMMENDED the model's own for this step count."""
        return model.sampling.sampler_for(self.steps) if self.sampler == RECOMMENDED else self.sampler

    @property
    def labels(self) -> list[int | None]:
        """One entry per image: a digit, or None for "no class"."""
        n = self.menu.num_labels
        if self.digits == "all":
            return list(range(n))
        if self.digits == "one":
            return [self.digit]
        return [None] * n

    def describe(self) -> str:
        n = self.menu.num_labels
        what = {"all": f"digits 0–{n - 1}", "one": f"digit {self.digit}", "none": f"{n} unconditional samples"}[self.digits]
        return (
            f"{self.menu.choices[self.model]} · {what} · guidance {self.guidance:g} · {self.steps} steps · "
            f"seed {self.seed} · sampler {self.sampler}"
        )


def _choice(name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def _model_choice(value: Any, menu: ModelMenu) -> str:
    """A Model choice this server offers. A shipped model, or side by side, that this server cannot run is told
    apart from a typo: the caller asked for something real that was not loaded here."""
    offered = tuple(menu.choices)
    if value in offered:
        return value
    available = ", ".join(menu.names)
    if value == BOTH:
        raise ValueError(f"{BOTH!r} runs several models side by side, but this server has loaded only {available}")
    if value in SHIPPED_MODELS:
        raise ValueError(f"the {value} model is not loaded on this server; available: {available}")
    return _choice("model", value, offered)


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
    menu: ModelMenu,
) -> RunSettings:
    """Raw widget/API values → `RunSettings` for the models in `menu`, or `ValueError` naming the first bad field."""
    model = _model_choice(model, menu)
    digits = _choice("digits", digits, DIGIT_MODES)
    digit = parse_int("digit", digit, 0, menu.num_labels - 1) if digits == "one" or digit is not None else 0
    return RunSettings(
        model=model,
        digits=digits,
        digit=digit,
        guidance=parse_float("guidance", guidance, MIN_GUIDANCE, MAX_GUIDANCE),
        steps=parse_int("steps", steps, MIN_STEPS, MAX_STEPS),
        seed=parse_int("seed", seed, 0, MAX_SEED),
        sampler=_choice("sampler", sampler, SAMPLER_CHOICES),
        menu=menu,
    )

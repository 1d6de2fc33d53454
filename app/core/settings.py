"""The settings of one generation, checked on the server.

Browsers send what the widgets allow, but API callers can send anything: strings for numbers, NaN, booleans,
unknown choices. `parse_settings` turns raw values into a `RunSettings` or raises `ValueError` with a message
that names the field, what was received and what is allowed; the UI shows that message as is. The limits here
are the app's own (what stays responsive on a small CPU host); `bfn.sampling.validate_run` still checks the
run itself.

Which models there are is not known here: a `ModelMenu` (`app.core.menu`, built from the loaded models) says
what the Model choice may be and, per model, what its labels are called and how large its images are.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any

from app.core.menu import BOTH, DIGIT_MODES, LabelSet, ModelMenu
from bfn.hub import SHIPPED_MODELS
from bfn.model import BFNModel
from bfn.sampling import SAMPLERS

MIN_STEPS = 1
# The app keeps every step of a run to scrub through, so it allows far fewer steps than the library
# (`bfn.sampling.MAX_STEPS`): the largest run it takes still fits `app.core.runs.MAX_RUN_BYTES`.
MAX_APP_STEPS = 1000
MIN_GUIDANCE, MAX_GUIDANCE = 0.0, 10.0
AUTOGUIDANCE_WEIGHTS = ("1", "1.5", "2", "2.5", "3", "4")  # the weights offered besides RECOMMENDED; "1" is off
MAX_SEED = 2**32 - 1
RECOMMENDED = "recommended"  # the sampler choice that lets each model use its own (`SamplingSettings.sampler_for`)
DEFAULT_SAMPLER = RECOMMENDED
SAMPLER_CHOICES = (RECOMMENDED, *sorted(SAMPLERS))


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
    autoguidance: float | None = None  # None: each model's recommended weight (`autoguidance_for`)

    @property
    def models(self) -> tuple[str, ...]:
        """The names of the models in this run, in display order."""
        return self.menu.models(self.model)

    def sampler_for(self, model: BFNModel) -> str:
        """The sampler `model` runs: the one chosen, or with RECOMMENDED the model's own for this step count."""
        return model.sampling.sampler_for(self.steps) if self.sampler == RECOMMENDED else self.sampler

    def autoguidance_for(self, model: BFNModel) -> float:
        """The autoguidance weight `model` runs with: the one chosen, or each model's recommended one for these
        labels; 1 (off) for a model without a guide."""
        if model.guide is None:
            return 1.0
        return model.sampling.autoguidance_for(self.labels) if self.autoguidance is None else self.autoguidance

    @property
    def label_set(self) -> LabelSet:
        return self.menu.label_set(self.model)

    @property
    def labels(self) -> list[int | None]:
        """One entry per image: a label's index, or None for "no class"."""
        row = self.label_set.row
        if self.digits == "all":
            return list(row)
        if self.digits == "one":
            return [self.digit]
        return [None] * len(row)

    def describe(self) -> str:
        labels = self.label_set
        names, row = labels.names, labels.row
        every = f"{names[0]}–{names[-1]}" if len(row) == len(names) else ", ".join(names[k] for k in row)
        what = {"all": f"{labels.word}s {every}", "one": labels.describe(self.digit),
                "none": f"{len(row)} unconditional samples"}[self.digits]
        return (
            f"{self.menu.choices[self.model]} · {what} · guidance {self.guidance:g} · {plural(self.steps, 'step')} · "
            f"seed {self.seed} · sampler {self.sampler}"
            + ("" if self.autoguidance is None else f" · autoguidance {self.autoguidance:g}")
        )


def plural(count: int, noun: str) -> str:
    """"1 step", "2 steps": a count with its noun (regular plurals only)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


ECHO_CHARS = 60  # the most of a received value that a message quotes


class _Echo(reprlib.Repr):
    """`reprlib` with the app's limits: strings keep their start, and integers too long to quote are described
    by their length."""

    def __init__(self, limit: int):
        super().__init__()
        self.maxstring = self.maxlong = self.maxother = limit
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 6
        self.maxlevel = 2

    def repr_str(self, x: str, level: int) -> str:
        return repr(x[: self.maxstring])  # the start, cut before the repr is made (`echo` adds the "…")

    def repr_int(self, x: int, level: int) -> str:
        digits = int(abs(x).bit_length() * math.log10(2)) + 1  # the digits of |x|, or one more
        if digits <= self.maxlong:
            return repr(x)
        about = "about " if digits > 10_000 else ""  # exact below that, where the check is cheap
        if not about and 10 ** (digits - 1) > abs(x):
            digits -= 1
        return f"{'a negative' if x < 0 else 'an'} integer of {about}{digits} digits"


def echo(value: Any, limit: int = ECHO_CHARS) -> str:
    """`value` as a message or log line may quote it: its repr, cut to `limit` characters with "…".

    API callers can send anything of any size (a 12 MB string as the model, an integer of 400 digits as the
    seed); a message that quoted it whole would be as large, in the caller's error and in the server's log.
    Strings and containers are cut before their repr is made, so a huge value costs no huge copy, and
    integers too long to print (Python refuses past 4,300 digits) are described by their length.
    """
    text = _Echo(limit).repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_choice(name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    """One of `allowed`, or `ValueError` naming the field and every choice."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {echo(value)}")
    return value


def _model_choice(value: Any, menu: ModelMenu) -> str:
    """A Model choice this server offers. A shipped model, or side by side, that this server cannot run is told
    apart from a typo: the caller asked for something real that was not loaded here."""
    offered = tuple(menu.choices)
    if value in offered:
        return value
    available = ", ".join(menu.names)
    if value == BOTH and len(menu.names) > 1:
        sets = "; ".join(f"{name}: {len(menu.labels[name].names)} {menu.labels[name].word}s at "
                         f"{menu.labels[name].shape[0]}×{menu.labels[name].shape[1]}" for name in menu.names)
        raise ValueError(f"{BOTH!r} runs models of the same labels and image size side by side, but the models here "
                         f"differ ({sets}): choose one model")
    if value == BOTH:
        raise ValueError(f"{BOTH!r} runs several models side by side, but this server has loaded only {available}")
    if value in SHIPPED_MODELS:
        raise ValueError(f"the {value} model is not loaded on this server; available: {available}")
    return parse_choice("model", value, offered)


def _number(name: str, value: Any, span: str) -> int | float:
    """A finite real number, or `ValueError` naming the field and what is allowed (`span`, "from 0 to 10").

    Numeric strings in ASCII are accepted (form posts), booleans, NaN and other scripts' digits are not. Integers stay integers: one too large
    for a float (an API caller may send 2**1100) is compared with the limits exactly, where float() or
    math.isfinite() would raise OverflowError, an error without the field's name that no handler expects.
    """
    x = value
    if isinstance(x, str):
        if not x.isascii():  # float() reads other scripts' digits too ('٣' as 3): a link or caller means ASCII
            raise ValueError(f"{name} must be a number {span} in ASCII digits; got {echo(value)}")
        try:
            x = float(x.strip())
        except ValueError:
            raise ValueError(f"{name} must be a number {span}; got {echo(value)}") from None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        kind = "" if value is None else f" ({type(value).__name__})"
        raise ValueError(f"{name} must be a number {span}; got {echo(value)}{kind}")
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number {span}; got {echo(value)}")
    return x


def parse_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; whole floats such as 100.0 are accepted, 2.5 is not."""
    span = f"from {lo} to {hi}"
    x = _number(name, value, span)
    if isinstance(x, float) and not x.is_integer():
        raise ValueError(f"{name} must be a whole number {span}; got {echo(value)}")
    if not lo <= x <= hi:  # int and float compare exactly in Python, whatever their size
        raise ValueError(f"{name} must be {span}; got {echo(value)}")
    return int(x)


def parse_float(name: str, value: Any, lo: float, hi: float) -> float:
    """A real number in [lo, hi]."""
    span = f"from {lo:g} to {hi:g}"
    x = _number(name, value, span)
    if not lo <= x <= hi:
        raise ValueError(f"{name} must be {span}; got {echo(value)}")
    return float(x)


def parse_label(name: str, value: Any, labels: LabelSet) -> int:
    """A label of `labels`: its index (an int, or a numeric string, as the picker and API callers send it) or its
    name ("42", "Bag")."""
    if isinstance(value, str) and value.strip() in labels.names:
        return labels.names.index(value.strip())
    if isinstance(value, str) and labels.digit_parts == 0 and not value.strip().isdigit():
        raise ValueError(f"{name} must be one of the model's labels ({labels.names[0]!r} … {labels.names[-1]!r}) or its "
                         f"index from 0 to {len(labels.names) - 1}; got {echo(value)}")
    return parse_int(name, value, 0, len(labels.names) - 1)


def parse_click(value: Any, width: float, height: float) -> tuple[float, float]:
    """A click on an image as the page's script sends it, "x,y,stamp" (image pixels; the stamp only makes
    every click a change), → (x, y), each from 0 to the picture's `width` and `height`."""
    parts = value.split(",", 2) if isinstance(value, str) else []
    if len(parts) < 2:
        raise ValueError(f'click must be "x,y" in image pixels; got {echo(value)}')
    return parse_float("click x", parts[0], 0, width), parse_float("click y", parts[1], 0, height)


def parse_settings(
    model: Any,
    digits: Any,
    digit: Any,
    guidance: Any,
    steps: Any,
    seed: Any,
    sampler: Any = DEFAULT_SAMPLER,
    autoguidance: Any = RECOMMENDED,
    *,
    menu: ModelMenu,
) -> RunSettings:
    """Raw widget/API values → `RunSettings` for the models in `menu`, or `ValueError` naming the first bad field."""
    model = _model_choice(model, menu)
    digits = parse_choice("digits", digits, DIGIT_MODES)
    digit = parse_label("digit", digit, menu.label_set(model)) if digits == "one" or digit is not None else 0
    return RunSettings(
        model=model,
        digits=digits,
        digit=digit,
        guidance=parse_float("guidance", guidance, MIN_GUIDANCE, MAX_GUIDANCE),
        steps=parse_int("steps", steps, MIN_STEPS, MAX_APP_STEPS),
        seed=parse_int("seed", seed, 0, MAX_SEED),
        sampler=parse_choice("sampler", sampler, SAMPLER_CHOICES),
        menu=menu,
        autoguidance=parse_autoguidance(autoguidance),
    )


def parse_autoguidance(value: Any) -> float | None:
    """The Autoguidance choice: RECOMMENDED (None, each model's own) or a weight from 1 (off) to the largest
    offered, as the menu's text or a number."""
    if value == RECOMMENDED or value is None:
        return None
    return parse_float("autoguidance", value, 1.0, float(AUTOGUIDANCE_WEIGHTS[-1]))

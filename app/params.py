"""The settings of one generation, checked on the server.

Browsers send what the widgets allow, but API callers can send anything: strings for numbers, NaN, booleans,
unknown choices. `parse_settings` turns raw values into a `RunSettings` or raises `ValueError` with a message
that names the field, what was received and what is allowed; the UI shows that message as is. The limits here
are the app's own (what stays responsive on a small CPU host); `bfn.sampling.validate_run` still checks the
run itself.

Which models there are is not known here: a `ModelMenu` (built from the loaded models, `app.models`) says
what the Model choice may be and, per model, what its labels are called and how large its images are (a
`LabelSet`): MNIST's ten digits at 28×28, a hundred two-digit numbers at 64×64, Fashion-MNIST's names.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bfn.classifier import digit_parts
from bfn.hub import SHIPPED_MODELS
from bfn.model import BFNModel, check_labels
from bfn.nets import UNetConfig
from bfn.labels import label_row
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


NUMBER_WORDS = {2: "Two", 3: "Three", 4: "Four"}  # "Two digits (64×64)": how many digits a label spells


@dataclass(frozen=True)
class LabelSet:
    """A model's labels (their names, in label order) and the (height, width) of its images: what a run of it
    draws, how its labels are offered and told, and which models can run side by side (those of one set)."""

    names: tuple[str, ...]
    shape: tuple[int, int]

    @classmethod
    def of(cls, model: BFNModel) -> "LabelSet":
        return cls(tuple(model.label_names), tuple(model.data_shape[1:]))

    @property
    def digit_parts(self) -> int:
        """The digits each label spells side by side (1 for MNIST, 2 for two-digit numbers); 0: not digits."""
        return digit_parts(self.names)

    @property
    def word(self) -> str:
        """What one label is: a digit, a number (of several digits), or a label (names that are not digits)."""
        return {0: "label", 1: "digit"}.get(self.digit_parts, "number")

    @property
    def row(self) -> tuple[int, ...]:
        """The labels of an "all" run, one image each: every label, or a row spread over them (00, 11, …, 99)."""
        return label_row(len(self.names))

    def describe(self, label: int | None) -> str:
        """One label on screen: "digit 7", "number 42", "label Bag", or "unconditional" for None."""
        return "unconditional" if label is None else f"{self.word} {self.names[label]}"

    def title(self, flow_title: str, name: str) -> str:
        """A model's title on screen: its flow's for MNIST's labels and size; otherwise what its images are
        ("Two digits (64×64)"), or, for labels that are not digits, its name."""
        size = f"{self.shape[0]}×{self.shape[1]}"
        if self == DEFAULT_LABELS:
            return flow_title
        if self.digit_parts > 1:
            return f"{NUMBER_WORDS.get(self.digit_parts, str(self.digit_parts))} digits ({size})"
        if self.digit_parts == 1:
            return f"{flow_title} ({size})"
        return f"{name} · {flow_title} ({size})"


# A model of the default configuration's labels and size: MNIST's ten digits, 28×28.
DEFAULT_LABELS = LabelSet(check_labels(None, UNetConfig.num_labels), UNetConfig.image_size)


@dataclass(frozen=True)
class ModelMenu:
    """What the Model choice offers: the loaded models by name (in display order) and the labels each knows.

    Attributes:
        titles: model name → its title on screen (`app.models.model_titles`).
        labels: model name → its `LabelSet`. Side by side (`BOTH`) runs the models that share the first
            model's set; a model of other labels or size runs on its own.
        recommended: the first model's recommended sampling settings (its config), which the settings
            widgets start from.
    """

    titles: Mapping[str, str]
    labels: Mapping[str, LabelSet]
    recommended: SamplingSettings = SamplingSettings()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.titles)

    @property
    def side_by_side(self) -> tuple[str, ...]:
        """The models a `BOTH` run holds: those whose labels and image size are the first model's (the views
        of one run show one set of labels on one grid)."""
        first = self.labels[self.names[0]]
        return tuple(name for name in self.names if self.labels[name] == first)

    @property
    def num_labels(self) -> int:
        """How many labels the first model (and every model side by side with it) knows."""
        return len(self.labels[self.names[0]].names)

    @property
    def choices(self) -> dict[str, str]:
        """Choice value → label: every model by its title, then `BOTH` where more than one can run side by side."""
        choices = dict(self.titles)
        together = self.side_by_side
        if len(together) > 1:
            if len(together) == len(choices):
                choices[BOTH] = "Both, side by side" if len(choices) == 2 else f"All {len(choices)}, side by side"
            else:
                choices[BOTH] = " + ".join(self.titles[name] for name in together) + ", side by side"
        return choices

    def models(self, choice: str) -> tuple[str, ...]:
        """The names of the models a choice runs."""
        return self.side_by_side if choice == BOTH else (choice,)

    def label_set(self, choice: str) -> LabelSet:
        """The labels and image size of the models a choice runs."""
        return self.labels[self.models(choice)[0]]

    def mode_labels(self, choice: str) -> dict[str, str]:
        """The Digits choice's words for `choice`'s labels: "All ten digits" for MNIST, a row of numbers for two."""
        labels = self.label_set(choice)
        row, word = labels.row, labels.word
        every = DIGIT_MODE_LABELS["all"] if labels == DEFAULT_LABELS else (
            f"All {len(row)} {word}s" if len(row) == len(labels.names)
            else f"{len(row)} {word}s, {labels.names[row[0]]} to {labels.names[row[-1]]}")
        return {"all": every, "one": f"One {word}", "none": DIGIT_MODE_LABELS["none"]}

    def label_choices(self, choice: str) -> list[tuple[str, int]]:
        """The picker's (name, label index) pairs for `choice`'s labels."""
        return [(name, k) for k, name in enumerate(self.label_set(choice).names)]


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


def _choice(name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
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
    return _choice("model", value, offered)


def _number(name: str, value: Any, span: str) -> int | float:
    """A finite real number, or `ValueError` naming the field and what is allowed (`span`, "from 0 to 10").

    Numeric strings are accepted (form posts), booleans and NaN are not. Integers stay integers: one too large
    for a float (an API caller may send 2**1100) is compared with the limits exactly, where float() or
    math.isfinite() would raise OverflowError, an error without the field's name that no handler expects.
    """
    x = value
    if isinstance(x, str):
        try:
            x = float(x.strip())
        except ValueError:
            raise ValueError(f"{name} must be a number {span}; got {echo(value)}") from None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"{name} must be a number {span}; got {echo(value)} ({type(value).__name__})")
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
    *,
    menu: ModelMenu,
) -> RunSettings:
    """Raw widget/API values → `RunSettings` for the models in `menu`, or `ValueError` naming the first bad field."""
    model = _model_choice(model, menu)
    digits = _choice("digits", digits, DIGIT_MODES)
    digit = parse_label("digit", digit, menu.label_set(model)) if digits == "one" or digit is not None else 0
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

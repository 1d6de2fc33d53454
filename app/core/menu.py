"""What the Model choice offers: the loaded models by name, their titles, and the labels each knows.

A model's `LabelSet` is its labels' names and its image size: MNIST's ten digits at 28×28, a hundred two-digit
numbers at 64×64, Fashion-MNIST's names. Models of one set can run side by side (their views share one grid
and one set of labels); the `ModelMenu` says which, and how the page words the choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bfn.classifier import digit_parts
from bfn.labels import label_row
from bfn.model import BFNModel, check_labels
from bfn.nets import UNetConfig
from bfn.settings import SamplingSettings

BOTH = "both"  # the Model choice that runs every loaded model side by side
DIGIT_MODES = ("all", "one", "none")
DIGIT_MODE_LABELS = {"all": "All ten digits", "one": "One digit", "none": "Unconditional"}
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
        titles: model name → its title on screen (`app.core.models.model_titles`).
        labels: model name → its `LabelSet`. Side by side (`BOTH`) runs the models that share the first
            model's set; a model of other labels or size runs on its own.
        sampling: model name → its recommended sampling settings (its config); a model not in it has the
            defaults.
    """

    titles: Mapping[str, str]
    labels: Mapping[str, LabelSet]
    sampling: Mapping[str, SamplingSettings] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.titles)

    @property
    def recommended(self) -> SamplingSettings:
        """The first model's recommended sampling settings, which the settings widgets start from."""
        return self.recommended_for(self.names[0])

    def recommended_for(self, choice: str) -> SamplingSettings:
        """The recommended sampling settings of `choice`'s first model: a choice takes its own (the two-digit
        model's guidance is not the MNIST models')."""
        return self.sampling.get(self.models(choice)[0], SamplingSettings())

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
        """The Digits choice's words for `choice`'s labels: "All ten digits" for MNIST; where a run draws a row of
        some of the labels, which ones ("10 numbers: 00, 11, …, 99", not a range that promises every number)."""
        labels = self.label_set(choice)
        row, word = labels.row, labels.word
        every = DIGIT_MODE_LABELS["all"] if labels == DEFAULT_LABELS else (
            f"All {len(row)} {word}s" if len(row) == len(labels.names)
            else f"{len(row)} {word}s: {', '.join(labels.names[k] for k in row[:2])}, …, {labels.names[row[-1]]}")
        return {"all": every, "one": f"One {word}", "none": DIGIT_MODE_LABELS["none"]}

    def label_choices(self, choice: str) -> list[tuple[str, int]]:
        """The picker's (name, label index) pairs for `choice`'s labels."""
        return [(name, k) for k, name in enumerate(self.label_set(choice).names)]

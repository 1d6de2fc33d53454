"""A model's labels by name: which label a user means ("7", "07", "Bag", "none"), and the row of labels a run of
"every label" draws. The sampling and completion CLIs read labels this way, and the app draws its rows with
`label_row`, so a run of every label shows the same images everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

NO_CLASS = "none"  # how the "no class" label is named (the CLIs' entries and JSON keys, the app's tables)
ROW = 10  # images in a run of "every label" at most: one row of a grid, however many labels a model knows


def label_index(text: str, names: Sequence[str]) -> int | None:
    """A label given by its name ("42", "07", "Bag"), or where every name is a number by that number ("7" is
    "07" of a two-digit model), or "none" → its index, None for "no class"; ValueError listing what is allowed."""
    if text.lower() == NO_CLASS:
        return None
    if text in names:
        return names.index(text)
    if text.isdigit() and all(n.isdigit() for n in names):
        by_number = {int(n): k for k, n in enumerate(names)}
        if int(text) in by_number:
            return by_number[int(text)]
    raise ValueError(f"{text!r} is not a label of this model; give {allowed_labels(names)}, or '{NO_CLASS}'")


def allowed_labels(names: Sequence[str], shown: int = 6) -> str:
    """The form a label takes, for a message: a number range where the names are numbers, else the names."""
    if all(n.isdigit() for n in names):
        return f"a number {names[0]}–{names[-1]}"
    listed = ", ".join(repr(n) for n in names[:shown]) + (", …" if len(names) > shown else "")
    return f"one of the {len(names)} label names ({listed})"


def label_indices(entries: Sequence[str] | None, names: Sequence[str]) -> list[int | None]:
    """--digits entries → label indices (None: "no class"); no entries: a row of labels (`label_row`)."""
    if entries is None:
        return list(label_row(len(names)))
    return [label_index(text, names) for text in entries]


def label_row(num_labels: int, count: int = ROW) -> tuple[int, ...]:
    """`count` labels spread evenly over 0 … num_labels−1 from the first to the last (all of them if there are
    no more): what a run of "every label" draws, one image each (00, 11, …, 99 for a hundred numbers)."""
    if num_labels <= count:
        return tuple(range(num_labels))
    return tuple(round(k * (num_labels - 1) / (count - 1)) for k in range(count))

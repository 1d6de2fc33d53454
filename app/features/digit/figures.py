"""Figures and tables of the "Your digit through the BFN" view: which digit each model thinks it is, and what
the digit costs over t. Plain data in, Plotly figure dicts (`app.ui.figures`' conventions and helpers) out; the
numbers come from bfn/ (`bfn.scoring`, `bfn.objective.LabelBounds`), nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.core.menu import DEFAULT_LABELS, LabelSet
from app.ui.figures import Figure, axis, figure, model_colour, subplots, vline
from bfn.labels import NO_CLASS  # how the "no class" label is named on screen, as the CLIs name it
from bfn.typicality import Typicality

CLASSIFIER_COLOUR = "#64748b"
FAR_MARK = "⚠ far from its data"  # beside a model's answer where the digit is far from what it learned from


def label_name(label: int, num_labels: int, names: Sequence[str] = ()) -> str:
    """A label as the view names it: its name (by default the digit), or "none" for the model's "no class" label."""
    return NO_CLASS if label == num_labels else (names[label] if names else str(label))


def posterior_figure(bfn: Mapping[str, np.ndarray], classifier: np.ndarray | None, names: Sequence[str] = (),
                     far: Collection[str] = ()) -> Figure:
    """p(y | x) per model (by title) as bars over the labels (`names`, by default digits), and beside them the digit
    classifier's probabilities (if loaded). A model in `far` (by title) has `FAR_MARK` beside its answer: the
    digit is far from its data, and its posterior is no reason to trust the answer."""
    labels = list(names) or [str(k) for k in range(len(next(iter(bfn.values()))))]
    panels = [(f"BFN: {title}", probs, model_colour(k), labels) for k, (title, probs) in enumerate(bfn.items())]
    marks = [f" {FAR_MARK}" if title in far else "" for title in bfn] + [""]
    if classifier is not None:
        panels.append(("Digit classifier", classifier, CLASSIFIER_COLOUR, [str(d) for d in range(len(classifier))]))
    layout = subplots([f"{title}<br>says <b>{named[int(probs.argmax())]}</b> ({probs.max():.0%}){mark}"
                       for (title, probs, _, named), mark in zip(panels, marks)], spacing=0.06)
    data = []
    for k, (title, probs, colour, named) in enumerate(panels, start=1):
        sx = "" if k == 1 else str(k)
        top = int(probs.argmax())
        digits = np.arange(len(probs), dtype=np.int32)
        data.append(
            {
                "type": "bar", "xaxis": f"x{sx}", "yaxis": f"y{sx}", "x": digits, "y": probs.astype(np.float32),
                "name": title, "showlegend": False, "customdata": named,
                "marker": {"color": colour, "opacity": [1.0 if d == top else 0.55 for d in range(len(probs))]},
                "text": [f"{p:.0%}" if p >= 0.05 else "" for p in probs], "textposition": "outside", "cliponaxis": False,
                "hovertemplate": f"P(%{{customdata}}) = %{{y:.3f}}<extra>{title}</extra>",
            }
        )  # fmt: skip
        axis(layout, "x", k, tickmode="array", tickvals=list(range(len(probs))), ticktext=named, fixedrange=True,
              title={"text": "digit" if all(n.isdigit() for n in named) else "label"})
        axis(layout, "y", k, range=[0, 1.15], title={"text": "probability"} if k == 1 else {}, fixedrange=True)
    fig = figure(data, layout, 320, "Which digit? Bayes' rule: p(y | x) ∝ exp(−L_y(x)) p(y)")
    fig["layout"]["margin"]["t"] = 96  # room for the two-line panel titles
    return fig


@dataclass(frozen=True)
class CostCurve:
    """One model's integrand of L^∞ per label over a grid of t (`LabelBounds.curve` of one image).

    Attributes:
        title: the model's title.
        times: the grid (G,).
        curve: (L, G), nats per unit time, labels 0 … L−2 then "no class".
        label: the label drawn thick (the one chosen, or the BFN's prediction).
    """

    title: str
    times: np.ndarray
    curve: np.ndarray
    label: int
    labels: LabelSet = DEFAULT_LABELS  # the model's labels, by name


def cost_figure(curves: Sequence[CostCurve], t: float | None = None) -> Figure:
    """Per model: the continuous-time loss over t for the label drawn thick and unconditionally (dashed), the other
    digits faint; a dashed line marks `t` (the time on show in the training view)."""
    layout = subplots([c.title for c in curves], spacing=0.08)
    layout["shapes"] = []
    data = []
    for k, c in enumerate(curves, start=1):
        sx = "" if k == 1 else str(k)
        colour = model_colour(k - 1)
        none = c.curve.shape[0] - 1
        for label in range(c.curve.shape[0]):
            name = label_name(label, none, c.labels.names)
            if label == c.label:
                style, shown, legend = {"color": colour, "width": 3}, f"digit {name}", f"{c.title}: digit {name}"
            elif label == none:
                style, shown, legend = {"color": "#111827", "width": 2, "dash": "dash"}, "unconditional", "unconditional"
            else:
                style, shown, legend = {"color": "#cbd5e1", "width": 1}, f"digit {name}", "the other digits"
            data.append(
                {
                    "type": "scatter", "xaxis": f"x{sx}", "yaxis": f"y{sx}", "x": c.times.astype(np.float32),
                    "y": c.curve[label].astype(np.float32), "mode": "lines", "line": style, "name": legend,
                    "legendgroup": legend, "showlegend": label == c.label or (k == 1 and label in (none, (c.label + 1) % none)),
                    "hovertemplate": f"t = %{{x:.3f}}: %{{y:.3g}} nats per unit time<extra>{c.title}, {shown}</extra>",
                }
            )  # fmt: skip
        axis(layout, "x", k, range=[0, 1], title={"text": "t"})
        axis(layout, "y", k, type="log", dtick=1, title={"text": "nats per unit time"} if k == 1 else {})
        if t is not None:
            layout["shapes"].append(vline(k, t))
    # the labels drawn thick first, so the faint ones do not hide them
    data.sort(key=lambda trace: trace["line"]["width"])
    return figure(data, layout, 340, "What the digit costs: the continuous-time loss over t, one draw per time (L∞ is its integral)")


@dataclass(frozen=True)
class BoundRows:
    """One model's bound per label, in nats (L,) each; `units` adds the total in other units (name → (L,))."""

    loss: np.ndarray
    reconstruction: np.ndarray
    total: np.ndarray
    units: Mapping[str, np.ndarray]
    posterior: np.ndarray  # (L − 1,): p(y | x) over the digits ("no class" takes no part)
    labels: LabelSet = DEFAULT_LABELS  # the model's labels, by name


def bound_table(rows: BoundRows) -> pd.DataFrame:
    """The bound per label as a small table: L∞, Lʳ and their sum ("nats"), the sum in each of `units`, p(y | x)."""
    n = len(rows.posterior)
    table: dict[str, list] = {"label": [label_name(k, n, rows.labels.names) for k in range(len(rows.total))]}
    table["L∞"] = [round(float(v), 2) for v in rows.loss]
    table["Lʳ"] = [round(float(v), 2) for v in rows.reconstruction]
    table["nats"] = [round(float(v), 2) for v in rows.total]
    for unit, values in rows.units.items():
        table[unit] = [float(f"{v:.4g}") for v in values]
    table["p(y|x)"] = [round(float(p), 4) for p in rows.posterior] + [None] * (len(rows.total) - n)
    return pd.DataFrame(table)


def far_warning(title: str, typical: Typicality, noun: str, word: str = "digit") -> str:
    """The warning beside a model's answer when the digit is far from its data (`typical.far`): its unconditional
    bound against the test images' (a `noun` such as "drawing"; `word` what a label is: digit, number)."""
    return (f"⚠ **{title}**: this {noun} is far from the {word}s the model learned from: its bound, {typical.bound:.2f} "
            f"{typical.unit}, is above {typical.percentile:g} % of test {word}s (≤ {typical.threshold:.2f}); read its answer with care.")


def bound_summary(title: str, rows: BoundRows, label: int) -> str:
    """One line of Markdown: the bound under `label` and unconditionally."""
    n = len(rows.posterior)
    units = "; ".join(f"{values[label]:.4g} {unit}" for unit, values in rows.units.items())
    return (
        f"**{title}**, {rows.labels.word} {label_name(label, n, rows.labels.names)}: L∞ = {rows.loss[label]:.1f} nats + Lʳ = {rows.reconstruction[label]:.2f} "
        f"nats = **{rows.total[label]:.1f} nats** ({units}) · unconditional: {rows.total[n]:.1f} nats"
    )

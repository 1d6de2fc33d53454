"""The sampler duel's figure: where each run's steps fall in time, and which step each side shows at the chosen t.

Two runs of different step counts meet only in t; this strip shows why one side may still show an earlier
step than the other at the same moment. Plain data in, a Plotly figure dict (`app.ui.figures`' conventions) out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.ui.figures import Figure, figure, model_colour, vline


@dataclass(frozen=True)
class Side:
    """One side of the duel: its name on the figure, the times of its recorded steps, and the step on show."""

    label: str
    times: np.ndarray
    step: int


def label_side(t: float) -> str:
    """Where a step's label goes so that it stays inside the figure: left of a step in the last fifth of the time
    ("step 100" centred at t = 1 ran past the figure's edge and read "step 1"), right of one in the first, centred
    above one in between."""
    if t < 0.2:
        return "top right"
    return "top left" if t > 0.8 else "top center"


def timeline(sides: Sequence[Side], t: float) -> Figure:
    """Each side's step times as ticks on its own row, its step on show marked, and a dashed line at `t`."""
    data = []
    for k, side in enumerate(sides):
        colour = model_colour(k + 2)
        rows = np.full(len(side.times), k, np.int32)
        data.append({
            "type": "scatter", "mode": "markers", "x": side.times.astype(np.float32), "y": rows, "name": side.label,
            "showlegend": False, "marker": {"symbol": "line-ns-open", "size": 12, "color": colour},
            "hovertemplate": "step %{customdata} · t = %{x:.3f}<extra></extra>", "customdata": np.arange(len(side.times), dtype=np.int32),
        })  # fmt: skip
        data.append({
            "type": "scatter", "mode": "markers+text", "x": [float(side.times[side.step])], "y": [k], "showlegend": False,
            "marker": {"size": 13, "color": colour, "line": {"color": "white", "width": 1.5}},
            "text": [f"step {side.step}"], "textposition": label_side(float(side.times[side.step])), "hoverinfo": "skip",
            "cliponaxis": False,  # a label past the axis' end runs into the margin instead of being cut off
        })  # fmt: skip
    layout = {
        "xaxis": {"range": [-0.02, 1.02], "title": {"text": "t"}, "zeroline": False, "showgrid": False},
        "yaxis": {"tickvals": list(range(len(sides))), "ticktext": [s.label for s in sides], "range": [-0.6, len(sides) - 0.3],
                  "showgrid": False, "zeroline": False, "fixedrange": True},
        "shapes": [vline(1, t)],
    }  # fmt: skip
    fig = figure(data, layout, height=110 + 50 * len(sides))
    fig["layout"]["margin"].update(l=130, t=24)
    return fig

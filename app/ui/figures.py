"""Plotly figures as plain dicts, in the app's one style: the helpers every view builds its figures with, and the
pixel heatmap that the generation, the digit's training view and its completion all show.

Figures are plain Plotly dicts ({"data": [...], "layout": {...}}) with numpy arrays inside: building them is
cheap, where plotly.graph_objects validates every property of every trace, which on a busy small host is too
slow for every live update. `go.Figure(spec)` accepts them (the tests check that it does), and
`figure_json` sends arrays as base64 typed arrays, as plotly.py itself does. The heatmap uses a diverging colour
scale that makes uncertain pixels white and confident ones deep blue (background) or deep red (ink).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from app.core.frames import Frames
from app.core.menu import LabelSet
from app.ui.images import Pixel

Figure = dict

PIXEL_COLOURS = ("#16a34a", "#9333ea", "#f59e0b", "#0891b2", "#db2777", "#111827", "#65a30d", "#92400e")  # visible on the red-blue heatmap
# low (background) deep blue → uncertain white → high (ink) deep red: ColorBrewer RdBu, reversed
HEATMAP_SCALE = [[0.0, "#053061"], [0.2, "#2166ac"], [0.4, "#92c5de"], [0.5, "#f7f7f7"], [0.6, "#f4a582"], [0.8, "#b2182b"], [1.0, "#67001f"]]
FONT = dict(family="ui-sans-serif, system-ui, -apple-system, Segoe UI, sans-serif", size=12)
MODEL_COLOURS = ("#4f46e5", "#ea580c", "#0d9488", "#be185d")


def model_colour(position: int) -> str:
    """The colour of the model at `position` in a run (0 first), the same in every view that shows it."""
    return MODEL_COLOURS[position % len(MODEL_COLOURS)]


def encode(value):
    """A figure's values made JSON-ready: numpy arrays as plotly.js typed arrays, numpy scalars as numbers."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.float16 or value.dtype == np.float64:
            value = value.astype(np.float32)
        elif value.dtype == np.int64:
            value = value.astype(np.int32)
        spec = {"dtype": _DTYPES[value.dtype.str[1:]], "bdata": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode("ascii")}
        if value.ndim > 1:
            spec["shape"] = ", ".join(str(d) for d in value.shape)
        return spec
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


_DTYPES = {"f4": "f4", "i4": "i4", "u1": "u1", "i1": "i1", "u2": "u2", "i2": "i2", "u4": "u4"}


def figure_json(fig: Figure) -> str:
    """The figure as plotly.js JSON, numpy arrays as typed arrays (little-endian, as plotly.js expects)."""
    return json.dumps(encode(fig), separators=(",", ":"), allow_nan=False)


TITLE_LINE = 18  # pixels per line of a figure's title (14 px type)


def subplots(titles: Sequence[str], spacing: float = 0.08) -> dict:
    """Layout for 1×n subplots side by side, with titles."""
    n = len(titles)
    width = (1 - spacing * (n - 1)) / n
    layout: dict = {"annotations": []}
    for k, title in enumerate(titles, start=1):
        x0 = round((k - 1) * (width + spacing), 6)
        sx = "" if k == 1 else str(k)
        layout[f"xaxis{sx}"] = {"domain": [x0, min(1.0, round(x0 + width, 6))], "anchor": f"y{sx}"}
        layout[f"yaxis{sx}"] = {"domain": [0, 1], "anchor": f"x{sx}"}
        layout["annotations"].append(
            {"text": title, "x": x0 + width / 2, "y": 1.0, "xref": "paper", "yref": "paper", "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 13}}
        )
    return layout


def stacked(titles: Sequence[str], panel: int, gap: int) -> tuple[dict, int, int]:
    """Layout for subplots one above the other, `panel` pixels tall each and `gap` apart (room for the x ticks of
    one and the title of the next), each title above its panel at the left; a title of several lines ("<br>")
    gets the room it takes. → (layout, the panels' height in pixels, pixels to add to the figure's top margin
    for the first title's lines after its first). Side by side, three panels of ten bars and their titles would
    share a third of a phone's width."""
    extra = [TITLE_LINE * title.count("<br>") for title in titles]
    height = len(titles) * panel + sum(gap + more for more in extra[1:])
    layout: dict = {"annotations": []}
    above = 0  # pixels from the top of the panels to this panel's top
    for k, title in enumerate(titles, start=1):
        above += 0 if k == 1 else gap + extra[k - 1]
        top, bottom = 1 - above / height, 1 - (above + panel) / height
        sx = "" if k == 1 else str(k)
        layout[f"xaxis{sx}"] = {"domain": [0, 1], "anchor": f"y{sx}"}
        layout[f"yaxis{sx}"] = {"domain": [round(max(0.0, bottom), 6), round(top, 6)], "anchor": f"x{sx}"}
        layout["annotations"].append(
            {"text": title, "x": 0, "y": top, "xref": "paper", "yref": "paper", "xanchor": "left", "yanchor": "bottom", "showarrow": False,
             "align": "left", "font": {"size": 13}, "yshift": 4}
        )  # fmt: skip
        above += panel
    return layout, height, extra[0]


def axis(layout: dict, letter: str, k: int, **props) -> None:
    """Set properties of subplot k's x or y axis (`letter`)."""
    layout[f"{letter}axis{'' if k == 1 else k}"].update(props)


def vline(k: int, x: float) -> dict:
    """A dashed vertical line at x across subplot k: the current step or time."""
    sx = "" if k == 1 else str(k)
    return {"type": "line", "x0": x, "x1": x, "xref": f"x{sx}", "y0": 0, "y1": 1, "yref": f"y{sx} domain", "line": {"color": "#64748b", "width": 1, "dash": "dash"}}


def figure(data: list, layout: dict, height: int, title: str | None = None) -> Figure:
    """The figure of `data` on `layout` in the app's style: margins, font, legend on top, zoom kept across updates."""
    extra = TITLE_LINE * title.count("<br>") if title else 0  # lines after the first (short lines for a phone)
    layout.update(
        height=height + extra,
        margin={"l": 56, "r": 20, "t": (78 if title else 56) + extra, "b": 48},
        font=FONT,
        plot_bgcolor="white",
        paper_bgcolor="white",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.09, "xanchor": "right", "x": 1},
        hoverlabel={"font": {"size": 12}},
        uirevision="keep",  # keep zoom and legend choices across live updates
    )
    if title:
        # Plotly places a title of several lines as if it had one: padded down by the others, it stays inside
        layout["title"] = {"text": title, "x": 0.01, "y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 8 + extra},
                           "font": {"size": 14}}
    return {"data": data, "layout": layout}


def legend_below(fig: Figure, bottom: int = 100, y: float = -0.25) -> Figure:
    """The legend under the panels (its top at `y` of the plot's height): on a narrow screen its rows grow
    downwards, not up into the titles."""
    fig["layout"]["legend"].update(y=y, yanchor="top", x=0, xanchor="left")
    fig["layout"]["margin"]["b"] = bottom
    return fig


# ------------------------------------------------------------------------------- views of recorded frames
def titles(frames_by_model: Mapping[str, Frames]) -> list[str]:
    return [fr.title for fr in frames_by_model.values()]


def clamp(step: int, frames: Frames) -> int:
    return max(0, min(step, frames.latest))


def shared_time(frames_by_model: Mapping[str, Frames], step: int) -> float | None:
    """The t every model of a run is at after `step` steps (as shown, to 3 decimals), or None when their
    samplers' time grids differ (bfn's uniform one, the solvers' log-SNR one), so that each must say its own."""
    times = {f"{float(fr.t[clamp(step, fr)]):.3f}" for fr in frames_by_model.values()}
    return float(times.pop()) if len(times) == 1 else None


def image_label(labels: Sequence[int | None] | None, image: int, names: LabelSet) -> str:
    """ "image 2 · digit 2", "image 0 · number 42", "image 1 · unconditional": `labels` are the run's, `names` the
    model's (`Frames.labels`), never assumed to be MNIST's: a two-digit run's labels go up to 99."""
    return f"image {image} · " + names.describe(None if labels is None else labels[image])


def pixel_heatmap(
    frames_by_model: Mapping[str, Frames],
    step: int,
    image: int = 0,
    pixels: Sequence[Pixel] = (),
    labels: Sequence[int | None] | None = None,
    title: str | None = None,
) -> Figure:
    """One image at one step as a heatmap per model (a cell per pixel), θ as colour; hovering shows θ and the output.
    `title` replaces the title naming the image and step (short lines, "<br>" apart: a phone's width)."""
    layout = subplots(titles(frames_by_model), spacing=0.1)
    data = []
    first = next(iter(frames_by_model.values()))
    image = min(max(image, 0), first.batch - 1)
    for k, fr in enumerate(frames_by_model.values(), start=1):
        s = clamp(step, fr)
        sx = "" if k == 1 else str(k)
        extra = image_label(labels, image, fr.labels)
        if fr.precision is not None:
            extra += f" · σ = {1 / math.sqrt(float(fr.precision[s, image])):.3g}"
        lo, hi = fr.value_range
        domain = layout[f"xaxis{sx}"]["domain"]
        data.append(
            {
                "type": "heatmap",
                "xaxis": f"x{sx}",
                "yaxis": f"y{sx}",
                "z": fr.theta[s, image].astype(np.float32),
                "customdata": fr.output[s, image].astype(np.float32),
                "zmin": lo,
                "zmax": hi,
                "colorscale": HEATMAP_SCALE,
                # under its own map, as wide as its subplot: beside the map it would run into the next one on a phone
                "colorbar": {"orientation": "h", "len": domain[1] - domain[0], "thickness": 10, "x": (domain[0] + domain[1]) / 2,
                             "xanchor": "center", "y": -0.1, "yanchor": "top", "tickvals": [lo, (lo + hi) / 2, hi]},
                # everything in the one box: Plotly draws an <extra> name in a second box outside it
                "hovertemplate": f"<b>{fr.title}</b> · {extra}<br>row %{{y}}, col %{{x}}<br>{fr.display.theta_name} = %{{z:.3f}}"
                f"<br>{fr.display.output_name} = %{{customdata:.3f}}<extra></extra>",
                "name": fr.title,
            }
        )
        mine = [(n, p) for n, p in enumerate(pixels) if p[0] == image]
        if mine:
            colours = [PIXEL_COLOURS[n % len(PIXEL_COLOURS)] for n, _ in mine]
            data.append(
                {
                    "type": "scatter",
                    "xaxis": f"x{sx}",
                    "yaxis": f"y{sx}",
                    "x": [p[2] for _, p in mine],
                    "y": [p[1] for _, p in mine],
                    "mode": "markers+text",
                    "text": [str(n + 1) for n, _ in mine],
                    "textposition": "top right",
                    "textfont": {"color": colours, "size": 13},
                    "marker": {"symbol": "square-open", "size": 13, "line": {"width": 2.5}, "color": colours},
                    "hoverinfo": "skip",
                    "showlegend": False,
                }
            )
        height, width = fr.labels.shape
        axis(layout, "x", k, range=[-0.5, width - 0.5], constrain="domain", showgrid=False, zeroline=False)
        axis(layout, "y", k, range=[height - 0.5, -0.5], scaleanchor=f"x{sx}", constrain="domain", showgrid=False, zeroline=False)
    title = title or f"{image_label(labels, image, first.labels)} at step {clamp(step, first)}"
    # no fixed width: the figure takes its box's width (a phone's too); square pixels shrink the maps to fit
    fig = figure(data, layout, 312, title)
    extra = TITLE_LINE * title.count("<br>")
    fig["layout"]["margin"].update(t=56 + extra, b=72, l=40, r=16)  # no legend above; the colour bars below
    return fig

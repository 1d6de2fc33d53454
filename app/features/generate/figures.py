"""The generation's figures: the chosen pixels over the steps, which digit the classifier sees at every step, and
the per-step summary. Recorded steps in (`Frames`, keyed by the model's name), Plotly figure dicts out
(`app.ui.figures`' conventions); what a model's values are called and their range come from the frames'
display record, colours go by the model's position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from app.core.frames import Frames, decision_step
from app.ui.figures import (
    PIXEL_COLOURS, Figure, axis, clamp, figure, image_label, legend_below, model_colour, subplots, titles, vline,
)
from app.ui.images import Pixel
from bfn.flow import DECIDED
from bfn.images import to_unit

DIGIT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # Tableau 10


def trajectories(frames_by_model: Mapping[str, Frames], step: int, pixels: Sequence[Pixel]) -> Figure:
    """θ (solid) and the output distribution (dotted) of chosen pixels over all recorded steps, per model."""
    layout = subplots(titles(frames_by_model), spacing=0.08)
    layout["shapes"] = []
    data = []
    for k, fr in enumerate(frames_by_model.values(), start=1):
        sx = "" if k == 1 else str(k)
        steps = np.arange(fr.count, dtype=np.int32)
        for n, (img, r, c) in enumerate(pixels):
            if img >= fr.batch:
                continue
            colour = PIXEL_COLOURS[n % len(PIXEL_COLOURS)]
            name = f"{n + 1}: image {img}, row {r}, col {c}"
            common = {"type": "scatter", "xaxis": f"x{sx}", "yaxis": f"y{sx}", "x": steps, "mode": "lines", "legendgroup": name}
            data.append(
                {
                    **common,
                    "y": fr.theta[: fr.count, img, r, c].astype(np.float32),
                    "name": name,
                    "showlegend": k == 1,
                    "line": {"color": colour, "width": 2.2},
                    "hovertemplate": f"step %{{x}}<br>{fr.display.theta_name} = %{{y:.3f}}<extra>{n + 1}</extra>",
                }
            )
            data.append(
                {
                    **common,
                    "y": fr.output[: fr.count, img, r, c].astype(np.float32),
                    "name": name + " (output)",
                    "showlegend": False,
                    "line": {"color": colour, "width": 1.4, "dash": "dot"},
                    "opacity": 0.75,
                    "hovertemplate": f"step %{{x}}<br>{fr.display.output_name} = %{{y:.3f}}<extra>{n + 1}</extra>",
                }
            )
        # the value range at least, and every plotted value: a continuous μ may overshoot ±1 on its way
        plotted = [trace["y"] for trace in data if trace["xaxis"] == f"x{sx}" and len(trace["y"])]
        lo, hi = fr.value_range
        if plotted:
            lo, hi = min(lo, *(float(y.min()) for y in plotted)), max(hi, *(float(y.max()) for y in plotted))
        margin = 0.05 * (hi - lo)
        axis(layout, "y", k, range=[lo - margin, hi + margin], title={"text": fr.display.theta_name}, zeroline=False)
        axis(layout, "x", k, range=[0, max(fr.num_steps, 1)], title={"text": "step"})
        layout["shapes"].append(vline(k, clamp(step, fr)))
    if not pixels:
        layout["annotations"].append(
            {"text": "Click a pixel in any image, or add one by coordinates", "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}
        )
    return legend_below(figure(data, layout, 400, "Chosen pixels over the steps<br>θ solid, output distribution dotted"))


def _guidance_band(k: int, fr: Frames) -> tuple[dict, dict] | None:
    """A shaded band (and its label) over the recorded steps where guidance above 1 acted, if any.

    Guidance acts in one interval of time (`bfn.sampling.guidance_at`), so the steps form one run.
    """
    guided = np.flatnonzero(fr.guidance[: fr.count] > 1)
    if guided.size == 0:
        return None
    sx, first, last = "" if k == 1 else str(k), int(guided[0]), int(guided[-1])
    band = {"type": "rect", "xref": f"x{sx}", "yref": f"y{sx} domain", "x0": first - 0.5, "x1": last + 0.5, "y0": 0, "y1": 1,
            "fillcolor": "#fde68a", "opacity": 0.45, "line": {"width": 0}, "layer": "below"}
    # at the band's foot, starting at its left edge: clear of the ★'s label (above) and of the y axis (left)
    # (Plotly hides an annotation anchored outside its axis' range: a band from step 0 starts it at 0)
    label = {"text": f"guidance {fr.guidance[first]:g}", "showarrow": False, "x": max(first - 0.5, 0), "y": 0.01,
             "xanchor": "left", "yanchor": "bottom", "xref": f"x{sx}", "yref": f"y{sx} domain",
             "bgcolor": "rgba(255, 255, 255, 0.7)", "font": {"size": 11, "color": "#92400e"}}
    return band, label


def digit_beliefs(
    frames_by_model: Mapping[str, Frames], step: int, image: int = 0, labels: Sequence[int | None] | None = None
) -> Figure:
    """For one image, per model: the classifier's digit probabilities of the output distribution, per step.

    The digit asked for is drawn thick; a star marks the step from which the classifier sees the final digit
    for good (`decision_step`, over the steps recorded so far): the moment the digit "decides itself". A
    shaded band marks the steps where guidance acted, so one sees guidance at work where the digit is chosen.
    """
    panels = _digit_panels(frames_by_model)
    layout = subplots([title for _, _, title in panels], spacing=0.08)
    layout["shapes"] = []
    first = next(iter(frames_by_model.values()))
    image = min(max(image, 0), first.batch - 1)
    target = None if labels is None else labels[image]
    data = []
    for k, (fr, part, _) in enumerate(panels, start=1):
        sx = "" if k == 1 else str(k)
        axis(layout, "x", k, range=[0, max(fr.num_steps, 1)], title={"text": "step"})
        axis(layout, "y", k, range=[0, 1.02], title={"text": "P(digit)"} if k == 1 else {})
        layout["shapes"].append(vline(k, clamp(step, fr)))
        if (band := _guidance_band(k, fr)) is not None:
            layout["shapes"].append(band[0])
            layout["annotations"].append(band[1])
        if fr.digit_probs is None or fr.count == 0:
            continue
        steps = np.arange(fr.count, dtype=np.int32)
        probs = _part_probs(fr, part)[: fr.count, image]
        wanted = None if target is None else int(fr.labels.names[target][part])  # this part's digit of the label
        for digit in range(probs.shape[1]):
            data.append(
                {
                    "type": "scatter",
                    "xaxis": f"x{sx}",
                    "yaxis": f"y{sx}",
                    "x": steps,
                    "y": probs[:, digit],
                    "mode": "lines",
                    "name": str(digit),
                    "legendgroup": str(digit),
                    "showlegend": k == 1,
                    "line": {"color": DIGIT_COLOURS[digit % len(DIGIT_COLOURS)], "width": 3.5 if digit == wanted else 1.6},
                    "hovertemplate": f"step %{{x}}: P({digit}) = %{{y:.2f}}<extra>{fr.title}</extra>",
                }
            )
        decided, top = decision_step(probs), int(probs[-1].argmax())
        if decided is None:
            layout["annotations"].append(
                {"text": f"undecided: {top} at {probs[-1, top]:.0%}", "showarrow": False, "x": fr.count - 1, "y": 1.0,
                 "xref": f"x{sx}", "yref": f"y{sx}", "xanchor": "right", "yanchor": "top"}
            )
            continue
        data.append(
            {
                "type": "scatter",
                "xaxis": f"x{sx}",
                "yaxis": f"y{sx}",
                "x": [decided],
                "y": [float(probs[decided, top])],
                "mode": "markers+text",
                "text": [f"{top} from step {decided}"],
                "textposition": star_label_side(decided, fr.num_steps),
                "cliponaxis": False,  # a label wider than the panel's last part runs into the gap, not cut off
                "marker": {"symbol": "star", "size": 14, "color": DIGIT_COLOURS[top % len(DIGIT_COLOURS)], "line": {"width": 1, "color": "#111827"}},
                "showlegend": False,
                "hovertemplate": f"the classifier sees a {top} (≥ 50%) from step {decided} on<extra>{fr.title}</extra>",
            }
        )
    names = first.labels.names
    if first.labels.digit_parts == 0:
        note = (f"The labels of {first.title} are not digits ({', '.join(names[:3])}, …): the digit classifier does "
                "not apply")
    else:
        note = "No digit classifier loaded (weights/classifier): this view is off" if first.digit_probs is None else None
    if note:
        layout["annotations"].append({"text": note, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"})
    title = f"Which digit does the classifier see?<br>{image_label(labels, image, first.labels)}"  # short lines: a phone
    if first.labels.digit_parts > 1:
        title = f"Which number does the classifier see in the output distribution?<br>{image_label(labels, image, first.labels)}"
        if first.digit_probs is not None and first.count:
            s = clamp(step, first)
            reading = "".join(str(int(_part_probs(first, p)[s, image].argmax())) for p in range(first.labels.digit_parts))
            title += f" · it reads {reading} at step {s}"
    fig = legend_below(figure(data, layout, 420, title), bottom=110)
    fig["layout"]["legend"]["title"] = {"text": "digit "}
    return fig


PLACES = ("units", "tens", "hundreds", "thousands")  # a number's digits, from the right


def star_label_side(step: int, steps: int) -> str:
    """Where the ★'s label goes so that it stays inside its panel, narrow on a phone: right of a star in the
    first quarter, left of one in the last, centred below one in between (away from the y axis and the edge)."""
    if step < steps / 4:
        return "bottom right"
    return "bottom left" if step >= 3 * steps / 4 else "bottom center"


def _digit_panels(frames_by_model: Mapping[str, Frames]) -> list[tuple[Frames, int, str]]:
    """The "which digit?" subplots: (frames, part, title) per model, one per digit of its labels (a number's
    digits from the left, each read in its own column strip by `bfn.classifier.digits_of`)."""
    panels = []
    for fr in frames_by_model.values():
        parts = max(fr.labels.digit_parts, 1)
        for p in range(parts):
            place = PLACES[parts - 1 - p] if parts <= len(PLACES) else f"{p + 1}."
            panels.append((fr, p, fr.title if parts == 1 else f"{fr.title} · {place} digit"))
    return panels


def _part_probs(fr: Frames, part: int) -> np.ndarray:
    """The classifier's probabilities of one digit of the labels: (steps, images, classes)."""
    classes = fr.digit_probs.shape[-1] // fr.labels.digit_parts
    return fr.digit_probs[..., part * classes : (part + 1) * classes]


HIST_BINS = 20


def step_summary(frames_by_model: Mapping[str, Frames], step: int) -> Figure:
    """A histogram of θ at this step, and per step: mean uncertainty and the fraction of decided pixels."""
    # two short lines per title and no y-axis titles right of the first panel: three panels side by side fit a
    # phone; what each curve measures is in its hover
    titles = ("θ at this step", "Uncertainty<br>per step", f"Decided pixels<br>(θ ≥ {DECIDED:.1%} sure)")
    layout = subplots(titles, spacing=0.12)
    data = []
    edges = np.linspace(0, 1, HIST_BINS + 1)
    centres = ((edges[:-1] + edges[1:]) / 2).astype(np.float32)
    for k, fr in enumerate(frames_by_model.values()):
        s = clamp(step, fr)
        lo, hi = fr.value_range
        unit = to_unit(fr.theta[s].astype(np.float32), fr.value_range)
        counts, _ = np.histogram(unit, bins=edges)
        colour = model_colour(k)
        title = fr.title
        data.append(
            {
                "type": "bar",
                "x": centres,
                "y": (counts / max(unit.size, 1)).astype(np.float32),
                "name": title,
                "legendgroup": title,
                "marker": {"color": colour},
                "opacity": 0.85,
                "customdata": np.stack([lo + edges[:-1] * (hi - lo), lo + edges[1:] * (hi - lo)], axis=1).astype(np.float32),
                "hovertemplate": "θ in [%{customdata[0]:.2f}, %{customdata[1]:.2f}]: %{y:.1%} of pixels<extra>" + title + "</extra>",
            }
        )
        x = np.arange(fr.count, dtype=np.int32)
        what = fr.display.uncertainty
        for col, y, name, hover in (
            (2, fr.stats[: fr.count, 0], f"{title}: {what}", f"{what} = %{{y:.3f}}"),
            (3, fr.stats[: fr.count, 1], f"{title}: decided", "%{y:.1%} of pixels decided"),
        ):
            data.append(
                {
                    "type": "scatter",
                    "xaxis": f"x{col}",
                    "yaxis": f"y{col}",
                    "x": x,
                    "y": y,
                    "mode": "lines",
                    "name": name,
                    "legendgroup": title,
                    "showlegend": False,
                    "line": {"color": colour, "width": 2},
                    "hovertemplate": f"step %{{x}}: {hover}<extra>{title}</extra>",
                }
            )
    any_fr = next(iter(frames_by_model.values()))
    layout["shapes"] = [vline(col, clamp(step, any_fr)) for col in (2, 3)]
    for col in (2, 3):
        axis(layout, "x", col, range=[0, max(any_fr.num_steps, 1)], title={"text": "step"})
        axis(layout, "y", col, range=[0, 1.02])
    axis(layout, "x", 1, range=[-0.02, 1.02], tickvals=[0, 1], ticktext=["background", "ink"])
    decades = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    axis(layout, "y", 1, type="log", range=[-4, 0.05], title={"text": "fraction of pixels"}, tickvals=decades, ticktext=["0.01%", "0.1%", "1%", "10%", "100%"])
    layout.update(barmode="group", bargap=0.1, bargroupgap=0)
    return legend_below(figure(data, layout, 380, "Per-step summary"))

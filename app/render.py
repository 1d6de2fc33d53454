"""Pure rendering: recorded steps → images (uint8 grids), Plotly figures, and GIF/PNG exports.

Nothing here knows about Gradio or sessions; every function takes `Frames` (one model's recorded steps, keyed
by the model's name) and a step index and returns plain data, so the views can be tested without a server.
What a model's values are called, their range and its title come from the frames (`Frames.title`,
`Frames.display`: the flow's own words); colours go by the model's position. Images are grey (what the
digit looks like, black background as in MNIST); the heatmap uses a diverging colour scale that makes
uncertain pixels white and confident ones deep blue (background) or deep red (ink).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.figures import Figure, axis, figure, legend_below, model_colour, subplots, vline
from app.frames import Frames, decision_step
from app.params import DEFAULT_LABELS, LabelSet
from bfn.flow import DECIDED
from bfn.images import make_grid, to_uint8, to_unit

PAD = 2  # grey pixels between images in a grid
PAD_VALUE = 64
# Live images are sent at their true size (one pixel per pixel of the model's images) and enlarged by the browser with CSS
# `image-rendering: pixelated`: an enlargement by k on the server would send k² times the pixels, at up to
# 10 updates per second. Exports are enlarged here.
MAX_COLS = 5
DIGIT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # Tableau 10
PIXEL_COLOURS = ("#16a34a", "#9333ea", "#f59e0b", "#0891b2", "#db2777", "#111827", "#65a30d", "#92400e")  # visible on the red-blue heatmap
# low (background) deep blue → uncertain white → high (ink) deep red: ColorBrewer RdBu, reversed
HEATMAP_SCALE = [[0.0, "#053061"], [0.2, "#2166ac"], [0.4, "#92c5de"], [0.5, "#f7f7f7"], [0.6, "#f4a582"], [0.8, "#b2182b"], [1.0, "#67001f"]]

Pixel = tuple[int, int, int]  # (image index, row, column)


# ---------------------------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class GridLayout:
    """Where each image of a batch sits in the enlarged grid picture, both ways: `draw` places the images and
    `locate` maps a click back, from the same numbers, so a click always lands on the pixel drawn there."""

    batch: int
    shape: tuple[int, int] = DEFAULT_LABELS.shape  # (height, width) of one image
    scale: int = 1

    @property
    def cols(self) -> int:
        return min(self.batch, MAX_COLS)

    @property
    def rows(self) -> int:
        return math.ceil(self.batch / self.cols)

    @property
    def width(self) -> int:
        """The enlarged picture's width in pixels (what `draw` returns), the range of a click's x."""
        return (self.cols * (self.shape[1] + PAD) + PAD) * self.scale

    @property
    def height(self) -> int:
        return (self.rows * (self.shape[0] + PAD) + PAD) * self.scale

    def draw(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (B, H, W) → the grid picture, enlarged `scale`× with nearest-neighbour."""
        grid = make_grid(images, nrow=self.cols, padding=PAD, pad_value=PAD_VALUE)
        return np.repeat(np.repeat(grid, self.scale, axis=0), self.scale, axis=1) if self.scale > 1 else grid

    def locate(self, x: float, y: float) -> Pixel | None:
        """The (image, row, column) under point (x, y) of the enlarged picture; None on the padding or outside."""
        gx, gy = int(x // self.scale), int(y // self.scale)
        c_img, col = divmod(gx - PAD, self.shape[1] + PAD)
        r_img, row = divmod(gy - PAD, self.shape[0] + PAD)
        if gx < PAD or gy < PAD or col >= self.shape[1] or row >= self.shape[0] or c_img >= self.cols or r_img >= self.rows:
            return None
        index = r_img * self.cols + c_img
        return (index, row, col) if index < self.batch else None


def image_grid(values: np.ndarray, value_range: tuple[float, float], scale: int = 1) -> np.ndarray:
    """(B, H, W) values in `value_range` → one uint8 grey picture, rows of up to 5 images, enlarged `scale`×."""
    return GridLayout(values.shape[0], values.shape[-2:], scale).draw(to_uint8(values.astype(np.float32), value_range))


def theta_image(frames: Frames, step: int) -> np.ndarray:
    return image_grid(frames.theta[step], frames.value_range)


def output_image(frames: Frames, step: int) -> np.ndarray:
    return image_grid(frames.output[step], frames.value_range)





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


def _titles(frames_by_model: Mapping[str, Frames]) -> list[str]:
    return [fr.title for fr in frames_by_model.values()]


def _clamp(step: int, frames: Frames) -> int:
    return max(0, min(step, frames.latest))


def image_label(labels: Sequence[int | None] | None, image: int, names: LabelSet = DEFAULT_LABELS) -> str:
    """ "image 2 · digit 2", "image 0 · number 42", "image 1 · unconditional": `labels` are the run's, `names` the
    model's (`Frames.labels`)."""
    return f"image {image} · " + names.describe(None if labels is None else labels[image])


def pixel_heatmap(
    frames_by_model: Mapping[str, Frames],
    step: int,
    image: int = 0,
    pixels: Sequence[Pixel] = (),
    labels: Sequence[int | None] | None = None,
) -> Figure:
    """One image at one step as a heatmap per model (a cell per pixel), θ as colour; hovering shows θ and the output."""
    layout = subplots(_titles(frames_by_model), spacing=0.1)
    data = []
    first = next(iter(frames_by_model.values()))
    image = min(max(image, 0), first.batch - 1)
    for k, fr in enumerate(frames_by_model.values(), start=1):
        s = _clamp(step, fr)
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
    title = f"{image_label(labels, image, first.labels)} at step {_clamp(step, first)}"
    # no fixed width: the figure takes its box's width (a phone's too); square pixels shrink the maps to fit
    fig = figure(data, layout, 330, title)
    fig["layout"]["margin"].update(t=56, b=72, l=40, r=16)  # no legend above; the colour bars below
    return fig


def trajectories(frames_by_model: Mapping[str, Frames], step: int, pixels: Sequence[Pixel]) -> Figure:
    """θ (solid) and the output distribution (dotted) of chosen pixels over all recorded steps, per model."""
    layout = subplots(_titles(frames_by_model), spacing=0.08)
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
        layout["shapes"].append(vline(k, _clamp(step, fr)))
    if not pixels:
        layout["annotations"].append(
            {"text": "Click a pixel in any image, or add one by coordinates", "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}
        )
    return legend_below(figure(data, layout, 400, "Chosen pixels over the steps<br>θ solid, output distribution dotted"))


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
        layout["shapes"].append(vline(k, _clamp(step, fr)))
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
        title = f"Which number does the classifier see in the output distribution? {image_label(labels, image, first.labels)}"
        if first.digit_probs is not None and first.count:
            s = _clamp(step, first)
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
        s = _clamp(step, fr)
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
    layout["shapes"] = [vline(col, _clamp(step, any_fr)) for col in (2, 3)]
    for col in (2, 3):
        axis(layout, "x", col, range=[0, max(any_fr.num_steps, 1)], title={"text": "step"})
        axis(layout, "y", col, range=[0, 1.02])
    axis(layout, "x", 1, range=[-0.02, 1.02], tickvals=[0, 1], ticktext=["background", "ink"])
    decades = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    axis(layout, "y", 1, type="log", range=[-4, 0.05], title={"text": "fraction of pixels"}, tickvals=decades, ticktext=["0.01%", "0.1%", "1%", "10%", "100%"])
    layout.update(barmode="group", bargap=0.1, bargroupgap=0)
    return legend_below(figure(data, layout, 380, "Per-step summary"))


# --------------------------------------------------------------------------------------------------- exports

_FONT_CACHE: dict[int, ImageFont.ImageFont] = {}


def _font(size: int) -> ImageFont.ImageFont:
    if size not in _FONT_CACHE:
        try:
            _FONT_CACHE[size] = ImageFont.load_default(size=size)
        except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
            _FONT_CACHE[size] = ImageFont.load_default()
    return _FONT_CACHE[size]


def _labelled_rows(rows: Sequence[tuple[str, np.ndarray]], caption: str | None, scale: int) -> np.ndarray:
    """Stack (label, uint8 picture) rows under an optional caption into one picture with text drawn in."""
    gap, text_h = 6 * scale // 2 + 4, 18
    width = max(img.shape[1] for _, img in rows) + 2 * gap
    height = (text_h + gap if caption else gap) + sum(text_h + img.shape[0] + gap for _, img in rows)
    canvas = Image.new("L", (width, height), 24)
    draw = ImageDraw.Draw(canvas)
    y = gap // 2
    if caption:
        draw.text((gap, y), caption, fill=235, font=_font(14))
        y += text_h + gap // 2
    for label, img in rows:
        draw.text((gap, y), label, fill=200, font=_font(13))
        y += text_h
        canvas.paste(Image.fromarray(img, mode="L"), (gap, y))
        y += img.shape[0] + gap
    return np.asarray(canvas)


def step_picture(frames_by_model: Mapping[str, Frames], step: int, scale: int = 2) -> np.ndarray:
    """One animation frame: per model, θ and the output distribution side by side, with labels."""
    rows = []
    for fr in frames_by_model.values():
        s = _clamp(step, fr)
        theta = image_grid(fr.theta[s], fr.value_range, scale)
        out = image_grid(fr.output[s], fr.value_range, scale)
        spacer = np.full((theta.shape[0], 4 * scale), 24, np.uint8)
        rows.append((f"{fr.title}: input distribution | output distribution", np.concatenate([theta, spacer, out], axis=1)))
    any_fr = next(iter(frames_by_model.values()))
    s = _clamp(step, any_fr)
    return _labelled_rows(rows, f"step {s} / {any_fr.num_steps}   t = {any_fr.t[s]:.3f}", scale)


def gif_steps(count: int, max_frames: int = 60) -> list[int]:
    """Evenly spaced steps 0 … count−1 (always the first and the last), at most `max_frames` of them."""
    if count <= 0:
        return []
    return sorted({round(x) for x in np.linspace(0, count - 1, min(count, max_frames))})


GIF_LEVELS = 16  # grey levels in the GIF: 4-bit codes make a much smaller file than 256 levels, and look the same


def animation_gif(frames_by_model: Mapping[str, Frames], max_frames: int = 60, frame_ms: int = 80, hold_ms: int = 1500) -> bytes:
    """The run as an animated GIF (looping; the last frame is held), up to the last recorded step.

    At most `max_frames` evenly spaced steps, so a long run makes a file no larger than a short one.
    """
    count = min(fr.count for fr in frames_by_model.values())
    steps = gif_steps(count, max_frames)
    if not steps:
        raise ValueError("nothing to export yet: no step has been recorded")
    palette = [round(v * 255 / (GIF_LEVELS - 1)) for v in range(GIF_LEVELS) for _ in range(3)]
    pictures = []
    for s in steps:
        levels = np.rint(step_picture(frames_by_model, s).astype(np.float32) * ((GIF_LEVELS - 1) / 255)).astype(np.uint8)
        picture = Image.fromarray(levels, mode="P")
        picture.putpalette(palette)
        pictures.append(picture)
    buf = io.BytesIO()
    durations = [frame_ms] * (len(pictures) - 1) + [hold_ms]
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0, optimize=True)
    return buf.getvalue()


def final_picture(frames_by_model: Mapping[str, Frames], scale: int = 4) -> np.ndarray:
    """Per model, labelled: the last output distribution (what the screen shows), then the final sample drawn
    from it, if the run got that far.

    The two differ where a sample is a draw rather than the distribution's mean (binarised pixels are on or off,
    so the sample looks jaggier than the greys on screen); both are given, each saying which it is.
    """
    rows = []
    for fr in frames_by_model.values():
        last = max(fr.latest, 0)
        shown = f"output distribution at step {last}, as on screen" + ("" if fr.finished else " (stopped)")
        rows.append((f"{fr.title}: {shown}", image_grid(fr.output[last], fr.value_range, scale)))
        if fr.sample is not None:
            rows.append((f"{fr.title}: the final sample, drawn from it", image_grid(fr.sample, fr.value_range, scale)))
    return _labelled_rows(rows, None, scale)


def png_bytes(picture: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG", optimize=True)
    return buf.getvalue()

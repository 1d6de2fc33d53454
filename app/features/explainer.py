"""The "One variable's flow" view: the Bayesian flow distribution p_F(θ | x; t) of a single variable, drawn as
t grows, with no network and at once. It is where a reader first sees what "a flow of parameters" means: for
a value x that the sender knows, the belief θ a receiver would hold at time t, over every way the noise
could have fallen.

Three panels: a binary variable (K = 2) as the density of p(on) over t, a three-class variable (K = 3) as
draws on the probability simplex at four times, and a continuous variable as the spread of μ around x. The
maths is the flows' (`bfn.discrete.binary_flow_density`, `bfn.discrete.bayesian_flow_sample`,
`bfn.continuous.bayesian_flow_moments`, `bfn.continuous.bayesian_flow_sample`); this module draws it.
`build` makes the tab's content.
"""

from __future__ import annotations

import gradio as gr
import numpy as np
import torch
import torch.nn.functional as F

from app.core.settings import parse_float, parse_int
from app.ui import figures
from app.ui.context import Context, Page, Tab
from app.ui.views import parsed, plot
from bfn import continuous, discrete

TIMES = torch.linspace(0.01, 1.0, 100, dtype=torch.float64)  # t > 0: at t = 0 every draw is the prior itself
P_GRID = torch.linspace(0.0025, 0.9975, 200, dtype=torch.float64)
SIMPLEX_TIMES = (0.25, 0.5, 0.75, 1.0)
SIMPLEX_DRAWS = 150  # per time
CONTINUOUS_DRAWS = 12  # per time
SEED = 0  # the draws are the same every time a slider comes back to a value
TIME_COLOURS = ("#93c5fd", "#3b82f6", "#1d4ed8", "#172554")
CLASS_NAMES = ("class 0", "class 1", "class 2")
BETA1_RANGE, SIGMA1_RANGE = (0.5, 20.0), (0.001, 0.5)
DEFAULT_BETA1, DEFAULT_SIGMA1 = 3.0, 0.02


def binary_figure(beta1: float, x: int) -> figures.Figure:
    """The density of θ = p(on) for a binary variable with true value x, one column per t, each column scaled
    to its own peak (the density is far sharper early on than late)."""
    density = torch.stack([discrete.binary_flow_density(P_GRID, t, beta1, x) for t in TIMES], dim=1)
    scaled = (density / density.amax(dim=0, keepdim=True)).numpy()
    data = [{"type": "heatmap", "x": TIMES.numpy(), "y": P_GRID.numpy(), "z": scaled, "colorscale": "Blues", "reversescale": True, "showscale": False,
             "hovertemplate": "t = %{x:.2f}<br>p(on) = %{y:.3f}<br>density / its peak at this t = %{z:.2f}<extra></extra>"}]
    layout = {"xaxis": {"title": {"text": "t"}, "range": [0, 1]},
              "yaxis": {"title": {"text": "θ: p(on)"}, "range": [0, 1]}}
    return figures.figure(data, layout, height=340, title=f"Binary, x = {x}, β1 = {beta1:g}")


def simplex_figure(beta1: float, x: int) -> figures.Figure:
    """Draws of θ for a three-class variable with true class x at four times, on the probability simplex."""
    generator = torch.Generator().manual_seed(SEED)
    onehot = F.one_hot(torch.full((SIMPLEX_DRAWS,), x), 3).double()
    data = []
    for t, colour in zip(SIMPLEX_TIMES, TIME_COLOURS):
        theta = discrete.bayesian_flow_sample(onehot, torch.full((SIMPLEX_DRAWS,), t, dtype=torch.float64), beta1, generator).numpy()
        data.append({"type": "scatterternary", "mode": "markers", "a": theta[:, 0], "b": theta[:, 1], "c": theta[:, 2],
                     "name": f"t = {t:g}", "marker": {"color": colour, "size": 5, "opacity": 0.75},
                     "hovertemplate": "θ = (%{a:.2f}, %{b:.2f}, %{c:.2f})<extra>t = " + f"{t:g}</extra>"})
    axis = {"min": 0, "ticks": "outside", "tickformat": ".1f"}
    layout = {"ternary": {"sum": 1, **{f"{k}axis": {**axis, "title": {"text": name}} for k, name in zip("abc", CLASS_NAMES)}}}
    fig = _legend_below(figures.figure(data, layout, height=400, title=f"Three classes, x = {x}, β1 = {beta1:g}"))
    fig["layout"]["margin"].update(l=64, r=64)  # room for the corner titles
    return fig


def continuous_figure(sigma1: float, x: float) -> figures.Figure:
    """The mean μ of a continuous variable with true value x over t: the band of two standard deviations of
    p_F(μ | x; t) around its mean, and a few draws at every t."""
    xs = torch.tensor(x, dtype=torch.float64)
    mean, var = continuous.bayesian_flow_moments(xs, TIMES, sigma1)
    sd = var.sqrt()
    times = TIMES.repeat_interleave(CONTINUOUS_DRAWS)
    draws = continuous.bayesian_flow_sample(xs.expand(len(times)), times, sigma1, torch.Generator().manual_seed(SEED))
    t = TIMES.numpy()
    data = [
        {"type": "scatter", "mode": "lines", "x": np.concatenate([t, t[::-1]]), "y": np.concatenate([(mean + 2 * sd).numpy(), (mean - 2 * sd).numpy()[::-1]]),
         "fill": "toself", "fillcolor": "rgba(79, 70, 229, 0.15)", "line": {"width": 0}, "name": "mean ± 2 sd", "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "x": t, "y": mean.numpy(), "line": {"color": "#4f46e5", "width": 2}, "name": "mean γ(t) x",
         "hovertemplate": "t = %{x:.2f}<br>E[μ] = %{y:.3f}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "x": times.numpy(), "y": draws.numpy(), "name": "draws of μ",
         "marker": {"color": "#1e1b4b", "size": 3, "opacity": 0.5}, "hovertemplate": "t = %{x:.2f}<br>μ = %{y:.3f}<extra></extra>"},
        {"type": "scatter", "mode": "lines", "x": [0, 1], "y": [x, x], "line": {"color": "#dc2626", "dash": "dash", "width": 1}, "name": "x",
         "hoverinfo": "skip"},
    ]
    return _legend_below(figures.figure(data, {"xaxis": {"title": {"text": "t"}, "range": [0, 1]}, "yaxis": {"title": {"text": "θ: mean μ"}}},
                                        height=340, title=f"Continuous, x = {x:g}, σ1 = {sigma1:g}"))


def _legend_below(fig: figures.Figure) -> figures.Figure:
    """These panels are narrow: the legend goes well under the plot, where it cannot cover the title."""
    fig = figures.legend_below(fig, bottom=120, y=-0.4)
    fig["layout"]["margin"]["t"] = 48
    return fig


INTRO = """
**One variable's Bayesian flow.** Before any network: suppose the sender knows a pixel's true value x and
sends noisy observations of it, with the accuracy β(t) gathered by time t. The receiver's belief θ after time t
is then random (it depends on how the noise fell), and its distribution p_F(θ | x; t) is the *Bayesian flow*.
Training shows the network draws from it; generation replaces x by the network's guesses. Move the sliders:
nothing here runs a network.
"""

BINARY_TEXT = """<small>Each column is the distribution of θ = p(on) at that t, scaled to its own peak. At small t
every belief sits near ½ (nothing observed yet); as β(t) = β1 t² grows the beliefs drift towards x, spreading
out on the way, and by t = 1 most of them lean towards x. The larger β1, the surer they are by then.</small>"""

SIMPLEX_TEXT = """<small>Draws of θ, a probability for each of three classes, at four times; a corner is
certainty about one class, the centre is the uniform prior. As t grows the draws leave the centre and move,
on average, towards the corner of the true class x; with a large β1 they reach it.</small>"""

CONTINUOUS_TEXT = """<small>μ, the mean of a Gaussian belief about a value x in [−1, 1]: μ ~ N(γx, γ(1 − γ))
with γ(t) = 1 − σ1^(2t). Every belief starts at the prior's 0; the mean γ(t)x travels to x while the spread
grows to at most ½ (where γ = ½) and shrinks to about σ1 at t = 1.</small>"""


def build(ctx: Context, page: Page) -> None:
    """The view's components and events, inside the open tab: three panels with their sliders (no network: it
    needs nothing of the context or the page)."""
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False):
        with gr.Column(min_width=280):
            binary_x = gr.Radio([0, 1], value=1, label="True value x", elem_id="flow-binary-x")
            binary_beta = gr.Slider(*BETA1_RANGE, value=DEFAULT_BETA1, step=0.5, label="β1", elem_id="flow-binary-beta1")
            binary = gr.Plot(plot(binary_figure(DEFAULT_BETA1, 1)), show_label=False, elem_id="flow-binary")
            gr.Markdown(BINARY_TEXT)
        with gr.Column(min_width=280):
            simplex_x = gr.Radio([0, 1, 2], value=0, label="True class x", elem_id="flow-simplex-x")
            simplex_beta = gr.Slider(*BETA1_RANGE, value=DEFAULT_BETA1, step=0.5, label="β1", elem_id="flow-simplex-beta1")
            simplex = gr.Plot(plot(simplex_figure(DEFAULT_BETA1, 0)), show_label=False, elem_id="flow-simplex")
            gr.Markdown(SIMPLEX_TEXT)
        with gr.Column(min_width=280):
            value_x = gr.Slider(-1.0, 1.0, value=0.6, step=0.05, label="True value x", elem_id="flow-continuous-x")
            sigma = gr.Slider(*SIGMA1_RANGE, value=DEFAULT_SIGMA1, step=0.001, label="σ1", elem_id="flow-continuous-sigma1")
            value = gr.Plot(plot(continuous_figure(DEFAULT_SIGMA1, 0.6)), show_label=False, elem_id="flow-continuous")
            gr.Markdown(CONTINUOUS_TEXT)
    panels = (
        ((binary_beta, binary_x), lambda beta1, x: plot(binary_figure(_beta1(beta1), parsed(parse_int, "x", x, 0, 1))), binary),
        ((simplex_beta, simplex_x), lambda beta1, x: plot(simplex_figure(_beta1(beta1), parsed(parse_int, "x", x, 0, 2))), simplex),
        ((sigma, value_x), lambda sigma1, x: plot(continuous_figure(parsed(parse_float, "σ1", sigma1, *SIGMA1_RANGE),
                                                                     parsed(parse_float, "x", x, -1.0, 1.0))), value),
    )  # fmt: skip
    for controls, draw, figure in panels:
        for control in controls:
            control.change(draw, inputs=list(controls), outputs=figure, api_visibility="private", trigger_mode="always_last",
                           show_progress="hidden", concurrency_limit=None, preprocess=False)  # raw values, checked here


def _beta1(value: object) -> float:
    """β1 as a caller sent it, checked against the slider's range."""
    return parsed(parse_float, "β1", value, *BETA1_RANGE)


TAB = Tab("One variable's flow", "flow", build)

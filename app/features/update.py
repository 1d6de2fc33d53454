"""The "One update, in numbers" view: the followed pixel's Bayesian update at the step on show, as the equation
with its numbers filled in, beside the accuracy schedule β(t) with that step marked.

No maths here: the numbers are the frames' (`Frames.update_in_numbers`, which hands the recorded values to the
flow's display record, `FlowDisplay.update_in_numbers`), and β(t) is the flow's `accuracy`. The view follows the
session's last chosen pixel and the step on show of its generation; `build` makes the tab and refreshes it
whenever the generation's step slider or pixel trajectories figure changes (that figure already follows the
pixels and the step, at a bounded rate).

Public API endpoint: /update_numbers → (the update as Markdown with LaTeX, the β(t) figure).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Mapping

import gradio as gr
import numpy as np

from app.core.frames import Frames
from app.ui import figures
from app.ui.context import Context, Page, Tab
from app.ui.views import plot

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
SCHEDULE_POINTS = 101
LOG_SPAN = 100  # a schedule rising by more than this factor over the second half of the time gets a log axis
NO_RUN = "Press **Generate**, then click a pixel of any image: its Bayesian update at the step on show appears here."
NO_UPDATE = (
    "This run's sampler makes no Bayesian update of this form: the few-step solvers integrate an ODE or SDE of "
    "the summed evidence instead of observing one sender sample per step. Choose the **bfn** sampler to see an "
    "update in numbers."
)


def update_markdown(frames_by_model: Mapping[str, Frames], step: int, pixel: tuple[int, int, int] | None,
                    labels, running: bool = True) -> str:
    """What the view says: per model, the followed pixel's update from `step` to the next, in numbers; of a run
    no longer `running` that ended before its last step, that no update follows its last recorded one."""
    if pixel is None:
        return "Click a pixel of any image (or add one under *Pixel trajectories*) to see its update in numbers."
    image, row, col = pixel
    first = next(iter(frames_by_model.values()))
    step = max(0, min(step, first.latest))
    n, where = first.num_steps, f"**Pixel (row {row}, column {col}) of {figures.image_label(labels, image, first.labels)}**"
    if not running and step < n and step >= min(fr.latest for fr in frames_by_model.values()):
        return (f"{where} · step {step} of {n}: the run stopped here, so no update follows it (step {step + 1} was "
                "never sampled). Scrub back to see an earlier update.")
    if step >= n:
        parts = [f"{where} · step {step} of {n}."]
    else:
        parts = [f"{where} · the update from step {step} to step {step + 1} of {n}. θ before is the pixel's belief at "
                 "the step on show, θ after its belief one step later."]
    for fr in frames_by_model.values():
        parts.append(f"#### {fr.title}")
        if step >= fr.num_steps:
            parts.append(f"Step {step} is the last: no update follows; the sample is drawn from the output distribution.")
            continue
        shown = fr.update_in_numbers(step, image, row, col)
        if shown is not None:
            parts.append(f"From t = {fr.t[step]:.4g} to t = {fr.t[step + 1]:.4g}:\n\n{shown.latex}")
        elif fr.alpha is None:
            parts.append(NO_UPDATE)
        else:
            parts.append(f"Step {step + 1} is not sampled yet.")
    return "\n\n".join(parts)


def schedule_figure(frames_by_model: Mapping[str, Frames], step: int) -> figures.Figure:
    """β(t), the accuracy gathered by time t, per model, with the run's steps as dots and the step on show marked;
    where the sampler makes Bayesian updates, the rise to the next step (α of the update shown) as a bracket."""
    titles = [f"{fr.title}: β(t)" for fr in frames_by_model.values()]
    layout, data = figures.subplots(titles, spacing=0.12), []
    layout["shapes"] = []
    grid = np.linspace(0.0, 1.0, SCHEDULE_POINTS)
    for k, fr in enumerate(frames_by_model.values(), start=1):
        n = fr.count  # read once: a live run records more steps while this figure is drawn
        accuracy = np.array([fr.flow.accuracy(float(t)) for t in grid])
        at_steps = np.array([fr.flow.accuracy(float(t)) for t in fr.t[:n]])
        s = max(0, min(step, n - 1))
        colour, sx = figures.model_colour(k - 1), "" if k == 1 else str(k)
        axes = {"xaxis": f"x{sx}", "yaxis": f"y{sx}", "showlegend": False}
        data.append({"type": "scatter", "mode": "lines", "x": grid, "y": accuracy, "line": {"color": colour, "width": 2},
                     "name": "β(t)", "hovertemplate": "t = %{x:.3f}<br>β = %{y:.4g}<extra></extra>", **axes})
        data.append({"type": "scatter", "mode": "markers", "x": fr.t[:n], "y": at_steps, "name": "steps",
                     "marker": {"color": colour, "size": 4, "opacity": 0.5},
                     "hovertemplate": "step %{customdata}<br>t = %{x:.4f}<br>β = %{y:.4g}<extra></extra>",
                     "customdata": np.arange(n, dtype=np.int32), **axes})
        data.append({"type": "scatter", "mode": "markers", "x": [float(fr.t[s])], "y": [float(at_steps[s])], "name": "step on show",
                     "marker": {"color": "#dc2626", "size": 11, "symbol": "diamond"},
                     "hovertemplate": f"step {s} (on show)<br>t = %{{x:.4f}}<br>β = %{{y:.4g}}<extra></extra>", **axes})
        if fr.alpha is not None and s + 1 < n:
            t_next, b_next = float(fr.t[s + 1]), float(at_steps[s + 1])
            data.append({"type": "scatter", "mode": "lines", "x": [t_next, t_next], "y": [float(at_steps[s]), b_next],
                         "line": {"color": "#dc2626", "width": 3}, "name": "α",
                         "hovertemplate": f"α = {fr.alpha[s + 1]:.4g}: the accuracy step {s + 1} adds<extra></extra>", **axes})
        log = accuracy[-1] > LOG_SPAN * accuracy[SCHEDULE_POINTS // 2]
        figures.axis(layout, "x", k, title={"text": "t"}, range=[0, 1])
        figures.axis(layout, "y", k, title={"text": "β (log)" if log else "β"}, type="log" if log else "linear")
        layout["shapes"].append(figures.vline(k, float(fr.t[s])))
    return figures.figure(data, layout, height=300)


def update_handler(ctx: Context) -> Callable[[gr.Request], tuple]:
    """The handler of /update_numbers: the view for the caller's session (its run, its last chosen pixel, the
    step on show).

    The step slider moves up to `STREAM_INTERVAL_S` apart while a run streams, whether or not this view is open:
    while the run is live the view is redrawn at most every `plot_interval` seconds, like the other figures
    (a later step, or the run's end, redraws it again).
    """
    drawn_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # run → when its view was last drawn

    def update_numbers(request: gr.Request) -> tuple:
        session = ctx.session(request)
        run = session.run
        if run is None or run.latest < 0:
            return NO_RUN, gr.skip()
        now = time.monotonic()
        if run.running and now - drawn_at.get(run, -math.inf) < ctx.plot_interval:
            return gr.skip(), gr.skip()
        drawn_at[run] = now
        step = min(session.step, run.latest)
        pixel = session.pixels[-1] if session.pixels else None
        return update_markdown(run.frames, step, pixel, run.settings.labels, run.running), plot(schedule_figure(run.frames, step))

    return update_numbers


def build(ctx: Context, page: Page) -> None:
    """The view's components, inside the open tab, refreshed as the generation's step and pixels change."""
    gr.Markdown(
        "<small>One step of the *bfn* sampler for the pixel followed last: the receiver draws a sender sample y "
        "around the network's prediction, and Bayes' rule turns θ before into θ after. β(t) is the accuracy "
        "gathered by time t; each update adds α, the rise of β over its step.</small>"
    )
    numbers = gr.Markdown(NO_RUN, latex_delimiters=LATEX, elem_id="update-numbers")
    schedule = gr.Plot(label="Accuracy schedule β(t)", show_label=False, elem_id="update-schedule")
    gr.on(  # the trajectories figure follows both the step on show and the pixels
        [page.views.slider.change, page.views.trajectories.change], update_handler(ctx), outputs=[numbers, schedule],
        api_name="update_numbers", trigger_mode="always_last", show_progress="hidden", concurrency_limit=None,
    )  # fmt: skip


TAB = Tab("One update, in numbers", "update", build)

"""The Gradio app: layout, event wiring and the streaming loop. No maths: runs come from `app.session`,
pictures and figures from `app.render`.

Public API endpoints (stable names, for `gradio_client`):
    /generate       (model, digits, digit, guidance, steps, seed, sampler) → streamed views; ends with the final
    /stop           stop this session's run; → the views at its last step
    /scrub          (step) → the views at that step
    /play           → streamed views from the step on show to the end
    /add_pixel      (image, row, col) → heatmap, trajectories (toggles the pixel)
    /clear_pixels   → heatmap, trajectories
    /export_gif     → the run as an animated GIF file
    /export_png     → the final grid as a PNG file
Views are, in order: status (Markdown), θ and output images for the discrete model, the same for the
continuous one (None when not in the run), the step slider, and four Plotly figures (pixel heatmap, pixel
trajectories, step summary, and which digit the classifier sees per step). /add_pixel and /clear_pixels
return the heatmap, the trajectories and the digit view (the image chosen last is the one shown).
"""

from __future__ import annotations

import atexit
import math
import re
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr
from gradio.components.plot import PlotData

from app import render
from app.models import ModelBank
from app.params import (
    DEFAULT_GUIDANCE,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    DIGIT_MODE_LABELS,
    DIGIT_MODES,
    MAX_GUIDANCE,
    MAX_SEED,
    MAX_STEPS,
    MIN_GUIDANCE,
    MIN_STEPS,
    MODEL_CHOICES,
    MODEL_LABELS,
    parse_int,
    parse_settings,
)
from app.session import Run, Session, SessionStore
from bfn.flow import KINDS
from bfn.sampling import GUIDANCE_INTERVALS, SAMPLERS

MAX_CONCURRENT_RUNS = 4  # generations sampling at once; more wait in the queue (position shown)
QUEUE_SIZE = 32  # requests waiting beyond that are refused with "queue full"
STREAM_INTERVAL_S = 0.1  # at most ~10 image updates per second per session
PLOT_INTERVAL_S = 0.5  # the Plotly figures, heavier for the browser, at most ~2 per second while live
PLAY_SECONDS, PLAY_FPS = 4.0, 12

def _interval(kind: str) -> str:
    start, end = GUIDANCE_INTERVALS[kind]
    return f"t = {start:g}–{end:g}"


EXPLANATION = f"""
**What am I looking at?** A Bayesian Flow Network does not paint a digit pixel by pixel, and it does not
denoise a noisy picture either. It keeps a *belief* about every pixel and sharpens all of them at once.

* **Input distribution θ** — the current belief. For the *binarised* model it is, per pixel, the probability
  that the pixel is on (grey = "no idea", white = "surely ink", black = "surely background"). For the
  *continuous* model it is a best guess μ of the pixel's value, held with a certainty ρ that is the same for
  every pixel and grows every step (σ = 1/√ρ is how far off μ might still be).
* **Output distribution** — what the neural network, looking at θ, predicts the finished digit will be. It
  is sharp early on; θ then moves towards it a little with every noisy observation, and the network
  predicts again. At the last step the output distribution *is* the generated digit.
* **Guidance** — how strongly the chosen digit is enforced. 0 ignores the digit (the network's own idea of
  "some digit"), 1 is the plain conditional model, larger values exaggerate what makes a 3 look like a 3:
  cleaner digits, less variety, and eventually a cartoonish look. Guidance above 1 acts only while the digit
  is being decided ({_interval("discrete")} for the binarised model, {_interval("continuous")} for the continuous one);
  the plain conditional model draws the rest: digits as clear, more varied, and fewer network passes.
* **Steps** — how many small observations are made. More steps: smoother, better digits; fewer steps: faster
  but rougher. Each step costs one pass of the network (two where guidance acts).

Click any pixel of any image to follow it in *Pixel trajectories* and the heatmap; drag the step slider to
scrub through the run; ▶ replays it.
"""

PRESETS = [
    # label, model, digits, digit, guidance, steps, seed, sampler
    ("Side by side: all ten digits", "both", "all", 0, DEFAULT_GUIDANCE, DEFAULT_STEPS, 0),
    ("No guidance (w = 0)", "discrete", "all", 0, 0.0, DEFAULT_STEPS, 1),
    ("Strong guidance (w = 8)", "discrete", "all", 0, 8.0, DEFAULT_STEPS, 1),
    ("Only 10 steps", "both", "all", 0, DEFAULT_GUIDANCE, 10, 2),
    ("1000 steps, one digit", "continuous", "one", 8, DEFAULT_GUIDANCE, 1000, 3),
    ("Unconditional", "both", "none", 0, 1.0, DEFAULT_STEPS, 4),
]

CSS = """
/* live images arrive at their true size (28 px per digit): enlarge them crisply in the browser */
.pixelated img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; cursor: crosshair; }
#status { min-height: 3.2em; }
#generate-btn { font-size: 1.05rem; }
.compact-btn { align-self: flex-end; max-height: 2.6rem; margin-bottom: 0.55rem; }
.kind-title h3 { margin: 0.1em 0 0 0; }
.caption p { margin: 0.3em 0 -0.4em 0; font-size: 0.9em; color: var(--body-text-color-subdued); }
footer { display: none !important; }
"""


# Gradio's own click coordinates assume an image is never shown larger than its file, but the live images are
# small files enlarged by CSS; so clicks are mapped to image pixels here (object-fit: contain) and passed on
# through a hidden textbox, whose input event runs Studio.click_pixel.
PIXEL_CLICK_JS = """
() => {
  document.addEventListener("click", (ev) => {
    const img = ev.target.closest && ev.target.closest(".pixelated img");
    if (!img || !img.naturalWidth) return;
    const r = img.getBoundingClientRect();
    const s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
    const x = (ev.clientX - r.left - (r.width - img.naturalWidth * s) / 2) / s;
    const y = (ev.clientY - r.top - (r.height - img.naturalHeight * s) / 2) / s;
    if (x < 0 || y < 0 || x >= img.naturalWidth || y >= img.naturalHeight) return;
    const box = document.querySelector("#pixel-click textarea, #pixel-click input");
    if (!box) return;
    box.value = `${x.toFixed(2)},${y.toFixed(2)},${Date.now()}`;
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }, true);
}
"""


def theme() -> gr.themes.Theme:
    """A calm theme with system fonts only (nothing is fetched from the internet)."""
    system = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="orange", neutral_hue="slate", font=system, font_mono=mono)


def _plot(fig: render.Figure) -> PlotData:
    """A figure dict for gr.Plot, serialised once here (typed arrays, no plotly validation)."""
    return PlotData(type="plotly", plot=render.figure_json(fig))


def _session_id(request: gr.Request | None) -> str:
    return (request.session_hash if request is not None else None) or "anonymous"


class Studio:
    """The app's handlers, bound to the shared models and the session store."""

    def __init__(
        self,
        bank: ModelBank,
        store: SessionStore | None = None,
        *,
        stream_interval: float = STREAM_INTERVAL_S,
        plot_interval: float = PLOT_INTERVAL_S,
        max_concurrent: int = MAX_CONCURRENT_RUNS,
    ):
        self.bank = bank
        self.store = store or SessionStore()
        self.stream_interval = stream_interval
        self.plot_interval = plot_interval
        self.max_concurrent = max_concurrent
        self.export_dir = Path(tempfile.mkdtemp(prefix="bfn-studio-"))  # one file per session, dropped with it
        atexit.register(shutil.rmtree, self.export_dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------------ views
    def _status(self, run: Run, step: int, note: str = "") -> str:
        s = run.settings
        n = run.num_steps
        elapsed = (run.ended or time.monotonic()) - run.started
        colour = {"running": "#4f46e5", "done": "#16a34a", "stopped": "#b45309", "failed": "#dc2626"}[run.status]
        state = f'<span style="color:{colour}">●</span> **{run.status.capitalize()}**'
        fr = next(iter(run.frames.values()))
        t = float(fr.t[step]) if step >= 0 else 0.0
        parts = [f"{state} — step {max(step, 0)} of {n} (t = {t:.3f})"]
        if "continuous" in run.frames and step >= 0:
            rho = float(run.frames["continuous"].precision[step].mean())
            parts.append(f"continuous ρ = {rho:.3g}, σ = {1 / math.sqrt(rho):.3g}")
        if run.status == "running":
            parts.append(f"{run.latest + 1} of {n + 1} steps sampled")
        else:
            parts.append(f"{run.latest + 1} steps in {elapsed:.1f} s")
        line = " · ".join(parts)
        if note:
            line += f" · {note}"
        return f"{line}  \n<small>{s.describe()}</small>"

    def _views(self, session: Session, step: int, *, plots: bool = True, slider: bool = True, note: str = "") -> tuple:
        run = session.run
        frames = run.frames
        images = []
        for kind in KINDS:
            fr = frames.get(kind)
            if fr is None:
                images += [None, None]
            else:
                images += [render.theta_image(fr, step), render.output_image(fr, step)]
        slider_update = gr.Slider(value=step, maximum=run.num_steps) if slider else gr.skip()
        if plots:
            figures = (
                _plot(render.pixel_heatmap(frames, step, session.image, session.pixels, run.labels)),
                _plot(render.trajectories(frames, step, session.pixels)),
                _plot(render.step_summary(frames, step)),
                _plot(render.digit_beliefs(frames, step, session.image, run.labels)),
            )
        else:
            figures = (gr.skip(),) * 4
        return (self._status(run, step, note), *images, slider_update, *figures)

    @staticmethod
    def _nothing(message: str) -> tuple:
        return (message, *(gr.skip(),) * 9)

    def _session_run(self, request: gr.Request | None) -> tuple[Session, Run | None]:
        session = self.store.get(_session_id(request))
        return session, session.run

    # --------------------------------------------------------------------------------------- handlers
    def generate(self, model, digits, digit, guidance, steps, seed, sampler, request: gr.Request):
        """Sample digits and stream the views while it runs; the last update is the final state."""
        try:
            settings = parse_settings(model, digits, digit, guidance, steps, seed, sampler, available=self.bank.kinds)
        except ValueError as e:
            raise gr.Error(str(e), title="Invalid input") from None
        sid = _session_id(request)
        run = self.store.start_run(sid, settings, self.bank.models, self.bank.classifier)
        session = self.store.get(sid)
        visibility = [gr.Column(visible=kind in run.frames) for kind in KINDS]
        sent, sent_final, last_plot, next_at = -1, False, -math.inf, 0.0
        updates, first_update_at = 0, None
        try:
            while True:
                latest = run.wait(sent, timeout=1.0)
                if run.error:
                    raise gr.Error(f"Sampling failed: {run.error}", title="Sampling failed")
                if latest > sent:
                    wait = next_at - time.monotonic()
                    if wait > 0 and not run.done:
                        time.sleep(wait)
                    latest = run.latest
                    final = run.done
                    now = time.monotonic()
                    plots = final or now - last_plot >= self.plot_interval
                    if first_update_at is None:
                        first_update_at = now
                    rate = updates / (now - first_update_at) if updates and now > first_update_at else None
                    note = f"{rate:.1f} updates/s" if rate else ""
                    if run.follow_live:
                        session.step = latest
                        out = self._views(session, latest, plots=plots, note=note)
                    else:
                        out = (self._status(run, latest, note="viewing step %d — drag to the end to follow" % session.step), *(gr.skip(),) * 9)
                    next_at = now + self.stream_interval  # paced from this update's start: rendering and sending count
                    yield (*out, *visibility)
                    visibility = [gr.skip(), gr.skip()]
                    updates += 1
                    sent, sent_final = latest, final
                    if plots:
                        last_plot = now
                if run.done and run.latest <= sent:
                    break
            if run.error:
                raise gr.Error(f"Sampling failed: {run.error}", title="Sampling failed")
            if not sent_final:  # the run ended after the last update: always show where it ended
                step = session.step if not run.follow_live else run.latest
                session.step = step
                yield (*self._views(session, step), *visibility)
        finally:
            if not run.done:  # the client went away or the event was cancelled
                run.stop()

    def stop(self, request: gr.Request):
        """Stop this session's run (and any playback) and show its last recorded step."""
        session, run = self._session_run(request)
        if run is None:
            return self._nothing("Nothing is running.")
        run.stop(wait=2.0)
        run.follow_live = True
        if run.latest < 0:
            return self._nothing("Stopped before the first step.")
        session.step = run.latest
        return self._views(session, run.latest)

    def scrub(self, step, request: gr.Request):
        """Show every view at `step` (clamped to the steps recorded so far)."""
        try:
            step = parse_int("step", step, 0, MAX_STEPS)
        except ValueError as e:
            raise gr.Error(str(e), title="Invalid input") from None
        session, run = self._session_run(request)
        if run is None or run.latest < 0:
            return self._nothing("Press **Generate** first: there is no run to scrub through yet.")
        run.touch()
        latest = run.latest
        run.follow_live = step >= latest  # dragging to the newest step follows the live run again
        shown = min(step, latest)
        session.step = shown
        return self._views(session, shown, slider=shown != step)

    def play(self, request: gr.Request):
        """Replay the recorded run from the step on show (or from the start) to its last step, in ~4 s."""
        session, run = self._session_run(request)
        if run is None or run.latest < 0:
            raise gr.Error("Nothing to play yet: press Generate first.", title="No run")
        run.follow_live = False
        end = run.latest
        start = session.step if session.step < end else 0
        stride = max(1, math.ceil((end - start) / (PLAY_SECONDS * PLAY_FPS)))
        steps = list(range(start, end, stride)) + [end]
        next_at = time.monotonic()
        for k, step in enumerate(steps):
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at = time.monotonic() + 1 / PLAY_FPS
            session.step = step
            last = k == len(steps) - 1
            yield self._views(session, step, plots=last or k % 4 == 0, note="▶ playing" if not last else "")
        run.follow_live = True

    def _pixel_views(self, session: Session) -> tuple:
        run = session.run
        if run is None or run.latest < 0:
            return gr.skip(), gr.skip(), gr.skip()
        step = min(session.step, run.latest)
        return (
            _plot(render.pixel_heatmap(run.frames, step, session.image, session.pixels, run.labels)),
            _plot(render.trajectories(run.frames, step, session.pixels)),
            _plot(render.digit_beliefs(run.frames, step, session.image, run.labels)),
        )

    def add_pixel(self, image, row, col, request: gr.Request):
        """Follow (or stop following) pixel (row, col) of image `image`."""
        session, run = self._session_run(request)
        batch = len(run.labels) if run is not None else 10
        try:
            pixel = (parse_int("image", image, 0, batch - 1), parse_int("row", row, 0, 27), parse_int("col", col, 0, 27))
        except ValueError as e:
            raise gr.Error(str(e), title="Invalid input") from None
        session.add_pixel(pixel)
        return self._pixel_views(session)

    def click_pixel(self, click, request: gr.Request):
        """A click on any of the images, as "x,y" in image pixels (sent by PIXEL_CLICK_JS): follow that pixel."""
        session, run = self._session_run(request)
        try:
            x, y = (float(v) for v in str(click).split(",")[:2])
        except ValueError:
            return gr.skip(), gr.skip(), gr.skip()
        if run is None or not (math.isfinite(x) and math.isfinite(y)):
            return gr.skip(), gr.skip(), gr.skip()
        pixel = render.GridLayout(len(run.labels)).locate(x, y)
        if pixel is None:
            return gr.skip(), gr.skip(), gr.skip()
        session.add_pixel(pixel)
        return self._pixel_views(session)

    def clear_pixels(self, request: gr.Request):
        session, _ = self._session_run(request)
        session.pixels.clear()
        return self._pixel_views(session)

    def _export(self, request: gr.Request | None, suffix: str, data: bytes, run: Run) -> str:
        folder = self.export_dir / re.sub(r"[^A-Za-z0-9_-]", "", _session_id(request))[:32]
        folder.mkdir(parents=True, exist_ok=True)
        s = run.settings
        path = folder / f"bfn-{s.model}-{s.digits}-w{s.guidance:g}-n{s.steps}-seed{s.seed}.{suffix}"
        path.write_bytes(data)
        return str(path)

    def export_gif(self, request: gr.Request):
        """The run (up to its last recorded step) as an animated GIF."""
        _, run = self._session_run(request)
        if run is None or run.latest < 0:
            raise gr.Error("Nothing to export yet: press Generate first.", title="No run")
        return self._export(request, "gif", render.animation_gif(run.frames), run)

    def export_png(self, request: gr.Request):
        """The generated digits (for a stopped run: its last output distribution) as a PNG grid."""
        _, run = self._session_run(request)
        if run is None or run.latest < 0:
            raise gr.Error("Nothing to export yet: press Generate first.", title="No run")
        return self._export(request, "png", render.png_bytes(render.final_picture(run.frames)), run)

    def forget(self, request: gr.Request):
        """The tab was closed: stop and drop the session's run and exported files."""
        sid = _session_id(request)
        self.store.drop(sid)
        shutil.rmtree(self.export_dir / re.sub(r"[^A-Za-z0-9_-]", "", sid)[:32], ignore_errors=True)

    # ---------------------------------------------------------------------------------------- layout
    def build(self) -> gr.Blocks:
        available = self.bank.kinds
        model_choices = [(MODEL_LABELS[m], m) for m in MODEL_CHOICES if m == "both" and len(available) == len(KINDS) or m in available]
        default_model = "both" if len(available) == len(KINDS) else available[0]
        with gr.Blocks(title="BFN Studio", delete_cache=(600, 3600), analytics_enabled=False) as demo:
            gr.Markdown(
                "# BFN Studio\nWatch a [Bayesian Flow Network](https://arxiv.org/abs/2308.07037) (Graves et al. 2023) "
                "write MNIST digits: every pixel starts as a coin flip and becomes certain, step by step."
            )
            with gr.Accordion("What am I looking at?", open=False, elem_id="explain"):
                gr.Markdown(EXPLANATION)
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=300):
                    model = gr.Radio(model_choices, value=default_model, label="Model", elem_id="model")
                    digits = gr.Radio([(DIGIT_MODE_LABELS[d], d) for d in DIGIT_MODES], value="all", label="Digits", elem_id="digits")
                    digit = gr.Radio(list(range(10)), value=3, label="Which digit", visible=False, elem_id="digit")
                    guidance = gr.Slider(
                        MIN_GUIDANCE, MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.5, label="Guidance",
                        info="0: ignore the digit · 1: plain conditional · higher: more typical digits",
                        elem_id="guidance",
                    )  # fmt: skip
                    steps = gr.Slider(MIN_STEPS, MAX_STEPS, value=DEFAULT_STEPS, step=1, label="Steps", elem_id="steps")
                    with gr.Row(equal_height=True):
                        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", scale=3, min_width=120, elem_id="seed")
                        dice = gr.Button("Random", scale=1, size="sm", min_width=70, elem_id="dice", elem_classes=["compact-btn"])
                    sampler = gr.Dropdown(
                        sorted(SAMPLERS), value=DEFAULT_SAMPLER, label="Sampler", elem_id="sampler",
                        info="bfn: the paper's sampler; others: few-step solvers",
                    )  # fmt: skip
                    with gr.Row():
                        generate_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn", scale=2)
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=1)
                    examples = gr.Examples(
                        [[m, d, g, w, n, s, DEFAULT_SAMPLER] for _, m, d, g, w, n, s in PRESETS if m == "both" and len(available) == 2 or m in available],
                        inputs=[model, digits, digit, guidance, steps, seed, sampler],
                        example_labels=[label for label, m, *_ in PRESETS if m == "both" and len(available) == 2 or m in available],
                        label="Presets (click one: it runs at once)",
                    )  # fmt: skip
                with gr.Column(scale=3):
                    status = gr.Markdown("Choose settings and press **Generate**.", elem_id="status")
                    pixel_click = gr.Textbox(visible="hidden", elem_id="pixel-click")  # written by PIXEL_CLICK_JS
                    with gr.Row(equal_height=True):
                        columns, images = [], []
                        for kind in KINDS:
                            with gr.Column(visible=kind in available and (default_model == "both" or kind == default_model), min_width=260) as col:
                                gr.Markdown(f"### {render.KIND_TITLES[kind]}", elem_classes=["kind-title"])
                                theta_label = (
                                    "**Input distribution θ**: p(pixel on), the current belief"
                                    if kind == "discrete"
                                    else "**Input distribution θ**: mean μ, the current belief (certainty ρ above)"
                                )
                                out_label = (
                                    "**Output distribution**: the network's prediction of p(pixel on)"
                                    if kind == "discrete"
                                    else "**Output distribution**: the network's predicted image x̂"
                                )
                                for label, name in ((theta_label, "theta"), (out_label, "output")):
                                    gr.Markdown(label, elem_classes=["caption"])
                                    images.append(
                                        gr.Image(
                                            label=label, show_label=False, type="numpy", format="png", height=220, interactive=False,
                                            buttons=["download", "fullscreen"], elem_classes=["pixelated"],
                                            elem_id=f"{kind}-{name}", placeholder="Press Generate",
                                        )
                                    )  # fmt: skip
                            columns.append(col)
                    with gr.Row(equal_height=True):
                        step_slider = gr.Slider(0, DEFAULT_STEPS, value=0, step=1, label="Step (drag to scrub)", scale=6, elem_id="step-slider")
                        play_btn = gr.Button("▶ Play", scale=1, size="sm", elem_id="play-btn", elem_classes=["compact-btn"])
                    with gr.Tabs():
                        with gr.Tab("Pixel heatmap", id="heatmap"):
                            heatmap = gr.Plot(label="Pixel heatmap", show_label=False, elem_id="heatmap")
                        with gr.Tab("Pixel trajectories", id="trajectories"):
                            trajectories = gr.Plot(label="Pixel trajectories", show_label=False, elem_id="trajectories")
                            with gr.Row(equal_height=True):
                                px_image = gr.Number(value=0, precision=0, minimum=0, maximum=9, label="Image", min_width=80)
                                px_row = gr.Number(value=14, precision=0, minimum=0, maximum=27, label="Row", min_width=80)
                                px_col = gr.Number(value=14, precision=0, minimum=0, maximum=27, label="Column", min_width=80)
                                add_btn = gr.Button("Add / remove pixel", size="sm", elem_classes=["compact-btn"])
                                clear_btn = gr.Button("Clear pixels", size="sm", elem_classes=["compact-btn"])
                            gr.Markdown("<small>Or click a pixel in any image above (the heatmap then shows that image). Up to 8 pixels; choosing a pixel again removes it.</small>")
                        with gr.Tab("Step summary", id="summary"):
                            summary = gr.Plot(label="Step summary", show_label=False, elem_id="summary")
                        with gr.Tab("Which digit?", id="classifier"):
                            beliefs = gr.Plot(label="Which digit?", show_label=False, elem_id="digit-beliefs")
                            gr.Markdown(
                                "<small>A small digit classifier (weights/classifier, see its model card) reads the "
                                "output distribution at every step; the ★ marks the step from which it sees the final "
                                "digit for good (top digit, at least 50%); the shaded band, the steps where guidance "
                                "above 1 acts. With a digit asked for, the network's very "
                                "first prediction is already an average of that digit; choose *Unconditional* to watch "
                                "a digit decide itself. Click any image above to show that one.</small>"
                            )
                        with gr.Tab("Export", id="export"):
                            with gr.Row():
                                gif_btn = gr.Button("Make animated GIF", elem_id="gif-btn")
                                png_btn = gr.Button("Make PNG of the final grid", elem_id="png-btn")
                            export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
            views = [status, *images, step_slider, heatmap, trajectories, summary, beliefs]
            pixel_views = [heatmap, trajectories, beliefs]
            settings = [model, digits, digit, guidance, steps, seed, sampler]
            gen_args = dict(
                fn=self.generate,
                inputs=settings,
                outputs=views + columns,
                preprocess=False,  # raw values: every input is checked by parse_settings, with clear messages
                show_progress="minimal",
                concurrency_limit=self.max_concurrent,
                concurrency_id="generate",
            )
            gen_event = generate_btn.click(api_name="generate", **gen_args)
            preset_event = examples.load_input_event.then(api_visibility="private", **gen_args)
            play_event = play_btn.click(
                self.play, outputs=views, api_name="play", show_progress="hidden", concurrency_limit=self.max_concurrent, concurrency_id="play"
            )
            stop_btn.click(self.stop, outputs=views, api_name="stop", cancels=[gen_event, preset_event, play_event], concurrency_limit=None)
            step_slider.input(
                self.scrub, inputs=step_slider, outputs=views, api_name="scrub", preprocess=False,
                trigger_mode="always_last", show_progress="hidden", concurrency_limit=None,
            )  # fmt: skip
            pixel_click.change(
                self.click_pixel, inputs=pixel_click, outputs=pixel_views, api_visibility="private",
                trigger_mode="always_last", show_progress="hidden", concurrency_limit=None,
            )  # fmt: skip
            demo.load(None, js=PIXEL_CLICK_JS)
            add_btn.click(self.add_pixel, inputs=[px_image, px_row, px_col], outputs=pixel_views, api_name="add_pixel", preprocess=False, concurrency_limit=None)
            clear_btn.click(self.clear_pixels, outputs=pixel_views, api_name="clear_pixels", concurrency_limit=None)
            gif_btn.click(self.export_gif, outputs=export_file, api_name="export_gif", concurrency_limit=2, concurrency_id="export")
            png_btn.click(self.export_png, outputs=export_file, api_name="export_png", concurrency_limit=2, concurrency_id="export")
            dice.click(None, js=f"() => Math.floor(Math.random() * {MAX_SEED})", outputs=seed)
            model.change(
                lambda m: [gr.Column(visible=m == kind or m == "both") for kind in KINDS],
                inputs=model, outputs=columns, queue=False, api_visibility="private", show_progress="hidden",
            )  # fmt: skip
            digits.change(lambda d: gr.Radio(visible=d == "one"), inputs=digits, outputs=digit, queue=False, api_visibility="private", show_progress="hidden")
            demo.unload(self.forget)
        demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
        return demo


def build_app(bank: ModelBank, **kwargs) -> gr.Blocks:
    return Studio(bank, **kwargs).build()

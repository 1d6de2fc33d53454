"""The Gradio app's layout: the components, the words around them, and which handler each event runs.

The handlers live in `app.handlers`; everything a model's panel says about it (title, captions, its guidance
interval in the explanation) is read from the loaded models, so one panel is built per loaded model.

Public API endpoints (stable names, for `gradio_client`):
    /generate       (model, digits, digit, guidance, steps, seed, sampler) → streamed views; ends with the final
    /stop           stop this session's run; → the views at its last step
    /scrub          (step) → the views at that step
    /play           → streamed views from the step on show to the end
    /add_pixel      (image, row, col) → heatmap, trajectories, digit view (toggles the pixel)
    /clear_pixels   → heatmap, trajectories, digit view
    /export_gif     → the run as an animated GIF file
    /export_png     → the final grid as a PNG file
    /score, /flow_at, /complete, /complete_scrub, /complete_stop: "Your digit through the BFN" (`app.digit_layout`)
    /duel, /duel_scrub, /duel_stop: the "Sampler duel" tab (`app.duel_layout`)
    /update_numbers → the last chosen pixel's Bayesian update at the step on show, in numbers (Markdown with
                    LaTeX), and the accuracy schedule β(t): the "One update, in numbers" tab (`app.update_view`)
The page's URL holds its settings and open tab (`app.links`): opening such a link restores them and runs them.
Views are, in order (`app.handlers.Views`): status (Markdown), θ and output images of each loaded model in
turn (None for a model not in the run), the step slider, and four Plotly figures (pixel heatmap, pixel
trajectories, step summary, and which digit the classifier sees per step). The digit view of /add_pixel and
/clear_pixels shows the image chosen last.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import gradio as gr

from app.digit import DigitHandlers
from app.digit_layout import CSS as DIGIT_CSS
from app.digit_layout import digit_section
from app.duel import DuelHandlers
from app.duel_layout import duel_tab
from app.explainer import explainer_section
from app.handlers import GENERATED, PIXEL, SHOWN, Handlers, Views
from app.links import link_controls, wire_links
from app.models import ModelBank
from app.params import (
    BOTH,
    DEFAULT_SAMPLER,
    DIGIT_MODES,
    MAX_GUIDANCE,
    MAX_SEED,
    MAX_STEPS,
    MIN_GUIDANCE,
    MIN_STEPS,
    SAMPLER_CHOICES,
    ModelMenu,
)
from app.update_view import update_handler, update_section
from bfn.sampling import guidance_interval_for

QUEUE_SIZE = 32  # requests waiting beyond that are refused with "queue full"


def explanation(bank: ModelBank) -> str:
    """The "What am I looking at?" text: how a BFN generates, then what each loaded model's views hold."""
    titles = bank.menu.titles
    models = []
    for name, model in bank.models.items():
        d, (start, end) = model.flow.display, guidance_interval_for(model)
        models.append(
            f"* **{titles[name]}** — {d.explanation} Guidance above 1 acts at t = {start:g}–{end:g}."
        )
    return f"""
A Bayesian Flow Network does not paint a digit pixel by pixel, and it does not denoise a noisy picture either.
It keeps a *belief* about every pixel and sharpens all of them at once.

* **Input distribution θ** — the current belief about every pixel, shown as an image: grey = "no idea",
  white = "surely ink", black = "surely background". What it holds per pixel depends on the model (below).
* **Output distribution** — what the neural network, looking at θ, predicts the finished digit will be.
  Early on it is a guess from almost no evidence (each model below says what that guess looks like); θ
  moves a little towards it with every noisy observation, and the network predicts again. By the last step
  it is all but certain: the generated digit (the binarised model's PNG export is a draw of on/off pixels
  from it).
* **Guidance** — how strongly the chosen digit is enforced. 0 ignores the digit (the network's own idea of
  "some digit"), 1 is the plain conditional model, larger values exaggerate what makes a 3 look like a 3:
  cleaner digits, less variety, and eventually a cartoonish look. Guidance above 1 acts only in each model's
  interval of time (below, and the shaded band in *Which digit?*), chosen for that model by sample quality
  (README); the plain conditional model draws the rest, with fewer network passes. Compare the band with the
  ★ in *Which digit?* (the step from which the classifier's top digit stops changing and is at least 50%
  sure): where the ★ comes first,
  guidance refines a digit already chosen; where it falls inside the band, guidance helps choose it.
* **Steps** — how many small observations are made. More steps: smoother digits; fewer steps: faster, and
  rougher with the paper's sampler (the few-step solvers are made for few steps). Each step costs one pass of
  the network (two where guidance acts).

The models here:

{chr(10).join(models)}

Click any pixel of any image to follow it in *Pixel trajectories* and the heatmap; drag the step slider to
scrub through the run; ▶ replays it.
"""


BELIEFS_CAPTION = (
    "<small>A small digit classifier (weights/classifier, see its model card) reads the output distribution at every "
    "step; the ★ marks the step from which it sees the final digit for good (top digit, at least 50%); the shaded "
    "band, the steps where guidance above 1 acts. The first outputs are a blurry grey average of the digit asked for "
    "(binarised) or flat grey (continuous), and the classifier, trained on sharp digits, reads them as an 8 whatever "
    "the digit: early readings say little. Choose *Unconditional* to watch a digit decide itself. Click any image "
    "above to show that one.</small>"
)


EXPORT_NOTE = (
    "<small>The GIF plays the run, θ beside the output distribution, up to its last step. The PNG shows per model "
    "the last output distribution, as on screen, and under it the final sample drawn from it: binarised pixels "
    "of a sample are on or off, so that row looks jaggier than the greys on screen.</small>"
)


@dataclass(frozen=True)
class Preset:
    """An example run: clicking it fills the settings and generates at once. `model` names a shipped model
    (or BOTH); a preset whose model this server has not loaded is not offered."""

    label: str
    model: str
    digits: str
    digit: int
    guidance: float | None  # None: the models' recommended guidance
    steps: int | None  # None: the models' recommended step count
    seed: int
    sampler: str = DEFAULT_SAMPLER

    def inputs(self, menu: ModelMenu) -> list:
        """The values of the settings widgets, in their order (`build`'s `settings`)."""
        guidance = menu.recommended.guidance if self.guidance is None else self.guidance
        steps = menu.recommended.steps if self.steps is None else self.steps
        return [self.model, self.digits, self.digit, guidance, steps, self.seed, self.sampler]


PRESETS = (
    Preset("Side by side: all ten digits", BOTH, "all", 0, None, None, 0),
    Preset("No guidance (w = 0)", "discrete", "all", 0, 0.0, None, 1),
    Preset("Strong guidance (w = 8)", "discrete", "all", 0, 8.0, None, 1),
    Preset("Only 10 steps", BOTH, "all", 0, None, 10, 2),
    Preset("1000 steps, one digit", "continuous", "one", 8, None, 1000, 3),
    Preset("Unconditional", BOTH, "none", 0, 1.0, None, 4),
)

CSS = """
/* live images arrive at their true size (one pixel per pixel of the model's images): enlarge them crisply in the browser */
.pixelated img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; cursor: crosshair; }
/* an image before the first run says what to do, not just an icon */
.pixelated .empty::after { content: "Press Generate"; margin-left: 0.5em; color: var(--body-text-color-subdued); }
#status { min-height: 3.2em; }
#generate-btn { font-size: 1.05rem; }
.compact-btn { align-self: flex-end; max-height: 2.6rem; margin-bottom: 0.55rem; }
#seed-card .compact-btn { align-self: center; margin: 0 0.5rem; }
#seed-card > .row, #seed-card > div { background: var(--block-background-fill); }
.model-images { flex-wrap: nowrap !important; gap: 0.5rem; }
.model-images { align-items: stretch !important; }
.model-images > .column { justify-content: flex-end; }  /* captions of different lengths: images on one line */
.model-title h3 { margin: 0.1em 0 0 0; }
.caption p { margin: 0.3em 0 -0.4em 0; font-size: 0.85em; line-height: 1.3; color: var(--body-text-color-subdued); }
#header h1, #header p { display: inline; margin: 0 0.6em 0 0; vertical-align: baseline; }  /* one line */
footer { display: none !important; }
/* an invalid input is told once, in its message: no "Error" badge over every view */
[data-testid="status-tracker"]:has(> .error) { display: none !important; }
/* Gradio moves the tabs that do not fit one line into a "•••" menu: show that menu's tabs as a second row,
   so that every view is one click away */
#views .tab-wrapper { flex-wrap: wrap; height: auto; padding-bottom: 0.3rem; }
#views .overflow-menu { position: static; flex: 1 1 100%; }
#views .overflow-menu > button { display: none; }
#views .overflow-dropdown, #views .overflow-dropdown.hide { display: flex !important; flex-wrap: wrap !important; position: static;
  width: 100%; box-shadow: none; border: none; background: none; padding: 0; min-width: 0; }
#views .overflow-dropdown button { width: auto; padding: 0.35rem 0.6rem; }
/* a phone: the settings column and the views column dissolve into one list, ordered quick, live, settings,
   views (see `build`); the header is shorter */
@media (max-width: 768px) {
  #studio { flex-direction: column; }
  #side, #main-views { display: contents; }
  #quick { order: 1; } #live { order: 2; } #settings { order: 3; } #views { order: 4; }
  #header h1 { font-size: 1.35rem !important; }
  #header p { display: none; }  /* "What am I looking at?" says it all */
  #status { font-size: 0.8rem; min-height: 0; }
  #quick label { padding: 0.15rem 0.5rem; font-size: 0.85rem; line-height: 1.3; }
  #quick, #live, #quick .form, #live > .column { gap: 0.5rem !important; }
  #quick .block { padding: 0.4rem 0.6rem; }
  .model-title h3 { font-size: 1rem; }
  .model-images .pixelated { height: 80px !important; }
  .caption p { font-size: 0.7em; line-height: 1.2; }
  #views .modebar-container { display: none; }  /* Plotly's toolbar would cover a figure's title */
}
""" + DIGIT_CSS


# Gradio's own click coordinates assume an image is never shown larger than its file, but the live images are
# small files enlarged by CSS; so clicks are mapped to image pixels here (object-fit: contain) and passed on
# through a hidden textbox, whose input event runs Handlers.click_pixel.
# A slider's number box takes any typed text, and when it loses focus Gradio clamps it to the slider's range:
# a typed 5000 steps would run as 1000. So the page remembers what was typed in each box (TYPED_JS), and
# Generate sends that text (`typed_values_js`) while the box shows its clamp of it, for `parse_settings` to
# refuse with its message ("steps must be from 1 to 1000; got '5000'").
TYPED_JS = """
() => {
  document.addEventListener("input", (ev) => {
    const box = ev.target;
    if (box instanceof HTMLInputElement && box.type === "number") box.dataset.typed = box.value;
  }, true);
}
"""


def typed_values_js(settings: list) -> str:
    """The Generate button's script: the settings' values, with each slider's typed text where the box still
    shows the clamp of it (dragging the slider or resetting it since then sends the value shown)."""
    boxes = [s.elem_id if isinstance(s, gr.Slider) else None for s in settings]
    return f"""
(...values) => {json.dumps(boxes)}.map((id, i) => {{
  const box = id && document.querySelector(`#${{id}} input[type=number]`);
  if (!box) return values[i];
  const typed = box.dataset.typed, clamp = (x) => Math.min(Math.max(x, Number(box.min)), Number(box.max));
  return typed !== undefined && typed !== box.value && clamp(Number(typed)) === Number(box.value) ? typed : values[i];
}})
"""


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


def label_pickers(menu: ModelMenu, choice: str, digit: object) -> tuple[gr.Radio, gr.Radio]:
    """The Digits choice and the label picker for the models of `choice`: their words ("One number") and their
    label names (00 … 99 for two-digit numbers), keeping the label picked where the new models know it."""
    labels = menu.label_set(choice)
    modes = menu.mode_labels(choice)
    keep = isinstance(digit, int) and 0 <= digit < len(labels.names)
    return (gr.Radio(choices=[(modes[d], d) for d in DIGIT_MODES]),
            gr.Radio(choices=menu.label_choices(choice), value=digit if keep else min(3, len(labels.names) - 1),
                     label=f"Which {labels.word}"))


def theme() -> gr.themes.Theme:
    """A calm theme with system fonts only (nothing is fetched from the internet)."""
    system = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="orange", neutral_hue="slate", font=system, font_mono=mono)


def element_id(name: str) -> str:
    """A model's name as it may appear in an HTML id (folder names may hold any character)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def image_height(models: int) -> int:
    """The live images' height in pixels: side by side, two models' four images share the width and stay low
    (the first plot then fits a laptop's screen); one model's two are twice as wide, and as tall as that allows."""
    return 100 if models > 1 else 220


def _model_panel(handlers: Handlers, name: str, shown: bool, height: int) -> tuple[gr.Column, tuple[gr.Image, gr.Image]]:
    """One model's column: its title, and its θ and output images with the flow's captions."""
    display = handlers.bank.models[name].flow.display
    with gr.Column(visible=shown, min_width=260) as column:
        gr.Markdown(f"### {handlers.menu.titles[name]}", elem_classes=["model-title"])
        images = []
        with gr.Row(elem_classes=["model-images"]):  # θ and the output side by side
            for caption, view in ((display.theta_caption, "theta"), (display.output_caption, "output")):
                with gr.Column(min_width=0):
                    gr.Markdown(caption, elem_classes=["caption"])
                    images.append(
                        gr.Image(
                            label=caption, show_label=False, type="numpy", format="png", height=height, interactive=False,
                            buttons=["download", "fullscreen"], elem_classes=["pixelated"],
                            elem_id=f"{element_id(name)}-{view}",
                        )
                    )  # fmt: skip
    return column, (images[0], images[1])


def build(handlers: Handlers) -> gr.Blocks:
    """The Blocks app, its events wired to `handlers`."""
    menu = handlers.menu
    choices = menu.choices
    default_model = BOTH if BOTH in choices else menu.names[0]
    presets = [p for p in PRESETS if p.model in choices]
    # no delete_cache: `app.server.CacheSweeper` bounds the file cache by size as well as age
    with gr.Blocks(title="BFN Studio", analytics_enabled=False) as demo:
        gr.Markdown(
            "# BFN Studio\nWatch a [Bayesian Flow Network](https://arxiv.org/abs/2308.07037) (Graves et al. 2023) "
            "write MNIST digits: every pixel starts as a pure guess and becomes certain, step by step.",
            elem_id="header",
        )
        with gr.Accordion("What am I looking at?", open=False, elem_id="explain"):
            gr.Markdown(explanation(handlers.bank))
        # Four blocks (see CSS): on a wide screen the settings (#quick, #settings) stand left of the views (#live,
        # #views); on a phone they come in the order quick, live, settings, views, so that Generate and the live
        # images share the first screen. A new view is a tab in #views; a new setting goes in #settings.
        with gr.Row(equal_height=False, elem_id="studio"):
            with gr.Column(scale=1, min_width=300, elem_id="side"):
                with gr.Column(elem_id="quick"):
                    model = gr.Radio([(label, value) for value, label in choices.items()], value=default_model, label="Model", elem_id="model")
                    modes = menu.mode_labels(default_model)
                    digits = gr.Radio([(modes[d], d) for d in DIGIT_MODES], value="all", label="Digits", elem_id="digits")
                    digit = gr.Radio(menu.label_choices(default_model), value=min(3, menu.num_labels - 1), label=f"Which {menu.label_set(default_model).word}", visible=False, elem_id="digit")
                    with gr.Row():
                        generate_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn", scale=2, min_width=90)
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=1, min_width=60)
                    link = link_controls()  # "Copy link", and the link it copied
                with gr.Column(elem_id="settings"):
                    guidance = gr.Slider(
                        MIN_GUIDANCE, MAX_GUIDANCE, value=menu.recommended.guidance, step=0.5, label="Guidance",
                        info="0: ignore the digit · 1: plain conditional · higher: more typical digits",
                        elem_id="guidance",
                    )  # fmt: skip
                    steps = gr.Slider(MIN_STEPS, MAX_STEPS, value=menu.recommended.steps, step=1, label="Steps", elem_id="steps")
                    with gr.Group(elem_id="seed-card"), gr.Row(equal_height=True):
                        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", scale=3, min_width=120, elem_id="seed")
                        dice = gr.Button("Random", scale=1, size="sm", min_width=70, elem_id="dice", elem_classes=["compact-btn"])
                    sampler = gr.Dropdown(
                        list(SAMPLER_CHOICES), value=DEFAULT_SAMPLER, label="Sampler", elem_id="sampler",
                        info=f"recommended: each model's own ({menu.recommended.sampler}; {menu.recommended.few_steps_sampler} "
                        f"below {menu.recommended.few_steps_below} steps) · bfn: the paper's sampler · others: few-step solvers",
                    )  # fmt: skip
                    settings = [model, digits, digit, guidance, steps, seed, sampler]
                    examples = gr.Examples(
                        [p.inputs(menu) for p in presets], inputs=settings, example_labels=[p.label for p in presets],
                        label="Presets (click one: it runs at once)",
                    )  # fmt: skip
            with gr.Column(scale=3, elem_id="main-views"):
                with gr.Column(elem_id="live"):
                    status = gr.Markdown("Choose settings and press **Generate**.", elem_id="status")
                    pixel_click = gr.Textbox(visible="hidden", elem_id="pixel-click")  # written by PIXEL_CLICK_JS
                    columns, images = {}, {}
                    with gr.Row(equal_height=True):
                        for name in menu.names:
                            columns[name], images[name] = _model_panel(
                                handlers, name, name in menu.models(default_model), image_height(len(menu.models(default_model)))
                            )  # fmt: skip
                    with gr.Row(equal_height=True):
                        step_slider = gr.Slider(0, menu.recommended.steps, value=0, step=1, label="Step (drag to scrub)", scale=6, elem_id="step-slider")
                        play_btn = gr.Button("▶ Play", scale=1, size="sm", elem_id="play-btn", elem_classes=["compact-btn"])
                with gr.Tabs(elem_id="views") as tabs:
                    with gr.Tab("Pixel heatmap", id="heatmap"):
                        heatmap = gr.Plot(label="Pixel heatmap", show_label=False, elem_id="heatmap")
                    with gr.Tab("Pixel trajectories", id="trajectories"):
                        trajectories = gr.Plot(label="Pixel trajectories", show_label=False, elem_id="trajectories")
                        with gr.Row(equal_height=True):
                            px_image = gr.Number(value=0, precision=0, minimum=0, maximum=menu.num_labels - 1, label="Image", min_width=80, elem_id="px-image")
                            height, width = (max(s.shape[k] for s in menu.labels.values()) for k in (0, 1))
                            px_row = gr.Number(value=14, precision=0, minimum=0, maximum=height - 1, label="Row", min_width=80, elem_id="px-row")
                            px_col = gr.Number(value=14, precision=0, minimum=0, maximum=width - 1, label="Column", min_width=80, elem_id="px-col")
                            add_btn = gr.Button("Add / remove pixel", size="sm", elem_classes=["compact-btn"])
                            clear_btn = gr.Button("Clear pixels", size="sm", elem_classes=["compact-btn"])
                        gr.Markdown("<small>Or click a pixel in any image above (the heatmap then shows that image). Up to 8 pixels; choosing a pixel again removes it.</small>")
                    with gr.Tab("Step summary", id="summary"):
                        summary = gr.Plot(label="Step summary", show_label=False, elem_id="summary")
                    with gr.Tab("Which digit?", id="classifier"):
                        beliefs = gr.Plot(label="Which digit?", show_label=False, elem_id="digit-beliefs")
                        gr.Markdown(BELIEFS_CAPTION)
                    with gr.Tab("Export", id="export"):
                        with gr.Row():
                            gif_btn = gr.Button("Make animated GIF", elem_id="gif-btn")
                            png_btn = gr.Button("Make PNG of the final grid", elem_id="png-btn")
                        gr.Markdown(EXPORT_NOTE)
                        export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
                        export_preview = gr.Image(
                            label="Preview", type="filepath", interactive=False, show_label=True, elem_id="export-preview",
                            buttons=["fullscreen"], height=360,
                        )  # fmt: skip
                    duel = duel_tab(DuelHandlers(handlers), [model, digits, digit, guidance, seed], demo)
                    with gr.Tab("One update, in numbers", id="update"):
                        update_numbers = update_section()
                    with gr.Tab("One variable's flow", id="flow"):
                        explainer_section()  # no network: p_F(θ | x; t) of a single variable
        components = Views(
            status=status, images=images, slider=step_slider, heatmap=heatmap, trajectories=trajectories,
            summary=summary, beliefs=beliefs, columns=columns,
        )  # fmt: skip
        views, pixel_views = components.outputs(menu.names, SHOWN), components.outputs(menu.names, PIXEL)
        gen_args = dict(
            fn=handlers.generate,
            inputs=settings,
            outputs=components.outputs(menu.names, GENERATED),
            preprocess=False,  # raw values: every input is checked by parse_settings, with clear messages
            show_progress="minimal",
            concurrency_limit=handlers.max_concurrent,
            concurrency_id="generate",
        )
        gen_event = generate_btn.click(api_name="generate", js=typed_values_js(settings), **gen_args)
        preset_event = examples.load_input_event.then(api_visibility="private", **gen_args)
        play_event = play_btn.click(
            handlers.play, outputs=views, api_name="play", show_progress="hidden",
            concurrency_limit=handlers.max_concurrent, concurrency_id="play",
        )  # fmt: skip
        stop_btn.click(handlers.stop, outputs=views, api_name="stop", cancels=[gen_event, preset_event, play_event], concurrency_limit=None)
        step_slider.input(
            handlers.scrub, inputs=step_slider, outputs=views, api_name="scrub", preprocess=False,
            trigger_mode="always_last", show_progress="hidden", concurrency_limit=None,
        )  # fmt: skip
        pixel_click.change(
            handlers.click_pixel, inputs=pixel_click, outputs=[*pixel_views, px_image, px_row, px_col], api_visibility="private",
            trigger_mode="always_last", show_progress="hidden", concurrency_limit=None,
        )  # fmt: skip
        demo.load(None, js=PIXEL_CLICK_JS)
        demo.load(None, js=TYPED_JS)
        add_btn.click(handlers.add_pixel, inputs=[px_image, px_row, px_col], outputs=pixel_views, api_name="add_pixel", preprocess=False, concurrency_limit=None)
        clear_btn.click(handlers.clear_pixels, outputs=pixel_views, api_name="clear_pixels", concurrency_limit=None)
        for button, make, api_name in ((gif_btn, handlers.export_gif, "export_gif"), (png_btn, handlers.export_png, "export_png")):
            button.click(make, outputs=export_file, api_name=api_name, concurrency_limit=2, concurrency_id="export").then(
                lambda path: path, inputs=export_file, outputs=export_preview, api_visibility="private", show_progress="hidden",
            )  # the file just made, shown (a GIF plays)  # fmt: skip
        dice.click(None, js=f"() => Math.floor(Math.random() * {MAX_SEED})", outputs=seed)
        def show_models(m: str, d: int) -> list:
            """The chosen models' columns, their images as large as the columns' number allows, the digits."""
            names, height = menu.models(m), image_height(len(menu.models(m)))
            views = Views(columns={name: gr.Column(visible=name in names) for name in menu.names},
                          images={name: (gr.Image(height=height), gr.Image(height=height)) for name in menu.names})  # fmt: skip
            return [*views.outputs(menu.names, ("columns", "images")), *label_pickers(menu, m, d)]

        model.change(
            show_models, inputs=[model, digit], outputs=[*components.outputs(menu.names, ("columns", "images")), digits, digit], queue=False,
            api_visibility="private", show_progress="hidden",
        )  # fmt: skip
        digits.change(lambda d: gr.Radio(visible=d == "one"), inputs=digits, outputs=digit, queue=False, api_visibility="private", show_progress="hidden")
        gr.on(  # the update in numbers follows the step on show and the pixels (the trajectories figure follows both)
            [step_slider.change, trajectories.change], update_handler(handlers), outputs=list(update_numbers),
            api_name="update_numbers", trigger_mode="always_last", show_progress="hidden", concurrency_limit=None,
        )  # fmt: skip
        digit_section(DigitHandlers(handlers), demo)  # "Your digit through the BFN", below the generation views
        wire_links(handlers, demo, settings, components.outputs(menu.names, GENERATED), duel, tabs, link)
        demo.unload(handlers.forget)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def build_app(bank: ModelBank, **kwargs) -> gr.Blocks:
    """The app for `bank`; `kwargs` go to `Handlers` (stream pacing, concurrency)."""
    return build(Handlers(bank, **kwargs))

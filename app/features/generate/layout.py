"""The generation's part of the page: the settings, the live images and the views' tabs, and which handler each
event runs (`handlers.GenerateHandlers`). Everything a model's panel says about it (title, captions) is read from
the loaded models, so one panel is built per loaded model.

Public API endpoints (stable names, for `gradio_client`):
    /generate       (model, digits, digit, guidance, steps, seed, sampler, autoguidance) → streamed views; ends with the final
    /stop           stop this session's run; → the views at its last step
    /scrub          (step) → the views at that step
    /play           → streamed views from the step on show to the end
    /add_pixel      (image, row, col) → heatmap, trajectories, digit view (toggles the pixel)
    /clear_pixels   → heatmap, trajectories, digit view
    /export_gif     → the run as an animated GIF file
    /export_png     → the final grid as a PNG file
Views are, in order (`handlers.Views`): status (Markdown), θ and output images of each loaded model in turn
(None for a model not in the run), the step slider, and four Plotly figures (pixel heatmap, pixel trajectories,
step summary, and which digit the classifier sees per step). The digit view of /add_pixel and /clear_pixels
shows the image chosen last.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import gradio as gr

from app.core.menu import BOTH, DIGIT_MODES, ModelMenu
from app.core.settings import (
    AUTOGUIDANCE_WEIGHTS, DEFAULT_SAMPLER, MAX_APP_STEPS, MAX_GUIDANCE, MAX_SEED, MIN_GUIDANCE, MIN_STEPS, RECOMMENDED,
    SAMPLER_CHOICES, parse_choice, parse_int, parse_settings,
)  # fmt: skip
from app.features.generate.handlers import GENERATED, PIXEL, SHOWN, GenerateHandlers, Views
from app.features.generate.words import BELIEFS_CAPTION, EXPORT_NOTE, PRESETS, Preset, autoguidance_words, sampler_info
from app.ui.assets import script
from app.ui.context import Context, Linked, Page
from app.ui.files import AtomicImage
from app.ui.views import parsed

SETTINGS = ("model", "digits", "digit", "guidance", "steps", "seed", "sampler", "autoguidance")  # the generation's settings, in widget order


def label_pickers(menu: ModelMenu, choice: str, digit: object, digits: str | None = None) -> tuple[gr.Radio, gr.Radio]:
    """The Digits choice and the label picker for the models of `choice`: their words ("One number") and their
    label names (00 … 99 for two-digit numbers). The picker keeps its label where the new models know it: no
    value is sent then, as `digit`, read when the model changed, may be older than the label on show (a link sets
    both at once); else it takes a default label. With `digits` (a link's), both are set: to `digits` and `digit`."""
    labels = menu.label_set(choice)
    modes = menu.mode_labels(choice)
    keep = isinstance(digit, int) and 0 <= digit < len(labels.names)
    mode = {} if digits is None else {"value": digits}
    label = {} if keep and digits is None else {"value": digit if keep else min(3, len(labels.names) - 1)}
    return (gr.Radio(choices=[(modes[d], d) for d in DIGIT_MODES], **mode),
            gr.Radio(choices=menu.label_choices(choice), label=f"Which {labels.word}", **label))


def shown_settings(menu: ModelMenu, values: Mapping[str, Any]) -> dict[str, Any]:
    """The generation's settings of a link as the page shows them: the Digits choice and the picker in the words
    and labels of the link's model. A number 42 is no choice of the picker the page opens with (the first
    model's digits 0–9): set alone, Gradio would refuse it in every event that reads the picker."""
    modes, picker = label_pickers(menu, values["model"], values["digit"], values["digits"])
    return {**{key: values[key] for key in SETTINGS}, "digits": modes, "digit": picker}


def element_id(name: str) -> str:
    """A model's name as it may appear in an HTML id (folder names may hold any character)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def image_height(models: int) -> int:
    """The live images' height in pixels: side by side, two models' four images share the width and stay low
    (the first plot then fits a laptop's screen); one model's two are twice as wide, and as tall as that allows."""
    return 100 if models > 1 else 220


def _model_panel(ctx: Context, name: str, shown: bool, height: int) -> tuple[gr.Column, tuple[gr.Image, gr.Image]]:
    """One model's column: its title, and its θ and output images with the flow's captions."""
    display = ctx.bank.models[name].flow.display
    with gr.Column(visible=shown, min_width=260) as column:
        gr.Markdown(f"### {ctx.menu.titles[name]}", elem_classes=["model-title"])
        images = []
        with gr.Row(elem_classes=["model-images"]):  # θ and the output side by side
            for caption, view in ((display.theta_caption, "theta"), (display.output_caption, "output")):
                with gr.Column(min_width=0):
                    gr.Markdown(caption, elem_classes=["caption"])
                    images.append(
                        AtomicImage(
                            label=caption, show_label=False, type="numpy", format="png", height=height, interactive=False,
                            buttons=["download", "fullscreen"], elem_classes=["pixelated", "icons-above"],
                            elem_id=f"{element_id(name)}-{view}",
                        )
                    )  # fmt: skip
    return column, (images[0], images[1])


def _settings(ctx: Context, default_model: str) -> dict:
    """#quick and #settings: the settings' widgets by name, the Generate, Stop, Random and Copy link buttons, the
    link's box and the presets."""
    menu = ctx.menu
    modes = menu.mode_labels(default_model)
    with gr.Column(elem_id="quick"):
        model = gr.Radio([(label, value) for value, label in menu.choices.items()], value=default_model, label="Model", elem_id="model")
        digits = gr.Radio([(modes[d], d) for d in DIGIT_MODES], value="all", label="Digits", elem_id="digits")
        digit = gr.Radio(menu.label_choices(default_model), value=min(3, menu.num_labels - 1), label=f"Which {menu.label_set(default_model).word}",
                         visible=False, elem_id="digit")  # fmt: skip
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", elem_id="generate-btn", scale=2, min_width=90)
            stop = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=1, min_width=60)
        copy = gr.Button("Copy link", size="sm", elem_id="copy-link-btn")  # the links feature wires it
        link = gr.Textbox(label="Link to these settings", interactive=False, visible=False, buttons=["copy"], elem_id="share-link")
    with gr.Column(elem_id="settings"):
        guidance = gr.Slider(
            MIN_GUIDANCE, MAX_GUIDANCE, value=menu.recommended.guidance, step=0.5, label="Guidance",
            info="0: ignore the digit · 1: plain conditional · higher: more typical digits", elem_id="guidance",
        )  # fmt: skip
        steps = gr.Slider(MIN_STEPS, MAX_APP_STEPS, value=menu.recommended.steps, step=1, label="Steps", elem_id="steps")
        with gr.Group(elem_id="seed-card"), gr.Row(equal_height=True):
            seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", scale=3, min_width=120, elem_id="seed")
            dice = gr.Button("Random", scale=1, size="sm", min_width=70, elem_id="dice", elem_classes=["compact-btn"])
        sampler = gr.Dropdown(
            list(SAMPLER_CHOICES), value=DEFAULT_SAMPLER, label="Sampler", elem_id="sampler",
            info=sampler_info(menu, default_model),
        )  # fmt: skip
        autoguidance = gr.Dropdown(
            [(f"{RECOMMENDED}", RECOMMENDED), *((f"{w} (off)" if w == "1" else w, w) for w in AUTOGUIDANCE_WEIGHTS)],
            value=RECOMMENDED, label="Autoguidance", elem_id="autoguidance", allow_custom_value=True,
            info="w > 1 pushes each prediction away from the model's guide, a smaller, less trained version of it; "
            + autoguidance_words(ctx.bank),
        )  # fmt: skip
        widgets = dict(zip(SETTINGS, (model, digits, digit, guidance, steps, seed, sampler, autoguidance)))
        presets = gr.Dataset(
            components=list(widgets.values()), samples=[p.inputs(menu) for p in offered_presets(menu)], type="index",
            sample_labels=[p.label for p in offered_presets(menu)], label="Presets (click one: it runs at once)",
        )  # fmt: skip
    return {"settings": widgets, "generate": generate, "stop": stop, "dice": dice, "presets": presets, "links": (copy, link)}


def offered_presets(menu: ModelMenu) -> list[Preset]:
    """The presets whose model this server has loaded, in their order."""
    return [p for p in PRESETS if p.model in menu.choices]


def load_preset(menu: ModelMenu, index: Any) -> list:
    """The settings of the preset clicked (its index among those offered), for the settings' widgets; what a
    client sends that is not a preset's index is told in the app's words (as gr.Examples' loader did not)."""
    presets = offered_presets(menu)
    return presets[parsed(parse_int, "preset", index, 0, len(presets) - 1)].inputs(menu)


@contextmanager
def studio(ctx: Context, page: Page) -> Iterator[None]:
    """Build the generation inside the open Blocks: settings left of the live images and the views' tabs; the
    caller adds its tabs after the generation's own while inside the block; then the events are wired.

    Four blocks (see style.css): on a wide screen the settings (#quick, #settings) stand left of the views (#live,
    #views); on a phone they come in the order quick, live, settings, views, so that Generate and the live images
    share the first screen. A new view is a tab in #views; a new setting goes in #settings.
    """
    handlers, menu = GenerateHandlers(ctx), ctx.menu
    default_model = BOTH if BOTH in menu.choices else menu.names[0]
    with gr.Row(equal_height=False, elem_id="studio"):
        with gr.Column(scale=1, min_width=300, elem_id="side"):
            parts = _settings(ctx, default_model)
            settings = list(parts["settings"].values())
        with gr.Column(scale=3, elem_id="main-views"):
            with gr.Column(elem_id="live"):
                status = gr.Markdown("Choose settings and press **Generate**.", elem_id="status")
                pixel_click = gr.Textbox(visible="hidden", elem_id="pixel-click")  # written by page.js's followClicks
                columns, images = {}, {}
                shown = menu.models(default_model)
                with gr.Row(equal_height=True):
                    for name in menu.names:
                        columns[name], images[name] = _model_panel(ctx, name, name in shown, image_height(len(shown)))
                with gr.Row(equal_height=True):
                    step_slider = gr.Slider(0, menu.recommended.steps, value=0, step=1, label="Step (drag to scrub)", scale=6, elem_id="step-slider")
                    play_btn = gr.Button("▶ Play", scale=1, size="sm", elem_id="play-btn", elem_classes=["compact-btn"])
            with gr.Tabs(elem_id="views", overflow_behavior="wrap") as tabs:  # every view one click away, in place
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
                components = Views(status=status, images=images, slider=step_slider, heatmap=heatmap, trajectories=trajectories,
                                   summary=summary, beliefs=beliefs, columns=columns)  # fmt: skip
                generated = components.outputs(menu.names, GENERATED)
                page.settings, page.views, page.tabs, page.link_controls = parts["settings"], components, tabs, parts["links"]
                page.linked.append(Linked(  # first: a link's fields start with the generation's settings
                    fields=parts["settings"], tab=None, check=lambda values: _check(menu, values),
                    run=lambda values, request: handlers.generate(*(values[k] for k in SETTINGS), request), outputs=generated,
                    show=lambda values: shown_settings(menu, values),
                    implied={"model": lambda values: {"guidance": menu.recommended_for(values["model"]).guidance}},  # as a choice
                ))  # fmt: skip
                yield  # the page's other tabs
    views, pixel_views = components.outputs(menu.names, SHOWN), components.outputs(menu.names, PIXEL)
    gen_args = dict(
        fn=handlers.generate, inputs=settings, outputs=generated,
        preprocess=False,  # raw values: every input is checked by parse_settings, with clear messages
        show_progress="minimal", concurrency_limit=ctx.max_concurrent, concurrency_id="generate",
    )  # fmt: skip
    ids = [s.elem_id if isinstance(s, gr.Slider) else None for s in settings]
    gen_event = parts["generate"].click(api_name="generate", js=script("typedValues", ids), **gen_args)
    preset_event = parts["presets"].click(
        functools.partial(load_preset, menu), inputs=parts["presets"], outputs=settings, preprocess=False, queue=False,
        api_name="load_preset", api_visibility="private", show_progress="hidden",
    ).then(api_visibility="private", **gen_args)  # fmt: skip
    play_event = play_btn.click(
        handlers.play, outputs=views, api_name="play", show_progress="hidden",
        concurrency_limit=ctx.max_concurrent, concurrency_id="play",
    )  # fmt: skip
    parts["stop"].click(handlers.stop, outputs=views, api_name="stop", cancels=[gen_event, preset_event, play_event], concurrency_limit=None)
    step_slider.input(
        handlers.scrub, inputs=step_slider, outputs=views, api_name="scrub", preprocess=False,
        trigger_mode="always_last", show_progress="hidden", concurrency_limit=None,
    )  # fmt: skip
    pixel_click.change(
        handlers.click_pixel, inputs=pixel_click, outputs=[*pixel_views, px_image, px_row, px_col], api_visibility="private",
        trigger_mode="always_last", show_progress="hidden", concurrency_limit=None, preprocess=False,
    )  # fmt: skip
    page.demo.load(None, js=script("followClicks"))
    page.demo.load(None, js=script("rememberTyped"))
    add_btn.click(handlers.add_pixel, inputs=[px_image, px_row, px_col], outputs=pixel_views, api_name="add_pixel", preprocess=False, concurrency_limit=None)
    clear_btn.click(handlers.clear_pixels, outputs=pixel_views, api_name="clear_pixels", concurrency_limit=None)
    for button, make, api_name in ((gif_btn, handlers.export_gif, "export_gif"), (png_btn, handlers.export_png, "export_png")):
        suffix = api_name.removeprefix("export_")
        button.click(make, outputs=export_file, api_name=api_name, concurrency_limit=2, concurrency_id="export").then(
            handlers.preview_of(suffix), outputs=export_preview, api_visibility="private", show_progress="hidden",
        )  # the file just made, shown (a GIF plays); read on the server, not taken from the caller  # fmt: skip
    parts["dice"].click(None, js=script("randomSeed", MAX_SEED), outputs=parts["settings"]["seed"])
    _wire_model_choice(ctx, page, components)
    page.settings["model"].input(  # the user's choice only: a link's or a preset's model comes with its own guidance
        handlers.switch_model, inputs=page.settings["model"], outputs=[*views, page.settings["guidance"]], api_visibility="private",
        show_progress="hidden", concurrency_limit=None, preprocess=False,  # no `cancels`: it would cancel a run started after
    )  # fmt: skip


def _check(menu: ModelMenu, values: dict) -> dict:
    """The settings of a link, checked as Generate checks them and typed as the widgets hold them."""
    s = parse_settings(*(values[k] for k in SETTINGS), menu=menu)
    typed = {key: getattr(s, key) for key in SETTINGS}
    return {**typed, "autoguidance": RECOMMENDED if s.autoguidance is None else f"{s.autoguidance:g}"}


def _wire_model_choice(ctx: Context, page: Page, components: Views) -> None:
    """Choosing a model shows its columns, its images as large as the columns' number allows, its labels and what
    the recommended sampler runs for it; choosing "One digit" shows the label picker."""
    menu, model, digits, digit = ctx.menu, page.settings["model"], page.settings["digits"], page.settings["digit"]

    def show_models(m: Any, d: Any) -> list:
        m = parsed(parse_choice, "model", m, tuple(menu.choices))  # the raw value (`preprocess=False`): any caller's
        names, height = menu.models(m), image_height(len(menu.models(m)))
        views = Views(columns={name: gr.Column(visible=name in names) for name in menu.names},
                      images={name: (gr.Image(height=height), gr.Image(height=height)) for name in menu.names})  # fmt: skip
        return [*views.outputs(menu.names, ("columns", "images")), *label_pickers(menu, m, d), gr.Dropdown(info=sampler_info(menu, m))]

    model.change(
        show_models, inputs=[model, digit], outputs=[*components.outputs(menu.names, ("columns", "images")), digits, digit, page.settings["sampler"]],
        queue=False, api_visibility="private", show_progress="hidden", preprocess=False,
    )  # fmt: skip
    digits.change(lambda d: gr.Radio(visible=d == "one"), inputs=digits, outputs=digit, queue=False, api_visibility="private",
                  show_progress="hidden", preprocess=False)  # fmt: skip

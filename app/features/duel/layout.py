"""The "Sampler duel" tab: its components, its words, and which handler each event runs (`handlers.DuelHandlers`).

The page opens the tab among the generation's views; the model, digits, guidance and seed are the page's own
settings, the duel adds a sampler and a step count per side, and a link with the duel open restores and runs
it (`app.ui.context.Linked`).

Public API endpoints (stable names, for `gradio_client`):
    /duel        (model, digits, digit, guidance, seed, left_sampler, left_steps, right_sampler, right_steps)
                 → streamed views, both sides at the latest t both have reached; ends with t = 1
    /duel_scrub  (t) → both sides at t: each at its latest step at or before t
    /duel_stop   → stop both sides; their views where they got to
Views are, in order (`handlers.DuelViews`): status, the left and right captions (Markdown), per model its
left θ, left output, right θ and right output images (and, from /duel only, its left and right groups),
the t slider and the timeline figure.
"""

from __future__ import annotations

import gradio as gr

from app.core.settings import MAX_APP_STEPS, MIN_STEPS, SAMPLER_CHOICES
from app.features.duel.handlers import DUEL_FIELDS, DUELED, SHOWN, SIDES, DuelHandlers, DuelViews, check, duel_defaults
from app.ui.context import Context, Linked, Page
from app.ui.files import AtomicImage

DUEL_TAB = "duel"  # the tab's id: links name it

INTRO = (
    "<small>The same model, digits, guidance and seed (the page's Model, Digits, Guidance and Seed) through two samplers. Their steps "
    "fall at different times, so one clock drives both: at any t each side shows its latest step at or before "
    "t, and says which.</small>"
)


def _short(caption: str) -> str:
    """A view's caption without its details ("**Input distribution θ**: mean μ, …" → "Input distribution θ"): four
    pictures share a row here, and the panels above say the rest."""
    return caption.split(":")[0]


def build(ctx: Context, page: Page) -> None:
    """Build the tab's content inside the open tab and wire its events; it shares the page's model, digits, digit,
    guidance and seed."""
    duel = DuelHandlers(ctx)
    menu, names = ctx.menu, ctx.menu.names
    shared = [page.settings[k] for k in ("model", "digits", "digit", "guidance", "seed")]
    defaults = duel_defaults(menu)
    views = DuelViews(images={}, groups={})
    gr.Markdown(INTRO)
    inputs = []
    with gr.Row(equal_height=True):
        for side in SIDES:
            inputs.append(gr.Dropdown(list(SAMPLER_CHOICES), value=defaults[f"{side}_sampler"], label=f"{side.capitalize()}: sampler",
                                      min_width=120, elem_id=f"duel-{side}-sampler"))  # fmt: skip
            inputs.append(gr.Number(value=defaults[f"{side}_steps"], precision=0, minimum=MIN_STEPS, maximum=MAX_APP_STEPS,
                                    label=f"{side.capitalize()}: steps", min_width=90, elem_id=f"duel-{side}-steps"))  # fmt: skip
        with gr.Column(min_width=140):
            run_btn = gr.Button("Run the duel", variant="primary", elem_id="duel-btn")
            stop_btn = gr.Button("Stop", variant="stop", size="sm", elem_id="duel-stop-btn")
    views.status = gr.Markdown("Choose two samplers and press **Run the duel**.", elem_id="duel-status")
    views.slider = gr.Slider(0, 1, value=0, step=0.001, label="t — one clock for both runs (drag to scrub)", elem_id="duel-t")
    images: dict[str, list] = {name: [] for name in names}
    groups: dict[str, list] = {name: [] for name in names}
    with gr.Row(equal_height=False):
        for side in SIDES:
            with gr.Column(min_width=260):
                setattr(views, side, gr.Markdown(f"**{side.capitalize()}**", elem_id=f"duel-{side}-caption"))
                for name in names:
                    display = ctx.bank.models[name].flow.display
                    with gr.Column() as group:
                        gr.Markdown(f"**{menu.titles[name]}**", elem_classes=["caption"])
                        with gr.Row():
                            for caption, view in ((display.theta_caption, "theta"), (display.output_caption, "output")):
                                with gr.Column(min_width=120):
                                    gr.Markdown(_short(caption), elem_classes=["caption"])
                                    images[name].append(AtomicImage(
                                        label=caption.replace("**", ""), show_label=False, type="numpy", format="png", height=200,
                                        interactive=False, buttons=["fullscreen"], elem_classes=["digit-pixels", "icons-above"],  # not "pixelated": a click here follows no pixel
                                        elem_id=f"duel-{side}-{name}-{view}", placeholder="Run the duel",
                                    ))  # fmt: skip
                    groups[name].append(group)
    views.images = {name: tuple(images[name]) for name in names}
    views.groups = {name: tuple(groups[name]) for name in names}
    views.timeline = gr.Plot(label="When each side's steps fall", show_label=False, elem_id="duel-timeline")
    outputs, shown = views.outputs(names, DUELED), views.outputs(names, SHOWN)
    run_event = run_btn.click(
        duel.duel, inputs=[*shared, *inputs], outputs=outputs, api_name="duel", preprocess=False,
        concurrency_limit=2, concurrency_id="duel", show_progress="minimal",
    )  # fmt: skip
    stop_btn.click(duel.stop, outputs=shown, api_name="duel_stop", cancels=[run_event], concurrency_limit=None)
    views.slider.input(
        duel.scrub, inputs=views.slider, outputs=shown, api_name="duel_scrub", preprocess=False,
        trigger_mode="always_last", show_progress="hidden", concurrency_limit=None,
    )  # fmt: skip
    page.linked.append(Linked(
        fields=dict(zip(DUEL_FIELDS, inputs)), tab=DUEL_TAB, check=lambda values: check(values, menu), outputs=outputs,
        run=lambda v, request: duel.duel(*(v[k] for k in ("model", "digits", "digit", "guidance", "seed", *DUEL_FIELDS)), request),
    ))  # fmt: skip

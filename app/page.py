"""The page: the features of BFN Studio, put together. Each feature builds its own part and wires its own events
(`app.features`); they share the app's `Context` and the `Page` being built, never each other's handlers.

To add a tab among the views: a feature of its own with a `Tab` (title, id, build), and one entry in `TABS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import gradio as gr

from app.features import digit, duel, explainer, links, update
from app.features.generate.layout import studio
from app.features.generate.words import HEADER, explanation
from app.ui.context import Context, Page, Tab

TABS: tuple[Tab, ...] = (duel.TAB, update.TAB, explainer.TAB)  # after the generation's own views, in this order
QUEUE_SIZE = 32  # requests waiting beyond that are refused with "queue full"


def build(ctx: Context, tabs: Sequence[Tab] = TABS) -> gr.Blocks:
    """The Blocks app on `ctx`, with `tabs` among the generation's views."""
    return assemble(ctx, tabs).demo


def assemble(ctx: Context, tabs: Sequence[Tab] = TABS) -> Page:
    """The page on `ctx`, with `tabs` among the generation's views: its Blocks, its shared components, and what
    its links restore."""
    # no delete_cache: `app.server.CacheSweeper` bounds the file cache by size as well as age
    with gr.Blocks(title="BFN Studio", analytics_enabled=False) as demo:
        page = Page(demo)
        gr.Markdown(HEADER, elem_id="header")
        with gr.Accordion("What am I looking at?", open=False, elem_id="explain"):
            gr.Markdown(explanation(ctx.bank))
        with studio(ctx, page):
            for tab in tabs:
                with gr.Tab(tab.title, id=tab.id):
                    tab.build(ctx, page)
        digit.build(ctx, page)  # "Your digit through the BFN", below the generation
        links.build(ctx, page)  # the page's address follows its settings; a link restores them
        demo.unload(ctx.forget)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return page


def theme() -> gr.themes.Theme:
    """A calm theme with system fonts only (nothing is fetched from the internet)."""
    system = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="orange", neutral_hue="slate", font=system, font_mono=mono)

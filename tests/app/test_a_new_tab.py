"""Adding a tab is one feature and one entry in the page's tabs (the README's recipe, "Layout"): a toy feature,
defined here and nowhere else, gets the app's context and the page, shows its view among the views' tabs,
answers its own API event from the context's store, and a link can name its tab."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from app.core.settings import parse_settings
from app.features.links import read_link
from app.page import TABS, assemble
from app.ui.context import Context, Page, Tab
from tests.support.apps import context


def build_toy(ctx: Context, page: Page) -> None:
    """The toy tab: how far the caller's generation got, on request (it reads the context, never a handler)."""
    shown = gr.Markdown("Press Count.", elem_id="toy-count")

    def count(request: gr.Request) -> str:
        run = ctx.session(request).run
        return "no generation yet" if run is None else f"{run.latest} of {run.num_steps} steps"

    gr.Button("Count", elem_id="toy-btn").click(count, outputs=shown, api_name="toy_count")


TOY = Tab("Toy", "toy", build_toy)  # the feature; the one entry is `(*TABS, TOY)` below


def test_a_new_tab_is_one_feature_and_one_entry_in_the_tabs(discrete_model):
    ctx = context({"discrete": discrete_model})
    try:
        page = assemble(ctx, (*TABS, TOY))
        tabs = [tab.id for tab in page.tabs.children if isinstance(tab, gr.Tab)]
        assert tabs[-1] == "toy" and {"heatmap", "duel", "update", "flow"} <= set(tabs)
        ids = {getattr(block, "elem_id", None) for block in page.demo.blocks.values()}
        assert {"toy-count", "toy-btn", "generate-btn", "duel-btn", "score-btn"} <= ids  # beside every other feature
        count = next(fn.fn for fn in page.demo.fns.values() if fn.api_name == "toy_count")
        request = SimpleNamespace(session_hash="toy")
        assert count(request) == "no generation yet"
        settings = parse_settings("discrete", "one", 3, 1.0, 4, 0, "bfn", menu=ctx.menu)
        ctx.store.start_run("toy", settings, ctx.bank.models).join(30)
        assert count(request) == "4 of 4 steps"
        defaults = {k: c.value for entry in page.linked for k, c in entry.fields.items()}
        link = read_link({"tab": "toy"}, defaults, tabs, page.linked)
        assert link.tab == "toy" and not link.problems  # a link opens the new tab
    finally:
        ctx.close()

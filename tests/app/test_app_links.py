"""Shareable links (`app.links`): a link's query reads back as the settings it was written from, and every bad
value in a query is told by name while the good ones are restored and nothing runs."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qsl

import gradio as gr
import numpy as np
import pytest

from app.features.duel.handlers import DUEL_FIELDS, duel_defaults
from app.features.duel.layout import DUEL_TAB
from app.features.generate.handlers import GenerateHandlers
from app.features.generate.layout import SETTINGS
from app.features.links import LinkHandlers, fields, link_query, problems_message, read_link
from app.page import assemble
from tests.support.apps import context

TABS = ("heatmap", "trajectories", "classifier", DUEL_TAB)
FIELDS = (*SETTINGS, *DUEL_FIELDS)  # every field a link may hold: the generation's settings, then the duel's


@pytest.fixture(scope="module")
def ctx(discrete_model, continuous_model):
    ctx = context({"discrete": discrete_model, "continuous": continuous_model}, stream_interval=0.0, plot_interval=0.0)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def linked(ctx):
    """What the page's features register for its links (the generation's settings, the duel's)."""
    return assemble(ctx).linked


@pytest.fixture(scope="module")
def defaults(ctx):
    return {"model": "both", "digits": "all", "digit": 3, "guidance": 1.8, "steps": 100, "seed": 0, "sampler": "recommended",
            "autoguidance": "recommended", **duel_defaults(ctx.menu)}  # fmt: skip


def read(query: str, defaults, linked):
    return read_link(dict(parse_qsl(query, keep_blank_values=True)), defaults, TABS, linked)  # as Starlette reads a query


@pytest.mark.parametrize(
    "changes, tab",
    [
        ({}, "heatmap"),
        ({"model": "continuous", "digits": "one", "digit": 7, "guidance": 2.5, "steps": 37, "seed": 2**32 - 1, "sampler": "ode2"}, "classifier"),
        ({"model": "discrete", "digits": "none", "guidance": 0.0, "steps": 1, "sampler": "bfn"}, "trajectories"),
        ({"model": "discrete", "digits": "none", "autoguidance": "2.5"}, "heatmap"),
        ({"guidance": 1.8000000000000003, "left_sampler": "sde1", "left_steps": 1000, "right_sampler": "recommended", "right_steps": 3}, DUEL_TAB),
    ],
)
def test_a_link_reads_back_as_the_settings_it_was_written_from(ctx, linked, defaults, changes, tab):
    values = {**defaults, **changes}
    query = link_query(values, tab, linked)
    link = read(query, {**defaults, "seed": 99, "steps": 5, "model": "discrete"}, linked)  # other defaults: the link decides
    assert link.runs and link.tab == tab and not link.problems
    shown = {k: link.values[k] for k in FIELDS} if tab == DUEL_TAB else {k: link.values[k] for k in FIELDS if not k.startswith(("left", "right"))}
    assert shown == {k: values[k] for k in shown}
    assert all(type(link.values[k]) is type(values[k]) for k in shown)  # typed as the widgets hold them
    assert link_query(link.values, tab, linked) == query


def test_a_link_names_every_setting_and_the_duel_only_with_the_duel_open(linked, defaults):
    keys = [k for k, _ in parse_qsl(link_query(defaults, "heatmap", linked))]
    assert keys == ["model", "digits", "digit", "guidance", "steps", "seed", "sampler", "autoguidance", "tab"]
    assert [k for k, _ in parse_qsl(link_query(defaults, DUEL_TAB, linked))][8:] == ["left_sampler", "left_steps", "right_sampler", "right_steps", "tab"]
    assert "guidance=1.8&" in link_query(defaults, "heatmap", linked) and "guidance=3&" in link_query({**defaults, "guidance": 3.0}, "heatmap", linked)


def test_a_bare_address_restores_nothing(ctx, linked, defaults):
    for query in ("", "__theme=dark", "view=api&__theme=light"):
        link = read(query, defaults, linked)
        assert not link.named and not link.runs and not link.problems and link.values == defaults and link.tab is None


@pytest.mark.parametrize(
    "query, message",
    [
        ("steps=5000", "steps must be from 1 to 1000; got '5000'"),
        ("steps=2.5", "steps must be a whole number from 1 to 1000; got '2.5'"),
        ("guidance=25", "guidance must be from 0 to 10; got '25'"),
        ("guidance=nan", "guidance must be a finite number from 0 to 10; got 'nan'"),
        ("seed=-1", "seed must be from 0 to 4294967295; got '-1'"),
        ("seed=" + "9" * 500, "seed must be a finite number from 0 to 4294967295; got '" + "9" * 58),
        ("digit=10", "digit must be from 0 to 9; got '10'"),
        ("model=nope", "model must be one of 'discrete', 'continuous', 'both'; got 'nope'"),
        ("digits=some", "digits must be one of 'all', 'one', 'none'; got 'some'"),
        ("sampler=fast", "sampler must be one of 'recommended', "),
        ("right_steps=0", "right steps must be from 1 to 1000; got '0'"),
        ("left_sampler=", "left sampler must be one of 'recommended', "),
        ("tab=nowhere", "tab must be one of 'heatmap', 'trajectories', 'classifier', 'duel'; got 'nowhere'"),
        ("step=100", "'step': not a setting of this page (a link holds model, digits, "),
    ],
)
def test_a_bad_value_is_told_by_name_and_the_others_are_restored(ctx, linked, defaults, query, message):
    key = query.split("=")[0]
    good = {k: v for k, v in (("model", "discrete"), ("seed", 5), ("tab", "classifier")) if k != key}
    link = read(f"{query}&" + "&".join(f"{k}={v}" for k, v in good.items()), defaults, linked)
    assert not link.runs and len(link.problems) == 1 and link.problems[0].startswith(message), link.problems
    assert all((link.tab if k == "tab" else link.values[k]) == v for k, v in good.items())  # the good values are kept ...
    if key in defaults:
        assert link.values[key] == defaults[key]  # ... and the bad one left at its default


def test_every_bad_value_of_a_link_is_told(ctx, linked, defaults):
    link = read("steps=0&guidance=-1&seed=x&tab=x&a=1&b=2&c=3&d=4&e=5&f=6", defaults, linked)
    assert [p.split(" ")[0] for p in link.problems] == ["guidance", "steps", "seed", "tab", "'a',"]
    assert link.problems[-1].startswith("'a', 'b', 'c', 'd', 'e', …: not a setting")
    assert link.values == defaults


@pytest.fixture(scope="module")
def links(linked, defaults):
    return LinkHandlers(linked, defaults, TABS)


def test_a_link_with_a_bad_value_says_so_and_runs_nothing(ctx, links):
    request = SimpleNamespace(session_hash="bad-link", query_params={"model": "discrete", "steps": "5000"})
    updates = list(links.restore(request))
    assert len(updates) == 1
    widgets, status = updates[0][: len(FIELDS)], updates[0][len(FIELDS) + 2]
    assert widgets[0] == "discrete" and widgets[4] == 100  # model restored, steps left at its default
    assert status == problems_message(["steps must be from 1 to 1000; got '5000'"])
    assert ctx.store.get("bad-link").run is None


def test_a_link_runs_what_the_same_settings_run_by_hand(ctx, linked, links):
    settings = {"model": "discrete", "digits": "one", "digit": 4, "guidance": 2.0, "steps": 6, "seed": 11, "sampler": "bfn",
                "autoguidance": "2"}
    query = link_query({**links.defaults, **settings}, "heatmap", linked)
    request = SimpleNamespace(session_hash="from-link", query_params=dict(parse_qsl(query)))
    updates = list(links.restore(request))
    assert updates[0][: len(FIELDS)] == [{**links.defaults, **settings}[k] for k in FIELDS]
    by_link = ctx.store.get("from-link").run
    by_hand = list(GenerateHandlers(ctx).generate(*settings.values(), SimpleNamespace(session_hash="by-hand")))
    assert "Done" in updates[-1][len(FIELDS) + 2] and "Done" in by_hand[-1][0]
    np.testing.assert_array_equal(by_link.frames["discrete"].sample, ctx.store.get("by-hand").run.frames["discrete"].sample)
    start = len(FIELDS) + 2  # the /generate views follow the widgets
    for shown_by_link, shown_by_hand in zip(updates[-1][start + 1 : start + 5], by_hand[-1][1:5]):  # both models' images
        np.testing.assert_array_equal(shown_by_link, shown_by_hand)


def test_the_query_of_settings_being_typed_leaves_the_address_as_it_is(links, linked, defaults):
    values = [defaults[k] for k in FIELDS]
    assert links.query(*values, "classifier") == link_query(defaults, "classifier", linked)
    values[FIELDS.index("steps")] = 5000
    assert links.query(*values, "classifier") == gr.skip()
    with pytest.raises(gr.Error, match="steps must be from 1 to 1000"):
        links.copy(*values, "classifier")


def test_a_links_values_are_quoted_literally_in_the_status(ctx, linked, defaults):
    """A link is anyone's: the values it quotes must not become links, pictures fetched from elsewhere, or markup."""
    link = read("model=![x](http://example.invalid/x.png)&sampler=<b>bold</b>", defaults, linked)
    message = problems_message(link.problems)
    assert r"got '\!\[x\]\(http\://example\.invalid/x\.png\)'" in message and r"got '\<b\>bold\</b\>'" in message
    assert message.startswith("**This link's settings were not all usable**")  # the app's own words keep their markup


def test_a_link_holds_what_the_features_register_in_their_order(linked):
    """The generation's settings in every link, the duel's with the duel open: registered by the features."""
    assert fields(linked) == FIELDS and [entry.tab for entry in linked] == [None, DUEL_TAB]

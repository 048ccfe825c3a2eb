"""The figure helpers, the Explorer and the corpus summary on what imported
corpora look like: no tier (null), no API scores, no creation dates."""

from __future__ import annotations

import polars as pl
import pytest

from pe_toolkit.analysis import analyze
from pe_toolkit.store import Store
from pe_toolkit.widgets import figures as pf
from pe_toolkit.widgets.aggregates import group_order
from pe_toolkit.widgets.corpus import Corpus
from pe_toolkit.widgets.explorer import Explorer

from ._widgets_support import build_imported_store, build_store


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    path = build_imported_store(tmp_path_factory.mktemp("imported"), dialogues=30, pairs=30)
    with Store(path) as store:
        analyze(store, progress=False)
    return path


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("synced"), n=60, analyze=True)


def test_a_heatmap_over_a_null_tier_draws_a_no_tier_column():
    frame = pl.DataFrame({"tier": [None, "basic", None], "metric": ["a", "a", "b"], "score": [0.5, 0.7, 0.2]})
    fig = pf.heatmap(frame, x="tier", y="metric", z="score", title="t")
    (trace,) = fig.data
    assert list(trace.x) == ["no tier", "basic"]
    assert trace.z.tolist()[0] == [0.5, 0.7] and trace.z[1][0] == 0.2 and trace.z[1][1] != trace.z[1][1]  # NaN: no cell


def test_bars_and_lines_keep_conversations_without_a_tier():
    frame = pl.DataFrame({"dataset": ["a", "a", "b"], "tier": ["research", None, None], "n": [1, 2, 3]})
    bars = pf.grouped_bars(frame, x="dataset", y="n", group="tier", title="t")
    assert [(t.name, list(t.y)) for t in bars.data] == [("research", [1]), ("no tier", [2, 3])]
    lines = pf.grouped_lines(frame, x="n", y="n", group="tier", title="t")
    assert [t.name for t in lines.data] == ["research", "no tier"]
    boxes = pf.box_from_stats(
        pl.DataFrame({"tier": [None, "basic"], "q1": [0.1, 0.2], "median": [0.3, 0.4], "q3": [0.5, 0.6], "lo": [0.0, 0.1], "hi": [0.9, 1.0]}),
        x="tier", title="t",
    )
    assert list(boxes.data[0].x) == ["no tier", "basic"]


def test_tiers_are_ordered_basic_to_research_with_no_tier_last():
    frame = pl.DataFrame({"tier": [None, "research", "basic"], "n": [1, 2, 3]})
    assert group_order(frame, "tier")["tier"].to_list() == ["basic", "research", None]
    assert group_order(pl.DataFrame({"dataset": ["b", None, "a"]}), "dataset")["dataset"].to_list() == ["a", "b", None]
    assert [t.name for t in pf.grouped_bars(frame, x="n", y="n", group="tier", title="t").data] == ["basic", "research", "no tier"]


@pytest.mark.parametrize("helper", ["grouped_bars", "grouped_lines", "heatmap", "box_from_stats", "density"])
def test_an_empty_frame_is_a_skipped_line_not_an_empty_plot(helper):
    empty = pl.DataFrame(schema={"x": pl.Float64, "y": pl.Float64, "g": pl.String})
    args = {
        "grouped_bars": dict(x="x", y="y", group="g"),
        "grouped_lines": dict(x="x", y="y", group="g"),
        "heatmap": dict(x="x", y="g", z="y"),
        "box_from_stats": dict(x="x"),
        "density": dict(x="x", y="y", z="g"),
    }[helper]
    out = getattr(pf, helper)(empty, title="Conversations per month", empty="no conversation has a creation date", **args)
    assert isinstance(out, pf.Skipped)
    assert out.text == "Conversations per month: skipped, no conversation has a creation date"
    # What a cell chains on a figure is absorbed; the display is the one line.
    assert out.update_xaxes(title_text="x").add_vline(x=0.5) is out
    bundle = out._repr_mimebundle_()
    assert bundle["text/plain"] == out.text and 'class="pe-note pe-skipped"' in bundle["text/html"]
    with pytest.raises(AttributeError):
        out.data  # noqa: B018 - not a figure: nothing else pretends to be one


def test_the_corpus_says_what_an_imported_store_lacks(imported):
    with Store(imported, read_only=True) as store:
        corpus = Corpus.of(store)
    assert (corpus.conversations, corpus.tiered, corpus.dated, corpus.api_scored) == (60, 0, 0, 0)
    assert corpus.datasets == ("counsel", "dialogues") and corpus.analyzed
    assert corpus.by == "dataset" and corpus.by_label == "dataset"
    assert "creation date" in corpus.lacks("created_at") and "API tier" in corpus.lacks("tier")
    assert corpus.lacks("analysis") is None
    assert str(corpus).startswith("60 conversations in 2 datasets; no API tier")
    with pytest.raises(ValueError):
        corpus.lacks("colour")


def test_a_synced_store_lacks_nothing(synced):
    with Store(synced, read_only=True) as store:
        corpus = Corpus.of(store)
    assert corpus.by == "tier" and corpus.notes() == [] and str(corpus) == f"60 conversations in {len(corpus.datasets)} datasets"
    assert all(corpus.lacks(need) is None for need in ("tier", "created_at", "api_scores", "analysis"))


def test_the_default_selection_selects_something_on_any_corpus(imported, synced):
    with Store(imported, read_only=True) as store:
        sel = Corpus.of(store).selection(store, tier="auto", min_quality=0.8)
        assert "tier" not in sel.filters and "local overall quality >= 0.8" in str(sel)
        expected = store.sql("SELECT conversation_id FROM current_conversation_scores WHERE overall_quality >= 0.8")
        assert 0 < store.count(**sel.filters) == expected.height
    with Store(synced, read_only=True) as store:
        corpus = Corpus.of(store)
        sel = corpus.selection(store, tier="auto", min_quality=0.5)
        assert sel.filters == {"tier": corpus.tiers[-1], "min_quality": 0.5}
        assert store.count(**sel.filters) > 0
        assert corpus.selection(store, tier=None, min_quality=None).filters == {}


def test_the_explorer_draws_an_imported_corpus(imported):
    with Store(imported, read_only=True) as store:
        ex = Explorer(store)
        mix = {t.name: sum(t.y) for t in ex.fig_mix.data}
        assert mix["no tier"] == 60 and ex.fig_mix.layout.title.text == "Conversations by dataset"
        # No API scores: the scatter plots the local quality, and every conversation is in it.
        assert sum(len(t.x) for t in ex.fig_points.data) == 60
        assert [t.name for t in ex.fig_quality.data] == ["local"] and sum(ex.fig_quality.data[0].y) == 60
        assert ex._tier.layout.display == "none" and ex._quality.layout.display == "none"
        assert "no API tier" in ex._status.value
        # Clicking a "no tier" bar narrows to the dataset alone.
        trace = next(t for t in ex.fig_mix.data if t.name == "no tier")

        class Points:
            point_inds = (trace.x.index("counsel"),)

        ex._on_mix_click(trace, Points())
        assert ex.criteria() == {"dataset": ["counsel"]} and ex.count == 30
        assert "no tier" in ex.to_html()

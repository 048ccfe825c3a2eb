"""The figure helpers, the Explorer and the corpus summary on what imported
corpora look like: no tier (null), no API scores, no creation dates; and on
published text alone (ESConv-style dialogues), where no user discloses a
crisis, no reply is templated and the local quality stays well under 0.8."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from pe_toolkit.analysis import analyze
from pe_toolkit.store import Store
from pe_toolkit.widgets import figures as pf
from pe_toolkit.widgets.aggregates import group_order
from pe_toolkit.widgets.corpus import Corpus
from pe_toolkit.widgets.explorer import Explorer

from ._widgets_support import ESCONV, add_posts, build_imported_store, build_store


def _analyzed(folder, **sizes):
    path = build_imported_store(folder, **sizes)
    with Store(path) as store:
        analyze(store, progress=False)
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    return _analyzed(tmp_path_factory.mktemp("imported"), dialogues=30, pairs=30)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The ESConv-style dialogues alone, analyzed."""
    return _analyzed(tmp_path_factory.mktemp("published"), dialogues=0, pairs=0)


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


@pytest.mark.parametrize("helper", ["grouped_bars", "grouped_lines", "heatmap", "box_from_stats", "density"])
def test_a_frame_of_zeros_is_a_line_stating_the_zero(helper):
    stats = ("q1", "median", "q3", "lo", "hi")
    frame = pl.DataFrame({"x": [0.1, 0.2, 0.3], "g": ["a", "b", None], "y": [0.0, None, 0.0], **{c: [0.0] * 3 for c in stats}})
    args = {
        "grouped_bars": dict(x="x", y="y", group="g"),
        "grouped_lines": dict(x="x", y="y", group="g"),
        "heatmap": dict(x="x", y="g", z="y"),
        "box_from_stats": dict(x="g"),
        "density": dict(x="x", y="x", z="y"),
    }[helper]
    draw = getattr(pf, helper)
    out = draw(frame, title="Share of conversations with a disclosure", **args)
    assert isinstance(out, pf.Skipped) and out.text == "Share of conversations with a disclosure: skipped, every value is 0"
    said = draw(frame, title="t", zero="no user message discloses a crisis", **args)
    assert said.text == "t: skipped, no user message discloses a crisis"
    # One value that is not 0 is something to draw: the zeros are data beside it.
    one = frame.with_columns(pl.Series("y", [0.0, None, 0.25]), pl.Series("median", [0.0, 0.0, 0.25]))
    assert not isinstance(draw(one, title="t", **args), pf.Skipped)
    # Nothing measured at all is not "every value is 0".
    missing = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in ("y", *stats))
    unmeasured = draw(missing, title="t", empty="nothing measured here", **args)
    assert isinstance(unmeasured, pf.Skipped) and unmeasured.text == "t: skipped, nothing measured here"


def test_the_corpus_says_what_an_imported_store_lacks(imported):
    with Store(imported, read_only=True) as store:
        corpus = Corpus.of(store)
    assert (corpus.conversations, corpus.tiered, corpus.dated, corpus.api_scored) == (68, 0, 0, 0)
    assert corpus.datasets == ("counsel", "dialogues", "esconv") and corpus.analyzed
    assert corpus.by == "dataset" and corpus.by_label == "dataset"
    assert "creation date" in corpus.lacks("created_at") and "API tier" in corpus.lacks("tier")
    assert corpus.lacks("analysis") is None
    assert str(corpus).startswith("68 conversations in 3 datasets; no API tier")
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


def test_on_published_text_the_default_selection_is_the_top_quarter(published):
    with Store(published, read_only=True) as store:
        local = store.sql("SELECT overall_quality AS q FROM current_conversation_scores")["q"]
        assert local.len() == 8 and local.max() < 0.8  # the bound alone would select nothing
        corpus = Corpus.of(store)
        sel = corpus.selection(store, tier="auto", min_quality=0.8)
        bound = float(str(sel).split("local overall quality >= ")[1].split(",")[0])
        assert bound == int(local.quantile(0.75, "linear") * 100) / 100
        assert str(sel) == (
            f"every tier (the corpus has none), local overall quality >= {bound:.2f}, its top quarter "
            "(none reaches 0.8; no API scores in this corpus)"
        )
        assert sel.filters["ids"] == store.sql(
            "SELECT conversation_id FROM current_conversation_scores WHERE overall_quality >= ? ORDER BY 1", [bound]
        )["conversation_id"].to_list()
        assert 2 <= store.count(**sel.filters) <= 4  # a quarter of eight, ties and rounding aside
        # A bound some conversation reaches is kept as it is.
        reached = corpus.selection(store, tier="auto", min_quality=float(local.min()))
        assert store.count(**reached.filters) == 8 and "top quarter" not in str(reached)


def test_published_dialogues_keep_their_turns_and_strategies(published):
    with Store(published, read_only=True) as store:
        turns = store.sql(
            "SELECT count(*) AS n, count(DISTINCT conversation_id) AS dialogues, "
            "count(*) FILTER (WHERE role = 'user') AS seeker FROM messages"
        ).row(0, named=True)
        meta = store.sql("SELECT metadata FROM conversations ORDER BY id LIMIT 1")["metadata"][0]
    dialogues = orjson.loads(ESCONV.read_bytes())
    seeker = sum(t["speaker"] == "seeker" for d in dialogues for t in d["dialog"])
    assert turns == {"n": sum(len(d["dialog"]) for d in dialogues), "dialogues": len(dialogues), "seeker": seeker}
    assert any(a["speaker"] == b["speaker"] for d in dialogues for a, b in zip(d["dialog"], d["dialog"][1:]))
    assert '"strategy"' in meta and '"problem_type"' in meta


def test_the_explorer_draws_an_imported_corpus(imported):
    with Store(imported, read_only=True) as store:
        ex = Explorer(store)
        mix = {t.name: sum(t.y) for t in ex.fig_mix.data}
        assert mix["no tier"] == 68 and ex.fig_mix.layout.title.text == "Conversations by dataset"
        # No API scores: the scatter plots the local quality, and every conversation is in it.
        assert sum(len(t.x) for t in ex.fig_points.data) == 68
        assert [t.name for t in ex.fig_quality.data] == ["local"] and sum(ex.fig_quality.data[0].y) == 68
        assert ex._tier.layout.display == "none" and ex._quality.layout.display == "none"
        assert "no API tier" in ex._status.value
        # Clicking a "no tier" bar narrows to the dataset alone.
        trace = next(t for t in ex.fig_mix.data if t.name == "no tier")

        class Points:
            point_inds = (trace.x.index("counsel"),)

        ex._on_mix_click(trace, Points())
        assert ex.criteria() == {"dataset": ["counsel"]} and ex.count == 30
        assert "no tier" in ex.to_html()


def test_the_explorer_says_when_no_conversation_discloses_a_crisis(published, imported):
    with Store(published, read_only=True) as store:
        ex = Explorer(store)
        assert len(ex.fig_crisis.data[0].x) == 0
        assert ex.fig_crisis.layout.title.text == "Crisis categories (conversations): no matching conversation has a crisis disclosure"
        html = ex.to_html()
    assert "Crisis categories (conversations): skipped, no matching conversation has a crisis disclosure" in html
    assert html.count("Plotly.newPlot") == len(ex.figures) - 1  # the line stands in for the empty chart
    with Store(imported, read_only=True) as store:  # the synthetic text does disclose
        ex = Explorer(store)
        assert ex.fig_crisis.layout.title.text == "Crisis categories (conversations)"
        assert "pe-skipped" not in ex.to_html()


def test_a_selection_from_posts_says_none_has_a_reply_to_rate(tmp_path):
    # Posts are analysed but unrated (no reply: null local quality since
    # quality v3); "no conversation is scored" sent the reader to run an
    # analysis that would change nothing.
    path = tmp_path / "cache.duckdb"
    Store(path).close()
    add_posts(path, 5)
    with Store(path, read_only=True) as store:
        sel = Corpus.of(store).selection(store, tier="auto", min_quality=0.8)
        assert store.count(**sel.filters) == 0
        assert str(sel).endswith("local overall quality >= 0.8: no conversation has a reply to rate")

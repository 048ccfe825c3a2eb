"""The Explorer's query model without widgets: filters, counts, histograms
and pages over a real DuckDB store, checked against the store's own tables."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

from pe_toolkit.errors import InputError
from pe_toolkit.store import Store
from pe_toolkit.widgets.explorer_query import BINS, ExplorerQuery

from ._widgets_support import add_posts, build_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("explorer_query"), n=150, seed=5, analyze=True)


@pytest.fixture(params=[True, False], ids=["read-only", "writable"])
def store(request, store_path):
    # Writable: no sandbox, so every query passes Store.read's guard.
    with Store(store_path, read_only=request.param) as s:
        yield s


@pytest.fixture
def frame(store):
    return store.sql(
        "SELECT c.id, c.dataset, c.tier, c.overall_quality, s.risk_score, s.empathy_mean, s.crisis_categories, "
        "s.overall_quality AS local_quality FROM conversations c "
        "LEFT JOIN current_conversation_scores s ON s.conversation_id = c.id"
    )


def test_the_model_needs_no_widgets():
    code = (
        "import sys; import pe_toolkit.widgets.explorer_query; "
        "assert 'ipywidgets' not in sys.modules, 'ipywidgets imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_counts_and_filters(store, frame):
    q = ExplorerQuery(store)
    assert q.count() == q.total == frame.height == 150
    assert q.criteria() == {}
    dataset = q.datasets[0]
    q.set(dataset=dataset, tier=["research", "clinical"], risk=(0.2, 1.0))
    expected = frame.filter(
        (pl.col("dataset") == dataset) & pl.col("tier").is_in(["research", "clinical"]) & (pl.col("risk_score") >= 0.2)
    )
    assert q.count() == expected.height
    assert sorted(q.ids()) == sorted(expected["id"].to_list())
    assert q.criteria() == {"dataset": [dataset], "tier": ["research", "clinical"], "risk": (0.2, 1.0)}
    q.set(risk=None, quality=(0.3, 0.7), empathy=(0.0, 0.8))
    expected = frame.filter(
        (pl.col("dataset") == dataset) & pl.col("tier").is_in(["research", "clinical"])
        & pl.col("overall_quality").is_between(0.3, 0.7) & (pl.col("empathy_mean") <= 0.8)
    )
    assert q.count() == expected.height
    q.reset()
    assert q.count() == 150 and q.criteria() == {}


def test_crisis_and_text(store, frame):
    q = ExplorerQuery(store)
    crisis = q.crisis_counts()
    exploded = frame.select("id", "crisis_categories").explode("crisis_categories").drop_nulls()
    assert dict(crisis.iter_rows()) == dict(exploded.group_by("crisis_categories").len().iter_rows())
    category = crisis["cat"][-1]  # the most frequent
    q.set(crisis_categories=[category])
    assert q.count() == int(crisis["n"][-1])
    q.set(crisis_categories=None, text="  SLEEP ")
    words = store.messages().filter(pl.col("content").str.to_lowercase().str.contains("sleep", literal=True))
    assert set(q.ids()) == set(words["conversation_id"]) and q.count() > 0
    q.set(text="'; DROP TABLE conversations; --")
    assert q.count() == 0 and store.count() == 150
    q.close()


def test_summary_matches_the_counts(store, frame):
    q = ExplorerQuery(store, tier="standard")
    counts, quality, local = q.summary()
    chosen = frame.filter(pl.col("tier") == "standard")
    assert sum(counts.values()) == q.count() == chosen.height
    assert counts == {(d, "standard"): n for d, n in chosen.group_by("dataset").len().iter_rows()}
    assert len(quality) == len(local) == BINS
    assert sum(quality) == chosen["overall_quality"].drop_nulls().len()
    assert sum(local) == chosen["local_quality"].drop_nulls().len()
    points = q.points(limit=10)
    assert points.height == 10 and set(points["id"]) <= set(chosen["id"])
    assert points.columns == ["id", "tier", "x", "y"]


def test_pages_cover_the_matches_in_order(store, frame):
    q = ExplorerQuery(store, risk=(0.1, 1.0))
    expected = frame.filter(pl.col("risk_score") >= 0.1).sort(
        ["risk_score", "overall_quality", "id"], descending=[True, False, False], nulls_last=True
    )
    n = expected.height
    assert n > 20
    assert q.page_count(size=7) == -(-n // 7)
    pages = [q.page(i, size=7) for i in range(q.page_count(size=7))]
    assert [p.height for p in pages[:-1]] == [7] * (len(pages) - 1) and 1 <= pages[-1].height <= 7
    assert pl.concat(pages)["id"].to_list() == expected["id"].to_list() == q.frame()["id"].to_list()
    assert q.page(len(pages), size=7).height == 0
    assert q.frame(limit=3)["id"].to_list() == expected["id"].to_list()[:3]
    with pytest.raises(InputError):
        q.page(-1)
    with pytest.raises(InputError):
        q.page_count(size=0)


def test_bad_filters_are_refused_before_anything_changes(store):
    q = ExplorerQuery(store, tier=["basic"])
    with pytest.raises(InputError, match="unknown Explorer filter colour"):
        q.set(colour="red", tier=["research"])
    with pytest.raises(InputError, match="'nope' not in this store"):
        q.set(dataset=["nope"])
    with pytest.raises(InputError, match="expected a range"):
        q.set(risk=(0.5,))
    assert q.criteria() == {"tier": ["basic"]}


def test_without_analysis_only_the_api_range(tmp_path):
    path = build_store(tmp_path, n=30, seed=8)
    with Store(path) as s:
        q = ExplorerQuery(s)
        assert q.ranges == ["quality"] and q.categories == [] and q.points_x == "overall_quality"
        assert q.crisis_counts().height == 0
        assert q.summary()[2] is None
        with pytest.raises(InputError, match=r"^risk: this store has no risk scores yet; run pe\.analyze"):
            q.set(risk=(0.5, 1.0))
        q.set(tier="basic")
        assert q.count() == s.count(tier="basic")
        # After the first analysis a reload brings the score ranges, and keeps the filters.
        from pe_toolkit import analyze

        analyze(s, incremental=True, progress=False)
        q.reload()
        assert q.ranges == ["quality", "local_quality", "empathy", "risk"]
        assert q.criteria() == {"tier": ["basic"]} and q.count() == s.count(tier="basic")


def test_a_conversation_without_a_quality_is_in_no_histogram_bin(tmp_path):
    # Posts have no reply to rate (null local quality since quality v3) and no
    # API score: least(floor(NULL * 20), 19) is 19 in DuckDB, so every one of
    # them was drawn as a conversation of quality 0.95-1.
    path = build_store(tmp_path, n=30, seed=8, analyze=True)
    add_posts(path, 12)
    with Store(path, read_only=True) as s:
        q = ExplorerQuery(s)
        counts, quality, local = q.summary()
        assert sum(counts.values()) == 42
        assert local is not None
        assert sum(quality) == 30 and sum(local) == 30
        rated = s.sql("SELECT s.overall_quality AS q FROM current_conversation_scores s WHERE s.overall_quality >= 0.95")
        assert local[BINS - 1] == rated.height

"""Explorer without a browser: set control values, check the filtered frame
and the figure data against counts computed independently from the store."""

from __future__ import annotations

import polars as pl
import pytest
from plotly.callbacks import InputDeviceState, Points

from pe_toolkit.errors import InputError
from pe_toolkit.schema import TIERS
from pe_toolkit.store import Store
from pe_toolkit.widgets import Explorer
from pe_toolkit.widgets.explorer import BINS

from ._widgets_support import add_posts, build_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("explorer"), n=400, analyze=True)


@pytest.fixture
def store(store_path):
    with Store(store_path, read_only=True) as s:
        yield s


@pytest.fixture
def frame(store):
    """Conversations joined with their scores: the independent reference."""
    return store.sql(
        "SELECT c.id, c.dataset, c.tier, c.overall_quality, s.risk_score, s.empathy_mean, s.crisis_categories, "
        "s.overall_quality AS local_quality FROM conversations c LEFT JOIN conversation_scores s ON s.conversation_id = c.id"
    )


def click(trace, index):
    trace._dispatch_on_click(Points(point_inds=[index], trace_name=trace.name), InputDeviceState())


def test_starts_with_everything(store, frame):
    ex = Explorer(store)
    assert ex.count == ex.total == frame.height
    mix_total = sum(sum(trace.y) for trace in ex.fig_mix.data)
    assert mix_total == frame.height
    assert sum(ex.fig_quality.data[0].y) == frame["overall_quality"].drop_nulls().len()
    assert ex.table_frame.height == min(25, frame.height)


def test_tier_filter_updates_frame_and_figures(store, frame):
    ex = Explorer(store)
    ex._tier.value = ("research",)
    expected = frame.filter(pl.col("tier") == "research")
    assert ex.count == expected.height > 0
    for trace in ex.fig_mix.data:
        if trace.name == "research":
            by_dataset = dict(expected.group_by("dataset").len().iter_rows())
            assert list(trace.y) == [by_dataset.get(d, 0) for d in ex.datasets]
        else:
            assert not any(trace.y)
    assert set(ex.table_frame["tier"]) == {"research"}
    assert sorted(ex.ids()) == sorted(expected["id"].to_list())
    # the scatter only carries matching conversations, all of them research
    shown = [cid for trace in ex.fig_points.data for cid in (trace.customdata or ())]
    assert shown and set(shown) <= set(expected["id"])


def test_quality_range_and_histogram(store, frame):
    ex = Explorer(store)
    ex.set(dataset=[ex.datasets[0]], quality=(0.5, 0.8))
    expected = frame.filter(
        (pl.col("dataset") == ex.datasets[0]) & pl.col("overall_quality").is_between(0.5, 0.8)
    )
    assert ex.count == expected.height
    bins = list(ex.fig_quality.data[0].y)
    assert sum(bins) == expected.height
    lo_bin, hi_bin = int(0.5 * BINS), min(int(0.8 * BINS), BINS - 1)
    assert not any(bins[:lo_bin]) and not any(bins[hi_bin + 1 :])
    assert ex.criteria() == {"dataset": [ex.datasets[0]], "quality": (0.5, 0.8)}


def test_score_filters(store, frame):
    ex = Explorer(store)
    ex.set(risk=(0.5, 1.0), empathy=(0.0, 0.6))
    expected = frame.filter((pl.col("risk_score") >= 0.5) & (pl.col("empathy_mean") <= 0.6))
    assert ex.count == expected.height
    got = ex.frame()
    assert got["risk_score"].min() >= 0.5
    # riskiest first
    assert got["risk_score"].to_list() == sorted(got["risk_score"].to_list(), reverse=True)


def test_crisis_filter_and_chart(store, frame):
    ex = Explorer(store)
    counts = dict(zip(ex.fig_crisis.data[0].y, ex.fig_crisis.data[0].x))
    exploded = frame.select("id", "crisis_categories").explode("crisis_categories").drop_nulls()
    assert counts == dict(exploded.group_by("crisis_categories").len().iter_rows())
    category = max(counts, key=counts.get)
    ex.set(crisis_categories=[category])
    assert ex.count == counts[category]
    assert all(category in cats for cats in ex.frame()["crisis_categories"].to_list())


@pytest.mark.parametrize("cache_mb", [512, 0], ids=["text cached in memory", "text scanned in the store"])
def test_text_search_matches_messages(store, cache_mb):
    word = "sleep"
    expected = (
        store.messages().filter(pl.col("content").str.to_lowercase().str.contains(word, literal=True))["conversation_id"].unique()
    )
    ex = Explorer(store, search_cache_mb=cache_mb)
    ex._text.value = "  SLEEP "
    assert ex.count == expected.len() > 0
    assert set(ex.ids()) == set(expected)
    assert ex.model._text_source[0] == ("messages" if cache_mb == 0 else ex.model._text_cache)
    ex._text.value = "ÉTÉ"  # case folding beyond ASCII, like str.lower
    assert ex.count == store.messages().filter(pl.col("content").str.to_lowercase().str.contains("été", literal=True))[
        "conversation_id"
    ].n_unique()
    ex._text.value = ""
    assert ex.count == ex.total


def test_search_text_is_never_sql(store):
    ex = Explorer(store)
    ex._text.value = "'; DROP TABLE conversations; --"
    assert ex.count == 0
    ex._text.value = "%"  # not a wildcard
    assert ex.count == store.messages().filter(pl.col("content").str.contains("%", literal=True))["conversation_id"].n_unique()
    assert store.count() == ex.total


def test_clicks_are_linked_to_filters(store, frame):
    ex = Explorer(store)
    tier_trace = next(t for t in ex.fig_mix.data if t.name == "standard")
    click(tier_trace, 1)
    assert ex.criteria() == {"dataset": [ex.datasets[1]], "tier": ["standard"]}
    assert ex.count == frame.filter((pl.col("dataset") == ex.datasets[1]) & (pl.col("tier") == "standard")).height
    ex.reset()
    crisis = ex.fig_crisis.data[0]
    click(crisis, 0)
    assert ex.criteria() == {"crisis_categories": [crisis.y[0]]}
    ex.reset()
    trace = next(t for t in ex.fig_points.data if t.customdata)
    click(trace, 0)
    assert ex.viewer is not None and ex.viewer.conversation["id"] == trace.customdata[0]


def test_open_from_the_table(store):
    ex = Explorer(store)
    ex._open.value = ex.table_frame["id"][2]
    assert ex.viewer.conversation["id"] == ex.table_frame["id"][2]


def test_scatter_is_capped(store):
    ex = Explorer(store, max_points=50, table_rows=7)
    assert sum(len(t.x) for t in ex.fig_points.data) == 50
    assert ex.table_frame.height == 7


def test_set_and_reset(store):
    ex = Explorer(store, tier=["basic", "standard"])
    assert ex.criteria() == {"tier": ["basic", "standard"]}
    with pytest.raises(InputError, match="unknown Explorer filter"):
        ex.set(colour="red")
    with pytest.raises(InputError, match="'nope' not in this store"):
        ex.set(dataset=["nope"])
    ex.reset()
    assert ex.criteria() == {} and ex.count == ex.total


def test_snapshot_follows_reload(store_path, tmp_path):
    import shutil

    from pe_toolkit import synth
    from pe_toolkit.ingest import import_file

    path = tmp_path / "copy.duckdb"
    shutil.copy(store_path, path)
    with Store(path) as s:
        ex = Explorer(s)
        before = ex.total
        extra = tmp_path / "extra.jsonl"
        synth.write(extra, 5, seed=99, progress=False)
        import_file(s, extra, progress=False)
        assert ex.total == before  # a snapshot, until reloaded
        ex.reload()
        assert ex.total == ex.count == before + 5
        ex.close()


def test_without_analysis(tmp_path):
    path = build_store(tmp_path, n=40)
    with Store(path, read_only=True) as s:
        ex = Explorer(s)
        assert ex.count == 40
        assert set(ex.figures) == {"mix", "quality", "points"}
        assert "not been analyzed" in ex._status.value
        ex.set(tier=["basic"])
        assert ex.count == s.count(tier="basic")
        with pytest.raises(InputError):
            ex.set(risk=(0.5, 1.0))


def test_static_html_has_every_figure(store):
    ex = Explorer(store)
    html = ex.to_html()
    assert html.count("Plotly.newPlot") == len(ex.figures)
    assert "<table" in html
    assert all(tier in TIERS for tier in ex.table_frame["tier"])


def test_reload_after_the_first_analysis(tmp_path):
    from pe_toolkit import analyze

    path = build_store(tmp_path, n=60, seed=6)
    with Store(path) as s:
        ex = Explorer(s)
        assert "risk" not in ex._ranges and len(ex.fig_quality.data) == 1
        analyze(s, incremental=True, progress=False)
        ex.reload()
        assert {"risk", "empathy", "local_quality"} <= set(ex._ranges)
        assert len(ex.fig_quality.data) == 2 and sum(ex.fig_quality.data[1].y) == 60
        assert "crisis" in ex.figures
        ex.set(risk=(0.5, 1.0))
        assert ex.count == s.scalar("SELECT count(*) FROM conversation_scores WHERE risk_score >= 0.5")
        assert ex.ui.children[1].children[1].children[0] is ex._ranges["quality"]  # the new controls are shown


def test_the_quality_histogram_says_what_it_leaves_out(tmp_path):
    # A post has no reply to rate and no API score: the histogram has no bar
    # for it, and its title says how many of the matches are not drawn.
    path = build_store(tmp_path, n=30, seed=8, analyze=True)
    add_posts(path, 12)
    with Store(path, read_only=True) as s:
        ex = Explorer(s)
        assert [sum(t.y) for t in ex.fig_quality.data] == [30, 30]
        title = ex.fig_quality.layout.title.text
        assert "of 42 matches" in title and "12 without an API quality" in title and "12 without a local quality (no reply to rate" in title
        ex.set(dataset=["posts"])
        assert [sum(t.y) for t in ex.fig_quality.data] == [0, 0] and "12 without a local quality" in ex.fig_quality.layout.title.text
        ex.set(dataset=[d for d in ex.model.datasets if d != "posts"])
        assert ex.fig_quality.layout.title.text == "Overall quality"


def test_the_scatter_says_what_it_leaves_out(tmp_path):
    # A post has no API quality (nor a local one): the scatter had no point for
    # it and said nothing, while the histogram beside it counted it in its title.
    path = build_store(tmp_path, n=30, seed=8, analyze=True)
    add_posts(path, 12)
    with Store(path, read_only=True) as s:
        ex = Explorer(s)
        assert sum(len(t.x) for t in ex.fig_points.data) == 30
        assert ex.fig_points.layout.title.text == (
            "API quality vs risk score (sample)<br><sup>of 42 matches, not drawn: 12 without an API quality</sup>")
        ex.set(dataset=[d for d in ex.model.datasets if d != "posts"])
        assert ex.fig_points.layout.title.text == "API quality vs risk score (sample)"
        capped = Explorer(s, max_points=10)  # the cap leaves points out too, and says how many
        assert capped.fig_points.layout.title.text.endswith("12 without an API quality; 20 beyond the sample of 10</sup>")
        assert "not drawn: 12 without an API quality" in capped.to_html()
    # Conversations imported after the analysis have an API quality but no risk score yet.
    from pe_toolkit import synth
    from pe_toolkit.ingest import import_file

    synth.write(tmp_path / "late.jsonl", 5, seed=77, progress=False)
    with Store(path) as s:
        import_file(s, tmp_path / "late.jsonl", progress=False)
        ex = Explorer(s)
        assert ex.fig_points.layout.title.text.endswith("12 without an API quality; 5 without a risk score (not analyzed)</sup>")


def test_a_cache_of_posts_draws_no_empty_quality_plots(tmp_path):
    # Posts have no reply to rate and no API score: the static page showed a
    # histogram of zeros and an empty scatter without a word.
    path = tmp_path / "cache.duckdb"
    Store(path).close()
    add_posts(path, 6)
    with Store(path, read_only=True) as s:
        ex = Explorer(s)
        html = ex.to_html()
        # The mix of datasets only (no post discloses a crisis: that one says so too).
        assert html.count("Plotly.newPlot") == 1 and "Conversations by dataset" in html
        assert "Overall quality: skipped, no matching conversation has a quality score (no reply to rate" in html
        assert "local quality vs risk score (sample): skipped, no matching conversation has a quality score" in html

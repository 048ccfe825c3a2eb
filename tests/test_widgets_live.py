"""LiveMonitor following an event bus, LiveAnalyzer scoring as you type,
and static rendering for reports."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from pe_toolkit.events import Event, EventBus
from pe_toolkit.widgets import BusSource, LiveAnalyzer, LiveMonitor, is_static, static_mode


class FakeClock:
    """Monotonic time the test moves by hand (the throttle reads it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_monitor_counts_and_draws_bus_events():
    bus = EventBus()
    monitor = LiveMonitor(BusSource(bus), min_interval=0, bucket=10, window=60)
    bus.publish("conversation.created", ids=["a", "b", "c"], source="x")
    bus.publish("conversation.updated", ids=["a"], source="x")
    bus.publish("sync.progress", done=5, total=10)
    assert monitor.totals == {"conversation.created": 1, "conversation.updated": 1, "sync.progress": 1}
    totals = dict(zip(monitor.fig_totals.data[0].x, monitor.fig_totals.data[0].y))
    assert totals == {"conversation.created": 3, "conversation.updated": 1, "sync.progress": 1}
    lines = {trace.name: trace for trace in monitor.fig_rate.data}
    assert set(lines) == set(monitor.totals)
    assert sum(lines["conversation.created"].y) == 1 and len(lines["sync.progress"].x) == 6
    assert "conversation.created" in monitor._log_html.value and "ids: 3" in monitor._log_html.value
    monitor.stop()
    bus.publish("conversation.created", ids=["d"], source="x")
    assert monitor.totals["conversation.created"] == 1  # no longer following


def test_monitor_buckets_and_window():
    monitor = LiveMonitor(BusSource(EventBus()), min_interval=0, bucket=5, window=20, autostart=False)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for seconds in (0, 1, 6, 7, 8, 40):
        monitor.handle(Event("sync.progress", {}, t0 + timedelta(seconds=seconds)))
    (series,) = monitor.rates().values()
    counts = dict(series)
    assert len(series) == 4  # window / bucket
    assert counts[t0 + timedelta(seconds=40)] == 1
    assert t0 not in counts  # fell out of the window
    assert monitor.totals["sync.progress"] == 6


def test_monitor_throttles_redraws():
    clock = FakeClock()
    bus = EventBus()
    monitor = LiveMonitor(BusSource(bus), min_interval=30.0, clock=clock)
    clock.now += 60
    bus.publish("import.completed", count=10)
    assert list(monitor.fig_totals.data[0].y) == [10]  # first event after a quiet spell: drawn
    bus.publish("import.completed", count=5)
    assert list(monitor.fig_totals.data[0].y) == [10]  # within the interval: counted, not drawn
    assert monitor.items["import.completed"] == 15
    monitor.flush()
    assert list(monitor.fig_totals.data[0].y) == [15]
    monitor.stop()


def test_monitor_accepts_events_from_other_threads():
    bus = EventBus()
    monitor = LiveMonitor(BusSource(bus), min_interval=0)
    threads = [threading.Thread(target=lambda: [bus.publish("analysis.completed", conversations=1) for _ in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monitor.refresh()
    assert monitor.totals["analysis.completed"] == 200
    assert list(monitor.fig_totals.data[0].y) == [200]
    monitor.stop()


def test_monitor_follows_the_default_bus_with_an_import(tmp_path, write_jsonl):
    from pe_toolkit.ingest import import_file
    from pe_toolkit.store import Store

    from .conftest import conversation

    with LiveMonitor(min_interval=0) as monitor, Store(tmp_path / "c.duckdb") as store:
        import_file(store, write_jsonl([conversation(i) for i in range(4)]), progress=False)
        assert monitor.items.get("conversation.created") == 4


def test_live_analyzer_scores_as_you_type():
    analyzer = LiveAnalyzer()
    assert analyzer.result == {}
    analyzer.user.value = "I can't sleep and I feel completely hopeless about everything."
    analyzer.reply.value = "That sounds exhausting. What has been keeping you up at night?"
    first = list(analyzer.fig.data[0].y)
    assert analyzer.result["validation_results"]
    assert first == [pytest.approx(analyzer.result["validation_results"][m]) for m in (
        "therapeutic_accuracy", "conversation_coherence", "emotional_authenticity",
        "clinical_compliance", "safety_score", "overall_quality")]
    # Overlapping evidence (the rules' question, the skills model's n-grams) cuts the marks: read the text.
    assert "What has been keeping you up" in re.sub("<[^>]+>", "", analyzer._panel.value)
    assert "explorations:2" in analyzer.evidence["category"].to_list()
    analyzer.reply.value = "Just get over it, you should stop complaining."
    assert list(analyzer.fig.data[0].y) != first
    assert analyzer.message_scores.height == 2
    analyzer.user.value = "<script>alert(1)</script>"
    assert "<script>alert" not in analyzer._panel.value


def test_live_analyzer_without_a_reply_says_there_is_nothing_to_rate():
    # Quality v3: no assistant message, no metrics (null, not the 0.5
    # priors). The bars would stand at 0, which reads as a reply rated 0.
    analyzer = LiveAnalyzer(user="I can't sleep and I feel completely hopeless about everything.")
    assert not analyzer.rated and analyzer.result["tier_classification"] is None
    assert "No reply to rate" in analyzer._panel.value
    page = analyzer.to_html()
    assert "Quality metrics (local): skipped, no reply to rate" in page and "Plotly.newPlot" not in page
    analyzer.reply.value = "That sounds exhausting. What has been keeping you up at night?"
    assert analyzer.rated and "No reply to rate" not in analyzer._panel.value


def test_static_mode_renders_views_as_html():
    bus = EventBus()
    monitor = LiveMonitor(BusSource(bus), min_interval=0)
    bus.publish("sync.progress", done=1)
    assert "application/vnd.jupyter.widget-view+json" in monitor._repr_mimebundle_()
    previous = pio.renderers.default
    static_mode(True)
    try:
        assert is_static()
        bundle = monitor._repr_mimebundle_()
        assert set(bundle) == {"text/html", "text/plain"}
        first = bundle["text/html"]
        assert first.count("Plotly.newPlot") == 2
        assert "plotly.js v" in first  # the library travels with the first plot
        fig = go.Figure(go.Bar(x=["a"], y=[1]))
        second = pio.renderers[pio.renderers.default].to_mimebundle(fig.to_dict())["text/html"]
        assert "Plotly.newPlot" in second and "plotly.js v" not in second
        assert "cdn" not in second.lower() and "mathjax" not in second.lower()
    finally:
        static_mode(False)
        monitor.stop()
    assert not is_static() and pio.renderers.default == previous


def test_truncated_id_lists_count_by_their_count():
    from pe_toolkit.widgets.live_monitor import _items

    assert _items({"ids": ["a"] * 1000, "count": 2500, "truncated": True}) == 2500
    assert _items({"ids": ["a", "b"]}) == 2
    assert _items({}) == 1

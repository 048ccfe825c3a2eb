"""The one-line reports of the Ray engine (analyze, export): their rates.
Built directly (no Ray): the line is plain formatting of the counts."""

from __future__ import annotations

import pytest

from pe_toolkit.scale.export import ScaleExportReport
from pe_toolkit.scale.run import ScaleReport


@pytest.mark.parametrize(
    ("count", "seconds", "rate"),
    [(2, 6.2, "0.32"), (9, 6.0, "1.5"), (40, 3.0, "13"), (123_456, 10.0, "12,346")],
)
def test_the_export_line_gives_a_rate_with_significant_digits(count, seconds, rate) -> None:
    # A small export spends its seconds starting Ray: 2 conversations in 6.2 s
    # printed "(0 conversations/s)".
    line = str(ScaleExportReport("shards", "jsonl", shards=1, conversations=count, messages=count * 4, seconds=seconds, workers=2))
    assert f"({rate} conversations/s)" in line


@pytest.mark.parametrize(("count", "seconds", "rate"), [(3, 7.5, "0.4"), (1_000_000, 80.0, "12,500")])
def test_the_analyze_line_gives_a_rate_with_significant_digits(count, seconds, rate) -> None:
    report = ScaleReport("out", "v1", files=1, computed=["a"], messages=count, messages_computed=count, seconds=seconds, workers=2)
    assert f"({rate} messages/s)" in str(report)


def test_a_run_that_computed_nothing_gives_no_rate() -> None:
    # Every partition up to date: "0 messages in 1.2s (0 messages/s)" read as
    # a stalled run; nothing was scored, so there is nothing to rate.
    line = str(ScaleReport("out", "v1", files=3, skipped=3, messages=900, seconds=1.2, workers=2))
    assert "messages/s" not in line and "0 messages in 1.2s" in line
    assert "conversations/s" not in str(ScaleExportReport("shards", "jsonl", seconds=0.8, workers=2))

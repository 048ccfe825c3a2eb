"""The one-line reports of the Ray engine (analyze, export): their rates.
Built directly (no Ray): the line is plain formatting of the counts."""

from __future__ import annotations

import re

import pytest

from pe_toolkit.scale.export import ScaleExportReport
from pe_toolkit.scale.run import PER_ITEM_BELOW, ScaleReport, rate_text


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


_UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0, "days": 86400.0}
_RATE_TEXT = re.compile(r" \((?P<n>[0-9][0-9,]*(?:\.[0-9]+)?) (?:conversations/s|(?P<unit>s|min|h|days) per conversation)\)")


@pytest.mark.parametrize("rate", [m * 10.0**k for k in range(-6, 7) for m in (1.0, 3.0)][:-1])
def test_a_rate_reads_at_every_magnitude(rate) -> None:
    # A very slow run printed "(1e-05 conversations/s)", which few read as
    # a day per conversation; "0.00001" is no better. At every magnitude the
    # line holds a plain figure (no exponent, no run of leading zeros) that
    # gives back the rate within its rounding to two significant digits.
    count = max(1, round(rate * 10))
    seconds = count / rate
    text = rate_text(count, seconds, "conversation")
    got = _RATE_TEXT.fullmatch(text)
    assert got, text
    figure = got["n"]
    assert "e" not in figure.lower() and not figure.startswith("0.0"), text
    value = float(figure.replace(",", ""))
    shown = value
    if got["unit"]:
        shown = 1 / (value * _UNIT_SECONDS[got["unit"]])  # seconds per item, back to a rate
        assert rate < PER_ITEM_BELOW  # a time per item only where a rate would need leading zeros
        assert value >= 2 or got["unit"] == "s"  # never "1.2 min": a smaller unit reads better
    else:
        assert rate >= PER_ITEM_BELOW
    assert abs(shown - rate) <= 0.05 * rate, (text, rate)


@pytest.mark.parametrize(
    ("count", "seconds", "text"),
    [(1, 83.0, " (83 s per conversation)"), (1, 1000.0, " (17 min per conversation)"),
     (1, 10_000.0, " (2.8 h per conversation)"), (1, 1e6, " (12 days per conversation)"),
     (1, 10.0, " (0.1 conversations/s)"), (2, 6.2, " (0.32 conversations/s)")],
)  # fmt: skip
def test_a_slow_rate_is_the_time_per_item(count, seconds, text) -> None:
    assert rate_text(count, seconds, "conversation") == text


def test_both_report_lines_give_a_slow_rate_as_the_time_per_item() -> None:
    slow = ScaleReport("out", "v1", files=1, computed=["a"], messages=1, messages_computed=1, seconds=83.0, workers=2)
    assert "1 messages in 83.0s (83 s per message) on 2 workers" in str(slow)
    line = str(ScaleExportReport("shards", "jsonl", shards=1, conversations=2, messages=8, seconds=4000.0, workers=2))
    assert "4000.0s (33 min per conversation) on 2 workers" in line

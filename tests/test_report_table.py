"""Every report class renders as a small, escaped HTML table in Jupyter,
carrying what its str() says."""

from __future__ import annotations

import dataclasses
import html
import re

import pytest

from pe_toolkit.analysis.pipeline import AnalysisReport
from pe_toolkit.apisync import SyncReport
from pe_toolkit.exports.core import ExportReport
from pe_toolkit.exports.pgsession import TableLoad
from pe_toolkit.exports.warehouse import WarehouseReport
from pe_toolkit.ingest.loading import ImportReport
from pe_toolkit.report_table import MAX_ITEMS, HtmlReport
from pe_toolkit.scale.export import ScaleExportReport
from pe_toolkit.scale.run import ScaleReport

EVIL = "<script>alert('x')</script>"
IDS = [f"conv-{i}" for i in range(40)]

REPORTS = {
    "import": ImportReport(inserted=1200, updated=3, unchanged=7, path=f"/data/{EVIL}.jsonl", format="jsonl", invalid=2,
                           mapping=[f"column {i} -> content" for i in range(12)], created_ids=IDS),
    "analysis": AnalysisReport(run_id="r1", analysis_version=EVIL, incremental=True, selected=10, scored=10, messages=80,
                               alerts=2, alerts_total=5, seconds=1.23456, alert_ids=IDS),
    "sync": SyncReport(source=f"api:{EVIL}", mode="bulk", status="completed", inserted=5, listed=5,
                       planned={"fetch": 5}, errors=[EVIL] * 9, failed_ids=IDS),
    "export": ExportReport(path=EVIL, format="jsonl", conversations=10, messages=90, bytes=4096, redacted=True),
    "warehouse": WarehouseReport(target=f"postgresql://u:***@h/{EVIL}", schema="pe", conversations=10,
                                 tables={"conversations": TableLoad(inserted=10, seconds=0.5), "messages": TableLoad(inserted=90)}),
    "scale export": ScaleExportReport(path=EVIL, format="parquet", shards=2, conversations=10, files=IDS),
    "scale": ScaleReport(output=EVIL, analysis_version="v", files=3, computed=IDS, conversations=10, messages=90),
}


@pytest.mark.parametrize("name", REPORTS)
def test_a_report_is_an_escaped_table_of_its_fields(name):
    report = REPORTS[name]
    assert isinstance(report, HtmlReport)
    out = report._repr_html_()
    assert out.startswith('<table class="pe-report">') and out.endswith("</table>")
    # Nothing from a field reaches the page as markup.
    assert "<script>" not in out and "&lt;script&gt;" in out
    # The caption is the one-line str(); every field has its row, but a
    # write's working data (UpsertResult.updated_hashes).
    assert html.escape(str(report)) in out
    names = re.findall(r'<th style="text-align:left">([^<]*)</th>', out)
    assert names == [f.name for f in dataclasses.fields(report) if f.metadata.get("report", True)]
    assert "updated_hashes" not in names


def test_long_lists_are_shortened_and_values_readable():
    out = REPORTS["import"]._repr_html_()
    assert "conv-0" in out and f"conv-{MAX_ITEMS - 1}" in out and f"conv-{MAX_ITEMS}<" not in out
    assert f"... ({len(IDS) - MAX_ITEMS} more)" in out
    assert "1,200" in out  # numbers as in str()
    warehouse = REPORTS["warehouse"]._repr_html_()
    assert "conversations: inserted 10, updated 0, deleted 0, seconds 0.5" in warehouse
    assert "1.235" in REPORTS["analysis"]._repr_html_()  # floats to three places


def test_long_text_is_shortened():
    report = ExportReport(path="x" * 5000, format="csv")
    out = report._repr_html_()
    assert len(out) < 2000 and "xxx..." in out

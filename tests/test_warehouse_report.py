"""What a warehouse load reports (real PostgreSQL; see test_warehouse)."""

from __future__ import annotations

import orjson
import pytest

from pe_toolkit.ingest import import_file

from ._export_support import stand_in_scores
from .warehouse_support import load, query

pytestmark = pytest.mark.postgres


def test_scores_of_changed_text_are_reported_removed(sample_store, schema, tmp_path):
    stand_in_scores(sample_store)
    load(sample_store, schema)
    cid = "syn7_0000042"
    messages = query(f"SELECT count(*) AS n FROM \"{schema}\".message_scores WHERE conversation_id = '{cid}'")["n"][0]
    assert messages > 0
    changed = sample_store.conversation(cid)
    changed["messages"][0]["content"] += " (edited)"  # its scores are no longer current
    (tmp_path / "one.jsonl").write_bytes(orjson.dumps(changed) + b"\n")
    assert import_file(sample_store, tmp_path / "one.jsonl", progress=False).updated == 1

    report = load(sample_store, schema)
    assert report.tables["conversation_scores"].deleted == 1
    assert report.tables["conversation_scores"].written == 0
    assert report.tables["message_scores"].deleted == messages
    assert "conversation_scores 0 new, 1 removed" in str(report)
    for table in ("conversation_scores", "message_scores"):
        assert query(f"SELECT count(*) AS n FROM \"{schema}\".{table} WHERE conversation_id = '{cid}'")["n"][0] == 0

"""What a warehouse load reports (real PostgreSQL; see test_warehouse)."""

from __future__ import annotations

import orjson
import pytest

from pe_toolkit.ingest import import_file

from . import test_warehouse as _wh
from ._export_support import stand_in_scores
from .test_warehouse import load, query

pytestmark = pytest.mark.postgres

# test_warehouse's fixtures, under the names pytest looks them up by here.
pg_dsn = _wh.pg_dsn
sample_db = _wh.sample_db
schema = _wh.schema
store = _wh.store


def test_scores_of_changed_text_are_reported_removed(store, schema, tmp_path):
    stand_in_scores(store)
    load(store, schema)
    cid = "syn7_0000042"
    messages = query(f"SELECT count(*) AS n FROM \"{schema}\".message_scores WHERE conversation_id = '{cid}'")["n"][0]
    assert messages > 0
    changed = store.conversation(cid)
    changed["messages"][0]["content"] += " (edited)"  # its scores are no longer current
    (tmp_path / "one.jsonl").write_bytes(orjson.dumps(changed) + b"\n")
    assert import_file(store, tmp_path / "one.jsonl", progress=False).updated == 1

    report = load(store, schema)
    assert report.tables["conversation_scores"].deleted == 1
    assert report.tables["conversation_scores"].written == 0
    assert report.tables["message_scores"].deleted == messages
    assert "conversation_scores 0 new, 1 removed" in str(report)
    for table in ("conversation_scores", "message_scores"):
        assert query(f"SELECT count(*) AS n FROM \"{schema}\".{table} WHERE conversation_id = '{cid}'")["n"][0] == 0

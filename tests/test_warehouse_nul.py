"""NUL characters, which PostgreSQL text cannot hold, in ids and lists
(real PostgreSQL; see test_warehouse)."""

from __future__ import annotations

import orjson
import pytest

from pe_toolkit.errors import WarehouseError
from pe_toolkit.ingest import import_file

from ._export_support import stand_in_scores
from .warehouse_support import load, query

pytestmark = pytest.mark.postgres


def _conversation(cid: str, text: str = "hello") -> bytes:
    return orjson.dumps({"id": cid, "messages": [{"role": "user", "content": text}], "metadata": {"dataset": "edge"}}) + b"\n"


def test_an_id_with_nul_loads_again_and_again(sample_store, schema, tmp_path):
    (tmp_path / "nul.jsonl").write_bytes(_conversation("a\0b"))
    import_file(sample_store, tmp_path / "nul.jsonl", progress=False)
    assert load(sample_store, schema).tables["conversations"].inserted == 2001
    assert query(f"SELECT count(*) AS n FROM \"{schema}\".conversations WHERE id = 'a\ufffdb'")["n"][0] == 1

    assert load(sample_store, schema).rows_written == 0  # the keys compare equal
    (tmp_path / "nul.jsonl").write_bytes(_conversation("a\0b", "hello again"))
    import_file(sample_store, tmp_path / "nul.jsonl", progress=False)
    report = load(sample_store, schema)
    assert report.tables["conversations"].updated == 1 and report.tables["conversations"].inserted == 0
    assert report.tables["messages"].inserted == 1 and report.tables["conversation_features"].updated == 1
    rows = query(f"SELECT content FROM \"{schema}\".messages WHERE conversation_id = 'a\ufffdb'")
    assert rows["content"].to_list() == ["hello again"]


def test_ids_that_differ_only_by_nul_are_refused(sample_store, schema, tmp_path):
    (tmp_path / "two.jsonl").write_bytes(_conversation("a\0b") + _conversation("a\ufffdb"))
    import_file(sample_store, tmp_path / "two.jsonl", progress=False)
    with pytest.raises(WarehouseError, match="would be one key in PostgreSQL") as info:
        load(sample_store, schema, ids=["a\0b", "a\ufffdb"])
    assert "\n" not in str(info.value)
    assert load(sample_store, schema, ids=["a\0b"]).tables["conversations"].inserted == 1


def test_a_list_of_text_with_nul_loads(sample_store, schema):
    stand_in_scores(sample_store)
    sample_store.connection.execute(
        "UPDATE conversation_scores SET crisis_categories = ['x' || chr(0) || 'y', NULL] WHERE conversation_id = 'syn7_0000042'"
    )
    load(sample_store, schema)
    row = query(f"SELECT crisis_categories FROM \"{schema}\".conversation_scores WHERE conversation_id = 'syn7_0000042'")
    assert row["crisis_categories"].to_list() == [["x\ufffdy", None]]

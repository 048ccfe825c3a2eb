"""NUL characters, which PostgreSQL text cannot hold, in ids and lists
(real PostgreSQL; see test_warehouse)."""

from __future__ import annotations

import orjson
import pytest

from pe_toolkit.errors import WarehouseError
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


def _conversation(cid: str, text: str = "hello") -> bytes:
    return orjson.dumps({"id": cid, "messages": [{"role": "user", "content": text}], "metadata": {"dataset": "edge"}}) + b"\n"


def test_an_id_with_nul_loads_again_and_again(store, schema, tmp_path):
    (tmp_path / "nul.jsonl").write_bytes(_conversation("a\0b"))
    import_file(store, tmp_path / "nul.jsonl", progress=False)
    assert load(store, schema).tables["conversations"].inserted == 2001
    assert query(f"SELECT count(*) AS n FROM \"{schema}\".conversations WHERE id = 'a\ufffdb'")["n"][0] == 1

    assert load(store, schema).rows_written == 0  # the keys compare equal
    (tmp_path / "nul.jsonl").write_bytes(_conversation("a\0b", "hello again"))
    import_file(store, tmp_path / "nul.jsonl", progress=False)
    report = load(store, schema)
    assert report.tables["conversations"].updated == 1 and report.tables["conversations"].inserted == 0
    assert report.tables["messages"].inserted == 1 and report.tables["conversation_features"].updated == 1
    rows = query(f"SELECT content FROM \"{schema}\".messages WHERE conversation_id = 'a\ufffdb'")
    assert rows["content"].to_list() == ["hello again"]


def test_ids_that_differ_only_by_nul_are_refused(store, schema, tmp_path):
    (tmp_path / "two.jsonl").write_bytes(_conversation("a\0b") + _conversation("a\ufffdb"))
    import_file(store, tmp_path / "two.jsonl", progress=False)
    with pytest.raises(WarehouseError, match="would be one key in PostgreSQL") as info:
        load(store, schema, ids=["a\0b", "a\ufffdb"])
    assert "\n" not in str(info.value)
    assert load(store, schema, ids=["a\0b"]).tables["conversations"].inserted == 1


def test_a_list_of_text_with_nul_loads(store, schema):
    stand_in_scores(store)
    store.connection.execute(
        "UPDATE conversation_scores SET crisis_categories = ['x' || chr(0) || 'y', NULL] WHERE conversation_id = 'syn7_0000042'"
    )
    load(store, schema)
    row = query(f"SELECT crisis_categories FROM \"{schema}\".conversation_scores WHERE conversation_id = 'syn7_0000042'")
    assert row["crisis_categories"].to_list() == [["x\ufffdy", None]]

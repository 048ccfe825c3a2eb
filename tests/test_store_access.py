"""The one access layer (pe_toolkit.store.access) under Store and the
mirror's ServerDB: a query fails the same way through either, and Arrow
batches are cut for DuckDB's threads in one place."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pe_toolkit.errors import StoreError
from pe_toolkit.server.db import ServerDB
from pe_toolkit.store import Store, access


def test_store_and_server_report_a_failed_query_alike(tmp_path) -> None:
    store = Store(tmp_path / "c.duckdb")
    db = ServerDB(store)
    try:
        bad = "SELECT no_such_column FROM conversations"
        with pytest.raises(StoreError) as through_store:
            store.sql(bad)
        with pytest.raises(StoreError) as through_rows:
            db.rows(bad)
        with pytest.raises(StoreError) as through_arrow:
            db.arrow(bad)
        assert str(through_store.value).startswith("query failed: Binder Error")
        assert str(through_rows.value) == str(through_arrow.value) == str(through_store.value)
        assert db.scalar("SELECT count(*) FROM conversations") == store.scalar("SELECT count(*) FROM conversations") == 0
        assert db.arrow("SELECT 1 AS x").equals(store.arrow("SELECT 1 AS x"))
    finally:
        db.close()


def test_for_threads_cuts_a_batch_per_thread_and_keeps_the_rows() -> None:
    table = pa.table({"id": [str(i) for i in range(100)], "n": list(range(100))})
    cut = access.for_threads(table)
    assert len(cut.to_batches()) == 8
    assert cut.equals(table)
    small = table.slice(0, 15)
    assert access.for_threads(small) is small

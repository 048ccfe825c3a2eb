"""A read-only store that shares a writer's connection (same file, same
process) refuses through its SQL methods what a sandboxed one refuses:
files, settings and writes. DuckDB cannot sandbox that connection (one
configuration per file and process), so the store checks the query."""

from __future__ import annotations

import pytest

from pe_toolkit.errors import StoreError
from pe_toolkit.store import Store, open_store

from .conftest import conversation
from .test_store import batch_of


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "beside.duckdb"
    with Store(path) as store:
        store.upsert(batch_of([conversation(i) for i in range(3)]))
    return path


def _pairs(path):
    """(writer, reader) in both opening orders, held and per unit of work."""
    writer = open_store(path)
    yield "writer first", writer, open_store(path, read_only=True)
    writer.close()
    reader = open_store(path, read_only=True)
    writer = open_store(path)
    yield "reader first", writer, reader
    writer.close()
    writer = open_store(path, hold=False)
    yield "both per unit of work", writer, open_store(path, read_only=True, hold=False)
    writer.close()


def test_a_reader_beside_a_writer_refuses_files_settings_and_writes(cache, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    target = tmp_path / "leak.csv"
    for case, writer, reader in _pairs(cache):
        with writer.session():
            assert not reader.sandboxed, case
            for method in (reader.sql, reader.arrow, reader.scalar):
                with pytest.raises(StoreError, match="refused"):
                    method(f"COPY (SELECT * FROM conversations) TO '{target}'")
                with pytest.raises(StoreError, match="refused"):
                    method(f"SELECT * FROM read_text('{secret}')")
                with pytest.raises(StoreError, match="refused"):
                    method("DELETE FROM conversations")
                with pytest.raises(StoreError, match="refused"):
                    method("SET enable_external_access = true")
            # Reading the store still works, catalog functions included.
            assert reader.sql("SELECT count(*) AS n FROM conversations")["n"].item() == 3, case
            assert reader.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'messages'") == 1
            assert reader.arrow("SELECT id FROM conversations ORDER BY id").num_rows == 3
            assert reader.count() == 3 and reader.conversation("conv_00001")["id"] == "conv_00001"
            # The writer's own SQL is not restricted.
            writer.sql(f"COPY (SELECT id FROM conversations) TO '{target}'")
            assert target.exists(), case
            target.unlink()
        reader.close()
    assert not target.exists()
    with Store(cache) as store:
        assert store.count() == 3

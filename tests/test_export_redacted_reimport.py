"""A redacted export imported back into the cache it came from must not
replace the full conversations with their redacted copies."""

from __future__ import annotations

import orjson
import pytest

from pe_toolkit.errors import InputError
from pe_toolkit.exports import export
from pe_toolkit.exports.redact import REDACTED_KEY
from pe_toolkit.ingest.importer import import_file
from pe_toolkit.store import Store

pytest.importorskip("pe_toolkit.analysis.pii")

FULL = "You can reach me at sam.roe@example.com after six."


@pytest.fixture
def source(tmp_path):
    records = [
        {"id": "c1", "messages": [{"role": "user", "content": FULL},
                                  {"role": "assistant", "content": "Thank you. What would help tonight?"}]},
        {"id": "c2", "messages": [{"role": "user", "content": "I feel a bit better today."},
                                  {"role": "assistant", "content": "I'm glad. What changed?"}], "metadata": {"site": "b"}},
    ]  # fmt: skip
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return src


def _contents(store: Store) -> list[str]:
    return store.sql("SELECT content FROM messages ORDER BY conversation_id, idx")["content"].to_list()


@pytest.mark.parametrize(
    ("name", "options"),
    [("r.jsonl", {"format": "jsonl"}), ("r.csv", {"format": "csv"}), ("t", {"format": "parquet", "layout": "tables"}),
     ("r.parquet", {"format": "parquet"})],  # fmt: skip
)
def test_a_redacted_export_does_not_replace_the_full_records_it_came_from(tmp_path, source, name, options):
    out = tmp_path / name
    with Store(tmp_path / "cache.duckdb") as store:
        import_file(store, source, progress=False)
        before = _contents(store)
        export(store, out, progress=False, redact=True, **options)
        with pytest.raises(InputError, match=r"redacted copies .* import the file into another cache"):
            import_file(store, out, progress=False)
        assert _contents(store) == before and FULL in before  # nothing replaced, the batch rolled back

    # Into another cache it imports, marked, and again without change.
    with Store(tmp_path / "other.duckdb") as other:
        report = import_file(other, out, progress=False)
        assert report.inserted == 2
        assert "sam.roe@example.com" not in " ".join(_contents(other))
        flags = other.sql(f"SELECT json_extract(metadata, '$.{REDACTED_KEY}')::BOOLEAN AS r FROM conversations")["r"]
        assert flags.to_list() == [True, True]
        assert import_file(other, out, progress=False).unchanged == 2


def test_a_redacted_copy_may_update_a_redacted_copy(tmp_path, source):
    with Store(tmp_path / "cache.duckdb") as store:
        import_file(store, source, progress=False)
        export(store, tmp_path / "r.jsonl", format="jsonl", progress=False, redact=True)
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    with Store(tmp_path / "shared.duckdb") as shared:
        import_file(shared, tmp_path / "r.jsonl", progress=False)
        first = orjson.loads(lines[0])
        first["messages"][1]["content"] = "Thank you for telling me."
        (tmp_path / "r2.jsonl").write_bytes(orjson.dumps(first) + b"\n")
        assert import_file(shared, tmp_path / "r2.jsonl", progress=False).updated == 1


def test_a_plain_export_still_updates_the_cache_it_came_from(tmp_path, source):
    """Only redacted copies are refused: an edited plain export replaces as before."""
    with Store(tmp_path / "cache.duckdb") as store:
        import_file(store, source, progress=False)
        export(store, tmp_path / "p.jsonl", format="jsonl", progress=False)
        first = orjson.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
        first["messages"][1]["content"] = "Edited reply."
        (tmp_path / "p2.jsonl").write_bytes(orjson.dumps(first) + b"\n")
        assert import_file(store, tmp_path / "p2.jsonl", progress=False).updated == 1

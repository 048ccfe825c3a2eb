"""A table (one row per message) is grouped into conversations in one
query: it gets more memory than the JSON-lines parser's cap, and when even
that is too little the error says what to do (a 300 MB CSV export of 100k
conversations failed at the parser's 256 MB: benchmarks/RESULTS.md)."""

from __future__ import annotations

import csv
import os

import pytest

from pe_toolkit.errors import InputError
from pe_toolkit.ingest import import_file, tabular
from pe_toolkit.ingest.tabular import table_memory_limit
from pe_toolkit.store import Store, normalize


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "chats.csv"
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["conversation_id", "role", "content", "topic"])
        for i in range(3000):
            for turn in range(4):
                role = "user" if turn % 2 == 0 else "assistant"
                out.writerow([f"c{i}", role, f"turn {turn} of chat {i}: " + "words " * 40, f"topic {i % 7}"])
    return path


def test_a_table_beyond_the_parsers_cap_imports(tmp_path, table, monkeypatch):
    # The parser's cap scaled down with the file: 4 MB cannot group this table.
    monkeypatch.setattr(normalize, "PARSE_MEMORY_LIMIT", "4MB")
    monkeypatch.setenv("PE_IMPORT_MEMORY", "4MB")
    with Store(tmp_path / "capped.duckdb") as store, pytest.raises(InputError, match="needs more memory"):
        import_file(store, table, progress=False)
    monkeypatch.delenv("PE_IMPORT_MEMORY")
    assert table_memory_limit().endswith("MB") and int(table_memory_limit()[:-2]) >= 256
    with Store(tmp_path / "s.duckdb") as store:
        report = import_file(store, table, progress=False)
        assert report.inserted == 3000 and store.scalar("SELECT count(*) FROM messages") == 12000


def test_too_little_memory_is_one_clear_error(tmp_path, table, monkeypatch):
    monkeypatch.setenv("PE_IMPORT_MEMORY", "2MB")
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(InputError, match=r"needs more memory than the import may use \(2MB\); set PE_IMPORT_MEMORY"):
            import_file(store, table, progress=False)
        assert store.count() == 0
    monkeypatch.setenv("PE_IMPORT_MEMORY", "lots")
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(InputError, match="PE_IMPORT_MEMORY='lots' is not a memory size"):
            import_file(store, table, progress=False)


def test_a_containers_limit_caps_the_default(tmp_path, monkeypatch):
    """Half of a container's cgroup limit, not of the host's memory: past the
    cgroup limit the kernel kills the process instead of DuckDB refusing."""
    monkeypatch.delenv("PE_IMPORT_MEMORY", raising=False)
    limit = tmp_path / "memory.max"
    limit.write_text(f"{1024 * 2**20}\n")  # a 1 GiB container
    monkeypatch.setattr(tabular, "CGROUP_LIMIT_FILES", (str(tmp_path / "absent"), str(limit)))
    assert table_memory_limit() == "512MB"
    limit.write_text("max\n")  # unlimited: the machine's memory decides
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert table_memory_limit() == f"{max(machine // 2 // 2**20, 256)}MB"

"""A failed or interrupted import: one clear line, and what it left behind."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError, RecordError
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from .conftest import conversation


def test_a_malformed_element_of_a_json_array_is_an_input_error(tmp_path):
    path = tmp_path / "a.json"
    good = json.dumps([conversation(i) for i in range(3)])
    path.write_text(good[:-1] + ', {"id": "bad", "messages": [{"role"')
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match=r"a\.json:\d+: invalid JSON array: .*Malformed JSON"):
        import_file(store, path, progress=False)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "c.duckdb"), "import", str(path)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "a.json" in result.stderr and "Traceback" not in result.output


def test_a_failed_import_says_what_it_already_committed(tmp_path, write_jsonl):
    path = write_jsonl([*(conversation(i) for i in range(12)), '{"id": "broken", "messages": ['])
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(RecordError) as caught:
            import_file(store, path, progress=False, batch_rows=5, chunk_bytes=1)
        assert store.count() > 0
        assert any("already in the cache" in note for note in caught.value.__notes__)
    db = str(tmp_path / "c.duckdb")
    # the CLI's batches are 10,000 records of an array: the first is committed
    big = tmp_path / "big.json"
    big.write_text(json.dumps([*(conversation(i, n_messages=1) for i in range(10_004)), {"id": "no messages"}]))
    result = CliRunner().invoke(cli, ["--db", db, "import", str(big)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "big.json:10005:" in lines[0], lines[0]
    assert "10,000 conversation(s) before it are already in the cache (10,000 new, 0 updated)" in lines[0]
    assert "again after fixing it is safe" in lines[0]
    with Store(db, read_only=True) as store:
        assert store.count() == 10_000


@pytest.mark.parametrize("how", ["interrupt", "sigint"])
def test_an_interrupted_duckdb_query_is_reported_as_an_interrupt(tmp_path, write_jsonl, monkeypatch, how):
    """Ctrl-C while DuckDB runs a query of the import. DuckDB answers SIGINT
    with RuntimeError('Query interrupted') (only when it can check signals,
    which a test runner without a terminal does not give: that form is
    raised as DuckDB raises it) and ``interrupt()`` with InterruptException
    (a real one here). Either way: `interrupted`, 130, nothing half-written."""
    from pe_toolkit.store import core

    path = write_jsonl([conversation(i) for i in range(5)])
    db = tmp_path / "c.duckdb"
    first = write_jsonl([conversation(100)], name="first.jsonl")
    assert CliRunner().invoke(cli, ["--db", str(db), "import", str(first)]).exit_code == 0

    def interrupted_merge(self, con):
        if how == "sigint":
            raise RuntimeError("Query interrupted")
        threading.Timer(0.3, con.interrupt).start()
        con.execute("SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3").fetchall()
        raise AssertionError("not interrupted")

    monkeypatch.setattr(core.Store, "_merge", interrupted_merge)
    result = CliRunner().invoke(cli, ["--db", str(db), "import", str(path)])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines() == ["pe-toolkit: interrupted"]
    monkeypatch.undo()
    with Store(db, read_only=True) as store:
        assert store.count() == 1  # the interrupted batch was rolled back
        runs = store.sql("SELECT status, error FROM ingest_runs ORDER BY started_at").rows()
        assert runs == [("completed", None), ("failed", "interrupted")]


def test_csv_read_errors_keep_the_reason_on_one_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("role,content\nuser,caf\xe9 private words\n".encode("latin-1"))
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "c.duckdb"), "import", str(path)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "not utf-8 encoded" in result.stderr
    assert "private words" not in result.stderr and "Original Line" not in result.stderr


def test_json_lines_read_as_csv_do_not_echo_the_record(tmp_path):
    path = tmp_path / "rec.csv"
    path.write_text(json.dumps(conversation(1) | {"note": "my secret diagnosis"}) + "\n")
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "c.duckdb"), "import", str(path)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "cannot tell which columns" in result.stderr and "looks like JSON" in result.stderr
    assert "message 0 of conversation" not in result.stderr and "secret" not in result.stderr


def test_long_column_names_are_cut_short():
    from pe_toolkit.ingest.columns import shown_columns

    shown = shown_columns(["a" * 500, *(f"col{i}" for i in range(30))])
    assert len(shown) < 160 and "and 19 more" in shown

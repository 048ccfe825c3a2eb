"""Audit of `pe-toolkit sql`, `info`, `doctor` and `synth`: what they got
wrong, through the real CLI on real DuckDB files."""

from __future__ import annotations

import csv
import gzip
import io
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import duckdb
import orjson
import pytest
from click.testing import CliRunner

from pe_toolkit import synth
from pe_toolkit.cli import cli
from pe_toolkit.errors import StoreError
from pe_toolkit.store import Store

from .cli_support import one_error_line
from .server_support import KEYS


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "c.duckdb"
    data = tmp_path / "s.jsonl"
    synth.write(data, 5, seed=1, progress=False)
    assert CliRunner().invoke(cli, ["--db", str(path), "import", str(data)]).exit_code == 0
    return path


# Values DuckDB itself renders, so the expectation is computed, not typed in.
NESTED = "SELECT [1, 2] AS l, {'a': 1, 'b': 'x'} AS s, MAP {'k': 1} AS m, NULL::INT[] AS n, '\\x00\\xff'::BLOB AS b, 'é' AS u"


def test_sql_csv_writes_lists_structs_maps_as_json_and_blobs_as_hex(cache):
    result = CliRunner().invoke(cli, ["--db", str(cache), "sql", NESTED, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1
    row = rows[0]
    with duckdb.connect() as con:
        items, s, m, b, u = con.execute(f"SELECT l, s, m, b, u FROM ({NESTED})").fetchone()
    assert orjson.loads(row["l"]) == items and orjson.loads(row["s"]) == s and orjson.loads(row["m"]) == m
    assert row["n"] == "" and bytes.fromhex(row["b"]) == b and row["u"] == u


def test_sql_json_takes_blobs_and_maps_with_other_keys(cache):
    query = "SELECT '\\x00\\xff'::BLOB AS b, MAP {1: 'v'} AS m, [1] AS l"
    result = CliRunner().invoke(cli, ["--db", str(cache), "sql", query, "--format", "json"])
    assert result.exit_code == 0, result.output
    with duckdb.connect() as con:
        b, m, items = con.execute(query).fetchone()
    (row,) = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert bytes.fromhex(row["b"]) == b and row["m"] == {str(k): v for k, v in m.items()} and row["l"] == items


@pytest.mark.parametrize(
    "query", ["SELECT 1 AS a, 2 AS a", "SELECT INTERVAL 3 DAY AS i", "SELECT c.id, c.id FROM conversations c"]
)
def test_sql_results_polars_cannot_hold_are_one_line(cache, query):
    line = one_error_line(CliRunner().invoke(cli, ["--db", str(cache), "sql", query]))
    assert "cannot be held as a frame" in line
    with Store(cache, read_only=True) as store, pytest.raises(StoreError, match="alias repeated column names"):
        store.sql(query)  # the library says the same, as a StoreError


def test_sql_write_query_without_write_says_how(cache):
    line = one_error_line(CliRunner().invoke(cli, ["--db", str(cache), "sql", "DELETE FROM conversations"]))
    assert "--write" in line
    with Store(cache, read_only=True) as store:
        assert store.count() == 5


def test_sql_write_on_a_mistyped_cache_creates_nothing(tmp_path):
    missing = tmp_path / "typo.duckdb"
    line = one_error_line(CliRunner().invoke(cli, ["--db", str(missing), "sql", "--write", "SELECT 1"]))
    assert str(missing) in line
    assert not missing.exists()


def test_synth_does_not_clobber_an_existing_file(tmp_path):
    target = tmp_path / "mine.jsonl"
    target.write_text("my own notes\n")
    line = one_error_line(CliRunner().invoke(cli, ["synth", "3", "--out", str(target)]))
    assert "--force" in line and target.read_text() == "my own notes\n"
    result = CliRunner().invoke(cli, ["synth", "3", "--out", str(target), "--force"])
    assert result.exit_code == 0, result.output
    assert [orjson.loads(x) for x in target.read_bytes().splitlines()] == list(synth.generate(3))


def test_synth_leaves_other_files_beside_the_target_alone(tmp_path):
    # The old writer used PATH.tmp as its scratch file, and deleted it after.
    neighbour = tmp_path / "out.jsonl.gz.tmp"
    neighbour.write_text("someone else's file")
    result = CliRunner().invoke(cli, ["synth", "3", "--out", str(tmp_path / "out.jsonl.gz")])
    assert result.exit_code == 0, result.output
    assert neighbour.read_text() == "someone else's file"
    assert gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()).count(b"\n") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl.gz", "out.jsonl.gz.tmp"]


def test_synth_never_replaces_the_cache(cache):
    before = cache.read_bytes()
    line = one_error_line(CliRunner().invoke(cli, ["--db", str(cache), "synth", "3", "--out", str(cache), "--force"]))
    assert "cache" in line and cache.read_bytes() == before


def test_synth_into_an_unwritable_place_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_error_line(CliRunner().invoke(cli, ["synth", "3", "--out", str(blocker / "x.jsonl")]))
    one_error_line(CliRunner().invoke(cli, ["synth", "3", "--out", "/proc/x.jsonl"]))


def _serve_once(port_box: list[int]) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    port_box.append(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("key", ["sk-S3CRETVALUE\rx", "sk-S3CRETVALUE\nx", "sk-S3CRETVALUÉ"])
def test_doctor_never_prints_a_key_with_stray_characters(tmp_path, monkeypatch, key):
    port: list[int] = []
    server = _serve_once(port)  # a live server: the HTTP layer's refusal quoted the header
    try:
        monkeypatch.setenv("PE_API_URL", f"http://127.0.0.1:{port[0]}/v1")
        monkeypatch.setenv("PE_API_KEY", key)
        result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.duckdb"), "doctor", "--online"])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1, result.output
    assert "S3CRET" not in result.output and "Traceback" not in result.output, result.output
    assert "[FAIL] api:" in result.output


def test_doctor_reports_a_malformed_api_url_instead_of_crashing(tmp_path, monkeypatch):
    monkeypatch.setenv("PE_API_URL", "http://[broken/v1")
    monkeypatch.setenv("PE_API_KEY", "k")
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.duckdb"), "doctor"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "[FAIL] api:" in result.output


def test_doctor_is_not_all_clear_after_an_interrupted_analysis(cache):
    assert CliRunner().invoke(cli, ["--db", str(cache), "analyze"]).exit_code == 0
    assert CliRunner().invoke(cli, ["--db", str(cache), "doctor"]).exit_code == 0
    with Store(cache) as store:  # what a killed analyze leaves: its run not completed
        store.connection.execute(
            "UPDATE analysis_runs SET status = 'interrupted' WHERE started_at = (SELECT max(started_at) FROM analysis_runs)"
        )
    result = CliRunner().invoke(cli, ["--db", str(cache), "doctor"])
    assert result.exit_code == 1 and "[FAIL] analysis" in result.output and "interrupted" in result.output, result.output



def test_a_key_with_surrounding_whitespace_is_sent_stripped_and_a_broken_one_never_shown(mirror, tmp_path, monkeypatch):
    """A key file saved on Windows ends in \r\n: the key is sent without it
    (before: the HTTP layer refused the header and its error, printed by
    sync, quoted the key). A line break inside is refused without quoting it."""
    monkeypatch.setenv("PE_API_URL", mirror.url)
    cache = str(tmp_path / "mine.duckdb")
    monkeypatch.setenv("PE_API_KEY", f"{KEYS[0]}\r\n")
    result = CliRunner().invoke(cli, ["--db", cache, "doctor", "--online"])
    assert result.exit_code == 0 and "reachable, key accepted" in result.output, result.output
    monkeypatch.setenv("PE_API_KEY", "sk-S3CRETVALUE\nx")
    line = one_error_line(CliRunner().invoke(cli, ["--db", cache, "sync", "--no-progress"]))
    assert "S3CRET" not in line and "API key: it holds a line break" in line, line


def test_a_write_to_a_read_only_store_says_how_to_write(cache):
    """The advice comes from the store's error (library and CLI alike), not
    from the CLI matching DuckDB's text."""
    result = CliRunner().invoke(cli, ["--db", str(cache), "sql", "CREATE TABLE notes (a INTEGER)"])
    assert "read-only mode" in one_error_line(result) and "sql --write" in result.stderr
    with Store(cache, read_only=True) as store, pytest.raises(StoreError, match=r"read-only mode.*sql --write"):
        store.sql("DELETE FROM conversations")
    assert CliRunner().invoke(cli, ["--db", str(cache), "sql", "--write", "CREATE TABLE notes (a INTEGER)"]).exit_code == 0

"""The PostgreSQL warehouse load, against a real PostgreSQL.

.ci/run starts the local cluster and sets PE_TEST_PG_DSN and PE_REQUIRE_PG=1:
there a missing server fails the tests. Elsewhere (a developer machine
without PostgreSQL) they skip, saying how to get a server.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time

import orjson
import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import WarehouseError
from pe_toolkit.exports import features
from pe_toolkit.exports.dsn import Dsn
from pe_toolkit.ingest import import_file

from ._export_support import analyze_for_real, stand_in_scores
from .warehouse_support import (
    PG_DSN,
    execute,
    load,
    pg_connect as pg_connect,  # test_filter_vocabulary imports it from here
    query,
    schema_exists,
    tables_in,
)

pytestmark = pytest.mark.postgres


def versions(schema: str, table: str, key: str = "conversation_id") -> dict:
    """Row version (xmin) per conversation: changes exactly when rewritten."""
    frame = query(f'SELECT {key} AS id, string_agg(xmin::text, \',\' ORDER BY xmin::text) AS v FROM "{schema}".{table} GROUP BY 1')
    return dict(frame.iter_rows())


def all_versions(schema: str) -> dict:
    return {
        "conversations": versions(schema, "conversations", "id"),
        "messages": versions(schema, "messages"),
        "conversation_features": versions(schema, "conversation_features"),
    }


# -- content ---------------------------------------------------------------------


def test_load_matches_the_store(sample_store, schema):
    report = load(sample_store, schema)
    assert report.conversations == sample_store.count() == 2000
    assert report.tables["conversations"].inserted == 2000
    assert report.tables["messages"].inserted == sample_store.messages().height
    assert "***" not in report.target or "pe_test" in report.target
    assert tables_in(schema) == ["conversation_features", "conversations", "messages"]

    pg_conv = query(f'SELECT * FROM "{schema}".conversations ORDER BY id')
    stored = sample_store.conversations()
    for col in ("id", "source", "dataset", "tier", "message_count", "content_hash", *(c for c in stored.columns if c.endswith(("_score", "_quality", "accuracy", "coherence", "authenticity", "compliance")))):
        assert pg_conv[col].to_list() == stored[col].to_list(), col
    for col in ("created_at", "fetched_at"):
        assert pg_conv[col].dt.epoch("us").to_list() == stored[col].dt.epoch("us").to_list(), col
    assert [orjson.loads(m) for m in pg_conv["metadata"]] == [orjson.loads(m) for m in stored["metadata"]]

    pg_msgs = query(f'SELECT conversation_id, idx, role, content, "timestamp" FROM "{schema}".messages ORDER BY conversation_id, idx')
    msgs = sample_store.messages()
    assert pg_msgs.drop("timestamp").equals(msgs.drop("timestamp"))
    assert pg_msgs["timestamp"].dt.epoch("us").to_list() == msgs["timestamp"].dt.epoch("us").to_list()

    pg_feat = query(f'SELECT * FROM "{schema}".conversation_features ORDER BY conversation_id')
    feat = features(sample_store)
    for col in feat.columns:
        if feat[col].dtype == pl.Datetime("us", "UTC"):
            assert pg_feat[col].dt.epoch("us").to_list() == feat[col].dt.epoch("us").to_list(), col
        else:
            assert pg_feat[col].to_list() == feat[col].to_list(), col
    keys = query(f"SELECT indexname FROM pg_indexes WHERE schemaname = '{schema}'")["indexname"].to_list()
    assert {"conversations_pkey", "messages_pkey", "conversation_features_pkey", "conversations_dataset_tier_idx"} <= set(keys)


def test_second_load_writes_nothing(sample_store, schema):
    load(sample_store, schema)
    before = all_versions(schema)
    report = load(sample_store, schema)
    assert report.rows_written == 0
    assert "nothing changed" in str(report)
    assert all_versions(schema) == before


def test_only_a_changed_conversation_is_rewritten(sample_store, schema, tmp_path):
    load(sample_store, schema)
    before = all_versions(schema)
    changed = sample_store.conversation("syn7_0000042")
    changed["messages"] = changed["messages"][:2]  # shorter: old rows beyond must go
    changed["messages"][1]["content"] = "A rewritten reply."
    (tmp_path / "one.jsonl").write_bytes(orjson.dumps(changed) + b"\n")
    assert import_file(sample_store, tmp_path / "one.jsonl", progress=False).updated == 1

    report = load(sample_store, schema)
    assert report.tables["conversations"].updated == 1 and report.tables["conversations"].inserted == 0
    assert report.tables["messages"].inserted == 2
    assert report.tables["conversation_features"].updated == 1
    after = all_versions(schema)
    for table in before:
        moved = {k for k in before[table] if before[table][k] != after[table].get(k)}
        assert moved == {"syn7_0000042"}, table
    rows = query(f"SELECT idx, content FROM \"{schema}\".messages WHERE conversation_id = 'syn7_0000042' ORDER BY idx")
    assert rows["content"].to_list() == [m["content"] for m in changed["messages"]]
    feat = query(f"SELECT message_count FROM \"{schema}\".conversation_features WHERE conversation_id = 'syn7_0000042'")
    assert feat["message_count"][0] == 2


def test_filtered_load_and_a_wider_load_later(sample_store, schema):
    report = load(sample_store, schema, dataset="crisis_line_sim")
    want = sample_store.count(dataset="crisis_line_sim")
    assert 0 < want < 2000 and report.conversations == want
    assert query(f'SELECT DISTINCT dataset FROM "{schema}".conversations')["dataset"].to_list() == ["crisis_line_sim"]
    report = load(sample_store, schema)
    assert report.tables["conversations"].inserted == 2000 - want


def test_text_postgresql_cannot_hold_is_marked_not_fatal(sample_store, schema, tmp_path):
    (tmp_path / "nul.jsonl").write_bytes(
        b'{"id":"nul_1","messages":[{"role":"user","content":"a\\u0000b"}],"metadata":{"dataset":"edge","note":"x\\u0000y"}}\n'
    )
    import_file(sample_store, tmp_path / "nul.jsonl", progress=False)
    load(sample_store, schema, ids=["nul_1"])
    row = query(f"SELECT m.content, c.metadata FROM \"{schema}\".messages m JOIN \"{schema}\".conversations c ON c.id = m.conversation_id")
    assert row["content"][0] == "a\ufffdb"
    assert orjson.loads(row["metadata"][0])["note"] == "x\ufffdy"


# -- scores ------------------------------------------------------------------------


def test_scores_are_loaded_and_reloaded_only_when_changed(sample_store, schema):
    stand_in_scores(sample_store)
    report = load(sample_store, schema)
    assert report.tables["conversation_scores"].inserted == sample_store.scalar("SELECT count(*) FROM conversation_scores")
    assert report.tables["message_scores"].inserted == sample_store.scalar("SELECT count(*) FROM message_scores")
    pg_scores = query(f'SELECT conversation_id, risk_score, crisis_categories FROM "{schema}".conversation_scores ORDER BY 1')
    stored = sample_store.sql("SELECT conversation_id, risk_score, crisis_categories FROM conversation_scores ORDER BY 1")
    assert pg_scores["risk_score"].to_list() == stored["risk_score"].to_list()
    assert pg_scores["crisis_categories"].to_list() == stored["crisis_categories"].to_list()
    assert load(sample_store, schema).rows_written == 0

    target = stored["conversation_id"][7]
    sample_store.connection.execute("UPDATE conversation_scores SET risk_score = 0.123 WHERE conversation_id = ?", [target])
    before = versions(schema, "conversation_scores")
    report = load(sample_store, schema)
    assert report.tables["conversation_scores"].updated == 1
    assert report.tables["conversations"].written == 0
    after = versions(schema, "conversation_scores")
    assert {k for k in before if before[k] != after[k]} == {target}
    assert query(f"SELECT risk_score FROM \"{schema}\".conversation_scores WHERE conversation_id = '{target}'")["risk_score"][0] == 0.123
    # the feature table carries the risk score: its row follows, alone
    assert report.tables["conversation_features"].updated == 1
    assert query(f"SELECT risk_score FROM \"{schema}\".conversation_features WHERE conversation_id = '{target}'")["risk_score"][0] == 0.123


@pytest.mark.parametrize("filters", [{}, {"dataset": "crisis_line_sim"}], ids=["all", "filtered"])
def test_message_score_hashes_do_not_depend_on_the_id_ranges(sample_store, schema, monkeypatch, filters):
    from pe_toolkit.exports import warehouse

    stand_in_scores(sample_store)
    ranges: list[list] = []
    key_ranges = warehouse._Loader.key_ranges
    monkeypatch.setattr(warehouse._Loader, "key_ranges", lambda self, *a: ranges.append(key_ranges(self, *a)) or ranges[-1])
    load(sample_store, schema, **filters)
    assert len(ranges[-1]) == 1  # the sample's ~16,000 message scores: one range
    # In ranges of ~200 rows the hashes are the same: nothing to write.
    monkeypatch.setattr(warehouse._Loader, "KEY_CHUNK_ROWS", 200)
    monkeypatch.setattr(warehouse._Loader, "KEY_CHUNKS_MAX", 1000)
    assert load(sample_store, schema, **filters).rows_written == 0
    many = ranges[-1]
    assert len(many) > 5 and many[0][0] is None and many[-1][1] is None
    assert all(a[1] == b[0] for a, b in itertools.pairwise(many))  # adjacent, no id left out
    # A message score changed in a middle range is found there, alone.
    middle = many[len(many) // 2][0]
    target = sample_store.scalar(
        "SELECT min(conversation_id) FROM message_scores m JOIN conversations c ON c.id = m.conversation_id "
        "WHERE conversation_id >= ? AND c.dataset = 'crisis_line_sim'",
        [middle],
    )
    sample_store.connection.execute("UPDATE message_scores SET sentiment = -0.5 WHERE conversation_id = ? AND idx = 0", [target])
    report = load(sample_store, schema, **filters)
    assert report.tables["conversation_scores"].updated == 1
    rows = sample_store.scalar("SELECT count(*) FROM message_scores WHERE conversation_id = ?", [target])
    assert report.tables["message_scores"].inserted == rows and report.tables["message_scores"].deleted == rows
    assert query(f"SELECT sentiment FROM \"{schema}\".message_scores WHERE conversation_id = '{target}' AND idx = 0")["sentiment"][0] == -0.5
    # Past KEY_CHUNKS_MAX ranges, the ranges grow instead.
    monkeypatch.setattr(warehouse._Loader, "KEY_CHUNKS_MAX", 3)
    assert load(sample_store, schema, **filters).rows_written == 0
    assert len(ranges[-1]) == 3


def test_features_added_to_an_existing_warehouse(sample_store, schema):
    load(sample_store, schema, include_features=False)
    assert tables_in(schema) == ["conversations", "messages"]
    report = load(sample_store, schema)
    assert report.tables["conversations"].written == 0 and report.tables["messages"].written == 0
    assert report.tables["conversation_features"].inserted == 2000
    pg_feat = query(f'SELECT conversation_id, words_total, user_chars_mean FROM "{schema}".conversation_features ORDER BY 1')
    assert pg_feat.equals(features(sample_store).select("conversation_id", "words_total", "user_chars_mean"))


def test_real_analysis_scores_load(sample_store, schema):
    analyze_for_real(sample_store)
    report = load(sample_store, schema)
    duck = sample_store.sql("SELECT * FROM conversation_scores ORDER BY conversation_id")
    pg = query(f'SELECT * FROM "{schema}".conversation_scores ORDER BY conversation_id')
    assert report.tables["conversation_scores"].inserted == duck.height == 2000
    for col in duck.columns:
        if duck[col].dtype == pl.Datetime("us", "UTC"):
            assert pg[col].dt.epoch("us").to_list() == duck[col].dt.epoch("us").to_list(), col
        else:
            assert pg[col].to_list() == duck[col].to_list(), col
    pg_msg = query(f'SELECT conversation_id, idx, sentiment, skills FROM "{schema}".message_scores ORDER BY 1, 2')
    duck_msg = sample_store.sql("SELECT conversation_id, idx, sentiment, skills FROM message_scores ORDER BY 1, 2")
    assert pg_msg.equals(duck_msg)
    assert load(sample_store, schema).rows_written == 0
    # a re-analysis with the same results writes nothing either
    from pe_toolkit.analysis import analyze

    analyze(sample_store, incremental=False, progress=False)
    assert load(sample_store, schema).rows_written == 0


# -- all or nothing --------------------------------------------------------------


def test_a_database_failure_mid_load_commits_nothing(sample_store, schema):
    # A CHECK the third message of every conversation violates: the COPY of
    # messages fails after conversations were written in the transaction.
    execute(
        f'CREATE SCHEMA "{schema}"',
        f'CREATE TABLE "{schema}".messages (conversation_id text NOT NULL, '
        'idx integer NOT NULL CHECK (idx < 2), role text NOT NULL, content text NOT NULL, "timestamp" timestamptz, '
        "CONSTRAINT messages_pkey PRIMARY KEY (conversation_id, idx))"
    )
    with pytest.raises(WarehouseError) as info:
        load(sample_store, schema)
    message = str(info.value)
    assert "nothing was committed" in message and "\n" not in message and "check constraint" in message
    assert tables_in(schema) == ["messages"]
    assert query(f'SELECT count(*) AS n FROM "{schema}".messages')["n"][0] == 0


def test_a_failure_after_writing_leaves_the_previous_load(sample_store, schema, tmp_path, monkeypatch):
    from pe_toolkit.exports import warehouse

    load(sample_store, schema)
    before = all_versions(schema)
    changed = sample_store.conversation("syn7_0000007")
    changed["messages"][0]["content"] += " (edited)"
    (tmp_path / "one.jsonl").write_bytes(orjson.dumps(changed) + b"\n")
    import_file(sample_store, tmp_path / "one.jsonl", progress=False)

    def fail(self, *args):
        raise RuntimeError("injected after conversations and messages were written")

    monkeypatch.setattr(warehouse._Loader, "write_features", fail)
    with pytest.raises(RuntimeError, match="injected"):
        load(sample_store, schema)
    assert all_versions(schema) == before
    monkeypatch.undo()
    assert load(sample_store, schema).tables["conversations"].updated == 1


def _wait_for_backend_exit(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'pe_toolkit_kill_test'")["n"][0] == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the killed load's server process did not end")


@pytest.mark.parametrize("first_load", [True, False])
def test_a_killed_load_leaves_nothing(sample_store, schema, first_load):
    if not first_load:
        load(sample_store, schema, dataset="crisis_line_sim")
        before = all_versions(schema)
    sample_store.close()
    dsn = PG_DSN + ("&" if "?" in PG_DSN else "?") + "application_name=pe_toolkit_kill_test"
    script = textwrap.dedent(
        f"""
        import time
        from pe_toolkit.events import bus
        from pe_toolkit.exports.warehouse import load
        from pe_toolkit.store import Store

        def pause(event):
            if event.payload["table"] == "messages":
                print("COPYING", flush=True)
                time.sleep(120)

        bus.subscribe("warehouse.progress", pause)
        load(Store({str(sample_store.path)!r}, read_only=True), {dsn!r}, schema={schema!r}, progress=False, batch_rows=1000)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "COPYING"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    _wait_for_backend_exit()
    if first_load:
        assert not schema_exists(schema)
    else:
        assert all_versions(schema) == before
        assert tables_in(schema) == ["conversation_features", "conversations", "messages"]


# -- errors --------------------------------------------------------------------------


def _with_password(dsn: str, password: str, port: int | None = None) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    host = f"{parts.hostname}:{port or parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{host}"))


@pytest.mark.parametrize(
    ("port", "expected"),
    [(None, "password authentication failed"), (1, "Connection refused")],
)
def test_connection_failures_are_one_line_without_the_password(sample_store, schema, port, expected):
    from pe_toolkit.exports.warehouse import load as _load

    secret = "s3cr3t-Pa55word"
    dsn = _with_password(PG_DSN, secret, port)
    with pytest.raises(WarehouseError) as info:
        _load(sample_store, dsn, schema=schema, progress=False)
    message = str(info.value)
    assert expected in message and "\n" not in message and secret not in message
    assert message.startswith("cannot connect to postgresql://pe_test:***@")

    sample_store.close()
    result = CliRunner().invoke(cli, ["--db", str(sample_store.path), "export", "--to", dsn, "--schema", schema])
    assert result.exit_code == 1
    assert secret not in result.output
    assert result.output.strip().count("\n") == 0 and expected in result.output


def test_cli_load_and_env_dsn(sample_store, schema, monkeypatch):
    sample_store.close()
    result = CliRunner().invoke(cli, ["--db", str(sample_store.path), "export", "--to", PG_DSN, "--schema", schema, "--tier", "research"])
    assert result.exit_code == 0, result.output
    assert "pe_test:***@" in result.output and "pe_test:pe_test@" not in result.output
    monkeypatch.setenv("PE_WAREHOUSE_DSN", PG_DSN)
    result = CliRunner().invoke(cli, ["--db", str(sample_store.path), "export", "--schema", schema, "--tier", "research"])
    assert result.exit_code == 0 and "nothing changed" in result.output


def test_dsn_masking():
    d = Dsn.parse("postgresql://me:p%40ss@db.example:5433/research?sslmode=require&password=other")
    assert "p%40ss" not in d.masked and "p@ss" not in d.masked and "other" not in d.masked
    assert d.scrub("failed for p@ss and p%40ss") == "failed for *** and ***"
    k = Dsn.parse("host=db dbname=x user=me password='a b c'")
    assert "a b c" not in k.masked and "password=***" in k.masked
    with pytest.raises(Exception, match="not a PostgreSQL connection string"):
        Dsn.parse("mysql-ish")

import os
import stat
import subprocess
import sys
import textwrap

import orjson
import pyarrow as pa
import pytest

from pe_toolkit.errors import InputError, SchemaVersionError, StoreError, StoreLockedError
from pe_toolkit.store import ConversationFilter, Store
from pe_toolkit.store.api_objects import api_objects_sql
from pe_toolkit.store.migrate import latest_version

from .conftest import conversation


def batch_of(convs):
    """API objects -> a CONVERSATION_SCHEMA batch through the real normalizer."""
    import duckdb

    from pe_toolkit.store.normalize import normalize_lines

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    lines = pa.table({"line_no": pa.array(range(1, len(convs) + 1), pa.int64()), "raw": [orjson.dumps(c).decode() for c in convs]})
    good, errors = normalize_lines(con, lines, "api", dataset="unit", source="test")
    assert not errors
    return good


def test_new_file_is_private_and_migrated(tmp_path):
    path = tmp_path / "c.duckdb"
    with Store(path) as store:
        store.upsert(batch_of([conversation(1)]))
        assert store.schema_version == latest_version()
        wal = tmp_path / "c.duckdb.wal"
        for f in (path, wal):
            if f.exists():
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_upsert_inserts_updates_and_skips_unchanged(store):
    first = store.upsert(batch_of([conversation(1), conversation(2)]))
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    assert first.created_ids == ["conv_00001", "conv_00002"]
    fetched = store.sql("SELECT id, fetched_at FROM conversations ORDER BY id")

    again = store.upsert(batch_of([conversation(1), conversation(2)]))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert store.sql("SELECT id, fetched_at FROM conversations ORDER BY id").equals(fetched)

    changed = conversation(2, n_messages=6)
    result = store.upsert(batch_of([conversation(1), changed]))
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 1)
    assert result.updated_ids == ["conv_00002"]
    assert store.count() == 2
    assert store.scalar("SELECT count(*) FROM messages WHERE conversation_id = 'conv_00002'") == 6
    assert store.scalar("SELECT count(*) FROM messages") == 10


def test_metadata_change_counts_as_change(store):
    store.upsert(batch_of([conversation(1)]))
    result = store.upsert(batch_of([conversation(1, note="edited")]))
    assert result.updated == 1


def test_duplicate_ids_in_a_batch_last_wins(store):
    a = conversation(1, n_messages=2)
    b = conversation(1, n_messages=5)
    result = store.upsert(batch_of([a, b]))
    assert result.inserted == 1
    assert len(store.conversation("conv_00001")["messages"]) == 5


def test_conversation_round_trips_as_api_object(store):
    original = conversation(7, topic="grief")
    store.upsert(batch_of([original]))
    back = store.conversation("conv_00007")
    assert back["id"] == original["id"]
    assert back["messages"] == original["messages"]
    assert back["quality_metrics"] == original["quality_metrics"]
    assert back["metadata"] == {**original["metadata"], "length": 4}
    assert store.conversation("nope") is None


def test_filters_are_parameters_not_sql(store):
    store.upsert(batch_of([conversation(i, dataset="a" if i % 2 else "b") for i in range(10)]))
    assert store.count(dataset="a") == 5
    assert store.count(ConversationFilter(dataset=["a", "b"], min_quality=0.7)) == 10
    hostile = "a' OR '1'='1"
    assert store.count(dataset=hostile) == 0
    assert store.conversations(ids=["conv_00003; DROP TABLE conversations; --"]).is_empty()
    assert store.count() == 10
    with pytest.raises(InputError, match="min_quality"):
        store.count(min_quality=2)
    with pytest.raises(InputError, match="unknown tier"):
        store.count(tier="gold")


def test_messages_accessor_orders_and_filters(store):
    store.upsert(batch_of([conversation(1), conversation(2, dataset="x")]))
    frame = store.messages(dataset="x", role="user")
    assert frame["conversation_id"].unique().to_list() == ["conv_00002"]
    assert frame["idx"].to_list() == [0, 2]


def test_page_is_stable(store):
    store.upsert(batch_of([conversation(i) for i in range(25)]))
    pages = [store.conversations(limit=10, offset=o)["id"].to_list() for o in (0, 10, 20)]
    assert [cid for page in pages for cid in page] == sorted(f"conv_{i:05d}" for i in range(25))


def test_read_only_store_refuses_writes(tmp_path):
    path = tmp_path / "ro.duckdb"
    with Store(path) as store:
        store.upsert(batch_of([conversation(1)]))
    with Store(path, read_only=True) as ro:
        assert ro.count() == 1
        with pytest.raises(StoreError, match="read-only"):
            ro.upsert(batch_of([conversation(2)]))
    with pytest.raises(StoreError, match="no cache"):
        Store(tmp_path / "missing.duckdb", read_only=True)


def test_second_writer_is_told_who_holds_the_lock(tmp_path):
    path = tmp_path / "locked.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pe_toolkit.store import Store
            s = Store({str(path)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError) as info:
            Store(path)
        assert info.value.pid == holder.pid
        assert str(holder.pid) in str(info.value)
        assert "python" in (info.value.holder or "")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()


def _hold(path, *, read_only):
    """A process holding ``path`` open (writable or read-only) until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pe_toolkit.store import Store
            s = Store({str(path)!r}, read_only={read_only!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "ready"
    return holder


def _let_go(holder):
    holder.stdin.close()
    holder.wait(timeout=30)
    holder.stdout.close()


def test_lock_advice_is_true_while_a_writer_runs(tmp_path):
    # The message advised a read-only open, which fails too while another
    # process writes (issue 15, part 8): it must say to wait and retry.
    path = tmp_path / "locked.duckdb"
    Store(path).close()
    holder = _hold(path, read_only=False)
    try:
        for read_only in (False, True):
            with pytest.raises(StoreLockedError) as info:
                Store(path, read_only=read_only)
            text = str(info.value)
            assert info.value.pid == holder.pid and info.value.holder_writes is True
            assert f"is locked by process {holder.pid}" in text
            assert "open this store read-only" not in text
            assert "wait for it to finish" in text and "retry" in text
    finally:
        _let_go(holder)


def test_lock_advice_offers_read_only_beside_a_reader(tmp_path):
    path = tmp_path / "read.duckdb"
    Store(path).close()
    holder = _hold(path, read_only=True)
    try:
        with pytest.raises(StoreLockedError) as info:
            Store(path)
        assert info.value.holder_writes is False
        assert "open read-only" in str(info.value) and "read_only=True" in str(info.value)
        # ... and the advice holds: a read-only open works beside it.
        with Store(path, read_only=True) as ro:
            assert ro.count() == 0
    finally:
        _let_go(holder)


def test_a_killed_import_is_marked_interrupted(tmp_path):
    # ingest_runs rows of a killed import stayed 'running' forever; they are
    # marked like analysis_runs rows now (issue 15, part 8).
    path = tmp_path / "killed.duckdb"
    Store(path).close()
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, signal
            from pe_toolkit.store import Store
            s = Store({str(path)!r})
            s.start_run("import", "big.jsonl")
            os.kill(os.getpid(), signal.SIGKILL)
        """)],
        timeout=60,
    )
    assert killed.returncode == -9
    with Store(path) as store:
        status, error, finished = store.connection.execute(
            "SELECT status, error, finished_at FROM ingest_runs"
        ).fetchall()[0]
        assert status == "interrupted" and "ended before it finished" in error and finished is not None
        # A run of a live process (this one) is left running.
        mine = store.start_run("import", "other.jsonl")
        assert store.mark_interrupted_runs() == 0
        assert store.scalar("SELECT status FROM ingest_runs WHERE run_id = ?", [mine]) == "running"
        assert store.scalar("SELECT pid FROM ingest_runs WHERE run_id = ?", [mine]) == os.getpid()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.duckdb"
    with Store(path) as store:
        store.connection.execute("INSERT INTO schema_version VALUES (999, 'future', now())")
    with pytest.raises(SchemaVersionError, match="newer"):
        Store(path)


def test_summary_renders_for_terminal_and_jupyter(store):
    store.upsert(batch_of([conversation(1, tier="research"), conversation(2, tier="basic")]))
    summary = store.summary()
    assert summary.conversations == 2 and summary.messages == 8
    text = str(summary)
    assert "2 conversations" in text and "research" in text
    html = summary._repr_html_()
    assert "<table>" in html and "basic" in html
    assert summary.frame["tier"].to_list() == ["basic", "research"]


def test_dead_letters_count_attempts(store):
    store.add_dead_letters([("f.jsonl", "3", "bad", "{")])
    store.add_dead_letters([("f.jsonl", "3", "still bad", "{")])
    frame = store.dead_letters()
    assert frame["attempts"].to_list() == [2]
    assert frame["reason"].to_list() == ["still bad"]
    store.resolve_dead_letters("f.jsonl", ["3"])
    assert store.dead_letters().is_empty()


def test_upsert_rejects_a_batch_without_the_schema(store):
    with pytest.raises((KeyError, pa.ArrowInvalid, ValueError)):
        store.upsert(pa.table({"id": ["x"]}))
    assert store.count() == 0


def test_stored_metadata_leaves_owned_keys_to_the_columns(tmp_path):
    path = tmp_path / "m.duckdb"
    with Store(path) as store:
        store.upsert(batch_of([conversation(1, topic="grief")]))
        assert orjson.loads(store.scalar("SELECT metadata FROM conversations")) == {"topic": "grief"}
        text = store.sql("SELECT json FROM (" + api_objects_sql()[0] + ")").item()
        assert text.count('"dataset"') == 1 and orjson.loads(text)["metadata"]["dataset"] == "unit"
        # A row written before migration 0006 still carried them: the migration strips them.
        store.connection.execute("""UPDATE conversations SET metadata = '{"topic":"grief","dataset":"unit","length":4}'""")
        store.connection.execute("DELETE FROM schema_version WHERE version >= 6")
    with Store(path) as store:
        assert orjson.loads(store.scalar("SELECT metadata FROM conversations")) == {"topic": "grief"}


# -- issue 15, part 8 ---------------------------------------------------------
def _no_duplicate_keys(text):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys {keys} in {text[:200]}"
        return dict(pairs)

    import json

    return json.loads(text, object_pairs_hook=hook)


def test_record_without_metadata_keeps_its_dataset(tmp_path, store):
    from pe_toolkit.ingest import import_file

    api = tmp_path / "meta.jsonl"
    api.write_text('{"id": "m1", "messages": [{"role": "user", "content": "hi"}]}\n')
    openai = tmp_path / "chat.jsonl"
    openai.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    import_file(store, api, progress=False)
    import_file(store, openai, format="openai", progress=False)
    assert store.conversation("m1")["metadata"] == {"dataset": "meta", "length": 1}
    for _, text in store.connection.execute(api_objects_sql()[0]).fetchall():
        assert _no_duplicate_keys(text)["metadata"]["dataset"] in ("meta", "chat")
    assert store.scalar("SELECT count(*) FROM conversations WHERE metadata IS NOT NULL") == 0


def test_migration_0010_cleans_rows_stored_before(tmp_path):
    path = tmp_path / "old.duckdb"
    with Store(path) as store:
        store.upsert(batch_of([conversation(1), conversation(2), conversation(3)]))
        con = store.connection
        con.execute("""UPDATE conversations SET metadata = '{"dataset":null,"tier":null,"length":null,"created_at":null}' WHERE id = 'conv_00001'""")
        con.execute("UPDATE conversations SET overall_quality = 'nan'::DOUBLE, safety_score = 7 WHERE id = 'conv_00002'")
        con.execute("UPDATE conversations SET overall_quality = 'inf'::DOUBLE WHERE id = 'conv_00003'")
        con.execute("DELETE FROM schema_version WHERE version >= 10")
    with Store(path) as store:
        assert store.conversation("conv_00001")["metadata"]["dataset"] == "unit"
        for cid in ("conv_00002", "conv_00003"):
            text = store.connection.execute(api_objects_sql(ConversationFilter(ids=[cid]))[0], [[cid]]).fetchall()[0][1]
            assert orjson.loads(text)["quality_metrics"]["overall_quality"] is None
        assert store.conversation("conv_00002")["quality_metrics"]["safety_score"] is None
        assert "nan" not in str(store.summary()).lower()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, 1e308])
def test_upsert_refuses_quality_values_json_cannot_carry(store, value):
    batch = batch_of([conversation(1)])
    batch = batch.set_column(batch.schema.get_field_index("overall_quality"), "overall_quality", pa.array([value]))
    with pytest.raises(InputError, match="overall_quality must be a number between 0 and 1"):
        store.upsert(batch)
    assert store.count() == 0


def test_bad_scores_go_to_dead_letters_and_info_stays_finite(tmp_path):
    from click.testing import CliRunner

    from pe_toolkit.cli import cli

    path = tmp_path / "scores.jsonl"
    msg = '[{"role": "user", "content": "x"}]'
    path.write_text(
        "".join(
            f'{{"id": "s{i}", "messages": {msg}, "quality_score": {score}}}\n'
            for i, score in enumerate(["0.5", "7", "-5", "NaN", "Infinity", "1e308"])
        )
    )
    db = str(tmp_path / "c.duckdb")
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", db, "import", str(path)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert ':2: "quality_score" must be a number between 0 and 1, got 7' in result.stderr
    result = runner.invoke(cli, ["--db", db, "import", "--skip-invalid", str(path)])
    assert result.exit_code == 0, result.output
    info = runner.invoke(cli, ["--db", db, "info"])
    assert info.exit_code == 0 and "nan" not in info.output.lower() and "inf" not in info.output.lower()
    with Store(db, read_only=True) as store:
        assert store.count() == 1
        assert store.dead_letters().height == 5
        assert store.conversation("s0")["quality_metrics"]["overall_quality"] == 0.5

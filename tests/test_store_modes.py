"""Opening one cache several times in one process, the read-only sandbox,
and the store's clean errors (issue 15, parts 4, 7 and 8)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError, StoreError
from pe_toolkit.store import Store, open_store

from .conftest import conversation
from .test_store import batch_of


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "modes.duckdb"
    with Store(path) as store:
        store.upsert(batch_of([conversation(i) for i in range(3)]))
    return path


# -- part 7: one process, several opens ------------------------------------
def test_read_only_then_read_write_in_one_process(cache):
    reader = open_store(cache, read_only=True)
    assert reader.count() == 3
    writer = open_store(cache)  # failed: "different configuration than existing connections"
    writer.upsert(batch_of([conversation(10)]))
    # The earlier reader still answers (on the writer's connection) and
    # still refuses writes through the Store API.
    assert reader.count() == 4
    with pytest.raises(StoreError, match="read-only"):
        reader.upsert(batch_of([conversation(11)]))
    writer.close()
    # Back on a sandboxed connection of its own once the writer is gone.
    assert reader.count() == 4 and reader.sandboxed
    again = open_store(cache, read_only=True)
    assert again.count() == 4
    reader.close()
    again.close()


def test_read_write_then_read_only_in_one_process(cache):
    with open_store(cache) as writer:
        reader = open_store(cache, read_only=True)
        assert reader.count() == 3 and not reader.sandboxed
        writer.upsert(batch_of([conversation(20)]))
        assert reader.count() == 4
        reader.close()
        assert writer.count() == 4
    with open_store(cache, read_only=True) as fresh:
        assert fresh.sandboxed and fresh.count() == 4


def test_failed_writer_open_leaves_the_readers_working(cache, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(cache)!r}); print('ok', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(StoreError):
            # another process writes: nothing to read (open_store would wait for it)
            open_store(cache, read_only=True, lock_wait=0)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    reader = open_store(cache, read_only=True)
    blocker = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(cache)!r}, read_only=True); print('ok', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert blocker.stdout.readline().strip() == "ok"
        with pytest.raises(StoreError):
            open_store(cache, lock_wait=0)  # another process reads: no writer now
        assert reader.count() == 3 and reader.sandboxed
    finally:
        blocker.kill()
        blocker.wait()
        blocker.stdout.close()
        reader.close()


NOTEBOOK_CELLS = [
    "import pe_toolkit as pe",
    "store = pe.open_store(CACHE)\nstore.upsert(BATCH)\nstore.close()",
    "store = pe.open_store(CACHE, read_only=True)\nn = store.count()",
    "print('conversations', n)",
]


def test_run_all_twice_in_one_kernel(cache, tmp_path):
    """What a researcher does after changing a parameter: the second run's
    writable open met the first run's read-only store and every cell after
    it was skipped."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    import pyarrow as pa

    batch = batch_of([conversation(30)])
    batch_path = tmp_path / "batch.arrow"
    with pa.OSFile(str(batch_path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_table(batch)
    setup = f"import pyarrow as pa\nCACHE = {str(cache)!r}\nBATCH = pa.ipc.open_file({str(batch_path)!r}).read_all()"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup)] + [nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for run in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
            assert "conversations 4" in printed, (run, printed)


# -- part 4: read-only means no files ---------------------------------------
def test_read_only_store_reads_and_writes_no_files(cache, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    target = tmp_path / "leak.csv"
    with Store(cache, read_only=True) as store:
        with pytest.raises(StoreError, match="cannot read or write files"):
            store.sql(f"COPY (SELECT * FROM messages) TO '{target}'")
        with pytest.raises(StoreError, match="cannot read or write files"):
            store.sql(f"SELECT * FROM read_text('{secret}')")
        with pytest.raises(StoreError):
            store.sql(f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
        with pytest.raises(StoreError, match="fixed"):
            store.sql("SET enable_external_access = true")
        # What the store and the notebooks need still works: JSON, temp tables, views, cursors.
        assert store.sql("SELECT count(*) AS n FROM current_conversation_scores")["n"].item() == 0
        assert store.sql("SELECT json_extract('{\"a\": 2}', '$.a')::INT AS a")["a"].item() == 2
        store.connection.execute("CREATE TEMP TABLE t AS SELECT id FROM conversations")
        assert store.scalar("SELECT count(*) FROM t") == 3
        assert store.conversation("conv_00001")["id"] == "conv_00001"
        cur = store.cursor()
        assert cur.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] == "UTC"
        cur.close()
    assert not target.exists()


def test_sql_console_read_only_refuses_files_and_write_allows(cache, tmp_path):
    target = tmp_path / "x.csv"
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(cache), "sql", f"COPY (SELECT * FROM conversations) TO '{target}'"])
    assert result.exit_code == 1 and not target.exists()
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot read or write files" in result.stderr
    result = runner.invoke(cli, ["--db", str(cache), "sql", "SELECT * FROM read_text('/etc/passwd')"])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "root:" not in result.output
    result = runner.invoke(cli, ["--db", str(cache), "sql", "--write", f"COPY (SELECT id FROM conversations) TO '{target}'"])
    assert result.exit_code == 0, result.output
    assert target.read_text().splitlines()[0] == "id"


def test_widget_sql_runs_on_the_sandboxed_store(cache, tmp_path):
    """The notebooks' session helper hands widgets a sandboxed store."""
    pytest.importorskip("ipywidgets")
    from pe_toolkit.session import open_for_notebook

    store = open_for_notebook(cache, source="cache", analyze=False, progress=False)
    try:
        assert store.read_only and store.sandboxed
        with pytest.raises(StoreError, match="cannot read or write files"):
            store.sql(f"COPY (SELECT 1) TO '{tmp_path / 'y.csv'}'")
    finally:
        store.close()


# -- part 8: clean errors ----------------------------------------------------
@pytest.mark.parametrize("query", ["", ";", "  ", "/* nothing */"])
def test_empty_query_is_one_clear_line(cache, query):
    with Store(cache, read_only=True) as store, pytest.raises(InputError, match="empty query"):
        store.sql(query)
    result = CliRunner().invoke(cli, ["--db", str(cache), "sql", query])
    assert result.exit_code == 1
    assert result.stderr.strip() == "pe-toolkit: error: empty query: give one SQL statement"


def test_killed_analyze_is_marked_interrupted(cache, tmp_path):
    script = textwrap.dedent(
        f"""
        import os, sys
        import pe_toolkit.analysis.frames as frames
        import pe_toolkit.analysis.pipeline as pipeline
        from pe_toolkit.store import Store

        def stop(*args, **kwargs):
            print("scoring", flush=True)
            os.kill(os.getpid(), 9)

        frames.score_part = stop  # the first part scored kills the process
        pipeline.analyze(Store({str(cache)!r}), progress=False)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Store(cache) as store:
        rows = store.sql("SELECT status, error, pid FROM analysis_runs").to_dicts()
    assert len(rows) == 1
    assert rows[0]["status"] == "interrupted" and "ended before it finished" in rows[0]["error"]
    assert rows[0]["pid"] != os.getpid()


def test_running_run_of_a_live_process_is_left_alone(cache):
    with Store(cache) as store:
        store.connection.execute(
            "INSERT INTO analysis_runs (run_id, analysis_version, incremental, started_at, status, pid, host) "
            "VALUES ('live', 'v', true, now(), 'running', ?, ?), ('old', 'v', true, now(), 'running', NULL, NULL)",
            [os.getppid(), __import__("socket").gethostname()],
        )
        assert store.mark_interrupted_runs() == 1
        status = dict(store.sql("SELECT run_id, status FROM analysis_runs").iter_rows())
    assert status == {"live": "running", "old": "interrupted"}


def test_stored_non_json_document_is_a_store_error(cache):
    with Store(cache) as store:
        store.connection.execute("UPDATE conversations SET metadata = '{\"x\": NaN}' WHERE id = 'conv_00001'")
        with pytest.raises(StoreError, match="not valid JSON"):
            store.conversation("conv_00001")
        assert json.dumps(store.conversation("conv_00002"))


# -- part 4 on a writable store: what the widgets run is checked -------------
REFUSED = [
    ("COPY (SELECT 1) TO '/tmp/pe_guard_x.csv'", "only one SELECT"),
    ("SELECT 1; SELECT 2", "only one SELECT"),
    ("SELECT * FROM read_text('/etc/passwd')", "read_text() is not allowed"),
    ("SELECT * FROM conversations WHERE id IN (SELECT content FROM read_csv('/etc/passwd'))", "read_csv() is not allowed"),
    ("SELECT * FROM '/etc/passwd'", "no table or view named '/etc/passwd'"),
    ("SELECT getenv('HOME') AS h", "getenv() is not allowed"),
    ("SELECT * FROM query('COPY (SELECT 1) TO ''/tmp/pe_guard_y.csv''')", "query() is not allowed"),
]


@pytest.mark.parametrize("query,reason", REFUSED, ids=[r for _, r in REFUSED])
def test_read_on_a_writable_store_refuses_files_and_environment(cache, query, reason):
    with Store(cache) as store, pytest.raises(StoreError, match=re.escape(reason)):
        store.read(query)


def test_read_runs_plain_selects_on_any_store(cache):
    query = "WITH t AS (SELECT tier, overall_quality FROM conversations) SELECT count(*) AS n FROM t, range(2) r WHERE tier IS NOT NULL OR ? "
    with Store(cache) as store:
        assert store.read(query, [True])["n"].item() == 6
        store.connection.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
        assert store.read("SELECT x FROM mine")["x"].item() == 1
    with Store(cache, read_only=True) as store:
        assert store.read(query, [True])["n"].item() == 6


def test_box_stats_pieces_from_parameters_cannot_reach_files(cache, tmp_path):
    """aggregates.box_stats puts notebook-provided SQL pieces into its query
    (04_safety runs it on a writable store)."""
    from pe_toolkit.widgets.aggregates import box_stats

    target = tmp_path / "leak.csv"
    with Store(cache) as store:
        assert box_stats(store, "conversations", "overall_quality", by="tier")["n"].sum() == 3
        with pytest.raises(StoreError, match="not allowed"):
            box_stats(store, "read_text('/etc/passwd')", "length(content)", by="filename")
        with pytest.raises(StoreError, match="only one SELECT"):
            box_stats(store, "conversations", "overall_quality", by="tier", where=f"TRUE) GROUP BY 1; COPY (SELECT 1) TO '{target}'; SELECT (1")
    assert not target.exists()


# -- parts 4 and 7: a read-only store on a writer's connection ---------------
# DuckDB cannot sandbox that connection (one configuration per file and
# process), so the store checks its SQL: it refuses what a sandboxed store
# refuses (files, settings) and writes.
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

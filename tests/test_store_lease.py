"""Stores that hold the cache file only per unit of work (issue 15, part 9).

Every test uses real processes: DuckDB's lock is per process, so another
thread of this one would share the database instance and prove nothing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from pe_toolkit.errors import StoreError, StoreLockedError
from pe_toolkit.store import Store, open_store


def _write_elsewhere(path, *, lock_wait: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Another process opens the cache for writing (waiting up to
    ``lock_wait`` s) and creates a table."""
    code = textwrap.dedent(f"""
        from pe_toolkit.store import open_store
        with open_store({str(path)!r}, lock_wait={lock_wait!r}) as s:
            s.sql("CREATE TABLE IF NOT EXISTS from_elsewhere AS SELECT 42 AS x")
        print("wrote", flush=True)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def _hold_for(path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the cache for writing for ``seconds``."""
    code = textwrap.dedent(f"""
        import time
        from pe_toolkit.store import Store
        s = Store({str(path)!r})
        print("held", flush=True)
        time.sleep({seconds!r})
        s.close()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _finish(holder: subprocess.Popen[str], *, kill: bool = False) -> None:
    if kill:
        holder.kill()
    holder.wait(timeout=60)
    assert holder.stdout is not None
    holder.stdout.close()


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "cache.duckdb"
    with Store(path) as store:
        store.sql("CREATE TABLE notes AS SELECT 1 AS n")
    return path


def test_a_released_reader_lets_another_process_write_between_its_queries(cache):
    reader = Store(cache, read_only=True, hold=False, linger=0)
    assert reader.sql("SELECT n FROM notes")["n"].to_list() == [1]
    assert not reader.connected and "file not held" in repr(reader)
    done = _write_elsewhere(cache, lock_wait=0)  # no waiting needed: the file is free
    assert done.returncode == 0, done.stderr
    # ... and the reader sees what was written.
    assert reader.scalar("SELECT x FROM from_elsewhere") == 42
    reader.close()


def test_a_held_store_keeps_others_out_as_before(cache):
    with Store(cache, read_only=True):
        done = _write_elsewhere(cache, lock_wait=0)
    assert done.returncode != 0 and "StoreLockedError" in done.stderr


def test_a_released_store_waits_for_the_file_and_says_so(cache, capfd):
    reader = Store(cache, read_only=True, hold=False, linger=0)
    holder = _hold_for(cache, 1.5)
    try:
        started = time.monotonic()
        assert reader.count() == 0  # waited instead of failing
        waited = time.monotonic() - started
    finally:
        _finish(holder)
    err = capfd.readouterr().err
    assert waited > 0.5
    assert f"waiting for {cache}: process {holder.pid}" in err
    assert err.count("waiting for") == 1 and "free again" in err


def test_the_wait_is_bounded(cache):
    reader = Store(cache, read_only=True, hold=False, linger=0, lock_wait=0.3)
    holder = _hold_for(cache, 5)
    try:
        with pytest.raises(StoreLockedError):
            reader.count()
    finally:
        _finish(holder, kill=True)
    assert reader.count() == 0  # free again


def test_open_store_waits_for_a_writer(cache):
    holder = _hold_for(cache, 1.0)
    try:
        with open_store(cache, lock_wait=30) as store:
            assert store.count() == 0
    finally:
        _finish(holder)


def test_a_session_holds_the_file_until_it_ends(cache):
    writer = Store(cache, hold=False, linger=0)
    with writer.session():
        writer.sql("CREATE TABLE mine AS SELECT 7 AS y")
        inside = _write_elsewhere(cache, lock_wait=0)
        assert writer.scalar("SELECT y FROM mine") == 7
    assert inside.returncode != 0 and "StoreLockedError" in inside.stderr
    after = _write_elsewhere(cache, lock_wait=0)
    assert after.returncode == 0, after.stderr


def test_transactions_and_writes_run_in_a_lease(cache):
    writer = Store(cache, hold=False, linger=0)
    with writer.transaction() as con:
        con.execute("INSERT INTO notes VALUES (2)")
        assert writer.connected
    assert not writer.connected
    assert writer.sql("SELECT n FROM notes ORDER BY n")["n"].to_list() == [1, 2]


def test_linger_opens_the_file_once_for_a_burst(cache):
    reader = Store(cache, read_only=True, hold=False, linger=5)
    for _ in range(10):
        reader.count()
    assert reader._lease.opens == 1 and reader.connected
    assert reader.release() and not reader.connected
    done = _write_elsewhere(cache, lock_wait=0)
    assert done.returncode == 0, done.stderr


def test_linger_ends_by_itself(cache):
    reader = Store(cache, read_only=True, hold=False, linger=0.2)
    reader.count()
    deadline = time.monotonic() + 10
    while reader.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not reader.connected


def test_a_connection_handed_out_is_kept_until_release(cache):
    reader = Store(cache, read_only=True, hold=False, linger=0)
    con = reader.connection
    reader.count()  # a lease ending does not close the connection the caller holds
    assert con.execute("SELECT count(*) FROM notes").fetchall() == [(1,)]
    assert reader.connected
    assert reader.release() and not reader.connected
    with reader.session():
        cur = reader.cursor()
        assert cur.execute("SELECT 1").fetchall() == [(1,)]
    assert not reader.connected


def test_a_closed_released_store_stays_closed(cache):
    reader = Store(cache, read_only=True, hold=False)
    reader.close()
    assert "closed" in repr(reader)
    with pytest.raises(StoreError, match="closed"):
        reader.count()


def test_released_reader_beside_a_writer_of_this_process(cache):
    # The store registry lends the writer's connection to a reader of the
    # same process; when the writer closes, a released reader does not
    # reconnect on its own.
    reader = Store(cache, read_only=True, hold=False, linger=0)
    with Store(cache) as writer:
        writer.sql("INSERT INTO notes VALUES (3)")
        assert reader.count() == 0 and reader.scalar("SELECT max(n) FROM notes") == 3
    assert not reader.connected
    assert reader.scalar("SELECT max(n) FROM notes") == 3

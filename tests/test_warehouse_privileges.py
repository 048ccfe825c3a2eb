"""The warehouse load as a role that may only write rows, its locks, and two
first loads at once: against a real PostgreSQL (see test_warehouse)."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import orjson
import polars as pl
import pytest

from pe_toolkit.events import bus
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from . import pg_cluster
from .warehouse_support import pg_connect

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def admin_dsn(pg_dsn):
    """A DSN whose role may create roles: the test server's when it may (the
    private cluster of pg_cluster), else a private cluster started here."""
    with pg_connect(pg_dsn) as con, con.cursor() as cur:
        cur.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
        may = bool(cur.fetchone()[0])
    if may:
        yield pg_dsn
        return
    if pg_cluster._cluster:
        pytest.fail("the private test cluster's role cannot create roles")
    dsn = pg_cluster.start()
    if dsn is None:
        pytest.skip("PostgreSQL's server binaries (initdb) are not installed")
    try:
        yield dsn
    finally:
        pg_cluster.stop()


_ADMIN: list[str] = []


@pytest.fixture
def schema(admin_dsn):
    _ADMIN[:] = [admin_dsn]
    name = f"pe_t_{uuid.uuid4().hex[:10]}"
    yield name
    execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def query(sql: str) -> pl.DataFrame:
    with pg_connect(_ADMIN[0]) as con, con.cursor() as cur:
        cur.execute(sql)
        frame = pl.from_arrow(cur.fetch_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame


def execute(*statements: str) -> None:
    with pg_connect(_ADMIN[0]) as con:
        with con.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        con.commit()


def load(store, schema, **kwargs):
    from pe_toolkit.exports.warehouse import load as _load

    return _load(store, _dsn(), schema=schema, progress=False, **kwargs)


def _dsn(user: str | None = None, password: str | None = None, app: str | None = None) -> str:
    parts = urlsplit(_ADMIN[0])
    if user is not None:
        parts = parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5432}")
    if app is not None:
        parts = parts._replace(query=(parts.query + "&" if parts.query else "") + f"application_name={app}")
    return urlunsplit(parts)


def _edit_one(store, tmp_path, cid: str = "syn7_0000042") -> None:
    changed = store.conversation(cid)
    changed["messages"][0]["content"] += " (edited)"
    (tmp_path / "one.jsonl").write_bytes(orjson.dumps(changed) + b"\n")
    assert import_file(store, tmp_path / "one.jsonl", progress=False).updated == 1


def test_a_role_that_may_only_write_the_tables_can_load(sample_store, schema, tmp_path):
    from pe_toolkit.exports.warehouse import load as _load

    load(sample_store, schema)
    _edit_one(sample_store, tmp_path)
    role, secret = f"etl_{uuid.uuid4().hex[:8]}", "etl-pw-123"
    # No CREATE on the database or the schema, not the tables' owner.
    execute(
        f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'",
        f'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}',
    )
    try:
        report = _load(sample_store, _dsn(role, secret), schema=schema, progress=False)
        assert report.tables["conversations"].updated == 1
        assert report.tables["conversation_features"].updated == 1
        content = query(f"SELECT content FROM \"{schema}\".messages WHERE conversation_id = 'syn7_0000042' AND idx = 0")
        assert content["content"][0].endswith(" (edited)")
    finally:
        execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_a_load_that_adds_nothing_takes_no_lock_that_blocks_readers(sample_store, schema):
    from pe_toolkit.exports.warehouse import load as _load

    load(sample_store, schema)
    app = f"pe_wh_locks_{uuid.uuid4().hex[:8]}"
    seen: list = []

    def look(event) -> None:
        # The keys are copied after the tables were ensured, inside the
        # load's transaction: every table lock taken so far is still held.
        if event.payload["table"] == "keys" and not seen:
            seen.append(query(
                "SELECT c.relname::text AS rel, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                f"JOIN pg_class c ON c.oid = l.relation WHERE a.application_name = '{app}' "
                f"AND c.relnamespace = '{schema}'::regnamespace AND l.granted"
            ))

    unsubscribe = bus.subscribe("warehouse.progress", look)
    try:
        report = _load(sample_store, _dsn(app=app), schema=schema, progress=False)
    finally:
        unsubscribe()
    assert report.rows_written == 0
    assert len(seen) == 1
    locks = seen[0]
    assert "conversations" in locks["rel"].to_list()  # the query does see the load's locks
    # AccessShareLock (every reader) conflicts with AccessExclusiveLock alone.
    assert "AccessExclusiveLock" not in locks["mode"].to_list(), locks


def _waiting(app: str) -> bool:
    return bool(query(
        "SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        f"WHERE a.application_name = '{app}' AND NOT l.granted"
    )["n"][0])


def test_two_first_loads_into_a_new_schema_wait_for_each_other(sample_store, schema, sample_db, tmp_path):
    from pe_toolkit.exports.warehouse import load as _load

    other = tmp_path / "other.duckdb"
    shutil.copy(sample_db, other)
    first_copying, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def pause(event) -> None:
        # Hold the first load inside its transaction, the schema created.
        if event.payload["table"] == "conversations" and not first_copying.is_set():
            first_copying.set()
            release.wait(120)

    def run(name: str, path, app: str) -> None:
        try:
            with Store(path, read_only=True) as s:
                results[name] = _load(s, _dsn(app=app), schema=schema, progress=False)
        except Exception as exc:  # noqa: BLE001 - examined below
            results[name] = exc

    sample_store.close()
    apps = {n: f"pe_wh_{n}_{uuid.uuid4().hex[:8]}" for n in ("first", "second")}
    unsubscribe = bus.subscribe("warehouse.progress", pause)
    first = threading.Thread(target=run, args=("first", sample_store.path, apps["first"]))
    second = threading.Thread(target=run, args=("second", other, apps["second"]))
    try:
        first.start()
        assert first_copying.wait(120), results
        second.start()
        deadline = time.monotonic() + 60
        while not _waiting(apps["second"]) and second.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.is_alive(), results  # the second waited, rather than going ahead
    finally:
        release.set()
        first.join(180)
        second.join(180)
        unsubscribe()
    assert not isinstance(results["first"], Exception), results["first"]
    assert not isinstance(results["second"], Exception), results["second"]
    assert results["first"].tables["conversations"].inserted == 2000  # type: ignore[union-attr]
    assert results["second"].rows_written == 0  # type: ignore[union-attr]

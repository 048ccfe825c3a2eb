"""Fixtures and helpers of the warehouse tests (a pytest plugin; import the
helpers you use, ask for the fixtures by name).

``pg_dsn`` (module-scoped) is the test PostgreSQL's connection string, or a
skip (a failure under ``PE_REQUIRE_PG=1``, as .ci/run and
tests/pg_cluster.py set) when nothing answers there. ``schema`` is a fresh
schema name, dropped afterwards. ``sample_store`` is an open copy of a store
holding the bundled sample (built once per module as ``sample_db``); it is
not called ``store`` because tests/conftest.py's empty ``store`` would win
over a plugin's fixture of that name.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pe_toolkit.exports.dsn import Dsn
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from .conftest import SAMPLE

DEFAULT_DSN = "postgresql://pe_test:pe_test@127.0.0.1:5432/pe_test"

# Read before the tests run: the autouse isolated_env fixture clears PE_*
# variables inside them. Read again when pytest is configured, after
# tests/pg_cluster.py has set them for a cluster of its own (this module
# is imported with tests/conftest.py, before that).
PG_DSN = os.environ.get("PE_TEST_PG_DSN") or DEFAULT_DSN
REQUIRE_PG = os.environ.get("PE_REQUIRE_PG") == "1"


@pytest.hookimpl(trylast=True)  # after tests.pg_cluster's
def pytest_configure(config: pytest.Config) -> None:
    global PG_DSN, REQUIRE_PG
    PG_DSN = os.environ.get("PE_TEST_PG_DSN") or DEFAULT_DSN
    REQUIRE_PG = os.environ.get("PE_REQUIRE_PG") == "1"


def pg_connect(dsn: str | None = None) -> Any:
    import adbc_driver_postgresql.dbapi as pg

    return pg.connect(dsn or PG_DSN)


@pytest.fixture(scope="module")
def pg_dsn() -> str:
    try:
        pg_connect().close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        from pe_toolkit.exports.warehouse import first_line

        reason = Dsn.parse(PG_DSN).scrub(first_line(str(exc)))
        if REQUIRE_PG:
            pytest.fail(f"PE_REQUIRE_PG=1 but PostgreSQL at {Dsn.parse(PG_DSN).masked} is unavailable: {reason}")
        pytest.skip(
            f"no PostgreSQL at {Dsn.parse(PG_DSN).masked} ({reason}); run `pg_ctlcluster 15 main start` and the "
            "role/database setup in .ci/run, or set PE_TEST_PG_DSN"
        )
    return PG_DSN


def query(sql: str) -> pl.DataFrame:
    with pg_connect() as con, con.cursor() as cur:
        cur.execute(sql)
        frame = pl.from_arrow(cur.fetch_arrow_table())
        assert isinstance(frame, pl.DataFrame)  # a table comes back as a frame (a Series only from an array)
        return frame


def execute(*statements: str) -> None:
    with pg_connect() as con:
        with con.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        con.commit()


def tables_in(schema: str) -> list[str]:
    return query(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}' ORDER BY 1")[
        "table_name"
    ].to_list()


def schema_exists(schema: str) -> bool:
    return bool(query(f"SELECT count(*) AS n FROM pg_namespace WHERE nspname = '{schema}'")["n"][0] == 1)


def load(store: Store, schema: str, **kwargs: Any) -> Any:
    """``pe_toolkit.exports.warehouse.load`` into the test PostgreSQL."""
    from pe_toolkit.exports.warehouse import load as _load

    return _load(store, PG_DSN, schema=schema, progress=False, **kwargs)


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    name = f"pe_t_{uuid.uuid4().hex[:10]}"
    yield name
    execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    with Store(path) as store:
        import_file(store, SAMPLE, progress=False)
    return path


@pytest.fixture
def sample_store(tmp_path: Path, sample_db: Path) -> Iterator[Store]:
    path = tmp_path / "store.duckdb"
    shutil.copy(sample_db, path)
    with Store(path) as s:
        yield s

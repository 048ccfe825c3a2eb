"""Schema migrations: ordered SQL files in ``migrations/``, applied on open.

Each file ``NNNN_name.sql`` raises the schema to version ``NNNN``. Every
migration runs in the same transaction as its ``schema_version`` row, so a
crash never leaves a half-migrated file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import duckdb

from ..errors import SchemaVersionError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaVersionError(f"migration files are not numbered 1..N: {versions}")
    return found


def latest_version() -> int:
    return len(available())


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]


def apply(con: duckdb.DuckDBPyConnection, path: str) -> list[Migration]:
    """Bring the file up to the latest version; return what was applied."""
    migrations = available()
    version = current_version(con)
    if version > len(migrations):
        raise SchemaVersionError(
            f"{path} has schema version {version}, newer than this pe_toolkit "
            f"understands ({len(migrations)}); upgrade pe_toolkit"
        )
    applied = []
    for migration in migrations[version:]:
        con.execute("BEGIN TRANSACTION")
        try:
            if migration.version == 1:
                con.execute(
                    "CREATE TABLE schema_version (version INTEGER NOT NULL, "
                    "name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
                )
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now())",
                [migration.version, migration.name],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(migration)
    return applied

"""A PostgreSQL session of a warehouse load: DuckDB on one side, ADBC on the other.

:class:`PgSession` holds the two connections and the moves a load is made
of: statements, Arrow batches from a DuckDB query copied over binary COPY
(counted on a progress bar and announced as ``warehouse.progress``), and
the three ways rows reach a table: bulk copy into an empty table (keys and
indexes built afterwards), upsert of per-conversation rows where their
hash differs, and delete-and-copy of per-message rows. What to write, and
when, is :mod:`pe_toolkit.exports.warehouse`'s business.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from ..events import bus
from ..progress import progress_bar
from .pgtables import TableSpec, quote_ident


@dataclass
class TableLoad:
    inserted: int = 0  # per-message tables: rows copied in
    updated: int = 0
    deleted: int = 0  # per-message tables: rows of changed conversations removed first
    seconds: float = 0.0  # writing this table, keys and indexes included

    @property
    def written(self) -> int:
        return self.inserted + self.updated


@dataclass
class Family:
    """Tables whose rows change together, with the per-conversation hash
    (a column of the DuckDB keys table) that says when they did."""

    name: str
    hash: str  # content_hash | scores_hash | features_hash
    parent: TableSpec
    children: tuple[TableSpec, ...] = ()
    changed_duck: str = ""  # DuckDB relation of the ids to write
    changed_pg: str | None = None  # PostgreSQL temp table of the same ids, when needed
    # A column was added to one of its tables by this load: the hashes say
    # nothing about it (they cover the store's data, not the warehouse's
    # columns), so every selected row is written again to fill it.
    rewrite: bool = False


class PgSession:
    """The two connections of one load, in one PostgreSQL transaction."""

    def __init__(self, duck: duckdb.DuckDBPyConnection, pg: Any, schema: str, progress: bool, batch_rows: int) -> None:
        self.duck, self.pg, self.schema = duck, pg, schema
        self.cur = pg.cursor()
        self.progress, self.batch_rows = progress, batch_rows
        self.registered: list[str] = []

    # -- helpers -----------------------------------------------------------
    def q(self, table: str) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(table)}"

    def exec(self, sql: str) -> None:
        self.cur.execute(sql)

    def scalar(self, sql: str) -> Any:
        self.cur.execute(sql)
        row = self.cur.fetchone()
        return row[0] if row else None

    def describe(self, sql: str) -> list[tuple[str, str]]:
        rel = self.duck.sql(sql)
        return [(name, str(dtype)) for name, dtype in zip(rel.columns, rel.types)]

    def _reader(
        self, source: pa.RecordBatchReader, table: str, total: int | None, each: Callable[[pa.RecordBatch], None] | None
    ) -> pa.RecordBatchReader:
        """``source`` counted on a progress bar and announced as
        ``warehouse.progress`` events as its batches go to PostgreSQL;
        ``each(batch)`` runs after a batch is handed over, while PostgreSQL
        is still busy with it."""
        def batches() -> Iterator[pa.RecordBatch]:
            with progress_bar(total, table, "row", enabled=self.progress) as bar:
                for batch in source:
                    yield batch
                    if each is not None:
                        each(batch)
                    bar.update(batch.num_rows)
                    bus.publish("warehouse.progress", table=table, rows=batch.num_rows)

        return pa.RecordBatchReader.from_batches(source.schema, batches())

    def copy(
        self,
        table: str,
        source: str | pa.Table,
        *,
        total: int | None = None,
        temporary: bool = False,
        label: str | None = None,
        each: Callable[[pa.RecordBatch], None] | None = None,
    ) -> int:
        """Binary COPY of a DuckDB query's rows (or an Arrow table) into ``table``."""
        if isinstance(source, str):
            reader = self.duck.sql(source).to_arrow_reader(self.batch_rows)
        else:
            reader = source.to_reader(max_chunksize=self.batch_rows)
        reader = self._reader(reader, label or table, total, each)
        if temporary:
            return int(self.cur.adbc_ingest(table, reader, mode="create", temporary=True))
        return int(self.cur.adbc_ingest(table, reader, mode="append", db_schema_name=self.schema))

    def register(self, name: str, table: pa.Table) -> None:
        self.duck.register(name, table)
        self.registered.append(name)

    def cleanup(self) -> None:
        for name in self.registered:
            with contextlib.suppress(Exception):
                self.duck.unregister(name)

    def is_empty(self, table: str) -> bool:
        return not self.scalar(f"SELECT EXISTS (SELECT 1 FROM {self.q(table)})")

    def create(self, spec: TableSpec) -> list[str]:
        """Make ``spec``'s table, columns and indexes exist; returns the
        columns added to a table that already existed.

        What exists is read first and DDL issued only for what is missing:
        ``CREATE TABLE IF NOT EXISTS`` still needs CREATE on the schema, and
        ``ADD COLUMN IF NOT EXISTS`` or ``CREATE INDEX IF NOT EXISTS`` need
        ownership and take their lock (AccessExclusiveLock for ALTER TABLE,
        blocking every reader until commit) even when there is nothing to
        do. A load that adds nothing then needs only SELECT, INSERT, UPDATE
        and DELETE on the tables, and readers are not blocked."""
        oid = self.scalar(f"SELECT to_regclass({pg_literal(self.q(spec.name))})::oid")
        if oid is None:
            for statement in spec.create_table(self.schema):
                self.exec(statement)
            present: set[str] = set()
        else:
            self.cur.execute(f"SELECT attname::text FROM pg_attribute WHERE attrelid = {int(oid)} AND attnum > 0 AND NOT attisdropped")
            present = {row[0] for row in self.cur.fetchall()}
        added = [c.name for c in spec.columns if oid is not None and c.name not in present]
        for column in spec.columns:
            if column.name in added:
                self.exec(spec.add_column(self.schema, column))
        for name, cols in spec.index_names():
            if self.scalar(f"SELECT to_regclass({pg_literal(f'{quote_ident(self.schema)}.{quote_ident(name)}')}) IS NULL"):
                self.exec(f"CREATE INDEX {quote_ident(name)} ON {self.q(spec.name)} ({', '.join(map(quote_ident, cols))})")
        return added

    # -- writing -------------------------------------------------------------------
    def write_bulk(self, spec: TableSpec, rows_sql: str, total: int | None, each: Callable[[pa.RecordBatch], None] | None = None) -> int:
        """Copy into an empty table, building its keys once afterwards:
        maintaining a primary key row by row costs more (RESULTS.md)."""
        for statement in spec.drop_indexes(self.schema):
            self.exec(statement)
        written = self.copy(spec.name, rows_sql, total=total, each=each)
        for statement in spec.create_indexes(self.schema, with_key=True):
            self.exec(statement)
        return written

    def write_parent(self, spec: TableSpec, rows_sql: str, *, rewrite: bool = False) -> TableLoad:
        started = time.perf_counter()
        load = self._write_parent(spec, rows_sql, rewrite)
        load.seconds = time.perf_counter() - started
        return load

    def _write_parent(self, spec: TableSpec, rows_sql: str, rewrite: bool) -> TableLoad:
        if self.is_empty(spec.name):
            return TableLoad(inserted=self.write_bulk(spec, rows_sql, None))
        stage = f"_pe_stage_{spec.name}"
        self.copy(stage, rows_sql, temporary=True, label=spec.name)
        names = spec.column_names
        cols = ", ".join(map(quote_ident, names))
        values = ", ".join(c.insert_expr("st") for c in spec.columns)
        updates = ", ".join(f"{quote_ident(n)} = EXCLUDED.{quote_ident(n)}" for n in names if n not in spec.key)
        hash_col = quote_ident(spec.hash_column or "")
        only_changed = "" if rewrite else f"WHERE t.{hash_col} IS DISTINCT FROM EXCLUDED.{hash_col} "
        self.cur.execute(
            f"WITH w AS (INSERT INTO {self.q(spec.name)} AS t ({cols}) SELECT {values} FROM {stage} st "
            f"ON CONFLICT ({', '.join(map(quote_ident, spec.key))}) DO UPDATE SET {updates}, loaded_at = now() "
            f"{only_changed}RETURNING (xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM w"
        )
        inserted, updated = self.cur.fetchone()
        self.exec(f"DROP TABLE {stage}")
        return TableLoad(inserted=int(inserted), updated=int(updated))

    def write_children(
        self, spec: TableSpec, rows_sql: str, changed_pg: str | None, total: int | None,
        each: Callable[[pa.RecordBatch], None] | None = None,
    ) -> TableLoad:
        """Delete the rows of changed conversations, then copy their rows in."""
        started = time.perf_counter()
        if self.is_empty(spec.name):
            load = TableLoad(inserted=self.write_bulk(spec, rows_sql, total, each))
        else:
            assert changed_pg is not None, "a non-empty child table is planned with a PostgreSQL change set"
            self.cur.execute(f"DELETE FROM {self.q(spec.name)} t USING {changed_pg} ch WHERE t.conversation_id = ch.id")
            deleted = max(int(self.cur.rowcount or 0), 0)
            load = TableLoad(inserted=self.copy(spec.name, rows_sql, total=total, each=each), deleted=deleted)
        load.seconds = time.perf_counter() - started
        return load


def duck_type(con: duckdb.DuckDBPyConnection, arrow_type: pa.DataType) -> str:
    """The DuckDB type name of an Arrow type (for the table mapping)."""
    empty = pa.table({"x": pa.array([], arrow_type)})
    con.register("_pe_type_probe", empty)
    try:
        return str(con.sql("SELECT x FROM _pe_type_probe").types[0])
    finally:
        con.unregister("_pe_type_probe")


def pg_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

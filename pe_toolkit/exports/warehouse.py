"""Load the store into PostgreSQL: conversations, messages, scores, features.

``load(store, "postgresql://user@host/db")`` copies a selection of the store
into a PostgreSQL schema (default ``pe_toolkit``) through ADBC: Arrow batches
from DuckDB go over binary COPY, with no Python object per row.

Writes only what changed. Every conversation has a change hash per table
family, computed in DuckDB: its ``content_hash`` (conversation + messages),
a hash of its current analysis rows (scores), and a hash of both plus the
feature definitions' version (features). The hashes of the selection are
copied to a temporary table and compared with the ones stored beside the
rows; only conversations whose hash differs are read from the store and
written (``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the hash differs for
the per-conversation tables; delete-and-copy of their rows for the
per-message tables). A second load after no change writes nothing. Into
an empty table (a first load) rows are copied straight in and its keys and
indexes built afterwards, which is faster than maintaining them row by row.

All or nothing: tables are created, rows written and the run's temporary
tables dropped in ONE transaction. A failure or a kill at any point leaves
the warehouse as it was (PostgreSQL's DDL is transactional, so not even
the tables of a first load remain). Concurrent loads into one schema wait
for each other (an advisory transaction lock).

The warehouse keeps conversations that a later load does not select (or
that left the store); it is a union of what was loaded, updated in place.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from ..errors import InputError, PeToolkitError, WarehouseError
from ..events import bus
from ..schema import STORED_CONVERSATION_COLUMNS
from ..store import ConversationFilter, Store
from .core import reading
from .dsn import Dsn
from .features import FEATURES_VERSION, combine, conversation_features, partial_sums
from .filters import ExportFilter
from .pgtables import TableSpec, quote_ident, spec_from_describe
from .scores import MESSAGE_KEYS, analyzed, columns, has_table

DEFAULT_SCHEMA = "pe_toolkit"
BATCH_ROWS = 100_000
_CONVERSATION_COLUMNS = ", ".join(STORED_CONVERSATION_COLUMNS)


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
class WarehouseReport:
    target: str  # the connection string with the password masked
    schema: str
    conversations: int = 0  # selected in the store
    tables: dict[str, TableLoad] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_written(self) -> int:
        return sum(t.written for t in self.tables.values())

    def __str__(self) -> str:
        parts = []
        for name, t in self.tables.items():
            text = f"{name} {t.inserted:,} new" + (f", {t.updated:,} updated" if t.updated else "")
            parts.append(text + (f", {t.deleted:,} removed" if t.deleted else ""))
        written = "; ".join(parts) if self.rows_written else "nothing changed"
        return (
            f"{self.target} (schema {self.schema}): {self.conversations:,} conversations selected; "
            f"{written} [{self.seconds:.1f} s]"
        )


def _driver() -> Any:
    try:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as pg
    except ImportError:
        raise WarehouseError(
            "the warehouse load needs the ADBC PostgreSQL driver: pip install 'pe-toolkit[warehouse]'"
        ) from None
    return pg, adbc_driver_manager.Error


def first_line(text: str) -> str:
    """The informative line of a libpq/ADBC message (drop the driver's
    prefixes and the repeated 'connection to server ... failed:' part)."""
    for prefix in ("IO: ", "INTERNAL: ", "[libpq] ", "Failed to connect: "):
        text = text.replace(prefix, "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else "unknown error"
    if "FATAL:" in line:
        line = line.split("FATAL:", 1)[1].strip()
    elif "ERROR:" in line:
        line = line.split("ERROR:", 1)[1].strip()
    return " ".join(line.split())


def connect(dsn: Dsn) -> Any:
    """An ADBC connection (autocommit off), or one clear WarehouseError line."""
    pg, adbc_error = _driver()
    try:
        return pg.connect(dsn.uri)
    except adbc_error as exc:
        raise WarehouseError(f"cannot connect to {dsn.masked}: {dsn.scrub(first_line(str(exc)))}") from None


def _check_schema_name(schema: str) -> None:
    if not schema or len(schema) > 63 or "\0" in schema:
        raise InputError(f"invalid PostgreSQL schema name {schema!r}")


@dataclass
class _Family:
    """Tables whose rows change together, with the per-conversation hash
    (a column of the DuckDB keys table) that says when they did."""

    name: str
    hash: str  # content_hash | scores_hash | features_hash
    parent: TableSpec
    children: tuple[TableSpec, ...] = ()
    changed_duck: str = ""  # DuckDB relation of the ids to write
    changed_pg: str | None = None  # PostgreSQL temp table of the same ids, when needed


class _Loader:
    KEYS = "_pe_wh_keys"  # DuckDB temp table: id, content_hash, scores_hash, features_hash

    def __init__(self, duck: duckdb.DuckDBPyConnection, pg: Any, schema: str, report: WarehouseReport, progress: bool, batch_rows: int) -> None:
        self.duck, self.pg, self.schema = duck, pg, schema
        self.cur = pg.cursor()
        self.report, self.progress, self.batch_rows = report, progress, batch_rows
        self.keys_in_pg = False
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
        from tqdm.auto import tqdm

        def batches() -> Iterator[pa.RecordBatch]:
            with tqdm(total=total, unit="row", desc=table, disable=not self.progress, leave=False) as bar:
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
        with contextlib.suppress(Exception):
            self.duck.execute(f"DROP TABLE IF EXISTS {self.KEYS}")

    def is_empty(self, table: str) -> bool:
        return not self.scalar(f"SELECT EXISTS (SELECT 1 FROM {self.q(table)})")

    def create(self, spec: TableSpec) -> None:
        for statement in spec.ddl(self.schema):
            self.exec(statement)

    # -- keys and change sets ----------------------------------------------------
    def make_keys(self, where: str, params: list[Any], scored: bool, message_scored: bool) -> None:
        ctes = [f"sel AS (SELECT c.id, c.content_hash FROM conversations c WHERE {where})"]
        scores_hash = "NULL::VARCHAR"
        joins = ""
        if scored:
            # When the scores were computed is not part of what they are: a
            # re-analysis giving the same values writes nothing.
            when = {"analyzed_at"} & {n for n, _ in columns(self.duck, "conversation_scores")}
            rows = f"SELECT * EXCLUDE ({', '.join(when)}) FROM current_conversation_scores" if when else "SELECT * FROM current_conversation_scores"
            ctes.append(
                f"cs AS (SELECT x.conversation_id, md5(to_json(x)::VARCHAR) AS h FROM ({rows}) x "
                "SEMI JOIN sel ON sel.id = x.conversation_id)"
            )
            joins += " LEFT JOIN cs ON cs.conversation_id = sel.id"
            msh = "''"
            if message_scored:
                ctes.append(
                    "msh AS (SELECT x.conversation_id, md5(string_agg(to_json(x)::VARCHAR, '' ORDER BY x.idx)) AS h "
                    "FROM current_message_scores x SEMI JOIN sel ON sel.id = x.conversation_id GROUP BY ALL)"
                )
                joins += " LEFT JOIN msh ON msh.conversation_id = sel.id"
                msh = "coalesce(msh.h, '')"
            scores_hash = f"CASE WHEN cs.h IS NOT NULL THEN md5(cs.h || {msh}) END"
        self.duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {self.KEYS} AS WITH {', '.join(ctes)}, "
            f"k AS (SELECT sel.id, sel.content_hash, {scores_hash} AS scores_hash FROM sel{joins}) "
            "SELECT id, content_hash, scores_hash, md5(content_hash || coalesce(scores_hash, '') || "
            f"'features-v{FEATURES_VERSION}') AS features_hash FROM k",
            params or None,
        )
        self.report.conversations = int(self.duck.execute(f"SELECT count(*) FROM {self.KEYS}").fetchall()[0][0])

    def keys_to_pg(self) -> None:
        if self.keys_in_pg:
            return
        self.copy("_pe_keys", f"SELECT * FROM {self.KEYS}", temporary=True, label="keys")
        self.exec("ALTER TABLE _pe_keys ADD PRIMARY KEY (id)")
        self.exec("ANALYZE _pe_keys")
        self.keys_in_pg = True

    def plan(self, family: _Family, *, need_pg: bool) -> None:
        """Decide what to write for a family, before anything of it is written.

        An empty parent table (a first load) takes every selected id with a
        hash, without a round trip. Otherwise the hashes go to PostgreSQL and
        come back as the ids that differ."""
        parent_empty = self.is_empty(family.parent.name)
        all_ids = f"(SELECT id FROM {self.KEYS} WHERE {family.hash} IS NOT NULL)"
        if parent_empty and not need_pg:
            family.changed_duck = all_ids
            return
        self.keys_to_pg()
        temp = f"_pe_changed_{family.name}"
        hash_col = family.parent.hash_column or ""
        key = family.parent.key[0]
        self.exec(
            f"CREATE TEMP TABLE {temp} AS SELECT k.id FROM _pe_keys k "
            f"LEFT JOIN {self.q(family.parent.name)} t ON t.{quote_ident(key)} = k.id "
            f"WHERE k.{family.hash} IS NOT NULL AND t.{quote_ident(hash_col)} IS DISTINCT FROM k.{family.hash}"
        )
        self.exec(f"ANALYZE {temp}")
        family.changed_pg = temp
        if parent_empty:
            family.changed_duck = all_ids
            return
        self.cur.execute(f"SELECT id FROM {temp}")
        self.register(temp, self.cur.fetch_arrow_table())
        family.changed_duck = temp

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

    def write_parent(self, spec: TableSpec, rows_sql: str) -> TableLoad:
        started = time.perf_counter()
        load = self._write_parent(spec, rows_sql)
        load.seconds = time.perf_counter() - started
        return load

    def _write_parent(self, spec: TableSpec, rows_sql: str) -> TableLoad:
        if self.is_empty(spec.name):
            return TableLoad(inserted=self.write_bulk(spec, rows_sql, None))
        stage = f"_pe_stage_{spec.name}"
        self.copy(stage, rows_sql, temporary=True, label=spec.name)
        names = spec.column_names
        cols = ", ".join(map(quote_ident, names))
        values = ", ".join(c.insert_expr("st") for c in spec.columns)
        updates = ", ".join(f"{quote_ident(n)} = EXCLUDED.{quote_ident(n)}" for n in names if n not in spec.key)
        hash_col = quote_ident(spec.hash_column or "")
        self.cur.execute(
            f"WITH w AS (INSERT INTO {self.q(spec.name)} AS t ({cols}) SELECT {values} FROM {stage} st "
            f"ON CONFLICT ({', '.join(map(quote_ident, spec.key))}) DO UPDATE SET {updates}, loaded_at = now() "
            f"WHERE t.{hash_col} IS DISTINCT FROM EXCLUDED.{hash_col} RETURNING (xmax = 0) AS inserted) "
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

    # -- the load ------------------------------------------------------------------
    def run(self, selection: ExportFilter, include_scores: bool, include_features: bool) -> None:
        where, params = selection.where("c")
        scored = include_scores and analyzed(self.duck)
        message_scored = scored and has_table(self.duck, "message_scores")

        self.exec(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")
        self.scalar(f"SELECT pg_advisory_xact_lock(hashtext('pe_toolkit.warehouse:' || {_pg_literal(self.schema)}))")
        # Index builds after a bulk copy sort in memory when they can.
        self.exec("SET LOCAL maintenance_work_mem = '256MB'")
        self.make_keys(where, params, scored, message_scored)

        content = self.content_family()
        scores = self.scores_family(message_scored) if scored else None
        features = self.features_family() if include_features else None
        for family in filter(None, (content, scores, features)):
            for spec in (family.parent, *family.children):
                self.create(spec)
        # Stale scores are found through the content change set, so it must
        # exist in PostgreSQL whenever score tables hold rows.
        stale_possible = any(
            self.scalar(f"SELECT to_regclass({_pg_literal(self.q(t))}) IS NOT NULL") and not self.is_empty(t)
            for t in ("conversation_scores", "message_scores")
        )
        families = [f for f in (content, scores, features) if f is not None]
        for family in families:
            children_hold_rows = any(not self.is_empty(c.name) for c in family.children)
            self.plan(family, need_pg=children_hold_rows or (family is content and stale_possible))
        # The feature table's text statistics are taken from the messages on
        # their way to PostgreSQL (computed while it digests each batch),
        # rather than read from the store a second time.
        partials: list[pl.DataFrame] | None = [] if features is not None else None
        self.write_content(content, partials)
        if stale_possible:
            self.drop_stale_scores(content)
        if scores is not None:
            self.write_scores(scores)
        if features is not None:
            self.write_features(features, content, partials or [])

    def content_family(self) -> _Family:
        conv = spec_from_describe(
            "conversations", self.describe(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c LIMIT 0"),
            key=("id",), hash_column="content_hash", indexes=(("dataset", "tier"), ("created_at",)),
        )
        msgs = spec_from_describe(
            "messages", self.describe('SELECT conversation_id, idx, role, content, "timestamp" FROM messages LIMIT 0'),
            key=("conversation_id", "idx"),
        )
        return _Family("conversations", "content_hash", conv, (msgs,))

    def write_content(self, family: _Family, partials: list[pl.DataFrame] | None) -> None:
        conv, (msgs,) = family.parent, family.children
        ids = family.changed_duck
        rows = ", ".join(c.send_expr("c") for c in conv.columns)
        self.report.tables["conversations"] = self.write_parent(
            conv, f"SELECT {rows} FROM conversations c SEMI JOIN {ids} ch ON ch.id = c.id"
        )
        total = self.duck.sql(
            f"SELECT coalesce(sum(message_count), 0)::BIGINT FROM conversations c SEMI JOIN {ids} ch ON ch.id = c.id"
        ).fetchall()[0][0]
        rows = ", ".join(c.send_expr("m") for c in msgs.columns)

        collector = _Collector(partial_sums) if partials is not None else None
        try:
            self.report.tables["messages"] = self.write_children(
                msgs, f"SELECT {rows} FROM messages m SEMI JOIN {ids} ch ON ch.id = m.conversation_id",
                family.changed_pg, int(total), each=collector.put if collector else None,
            )
        finally:
            if collector is not None:
                collected = collector.finish()
        if partials is not None:
            partials.extend(collected)

    def scores_family(self, message_scored: bool) -> _Family:
        conv = spec_from_describe(
            "conversation_scores",
            self.describe(
                "SELECT x.*, k.scores_hash AS row_hash FROM current_conversation_scores x "
                f"JOIN {self.KEYS} k ON k.id = x.conversation_id LIMIT 0"
            ),
            key=("conversation_id",), hash_column="row_hash", indexes=(("risk_score",),),
        )
        children: tuple[TableSpec, ...] = ()
        if message_scored:
            keep = [n for n, _ in columns(self.duck, "message_scores") if n not in MESSAGE_KEYS or n in ("conversation_id", "idx")]
            children = (
                spec_from_describe(
                    "message_scores",
                    self.describe(f"SELECT {', '.join(f'x.{quote_ident(n)}' for n in keep)} FROM current_message_scores x LIMIT 0"),
                    key=("conversation_id", "idx"),
                ),
            )
        return _Family("scores", "scores_hash", conv, children)

    def write_scores(self, family: _Family) -> None:
        conv = family.parent
        ids = family.changed_duck
        rows = ", ".join(c.send_expr("x") for c in conv.columns if c.name != "row_hash")
        self.report.tables["conversation_scores"] = self.write_parent(
            conv,
            f"SELECT {rows}, k.scores_hash AS row_hash FROM current_conversation_scores x "
            f"JOIN {self.KEYS} k ON k.id = x.conversation_id SEMI JOIN {ids} ch ON ch.id = x.conversation_id",
        )
        for msgs in family.children:
            rows = ", ".join(c.send_expr("x") for c in msgs.columns)
            self.report.tables["message_scores"] = self.write_children(
                msgs,
                f"SELECT {rows} FROM current_message_scores x SEMI JOIN {ids} ch ON ch.id = x.conversation_id",
                family.changed_pg, None,
            )

    def drop_stale_scores(self, content: _Family) -> None:
        """Scores in the warehouse of conversations whose content changed and
        that have no current scores (not analyzed since) would describe text
        that is no longer there: remove them."""
        assert content.changed_pg is not None
        for table in ("conversation_scores", "message_scores"):
            if not self.scalar(f"SELECT to_regclass({_pg_literal(self.q(table))}) IS NOT NULL"):
                continue
            self.cur.execute(
                f"DELETE FROM {self.q(table)} t USING {content.changed_pg} ch "
                "WHERE t.conversation_id = ch.id AND NOT EXISTS "
                "(SELECT 1 FROM _pe_keys k WHERE k.id = ch.id AND k.scores_hash IS NOT NULL)"
            )
            removed = max(int(self.cur.rowcount or 0), 0)
            if removed:
                self.report.tables.setdefault(table, TableLoad()).deleted += removed

    def features_family(self) -> _Family:
        sample = conversation_features(self.duck, "FALSE")
        spec = spec_from_describe(
            "conversation_features",
            [(f.name, _duck_type(self.duck, f.type)) for f in sample.schema] + [("row_hash", "VARCHAR")],
            key=("conversation_id",), hash_column="row_hash", indexes=(("dataset", "tier"),),
        )
        return _Family("features", "features_hash", spec)

    def write_features(self, family: _Family, content: _Family, partials: list[pl.DataFrame]) -> None:
        started = time.perf_counter()
        spec = family.parent
        ids = self.duck.sql(f"SELECT id FROM {family.changed_duck} ORDER BY id").to_arrow_table()
        # Conversations whose features changed without their content (new
        # scores, new feature definitions): their messages are read here.
        self.register("_pe_features_ids", ids)
        extra = self.duck.sql(
            f"SELECT id FROM _pe_features_ids f ANTI JOIN {content.changed_duck} c ON c.id = f.id"
        ).to_arrow_table()
        if extra.num_rows:
            self.register("_pe_features_extra", extra)
            reader = self.duck.sql(
                "SELECT m.conversation_id, m.idx, m.role, m.content FROM messages m "
                "SEMI JOIN _pe_features_extra e ON e.id = m.conversation_id"
            ).to_arrow_reader(self.batch_rows)
            partials = [*partials, *(partial_sums(pl.from_arrow(b)) for b in reader)]  # type: ignore[arg-type]
        text = combine(partials)
        load = TableLoad()
        bulk = self.is_empty(spec.name)
        if bulk:
            for statement in spec.drop_indexes(self.schema):
                self.exec(statement)
        sent = ", ".join(c.send_expr("f") for c in spec.columns if c.name != "row_hash")
        # Feature rows are built in chunks of conversations: each chunk's
        # table is what memory holds besides the text statistics.
        for start in range(0, ids.num_rows, FEATURE_CHUNK):
            self.duck.register("_pe_chunk", ids.slice(start, FEATURE_CHUNK))
            try:
                table = conversation_features(self.duck, "c.id IN (SELECT id FROM _pe_chunk)", text=text)
            finally:
                self.duck.unregister("_pe_chunk")
            self.duck.register("_pe_features", table)
            try:
                rows = (
                    f"SELECT {sent}, k.features_hash AS row_hash FROM _pe_features f "
                    f"JOIN {self.KEYS} k ON k.id = f.conversation_id"
                )
                if bulk:
                    load.inserted += self.copy(spec.name, rows, label=spec.name)
                else:
                    part = self.write_parent(spec, rows)
                    load.inserted += part.inserted
                    load.updated += part.updated
            finally:
                self.duck.unregister("_pe_features")
        if bulk:
            for statement in spec.create_indexes(self.schema, with_key=True):
                self.exec(statement)
        load.seconds = time.perf_counter() - started
        self.report.tables["conversation_features"] = load


FEATURE_CHUNK = 250_000  # conversations whose features are held at once


class _Collector:
    """Applies ``work`` to message batches in a background thread, so the
    statistics are computed (polars, which releases the GIL) while the main
    thread keeps PostgreSQL's COPY fed. At most ``depth`` batches wait."""

    def __init__(self, work: Callable[[pl.DataFrame], pl.DataFrame], depth: int = 4) -> None:
        import queue
        import threading

        self._work = work
        self._queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=depth)
        self._results: list[pl.DataFrame] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pe-warehouse-stats", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is None:
                try:
                    self._results.append(self._work(pl.from_arrow(batch)))  # type: ignore[arg-type]
                except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
                    self._error = exc

    def put(self, batch: pa.RecordBatch) -> None:
        self._queue.put(batch)

    def finish(self) -> list[pl.DataFrame]:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._results


def _duck_type(con: duckdb.DuckDBPyConnection, arrow_type: pa.DataType) -> str:
    """The DuckDB type name of an Arrow type (for the table mapping)."""
    empty = pa.table({"x": pa.array([], arrow_type)})
    con.register("_pe_type_probe", empty)
    try:
        return str(con.sql("SELECT x FROM _pe_type_probe").types[0])
    finally:
        con.unregister("_pe_type_probe")


def _pg_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def load(
    store: Store | duckdb.DuckDBPyConnection,
    dsn: str | Dsn,
    *,
    filter: ConversationFilter | None = None,
    progress: bool = True,
    schema: str = DEFAULT_SCHEMA,
    include_scores: bool = True,
    include_features: bool = True,
    batch_rows: int = BATCH_ROWS,
    **constraints: Any,
) -> WarehouseReport:
    """Load (upsert) the selected conversations into PostgreSQL; see the
    module docstring. ``filter`` and keyword constraints select as for
    :func:`pe_toolkit.exports.export`. Returns what was written per table.

    Raises :class:`WarehouseError` (one line, password masked) when the
    database is unreachable, refuses the credentials or fails mid-load; in
    every failure nothing is committed.
    """
    started = time.perf_counter()
    target = dsn if isinstance(dsn, Dsn) else Dsn.parse(dsn)
    _check_schema_name(schema)
    selection = ExportFilter.build(filter, **constraints)
    report = WarehouseReport(target=target.masked, schema=schema)
    _, adbc_error = _driver()
    with reading(store) as duck:
        selection.check(duck)
        pg = connect(target)
        try:
            loader = _Loader(duck, pg, schema, report, progress, batch_rows)
            try:
                loader.run(selection, include_scores, include_features)
            finally:
                loader.cleanup()
                loader.cur.close()
            pg.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                pg.rollback()
            if isinstance(exc, adbc_error):
                raise WarehouseError(
                    f"loading into {target.masked} failed, nothing was committed: {target.scrub(first_line(str(exc)))}"
                ) from None
            if isinstance(exc, duckdb.Error):
                raise WarehouseError(
                    f"reading the store failed, nothing was committed: {str(exc).splitlines()[0]}"
                ) from None
            if isinstance(exc, PeToolkitError):
                raise
            raise
        finally:
            with contextlib.suppress(Exception):
                pg.close()
    report.seconds = time.perf_counter() - started
    bus.publish("warehouse.completed", target=report.target, schema=schema, rows_written=report.rows_written)
    return report

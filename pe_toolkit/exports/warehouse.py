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
per-message tables). A second load after no change writes nothing. The
hashes cover the store's data, not the warehouse's columns: when a load
adds a column to a table, it rewrites every selected row of that table's
family, so the column is filled rather than left NULL. Into
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
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from ..errors import ExportError, InputError, PeToolkitError, WarehouseError
from ..events import bus
from ..report_table import HtmlReport
from ..schema import STORED_CONVERSATION_COLUMNS
from ..store import ConversationFilter, Store
from . import pgfeatures
from .core import reading
from .dsn import Dsn
from .features import FEATURES_VERSION, partial_sums
from .pgfeatures import _Collector
from .pgsession import Family, PgSession, TableLoad, pg_literal
from .pgtables import TableSpec, quote_ident, spec_from_describe, text_without_nul
from .scores import MESSAGE_KEYS, analyzed, columns, has_table

DEFAULT_SCHEMA = "pe_toolkit"
BATCH_ROWS = 100_000
_CONVERSATION_COLUMNS = ", ".join(STORED_CONVERSATION_COLUMNS)


@dataclass
class WarehouseReport(HtmlReport):
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
        changed = self.rows_written or any(t.deleted for t in self.tables.values())
        written = "; ".join(parts) if changed else "nothing changed"
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


class _Loader(PgSession):
    """One load: the change hashes (keys), what each table family must
    write (plan), and the writes in order (run); the moves themselves are
    :class:`PgSession`'s, the feature table's :mod:`.pgfeatures`'."""

    KEYS = "_pe_wh_keys"  # DuckDB temp table: id, content_hash, scores_hash, features_hash

    def __init__(self, duck: duckdb.DuckDBPyConnection, pg: Any, schema: str, report: WarehouseReport, progress: bool, batch_rows: int) -> None:
        super().__init__(duck, pg, schema, progress, batch_rows)
        self.report = report
        self.keys_in_pg = False
        self.duck_temps: list[str] = []  # DuckDB temp tables of changed ids

    def cleanup(self) -> None:
        super().cleanup()
        for table in (self.KEYS, *self.duck_temps):
            with contextlib.suppress(Exception):
                self.duck.execute(f"DROP TABLE IF EXISTS {table}")

    # -- keys and change sets ----------------------------------------------------
    MESSAGE_HASHES = "_pe_wh_msh"  # DuckDB temp table: conversation_id, h (its message scores' hash)
    # The hash of a conversation's message scores is the md5 of their JSON
    # texts joined in idx order, and DuckDB holds every group's texts until
    # such an aggregate ends (it cannot spill): over a whole selection, ~3 kB
    # per message-score row, 1.5 GB at 50,000 conversations (RESULTS.md,
    # 2026-12-06). It is computed over ranges of conversation ids of about
    # KEY_CHUNK_ROWS rows each, so memory holds one range's texts. Each
    # range also evaluates the per-conversation side of
    # current_message_scores again (a scan of every current score row):
    # past KEY_CHUNKS_MAX ranges they grow instead of multiplying.
    KEY_CHUNK_ROWS = 50_000
    KEY_CHUNKS_MAX = 16

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
                self.message_hashes(where, params)
                joins += f" LEFT JOIN {self.MESSAGE_HASHES} msh ON msh.conversation_id = sel.id"
                msh = "coalesce(msh.h, '')"
            scores_hash = f"CASE WHEN cs.h IS NOT NULL THEN md5(cs.h || {msh}) END"
        self.duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {self.KEYS} AS WITH {', '.join(ctes)}, "
            f"k AS (SELECT sel.id, sel.content_hash, {scores_hash} AS scores_hash FROM sel{joins}) "
            "SELECT id, content_hash, scores_hash, md5(content_hash || coalesce(scores_hash, '') || "
            f"'features-v{FEATURES_VERSION}') AS features_hash FROM k",
            params or None,
        )
        self.duck.execute(f"DROP TABLE IF EXISTS {self.MESSAGE_HASHES}")
        self.report.conversations = int(self.duck.execute(f"SELECT count(*) FROM {self.KEYS}").fetchall()[0][0])
        # Ids reach PostgreSQL with a NUL as U+FFFD (text_without_nul), as
        # every text column does. Two selected ids that differ only there
        # would become one key: refuse them with a clear line rather than
        # fail on a duplicate key (or let one overwrite the other).
        clash = self.duck.execute(
            f"SELECT list(id ORDER BY id) FROM {self.KEYS} GROUP BY {text_without_nul('id')} HAVING count(*) > 1 LIMIT 1"
        ).fetchall()
        if clash:
            first, second = clash[0][0][:2]
            raise WarehouseError(
                f"conversation ids {first!r} and {second!r} would be one key in PostgreSQL, which cannot "
                "store NUL characters (they become U+FFFD): load without one of them"
            )

    def key_ranges(self, where: str, params: list[Any]) -> list[tuple[str | None, str | None]]:
        """The ranges ``[low, high)`` of selected conversation ids that
        :meth:`message_hashes` aggregates one at a time (None: unbounded):
        the ids in order, cut every KEY_CHUNK_ROWS messages, or in
        KEY_CHUNKS_MAX equal parts when that gives bigger ones.
        ``message_count`` stands in for a conversation's message-score rows,
        plus one so that conversations without messages count too."""
        # sum() is HUGEINT and `/` gives a DOUBLE, on which `//` does not floor.
        per = f"greatest({int(self.KEY_CHUNK_ROWS)}, ceil(sum(w) OVER () / {int(self.KEY_CHUNKS_MAX)}))::BIGINT"
        starts = [
            row[0]
            for row in self.duck.execute(
                f"SELECT min(id) FROM (SELECT id, (sum(w) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING) - w) // {per} AS part "
                f"FROM (SELECT c.id, c.message_count + 1 AS w FROM conversations c WHERE {where})) GROUP BY part ORDER BY 1",
                params or None,
            ).fetchall()
        ]
        # The first range has no lower bound and the last no upper one: every
        # id falls in exactly one, whatever the comparison puts first.
        return list(zip([None, *starts[1:]], [*starts[1:], None])) if starts else []

    def message_hashes(self, where: str, params: list[Any]) -> None:
        """The hash of each selected conversation's current message scores,
        into :attr:`MESSAGE_HASHES`, one range of conversation ids at a time
        (see :attr:`KEY_CHUNK_ROWS`). The values are the ones one query over
        the whole selection gives: a conversation's rows all fall in one
        range, aggregated by the same expression."""
        table = self.MESSAGE_HASHES
        self.duck.execute(f"CREATE OR REPLACE TEMP TABLE {table} (conversation_id VARCHAR, h VARCHAR)")
        self.duck_temps.append(table)
        for low, high in self.key_ranges(where, params):
            bounds = [(op, value) for op, value in ((">=", low), ("<", high)) if value is not None]
            values = [value for _, value in bounds]
            # The range restricts both sides: the scan of message scores
            # (DuckDB pushes it into the scan) and the selection joined on.
            on_sel = "".join(f" AND c.id {op} ?" for op, _ in bounds)
            on_scores = "".join(f" AND x.conversation_id {op} ?" for op, _ in bounds)
            self.duck.execute(
                f"INSERT INTO {table} WITH sel AS (SELECT c.id FROM conversations c WHERE {where}{on_sel}) "
                "SELECT x.conversation_id, md5(string_agg(to_json(x)::VARCHAR, '' ORDER BY x.idx)) AS h "
                f"FROM current_message_scores x SEMI JOIN sel ON sel.id = x.conversation_id WHERE TRUE{on_scores} "
                "GROUP BY ALL",
                [*params, *values, *values] or None,
            )

    def keys_to_pg(self) -> None:
        if self.keys_in_pg:
            return
        self.copy(
            "_pe_keys",
            f"SELECT {text_without_nul('id')} AS id, * EXCLUDE (id) FROM {self.KEYS}",
            temporary=True, label="keys",
        )
        self.exec("ALTER TABLE _pe_keys ADD PRIMARY KEY (id)")
        self.exec("ANALYZE _pe_keys")
        self.keys_in_pg = True

    def plan(self, family: Family, *, need_pg: bool) -> None:
        """Decide what to write for a family, before anything of it is written.

        An empty parent table (a first load) takes every selected id with a
        hash, without a round trip. Otherwise the hashes go to PostgreSQL and
        come back as the ids that differ."""
        every = self.is_empty(family.parent.name) or family.rewrite
        all_ids = f"(SELECT id FROM {self.KEYS} WHERE {family.hash} IS NOT NULL)"
        if every and not need_pg:
            family.changed_duck = all_ids
            return
        self.keys_to_pg()
        temp = f"_pe_changed_{family.name}"
        hash_col = family.parent.hash_column or ""
        key = family.parent.key[0]
        differs = "" if family.rewrite else f" AND t.{quote_ident(hash_col)} IS DISTINCT FROM k.{family.hash}"
        self.exec(
            f"CREATE TEMP TABLE {temp} AS SELECT k.id FROM _pe_keys k "
            f"LEFT JOIN {self.q(family.parent.name)} t ON t.{quote_ident(key)} = k.id "
            f"WHERE k.{family.hash} IS NOT NULL{differs}"
        )
        self.exec(f"ANALYZE {temp}")
        family.changed_pg = temp
        if every:
            family.changed_duck = all_ids
            return
        self.cur.execute(f"SELECT id FROM {temp}")
        self.register(f"{temp}_pg", self.cur.fetch_arrow_table())
        # The ids come back as PostgreSQL holds them (NUL as U+FFFD): the
        # store's ids are what the DuckDB side joins on.
        self.duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {temp} AS SELECT k.id FROM {self.KEYS} k "
            f"SEMI JOIN {temp}_pg p ON p.id = {text_without_nul('k.id')}"
        )
        self.duck_temps.append(temp)
        family.changed_duck = temp

    # -- the load ------------------------------------------------------------------
    def run(self, selection: ConversationFilter, include_scores: bool, include_features: bool) -> None:
        where, params = selection.where("c")
        scored = include_scores and analyzed(self.duck)
        message_scored = scored and has_table(self.duck, "message_scores")

        # The lock comes first and is keyed on the schema's name, not on the
        # schema: two first loads into a new schema then wait for each other
        # instead of both inserting it (a duplicate key on pg_namespace).
        self.scalar(f"SELECT pg_advisory_xact_lock(hashtext('pe_toolkit.warehouse:' || {pg_literal(self.schema)}))")
        # CREATE SCHEMA IF NOT EXISTS checks CREATE on the database before it
        # looks: a role that may only write the existing tables would fail.
        if self.scalar(f"SELECT to_regnamespace({pg_literal(quote_ident(self.schema))}) IS NULL"):
            self.exec(f"CREATE SCHEMA {quote_ident(self.schema)}")
        # Index builds after a bulk copy sort in memory when they can.
        self.exec("SET LOCAL maintenance_work_mem = '256MB'")
        self.make_keys(where, params, scored, message_scored)

        content = self.content_family()
        scores = self.scores_family(message_scored) if scored else None
        features = self.features_family() if include_features else None
        for family in filter(None, (content, scores, features)):
            for spec in (family.parent, *family.children):
                if self.create(spec):
                    family.rewrite = True
        # Stale scores are found through the content change set, so it must
        # exist in PostgreSQL whenever score tables hold rows.
        stale_possible = any(
            self.scalar(f"SELECT to_regclass({pg_literal(self.q(t))}) IS NOT NULL") and not self.is_empty(t)
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
        if stale_possible:
            self.find_stale_scores(content)
        self.write_content(content, partials)
        if stale_possible:
            self.drop_stale_scores()
        if scores is not None:
            self.write_scores(scores)
        if features is not None:
            self.write_features(features, content, partials or [])

    def content_family(self) -> Family:
        conv = spec_from_describe(
            "conversations", self.describe(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c LIMIT 0"),
            key=("id",), hash_column="content_hash", indexes=(("dataset", "tier"), ("created_at",)),
        )
        msgs = spec_from_describe(
            "messages", self.describe('SELECT conversation_id, idx, role, content, "timestamp" FROM messages LIMIT 0'),
            key=("conversation_id", "idx"),
        )
        return Family("conversations", "content_hash", conv, (msgs,))

    def write_content(self, family: Family, partials: list[pl.DataFrame] | None) -> None:
        conv, (msgs,) = family.parent, family.children
        ids = family.changed_duck
        rows = ", ".join(c.send_expr("c") for c in conv.columns)
        self.report.tables["conversations"] = self.write_parent(
            conv, f"SELECT {rows} FROM conversations c SEMI JOIN {ids} ch ON ch.id = c.id", rewrite=family.rewrite
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

    def scores_family(self, message_scored: bool) -> Family:
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
        return Family("scores", "scores_hash", conv, children)

    def write_scores(self, family: Family) -> None:
        conv = family.parent
        ids = family.changed_duck
        rows = ", ".join(c.send_expr("x") for c in conv.columns if c.name != "row_hash")
        self._record("conversation_scores", self.write_parent(
            conv,
            f"SELECT {rows}, k.scores_hash AS row_hash FROM current_conversation_scores x "
            f"JOIN {self.KEYS} k ON k.id = x.conversation_id SEMI JOIN {ids} ch ON ch.id = x.conversation_id",
            rewrite=family.rewrite,
        ))
        for msgs in family.children:
            rows = ", ".join(c.send_expr("x") for c in msgs.columns)
            self._record("message_scores", self.write_children(
                msgs,
                f"SELECT {rows} FROM current_message_scores x SEMI JOIN {ids} ch ON ch.id = x.conversation_id",
                family.changed_pg, None,
            ))

    def _record(self, table: str, load: TableLoad) -> None:
        """Report a table's writes, keeping the rows :meth:`drop_stale_scores`
        removed from it earlier in the load (not replaced by the write)."""
        earlier = self.report.tables.get(table)
        if earlier is not None:
            load.deleted += earlier.deleted
            load.seconds += earlier.seconds
        self.report.tables[table] = load

    STALE = "_pe_stale_scores"  # PostgreSQL temp table: ids whose warehouse scores are stale

    def find_stale_scores(self, content: Family) -> None:
        """Scores in the warehouse of conversations whose content changed and
        that have no current scores (not analyzed since) would describe text
        that is no longer there: find them before the content is written.
        The content hashes are compared here, not taken from the content's
        change set, which holds every selected conversation when a column
        was added to a content table (a rewrite changes no text)."""
        assert content.changed_pg is not None
        self.exec(
            f"CREATE TEMP TABLE {self.STALE} AS SELECT ch.id FROM {content.changed_pg} ch "
            "JOIN _pe_keys k ON k.id = ch.id WHERE k.scores_hash IS NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {self.q('conversations')} c WHERE c.id = ch.id AND c.content_hash = k.content_hash)"
        )

    def drop_stale_scores(self) -> None:
        for table in ("conversation_scores", "message_scores"):
            if not self.scalar(f"SELECT to_regclass({pg_literal(self.q(table))}) IS NOT NULL"):
                continue
            self.cur.execute(f"DELETE FROM {self.q(table)} t USING {self.STALE} s WHERE t.conversation_id = s.id")
            removed = max(int(self.cur.rowcount or 0), 0)
            if removed:
                self.report.tables.setdefault(table, TableLoad()).deleted += removed

    def features_family(self) -> Family:
        return pgfeatures.features_family(self)

    def write_features(self, family: Family, content: Family, partials: list[pl.DataFrame]) -> None:
        self.report.tables["conversation_features"] = pgfeatures.write_features(self, family, content, partials, keys=self.KEYS)
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
    **filters: Any,
) -> WarehouseReport:
    """Load (upsert) the selected conversations into PostgreSQL; see the
    module docstring. ``filter`` and keyword filters (the vocabulary of
    :mod:`pe_toolkit.store.filters`) select as for :func:`pe_toolkit.exports.export`. Returns what was written per table.

    Raises :class:`WarehouseError` (one line, password masked) when the
    database is unreachable, refuses the credentials or fails mid-load; in
    every failure nothing is committed.
    """
    started = time.perf_counter()
    target = dsn if isinstance(dsn, Dsn) else Dsn.parse(dsn)
    _check_schema_name(schema)
    selection = ConversationFilter.build(filter, **filters)
    report = WarehouseReport(target=target.masked, schema=schema)
    _, adbc_error = _driver()
    with reading(store) as duck:
        selection.check(duck, ExportError)
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

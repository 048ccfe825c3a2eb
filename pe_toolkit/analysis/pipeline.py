"""``analyze(store)``: score what is new or changed, batch by batch.

A conversation is scored when it has no row in ``conversation_scores``, when
its content hash differs from the stored one, or when the stored
``analysis_version`` (every analyzer's name=version) differs from the
current one; ``incremental=False`` scores everything. Conversations are
taken in id order, in batches of equal size (at most ``batch_size``); each
batch is scored as :func:`~pe_toolkit.analysis.frames.analyze_frame` scores
a frame (in parts, on a pool of threads) and written in ONE transaction that
first deletes the batch's old rows from ``conversation_scores``,
``message_scores`` and ``evidence``; that transaction runs on a writer
thread while the next batch is scored and the one after it read. So a
crash loses at most the three batches in flight, never leaves a half-written
conversation, and the next run continues where this one stopped (what was
committed is up to date and is skipped).

After the batches, the corpus-level duplicate shares are recomputed over
every stored score (:func:`~pe_toolkit.analysis.duplicates.corpus_shares_sql`),
scores of conversations no longer in the store are dropped, and the run is
recorded in ``analysis_runs`` with the pid and host running it: a run
whose process is gone (killed) is marked ``interrupted`` by the next
``analyze`` or writable open (:meth:`Store.mark_interrupted_runs`).

Events on the bus: ``analysis.progress`` after each batch (``done``,
``total``, ``scored``), ``analysis.alert`` for a batch with alerts (``ids``),
``analysis.completed`` at the end (the report's fields).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import AnalysisError, StoreError, run_error
from ..events import EventBus, bus as default_bus
from ..report_table import HtmlReport
from ..store import Store
from . import duplicates, frames
from .base import Analyzer, check_messages
from .registry import load, version_of

log = logging.getLogger(__name__)

# Conversations per transaction (~110k messages): bounds memory. Three
# batches are held at once (one written, one scored, one read and queued);
# at 14,000 the peak RSS at 1 M messages is 1.34 GB (1.42 GB when two were
# held, scored one after the other; 20,000 with two held: 1.85-1.96 GB).
DEFAULT_BATCH_SIZE = 14_000
_TABLES = ("conversation_scores", "message_scores", "evidence")


@dataclass
class AnalysisReport(HtmlReport):
    """What one ``analyze`` run did."""

    run_id: str
    analysis_version: str
    incremental: bool
    selected: int = 0  # conversations that needed scoring
    scored: int = 0
    skipped: int = 0  # up to date already
    messages: int = 0
    alerts: int = 0  # among the conversations scored in this run
    alerts_total: int = 0  # in the whole store after the run
    batches: int = 0
    seconds: float = 0.0
    alert_ids: list[str] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        return (
            f"scored {self.scored:,} conversations ({self.messages:,} messages), "
            f"{self.skipped:,} up to date; {self.alerts:,} alerts among those scored, {self.alerts_total:,} in the store"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' ORDER BY column_index",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Writer:
    """Inserts frames into the score tables by column name; a column the
    frame lacks is NULL. A score column the table lacks (a researcher's
    analyzer) is added to it, with the type DuckDB gives the frame's
    column, and recorded in ``score_columns`` (migration 0012), in the
    transaction of the batch that first writes it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, version: str) -> None:
        self.columns = {t: _table_columns(con, t) for t in _TABLES}
        self.version = version
        # The researchers' columns and their types (score_columns, migration 0012).
        self.registered: dict[str, dict[str, str]] = {t: {} for t in _TABLES}
        if _table_columns(con, "score_columns"):
            for table, column, dtype in con.execute("SELECT table_name, column_name, data_type FROM score_columns").fetchall():
                self.registered.setdefault(table, {})[column] = dtype

    def _add_columns(self, con: duckdb.DuckDBPyConnection, table: str, name: str, extra: list[str]) -> None:
        if table == "evidence":
            raise AnalysisError(f"evidence has a fixed schema; cannot store column(s) {', '.join(extra)}")
        types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {name})").fetchall())
        for column in extra:
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {_quote(column)} {types[column]}")
            con.execute(
                "INSERT OR IGNORE INTO score_columns VALUES (?, ?, ?, ?, now())", [table, column, types[column], self.version]
            )
            self.registered[table][column] = types[column]
            log.info("added column %s.%s (%s) for a registered analyzer", table, column, types[column])
        self.columns[table] = _table_columns(con, table)

    def _check(self, con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
        """Refuse what DuckDB would otherwise take silently or fail on with
        a stray KeyError: names differing only in case (its column names
        ignore case: "Sentiment" would write into "sentiment"), a new column
        with no type (all null), and a researcher's column whose type
        changed (v1 counts, v2 fractions: 0.4 was stored as 0)."""
        seen: dict[str, str] = {}
        for column in [*self.columns[table], *frame.columns]:
            other = seen.setdefault(column.lower(), column)
            if other != column:
                raise AnalysisError(f"{table}: columns {other!r} and {column!r} differ only in case; rename one")
        registered = self.registered[table]
        for column, dtype in frame.schema.items():
            if dtype == pl.Null and column not in self.columns[table]:
                raise AnalysisError(f"{table}.{column}: every value is null, so it has no type; cast it (e.g. pl.lit(None, pl.Float64))")
        typed = [c for c, dtype in frame.schema.items() if c in registered and dtype != pl.Null]
        if not typed:
            return
        # One DESCRIBE for the batch: DuckDB's own reading of the Arrow types.
        query = f"SELECT column_name, column_type FROM (DESCRIBE SELECT {', '.join(_quote(c) for c in typed)} FROM _new_{table})"
        for column, given in con.execute(query).fetchall():
            if given != registered[column]:
                raise AnalysisError(
                    f"{table}.{column} holds {registered[column]}, and this analysis gives {given}: "
                    "rename the column, or drop it from the cache first"
                )

    def insert(self, con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        name = f"_new_{table}"
        # Strings as Arrow string views, polars' own layout: no copy into
        # 64-bit-offset strings first, and DuckDB reads them faster (evidence,
        # 700k rows per 110k messages: 0.49 -> 0.42 s of CPU per batch).
        con.register(name, frame.to_arrow(compat_level=pl.CompatLevel.newest()))
        try:
            self._check(con, table, frame)
            extra = [c for c in frame.columns if c not in self.columns[table]]
            if extra:
                self._add_columns(con, table, name, extra)
            cols = frame.columns
            names = ", ".join(_quote(c) for c in cols)
            con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {name}")
        except duckdb.Error as exc:
            raise AnalysisError(f"cannot write the scores into {table}: {exc}") from exc
        finally:
            # After a failed statement the transaction is aborted and this
            # raises too, which would hide the cause above.
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)


def _todo(store: Store, version: str, incremental: bool) -> tuple[pa.Table, int]:
    """(ids to score, sorted, with whether they have old rows; all conversations)."""
    table = store.arrow(
        "SELECT c.id, s.conversation_id IS NOT NULL AS existed FROM conversations c "
        "LEFT JOIN conversation_scores s ON s.conversation_id = c.id "
        "WHERE ? OR s.conversation_id IS NULL OR s.content_hash <> c.content_hash OR s.analysis_version <> ? "
        "ORDER BY c.id",
        [not incremental, version],
    )
    total = int(store.scalar("SELECT count(*) FROM conversations"))
    return table, total


@dataclass
class _Scoring:
    """A batch whose parts are being scored."""

    ids: pa.Table
    hashes: pl.DataFrame
    messages: int
    parts: list[Future[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]]


def _read_batch(store: Store, ids: pa.Table) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The batch's messages (contract order) and content hashes."""
    con = store.connection
    con.register("_batch_ids", ids.select(["id"]))
    try:
        first, last = ids.column("id")[0].as_py(), ids.column("id")[-1].as_py()
        # The hashes before the messages: an import between the two reads
        # (another thread of this process) then leaves scores of the new
        # text under the old hash, which the next run re-scores. The other
        # order stored the old text's scores under the new hash, counted
        # current for good (an edit that added a disclosure kept its old,
        # low risk).
        hashes = store.sql("SELECT c.id AS conversation_id, c.content_hash FROM conversations c SEMI JOIN _batch_ids b ON b.id = c.id")
        # The range lets DuckDB skip row groups when messages are stored in id order.
        messages = store.sql(
            "SELECT m.conversation_id, m.idx, m.role, m.content FROM messages m "
            "SEMI JOIN _batch_ids b ON b.id = m.conversation_id "
            "WHERE m.conversation_id BETWEEN ? AND ? ORDER BY m.conversation_id, m.idx",
            [first, last],
        )
    finally:
        con.unregister("_batch_ids")
    return messages, hashes


def _write_batch(store: Store, con: duckdb.DuckDBPyConnection, writer: _Writer, ids: pa.Table, any_existed: bool,
                 scores: Any, hashes: pl.DataFrame, version: str, run_id: str, totals: dict[str, int]) -> None:  # fmt: skip
    """The batch's scores, replacing its old rows, and the run's running
    ``totals``: one transaction on ``con`` (the writer thread's cursor)."""
    conversations = scores.conversations.join(hashes, on="conversation_id", how="left", maintain_order="left").with_columns(
        analysis_version=pl.lit(version),
        analyzed_at=pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")),
    )
    with store.transaction(con) as con:
        if any_existed:
            con.register("_batch_ids", ids.select(["id"]))
            try:
                for table in _TABLES:
                    con.execute(f"DELETE FROM {table} WHERE conversation_id IN (SELECT id FROM _batch_ids)")
            finally:
                con.unregister("_batch_ids")
        writer.insert(con, "conversation_scores", conversations)
        writer.insert(con, "message_scores", scores.messages)
        writer.insert(con, "evidence", scores.evidence)
        store.update_run(run_id, con=con, **totals)


def refresh_corpus_shares(store: Store) -> None:
    """Recompute boilerplate and near-duplicate shares over every stored score."""
    with store.transaction() as con:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _shares AS " + duplicates.corpus_shares_sql("message_scores"),
            {"boilerplate_min": duplicates.BOILERPLATE_MIN_CONVERSATIONS},
        )
        con.execute(
            "UPDATE conversation_scores s SET boilerplate_share = n.boilerplate_share, "
            "near_duplicate_share = n.near_duplicate_share FROM _shares n WHERE n.conversation_id = s.conversation_id"
        )
        con.execute("DROP TABLE _shares")


def _drop_orphans(store: Store) -> None:
    with store.transaction() as con:
        for table in _TABLES:
            con.execute(f"DELETE FROM {table} WHERE conversation_id NOT IN (SELECT id FROM conversations)")


def _needs_refresh(store: Store) -> bool:
    """A run that scored something may have stopped before its refresh."""
    row = store.sql(
        "SELECT corpus_refreshed FROM analysis_runs WHERE scored > 0 ORDER BY started_at DESC LIMIT 1"
    )
    return row.height > 0 and not bool(row.item(0, 0))


def analyze(
    store: Store,
    *,
    incremental: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    events: EventBus | None = None,
    analyzers: Sequence[Analyzer] | None = None,
) -> AnalysisReport:
    """Score new, changed and outdated conversations in ``store`` (all of them
    with ``incremental=False``) with ``analyzers`` (default: the registered
    ones, :func:`.registry.analyzers`); see the module docstring for
    guarantees."""
    if batch_size < 1:
        raise AnalysisError(f"batch_size must be at least 1, got {batch_size}")
    if store.read_only:
        raise StoreError(f"{store.path} is open read-only; analysis writes scores")
    # One unit of work: a store opened with hold=False keeps its file for the whole run.
    with store.session():
        return _analyze_held(store, incremental=incremental, batch_size=batch_size, progress=progress, events=events,
                             analyzers=analyzers)  # fmt: skip


def _analyze_held(store: Store, *, incremental: bool, batch_size: int, progress: bool, events: EventBus | None,
                  analyzers: Sequence[Analyzer] | None) -> AnalysisReport:  # fmt: skip
    from ..progress import progress_bar

    # A run of a process that was killed stays 'running' otherwise.
    store.mark_interrupted_runs()
    events = events or default_bus
    chosen = tuple(analyzers) if analyzers is not None else load().analyzers
    version = version_of(chosen)
    started = time.perf_counter()
    todo, total = _todo(store, version, incremental)
    run_id = store.start_run("analysis", analysis_version=version, incremental=incremental, selected=todo.num_rows)
    report = AnalysisReport(run_id=run_id, analysis_version=version, incremental=incremental)
    report.selected = todo.num_rows
    report.skipped = total - todo.num_rows
    writer = _Writer(store.connection, version)
    workers = frames.default_workers()
    try:
        with progress_bar(report.selected, "analyze", "conv", enabled=progress) as bar, \
                ThreadPoolExecutor(workers, thread_name_prefix="pe-analyze") as scoring, \
                ThreadPoolExecutor(1, thread_name_prefix="pe-analyze-write") as out:  # fmt: skip
            # Three stages overlap: batch k is written (one transaction on the
            # writer thread's own cursor) while batch k+1 is scored and batch
            # k+2 is read and queued. The parts of consecutive batches share
            # one pool, so a core that finishes its part of batch k+1 starts
            # on k+2 instead of waiting for the other part (waiting at each
            # batch's end, and while the next one was read, left a core idle
            # for a tenth of the run at 1 M messages). One write in flight.
            cursor = store.cursor()
            pending: tuple[Future[None], int, list[str]] | None = None
            scoring_now: collections.deque[_Scoring] = collections.deque()

            def landed() -> None:
                # The batch in flight has committed: now it counts as done.
                nonlocal pending
                if pending is None:
                    return
                future, done, alert_ids = pending
                pending = None
                future.result()
                report.batches += 1
                report.alert_ids += alert_ids
                if alert_ids:
                    events.publish("analysis.alert", ids=alert_ids, run_id=report.run_id)
                bar.update(done)
                events.publish("analysis.progress", done=report.scored, total=report.selected, scored=report.scored, run_id=report.run_id)

            def finish(batch: _Scoring) -> None:
                # The oldest batch's scores, once every part is done, go to the writer.
                nonlocal pending
                messages, conversations, evidence = frames.join_parts([part.result() for part in batch.parts])
                scores = frames.FrameScores(messages, conversations, evidence, version)
                any_existed = bool(pc.any(batch.ids.column("existed")).as_py())
                alert_ids: list[str] = []
                if "alert" in conversations.columns:
                    alert_ids = conversations.filter(pl.col("alert").fill_null(False))["conversation_id"].to_list()
                landed()
                report.scored += batch.ids.num_rows
                report.messages += batch.messages
                report.alerts += len(alert_ids)
                totals = {"scored": report.scored, "messages": report.messages, "alerts": report.alerts}
                future = out.submit(_write_batch, store, cursor, writer, batch.ids, any_existed, scores, batch.hashes,
                                    version, report.run_id, totals)  # fmt: skip
                pending = (future, batch.ids.num_rows, alert_ids)

            # Batches of equal size, at most batch_size: a short last batch
            # fell under the parallel threshold and ran on one core (a ninth
            # of the run at 1 M messages).
            batches = max(1, -(-todo.num_rows // batch_size))
            step = max(1, -(-todo.num_rows // batches))
            try:
                for start in range(0, todo.num_rows, step):
                    ids = todo.slice(start, step)
                    messages, hashes = _read_batch(store, ids)
                    parts = frames.parts_of(check_messages(messages), workers)
                    scoring_now.append(_Scoring(ids, hashes, messages.height,
                                                [scoring.submit(frames.score_part, part, chosen) for part in parts]))  # fmt: skip
                    del messages, parts
                    # A batch leaves the queue once finished, so a failure
                    # cancels its own queued parts too (see finally).
                    if len(scoring_now) > 1:
                        finish(scoring_now[0])
                        scoring_now.popleft()
                while scoring_now:
                    finish(scoring_now[0])
                    scoring_now.popleft()
                landed()
            finally:
                # Failing: batches still queued are not scored; the write in
                # flight commits or rolls back before the run is closed.
                for batch in scoring_now:
                    for part in batch.parts:
                        part.cancel()
                if pending is not None:
                    with contextlib.suppress(BaseException):
                        pending[0].result()
                cursor.close()
        _drop_orphans(store)
        refreshed = False
        if report.scored or _needs_refresh(store):
            refresh_corpus_shares(store)
            refreshed = True
        # After a completed run every row is current (all re-scored, orphans
        # dropped), so the table itself answers.
        report.alerts_total = int(store.scalar("SELECT count(*) FROM conversation_scores WHERE alert") or 0) if _has_column(
            store, "conversation_scores", "alert"
        ) else 0
    except BaseException as exc:
        # Ctrl-C is recorded as an import's is: "interrupted", not "KeyboardInterrupt"
        error = run_error(exc)
        with contextlib.suppress(Exception):
            store.finish_run(report.run_id, error=error)
        raise
    report.seconds = round(time.perf_counter() - started, 3)
    store.finish_run(report.run_id, corpus_refreshed=refreshed)
    payload = {k: v for k, v in report.as_dict().items() if k != "alert_ids"}
    events.publish("analysis.completed", **payload)
    return report


def _has_column(store: Store, table: str, column: str) -> bool:
    return column in _table_columns(store.connection, table)

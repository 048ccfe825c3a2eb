"""Run bookkeeping: one row per import or sync (``ingest_runs``) and per
``analyze`` (``analysis_runs``), written through :class:`~.core.Store`
(``start_run``, ``update_run``, ``finish_run``) so every writer records its
runs the same way: ``running`` with the process (pid, host) running it,
then ``completed`` or ``failed`` with the time and the error (a completed
run may carry a note there: a sync that queued what it could not fetch).
A run whose process is gone is marked ``interrupted``
(``Store.mark_interrupted_runs``); a sync fails the earlier runs of its
source still marked running (:func:`interrupt_stale`).
"""

from __future__ import annotations

import uuid
from typing import Any

import duckdb

from ..errors import StoreError

# kind -> table; the kind is stored too where the table has a column for it.
TABLES: dict[str, str] = {"import": "ingest_runs", "sync": "ingest_runs", "analysis": "analysis_runs"}

# The columns a caller may set, by table (the rest are the bookkeeping's own).
COLUMNS: dict[str, frozenset[str]] = {
    "ingest_runs": frozenset({"source", "inserted", "updated", "unchanged", "invalid"}),
    "analysis_runs": frozenset(
        {"analysis_version", "incremental", "selected", "scored", "messages", "alerts", "corpus_refreshed"}
    ),
}


def _checked(table: str, values: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - COLUMNS[table])
    if unknown:
        raise StoreError(f"{table} has no settable column(s) {', '.join(unknown)}")
    return values


def start(con: duckdb.DuckDBPyConnection, kind: str, owner: tuple[int, str], values: dict[str, Any]) -> str:
    """Insert a ``running`` row of ``kind``; return its run id."""
    table = TABLES.get(kind)
    if table is None:
        raise StoreError(f"unknown run kind {kind!r}; expected one of {', '.join(TABLES)}")
    row = {"run_id": uuid.uuid4().hex, **({"kind": kind} if table == "ingest_runs" else {}), **_checked(table, values)}
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    con.execute(
        f"INSERT INTO {table} ({names}, started_at, status, pid, host) VALUES ({marks}, now(), 'running', ?, ?)",
        [*row.values(), *owner],
    )
    return row["run_id"]


def table_of(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    for table in dict.fromkeys(TABLES.values()):
        if con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id]).fetchall()[0][0]:
            return table
    raise StoreError(f"no run {run_id!r} recorded")


def update(con: duckdb.DuckDBPyConnection, run_id: str, values: dict[str, Any], *, finished: bool = False) -> None:
    """Set ``values`` on the run (and ``finished_at`` when ``finished``)."""
    table = table_of(con, run_id)
    columns = dict(values)
    own: dict[str, Any] = {k: columns.pop(k) for k in ("status", "error") if k in columns}
    _checked(table, columns)
    columns.update(own)
    sets = [f"{name} = ?" for name in columns] + (["finished_at = now()"] if finished else [])
    if sets:
        con.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE run_id = ?", [*columns.values(), run_id])


def finish(con: duckdb.DuckDBPyConnection, run_id: str, values: dict[str, Any], *,
           error: str | None = None, note: str | None = None) -> None:  # fmt: skip
    """Mark the run ``completed`` (``failed`` with ``error``) with its final
    ``values``; ``note`` goes where the error would on a run that completed
    all the same."""
    values = {**values, "status": "failed" if error else "completed", "error": error if error else note}
    update(con, run_id, values, finished=True)


def interrupt_stale(con: duckdb.DuckDBPyConnection, kind: str, source: str) -> int:
    """Fail the ``kind`` runs of ``source`` still marked running, whatever
    process they name: for a caller that holds the file's only writer, so
    none of them can be running now. Return how many."""
    if TABLES.get(kind) != "ingest_runs":
        raise StoreError(f"runs of kind {kind!r} have no source; expected one of import, sync")
    return int(
        con.execute(
            "UPDATE ingest_runs SET status = 'failed', finished_at = now(), error = 'interrupted' "
            "WHERE kind = ? AND source = ? AND status = 'running'",
            [kind, source],
        ).fetchall()[0][0]
    )

"""Queries on one DuckDB connection of the cache, and the files kept private.

The one access layer under :class:`~pe_toolkit.store.Store` (which runs
these on its own connection) and the mirror's
:class:`~pe_toolkit.server.db.ServerDB` (which runs them on a cursor per
request thread): the same query helpers, the same error text, the same
file permissions, whichever of the two runs the query.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl
import pyarrow as pa

from ..errors import InputError, StoreError

Params = Sequence[Any] | dict[str, Any] | None
T = TypeVar("T")


def query_error(exc: duckdb.Error, *, read_only: bool = False) -> str:
    """DuckDB's first line, with the advice a read-only store's refusals need."""
    text = str(exc).splitlines()[0]
    if isinstance(exc, duckdb.PermissionException) and read_only:
        return (
            f"{text} (a read-only store cannot read or write files; "
            "open it for writing, e.g. pe-toolkit sql --write, to use files)"
        )
    if isinstance(exc, duckdb.InvalidInputException) and "configuration has been locked" in text:
        return f"{text} (settings of a read-only store are fixed)"
    if isinstance(exc, duckdb.InvalidInputException) and read_only and "read-only mode" in text:
        return f"{text} (open the store for writing, e.g. pe-toolkit sql --write, to change it)"
    return text


@contextmanager
def store_errors(*, read_only: bool = False) -> Iterator[None]:
    """A failed query inside becomes :class:`~pe_toolkit.errors.StoreError`
    (``query failed: ...``), without DuckDB's traceback."""
    try:
        yield
    except duckdb.Error as exc:
        raise StoreError(f"query failed: {query_error(exc, read_only=read_only)}") from None


def frame(con: duckdb.DuckDBPyConnection, query: str, params: Params = None, *, read_only: bool = False) -> pl.DataFrame:
    """One statement as a polars frame; a failure is a StoreError, a text
    without a statement an InputError."""
    def run() -> pa.Table:
        relation = con.sql(query, params=params or None)
        # None: the text held no statement (empty, ';', only comments).
        if relation is None:
            raise InputError("empty query: give one SQL statement")
        return relation.to_arrow_table()

    with store_errors(read_only=read_only):
        table = interruptible(con, run)
    try:
        return pl.from_arrow(table)  # type: ignore[return-value]  # typed DataFrame | Series; a Table always gives a DataFrame
    except pl.exceptions.PolarsError as exc:
        # polars refuses repeated column names and a few types (INTERVAL,
        # UNION): the statement ran (a write took effect), its result has no frame.
        reason = str(exc).splitlines()[0].split(" Hint:")[0] if str(exc) else type(exc).__name__
        raise StoreError(
            f"the query ran, but its result cannot be held as a frame ({reason}): alias repeated column names, "
            "cast other columns to VARCHAR"
        ) from None


def arrow(con: duckdb.DuckDBPyConnection, query: str, params: Params = None) -> pa.Table:
    return interruptible(con, lambda: con.sql(query, params=params or None).to_arrow_table())


def rows(con: duckdb.DuckDBPyConnection, query: str, params: Params = None) -> list[tuple[Any, ...]]:
    return interruptible(con, lambda: con.execute(query, params or []).fetchall())


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: Params = None) -> Any:
    found = rows(con, query, params)
    return found[0][0] if found else None


def interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[], T]) -> T:
    """``work()`` (a query on ``con``), stopped by Ctrl-C or Jupyter's
    interrupt button (SIGINT).

    Python runs signal handlers in the main thread only, between bytecodes,
    and DuckDB looks for a pending one only between its tasks: inside one
    long operator (a cross join, a self-join of the messages table) the
    interrupt waited for the query to end (a 19 s cross join ran to its
    end; `pe-toolkit sql` on a self-join, 480 s). So from the main thread
    the work runs on a worker thread (:func:`pe_toolkit.interruptible.call`);
    on KeyboardInterrupt DuckDB is asked to stop (``con.interrupt()``; on an
    idle connection, when the work ended meanwhile, harmless: the next query
    clears it), the worker is awaited, so the connection is free for the
    next query, and the KeyboardInterrupt raised. Other threads (the
    mirror's request threads) get no signals: they run the work directly."""
    if threading.current_thread() is not threading.main_thread():
        return work()
    from .. import interruptible as waits

    return waits.call(work, con.interrupt)


def secure_files(path: Path) -> None:
    """Narrow the database file and its write-ahead log to the owner. DuckDB
    creates the log lazily with the process umask, so this runs after every
    write: the log of recent changes must not be world-readable."""
    for candidate in (path, Path(f"{path}.wal")):
        try:
            if candidate.exists() and candidate.stat().st_mode & 0o077:
                candidate.chmod(0o600)
        except OSError:
            pass


def for_threads(table: pa.Table, parts: int = 8) -> pa.Table:
    """``table`` cut into ``parts`` record batches before DuckDB scans it:
    DuckDB scans one Arrow record batch per thread, so one big batch would
    be hashed and inserted on a single core."""
    count = table.num_rows
    if count < 2 * parts:
        return table
    step = -(-count // parts)
    return pa.Table.from_batches([b for i in range(parts) for b in table.slice(i * step, step).to_batches()])

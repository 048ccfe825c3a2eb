"""The server's access to the store: a cursor per thread, one writer lock.

A DuckDB connection must not be used by two threads at once, and request
handlers run on a thread pool: each thread gets its own cursor (a new
connection to the same database instance), made on first use and closed at
shutdown. The server's own bookkeeping writes (jobs, exports, the search
index) go through :meth:`ServerDB.write`, one transaction at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import StoreError
from ..store import Store


class ServerDB:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursor_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            if self._closed:
                raise StoreError("the server is shutting down")
            cur = self.store.cursor()
            self._local.cursor = cur
            with self._cursor_lock:
                self._cursors.append(cur)
        return cur

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            return self.cursor().execute(sql, params or []).fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {str(exc).splitlines()[0]}") from None

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        row = self.one(sql, params)
        return row[0] if row else None

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        try:
            return self.cursor().sql(sql, params=params or None).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {str(exc).splitlines()[0]}") from None

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction on this thread's cursor, serialized with
        every other server write."""
        with self._write_lock:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            self._private_wal()

    def _private_wal(self) -> None:
        # DuckDB creates the write-ahead log with the process umask; like
        # Store.transaction, keep it owner-only (it holds recent writes).
        wal = Path(f"{self.store.path}.wal")
        try:
            if wal.stat().st_mode & 0o077:
                wal.chmod(0o600)
        except OSError:
            pass

    def has_table(self, name: str) -> bool:
        return bool(self.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]))

    def close(self) -> None:
        self._closed = True
        with self._cursor_lock:
            for cur in self._cursors:
                try:
                    cur.close()
                except duckdb.Error:
                    pass
            self._cursors.clear()

"""The server's access to the store: a cursor per thread, one writer lock,
and, for a standalone server, the file let go between units of work.

A DuckDB connection must not be used by two threads at once, and request
handlers run on a thread pool: each thread gets its own cursor (a new
connection to the same database instance), made on first use and closed at
shutdown. The server's own bookkeeping writes (jobs, exports, the search
index) go through :meth:`ServerDB.write`, one transaction at a time.

DuckDB lets one process open a file for writing, and no other process read
it meanwhile. A server that held its cache for its whole life would keep
every other process (an import, a notebook's analysis) out of it. With
:meth:`ServerDB.release_when_idle` (``pe-toolkit serve`` turns it on), the
file is closed once no query has run for that many seconds and reopened by
the next one: every query runs inside a :meth:`lease`, and the file is
closed only when no lease is held. Steady traffic never leaves it idle, so
the file is also let go as soon as another process is waiting for it (its
marker beside the file, :func:`pe_toolkit.store.lease.others_waiting`), and
kept closed for up to ``YIELD_SECONDS`` while it takes the file. When another process holds the file, a
query waits up to ``lock_wait`` seconds for it, then fails with
:class:`~pe_toolkit.errors.StoreLockedError` (a 503 with ``Retry-After``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import StoreError, StoreLockedError
from ..store import Store, access
from ..store.lease import others_waiting

LOCK_WAIT = 5.0  # seconds a query waits for another process to let go of the file
# Seconds the file stays closed after letting go for a waiting process: it
# retries every 0.1 s (store.lease), so it takes the file well within this,
# even on a loaded machine; a query waits for the file up to LOCK_WAIT anyway.
YIELD_SECONDS = 5.0
_RETRY_STEP = 0.05


def file_signature(path: Path) -> tuple[tuple[int, int], ...]:
    """(size, mtime) of the database file and its write-ahead log: what
    changes when any process writes the cache."""
    found = []
    for part in (path, Path(f"{path}.wal")):
        try:
            st = part.stat()
            found.append((st.st_size, st.st_mtime_ns))
        except OSError:
            found.append((-1, -1))
    return tuple(found)


class ServerDB:
    def __init__(self, store: Store, *, lock_wait: float = LOCK_WAIT) -> None:
        self.path = store.path
        self._store: Store | None = store
        self.lock_wait = lock_wait
        self.release_after: float | None = None  # seconds idle before the file is closed; None: held
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._generation = 0  # bumped at each release: older cursors are gone
        self._state = threading.Condition(threading.Lock())
        self._leases = 0
        self._last_used = time.monotonic()
        self._yield_until = 0.0  # monotonic time until which a waiting process gets the file
        self._write_lock = threading.RLock()
        self._closed = False
        self.released_signature: tuple[tuple[int, int], ...] | None = None
        self.releases = 0

    # -- holding and letting go of the file --------------------------------
    @property
    def store(self) -> Store:
        """The open store (reopened if it was let go). For callers in this
        process that do not release (tests, notebooks): a released store may
        be closed under a caller that keeps it."""
        with self.lease():
            assert self._store is not None
            return self._store

    @property
    def is_open(self) -> bool:
        return self._store is not None

    def release_when_idle(self, seconds: float | None) -> None:
        """Close the file after ``seconds`` without a query (None: never)."""
        self.release_after = seconds

    @contextmanager
    def lease(self, *, wait: float | None = None, touch: bool = True) -> Iterator[None]:
        """Hold the file open for a unit of work (re-entrant per thread);
        opens it if it was let go, waiting up to ``wait`` (default
        ``lock_wait``) seconds for another process to close it. A lease
        with ``touch=False`` (the watcher's polls) does not count as use,
        so polling alone never keeps the file."""
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        with self._state:
            if self._closed:
                raise StoreError("the server is shutting down")
            self._leases += 1
        try:
            self._open(self.lock_wait if wait is None else wait)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
        finally:
            with self._state:
                self._leases -= 1
                if touch:
                    self._last_used = time.monotonic()

    def _open(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        with self._state:
            # Let go for a waiting process (release_if_idle): give it time to
            # take the file rather than grabbing it back at the next request.
            while self._store is None and time.monotonic() < self._yield_until and others_waiting(self.path):
                if time.monotonic() >= deadline:
                    # wait=0 (health, the watcher) too: reopening now would
                    # take the file back from the process it was let go for
                    raise StoreLockedError(str(self.path), None, None)
                self._state.wait(_RETRY_STEP)
            while self._store is None:
                try:
                    self._store = Store(self.path)
                except StoreLockedError:
                    if time.monotonic() >= deadline:
                        raise
                    # Waiting here holds back other leases, which would
                    # wait for the same file anyway.
                    self._state.wait(_RETRY_STEP)

    def release_if_idle(self) -> bool:
        """Close the file if releasing is on, no lease is held, and none was
        for ``release_after`` seconds or another process waits for the file
        (steady traffic would otherwise keep an import out for good); True
        if it was closed."""
        with self._state:
            if self.release_after is None or self._store is None:
                return False
            if self._leases:
                return False
            waited_for = others_waiting(self.path)
            if not waited_for and time.monotonic() - self._last_used < self.release_after:
                return False
            if waited_for:
                self._yield_until = time.monotonic() + YIELD_SECONDS
            self._close_locked()
            self.released_signature = file_signature(self.path)
            self.releases += 1
            return True

    def _close_locked(self) -> None:
        # Called with self._state held and no lease out: no cursor is in use.
        for cur in self._cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self._cursors.clear()
        self._generation += 1
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- queries -------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection; use it inside :meth:`lease` (the
        query helpers below take one themselves)."""
        if not getattr(self._local, "depth", 0) and self.release_after is not None:
            raise RuntimeError("ServerDB.cursor() outside a lease while the file may be released")
        cur = getattr(self._local, "cursor", None)
        if cur is None or getattr(self._local, "generation", -1) != self._generation:
            with self._state:
                if self._closed or self._store is None:
                    raise StoreError("the server is shutting down")
                cur = self._store.cursor()
                self._cursors.append(cur)
                self._local.cursor, self._local.generation = cur, self._generation
        return cur

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with access.store_errors(), self.lease():
            return access.rows(self.cursor(), sql, params)

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        row = self.one(sql, params)
        return row[0] if row else None

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        with access.store_errors(), self.lease():
            return access.arrow(self.cursor(), sql, params)

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction on this thread's cursor, serialized with
        every other server write."""
        with self._write_lock, self.lease():
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            access.secure_files(self.path)

    def has_table(self, name: str) -> bool:
        return bool(self.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]))

    def close(self) -> None:
        with self._state:
            self._closed = True
            self._close_locked()

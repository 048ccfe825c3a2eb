"""Store: the local DuckDB cache, the single source of truth.

Open it with :func:`open_store` (or ``Store(path)``). Writes happen in one
transaction per batch; reads come back as polars frames. DuckDB allows one
writing process per file: a second writer gets :class:`StoreLockedError`
naming the holder, and readers can open with ``read_only=True`` while no one
writes.

Analysis results: ``conversation_scores``, ``message_scores`` and
``evidence`` hold every row ``analyze`` wrote. Which of them are *current*
is the store's rule, kept in three views (migration 0009) that every reader
uses: ``current_conversation_scores``, ``current_message_scores`` and
``current_evidence``. A conversation's rows are current when the
conversation is unchanged since it was scored (same ``content_hash``) and
they were computed by the analysis version in force, which is the
``analysis_version`` of the latest ``analyze`` run that wrote a batch or
completed (``analysis_runs``; migration 0013): a
view cannot know the Python analyzers' version, but each run records the
one it scores with before writing anything and re-scores every row of
another version, so a row is current exactly when the next incremental
``analyze`` would leave it alone. A setting that enters a version (the
alert threshold, say) takes effect at the next ``analyze``. With no run
recorded, rows of any version count. :meth:`Store.scores` reads the views
as polars frames; plain SQL can name them too, read-only included.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..config import CONFIG_NAME, load_settings
from ..errors import InputError, SchemaVersionError, StoreError, StoreLockedError
from ..schema import CONVERSATION_SCHEMA, QUALITY_METRICS, STORED_CONVERSATION_COLUMNS
from . import access, lease, migrate, registry, runs
from .filters import ConversationFilter
from .summary import StoreSummary

_LOCK_PID = re.compile(r"\(PID (\d+)\)")

# Canonical content of a conversation, hashed to tell "changed" from
# "unchanged". to_json escapes every string, so the serialization is
# unambiguous; the metadata text is hashed on its own first because escaping
# a large JSON document inside to_json cost more than the rest (measured:
# synthetic metadata carries ~1.5 KB of ground truth). fetched_at and source
# are deliberately left out.
CONTENT_HASH_SQL = (
    "md5(concat_ws('|', coalesce(md5(metadata), '-'), to_json(struct_pack(d := dataset, t := tier, c := created_at, "
    + ", ".join(f"{m} := {m}" for m in QUALITY_METRICS)
    + ", m := messages))))"
)

_CONVERSATION_COLUMNS = ", ".join(STORED_CONVERSATION_COLUMNS)

# The views of current analysis rows (migration 0009) by level, with the
# order Store.scores returns them in.
SCORE_VIEWS = {
    "conversation": ("current_conversation_scores", "x.conversation_id"),
    "message": ("current_message_scores", "x.conversation_id, x.idx"),
    "evidence": ("current_evidence", 'x.conversation_id, x.idx, x."start", x."end", x.analyzer, x.category'),
}


UPDATED_HASHES = pa.schema([("id", pa.string()), ("previous_hash", pa.string()), ("content_hash", pa.string())])


@dataclass
class UpsertResult:
    """What one upsert (or a whole import) changed."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    messages_written: int = 0
    # Rows whose id occurred again later in the same batch (an import's
    # report: later in the import, in any batch or, for a Hugging Face
    # DatasetDict, in a later split; see store.loaded.LoadedIds): stored once
    # (the last). Rows without an id get their content's hash, so identical
    # rows count here.
    repeated: int = 0
    created_ids: list[str] = field(default_factory=list, repr=False)
    updated_ids: list[str] = field(default_factory=list, repr=False)
    # One write's updated ids with the content hash the cache held before
    # it (previous_hash) and the one it holds now (content_hash), as Arrow
    # columns (UPDATED_HASHES); None when not known (a result built by
    # hand). LoadedIds.settle keeps the first as the hash an id had before
    # the load, to tell a later copy that brings it back. Of one write
    # only: add() does not carry it, and reports do not show it.
    updated_hashes: pa.Table | None = field(default=None, repr=False, compare=False, metadata={"report": False})

    def add(self, other: UpsertResult, *, keep_ids: bool = True) -> None:
        """Accumulate another result (ids only when ``keep_ids``: a long
        import keeps counts, not millions of ids)."""
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.messages_written += other.messages_written
        self.repeated += other.repeated
        if keep_ids:
            self.created_ids += other.created_ids
            self.updated_ids += other.updated_ids

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


def _sandbox(con: duckdb.DuckDBPyConnection) -> None:
    """Make a read-only connection read-only for files too, for good.

    Without this, SQL on a read-only store could still ``COPY ... TO`` any
    file (the conversations, world-readable) and read any local file
    (``read_text``, ``read_csv``, ``ATTACH``). External access off and the
    configuration locked leave the store's own tables, views, temporary
    tables and the bundled JSON/Parquet functions working, and registered
    Arrow tables still scan. DuckDB shares one instance per file and
    settings in a process, so a second read-only connection finds the
    instance locked already. The zone is set before locking: it cannot be
    set after.
    """
    if con.execute("SELECT current_setting('lock_configuration')").fetchall()[0][0]:
        return
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        # A killed child its parent has not reaped yet still answers kill(0).
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def _lock_holder(pid: int) -> str | None:
    """The holder's program name only: its other arguments may hold secrets
    (a key, a DSN) and newlines, and the message is one line on stderr."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    words = [w.decode("utf-8", "replace") for w in raw.split(b"\0") if w]
    if not words:
        return None
    # `python -m pe_toolkit` / `.../bin/pe-toolkit ...`: the interpreter says
    # little, so name the script or module it runs (never what follows).
    name = Path(words[0]).name
    if name.startswith("python") and len(words) > 1:
        nxt = words[2] if words[1] == "-m" and len(words) > 2 else words[1]
        if not nxt.startswith("-"):
            name = f"{name} {Path(nxt).name}"
    return " ".join(name.split())[:60] or None


DUCKDB_MAGIC = b"DUCK"  # at offset 8 of every DuckDB database file


def _data_file(path: Path) -> bool:
    """True for an existing, non-empty file that is not a DuckDB database.
    DuckDB 2 opens a CSV, JSON or Parquet file given as the database as an
    in-memory database with a view over it: writes would vanish unsaid."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return False
        with path.open("rb") as fh:
            return fh.read(12)[8:12] != DUCKDB_MAGIC
    except OSError:
        return False  # unreadable: DuckDB's own error says why


def _translate_open_error(path: Path, exc: duckdb.Error, *, read_only: bool) -> StoreError:
    text = str(exc)
    if "lock" in text.lower():
        match = _LOCK_PID.search(text)
        pid = int(match[1]) if match else None
        # Whether the holder writes decides the advice. A read-only open is
        # refused only by a writer; a writable one by either, and DuckDB
        # adds that a read-only open would work when the holder only reads.
        holder_writes = read_only or "read-only mode" not in text
        return StoreLockedError(str(path), pid, _lock_holder(pid) if pid else None, holder_writes=holder_writes)
    return StoreError(f"cannot open {path}: {text.splitlines()[0]}")


class NewCacheWarning(UserWarning):
    """The default cache (no path given, none configured) does not exist
    and is being created empty: most often a script run outside the
    project, whose cache it meant to open."""


def cache_path(path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> Path:
    """The file ``Store(path, read_only=...)`` opens: ``path``, or else the
    configured cache (warning :class:`NewCacheWarning` when that is the
    bare default and a writable open is about to create it, empty)."""
    return Path(path) if path is not None else _default_cache(read_only)


def _default_cache(read_only: bool) -> Path:
    """The configured cache; says so when it is the bare default and a
    writable open is about to create it, empty."""
    settings = load_settings()
    path = settings.cache_path
    if not read_only and settings.sources.get("path") == "default" and not path.exists():
        # Point at the caller's line, past this module's frames (Store(),
        # open_store()).
        level = 2
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename == __file__:
            level, frame = level + 1, frame.f_back
        warnings.warn(
            NewCacheWarning(
                f"no cache configured (no PE_CACHE, no {CONFIG_NAME} in {Path.cwd()} or a parent folder): "
                f"creating a new, empty cache at {path}; to open an existing cache set PE_CACHE, "
                "run from its project folder, or pass its path"
            ),
            stacklevel=level,
        )
    return path


# Tables of runs that record their process (pid, host) while 'running'.
RUN_TABLES = ("analysis_runs", "ingest_runs")


def run_owner() -> tuple[int, str]:
    """(pid, host) recorded with a run while it runs."""
    return os.getpid(), socket.gethostname()


class Store:
    """A pe_toolkit cache file.

    Current analysis rows come from :meth:`scores` or the views
    ``current_conversation_scores``, ``current_message_scores`` and
    ``current_evidence`` (the rule is in the module docstring).

    >>> with Store("data/pe_cache.duckdb") as store:
    ...     store.summary()
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        hold: bool = True,
        lock_wait: float | None = None,
        linger: float = lease.LINGER,
    ):
        """``hold=False``: keep the file open only for each unit of work (and
        ``linger`` seconds after it), so other processes (notebooks, scripts,
        the CLI) can use the cache in between. ``lock_wait``: how long to
        wait, saying so on stderr, while another process holds the file
        (default: 0, fail at once, for a store that holds its file;
        ``lease.LOCK_WAIT`` for one that does not). See
        :mod:`pe_toolkit.store.lease`."""
        self.path = cache_path(path, read_only=read_only)
        self.read_only = read_only
        if lock_wait is None:
            lock_wait = 0.0 if hold else lease.lock_wait()
        # Held while opening (setup runs Store methods); let go at the end if hold=False.
        self._lease = lease.LeaseState(True, lock_wait, linger)
        self._write_lock = threading.RLock()
        # The writable store whose connection this read-only one borrows a
        # cursor of (see pe_toolkit.store.registry), or None.
        self._lender: Store | None = None
        self._con: duckdb.DuckDBPyConnection = None  # type: ignore[assignment]  # None only while let go (hold=False); used only inside a lease, which opens it
        lease.wait_for_file(self, self._open_first)
        if not hold:
            self._lease.hold = False
            lease.let_go(self)

    def _open_first(self) -> None:
        with registry.LOCK:
            self._attach()
            try:
                self._setup()
            except BaseException:
                self._detach()
                raise
            registry.add(self)

    # -- opening ---------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._con is not None

    @property
    def sandboxed(self) -> bool:
        """True when this store's SQL can neither read nor write files (a
        read-only store on a connection of its own; a read-only store that
        borrows an open writer's connection in the same process is not). A
        store that holds its file per unit of work (``hold=False``) and has
        let go of it: whether it would be sandboxed if used now."""
        if self._con is None:
            usable = not self._lease.hold and not self._lease.closed
            return self.read_only and usable and registry.writer(self.path) is None
        return self.read_only and self._lender is None

    def _attach(self) -> None:
        """Connect, reconciling with the stores of this file already open in
        this process (the rules are in pe_toolkit.store.registry)."""
        if self.read_only:
            lender = cast("Store | None", registry.writer(self.path))
            if lender is not None:
                self._borrow(lender)
                return
            self._con = self._connect()
            return
        readers = cast("list[Store]", registry.readers(self.path))
        for reader in readers:
            reader._release()
        try:
            self._con = self._connect()
        except BaseException:
            for reader in readers:
                reader._rebind()
            raise
        for reader in readers:
            reader._borrow(self)

    def _reattach(self) -> None:
        """Connect again (a store that holds its file per unit of work)."""
        with registry.LOCK:
            self._attach()
            registry.add(self)

    def _close_file(self) -> None:
        """Close this store's connection, keeping it usable (it reconnects when used)."""
        with registry.LOCK:
            if self._con is not None:
                self._detach()

    def _borrow(self, lender: Store) -> None:
        self._release()
        cur = lender._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        self._con, self._lender = cur, lender

    def _release(self) -> None:
        if self._con is not None:
            with suppress(duckdb.Error):
                self._con.close()
        self._con, self._lender = None, None  # type: ignore[assignment]  # let go: see __init__

    def _rebind(self) -> None:
        """Back onto another open writer of the file, or a connection of our own."""
        lender = cast("Store | None", registry.writer(self.path, besides=self._lender))
        self._release()
        if not self._lease.hold and not self._lease.depth:
            # A released store between units of work: it reopens when used.
            registry.remove(self)
            return
        if lender is not None:
            self._borrow(lender)
            return
        with suppress(StoreError):
            # Left unconnected if the file cannot be opened now (another
            # connection outside pe_toolkit still holds it): its next query
            # fails with "connection already closed".
            self._con = self._connect()

    def _detach(self) -> None:
        """Close this store's connection and hand its borrowers on."""
        self._release()
        registry.remove(self)
        if not self.read_only:
            for other in cast("list[Store]", registry.open_stores(self.path)):
                if other.read_only and other._lender is self:
                    other._rebind()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self.read_only and not self.path.exists():
            raise StoreError(f"no cache at {self.path}; import or sync something first")
        if _data_file(self.path):
            raise StoreError(
                f"cannot open {self.path}: not a DuckDB database (a data file? name the cache with --db or "
                "PE_CACHE, and import files with pe-toolkit import / pe.import_file)"
            )
        if not self.read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder {self.path.parent} for the cache: {exc.strerror or exc}") from None
        # The cache holds conversations of people in distress: create it
        # readable by the owner only. umask covers the creation itself.
        old = os.umask(0o077)
        try:
            con = duckdb.connect(str(self.path), read_only=self.read_only)
        except duckdb.Error as exc:
            raise _translate_open_error(self.path, exc, read_only=self.read_only) from None
        finally:
            os.umask(old)
        if self.read_only:
            _sandbox(con)
        else:
            # Timestamps are stored as TIMESTAMPTZ; a fixed session zone keeps
            # every rendering (exports, hashes) independent of the machine.
            con.execute("SET TimeZone = 'UTC'")
        return con

    def _setup(self) -> None:
        if self.read_only:
            version = migrate.current_version(self._con)
            latest = migrate.latest_version()
            if version != latest:
                # A newer file cannot be migrated back: only a newer pe_toolkit reads it.
                advice = ("it was written by a newer pe_toolkit: upgrade pe_toolkit to read it" if version > latest
                          else "open it once for writing to migrate")  # fmt: skip
                raise SchemaVersionError(
                    f"{self.path} has schema version {version}, this pe_toolkit needs {latest}: {advice}"
                )
            return
        migrate.apply(self._con, str(self.path))
        self.mark_interrupted_runs()
        self._secure_files()

    def mark_interrupted_runs(self) -> int:
        """Mark runs (``analysis_runs`` and ``ingest_runs``) left ``running``
        by a process that is gone (killed, crashed) as ``interrupted``;
        return how many.

        Each run records the pid and host of the process running it
        (:func:`run_owner`). A row of this host whose pid no longer exists
        cannot finish; rows without a pid predate the recording (migrations
        0010 and 0011) and are stale too, since a writer of that era held
        the file's lock for the whole run. Rows of another host are left
        alone (its processes are not visible from here). Called on every
        writable open and by analyze.
        """
        self._require_writable()
        host = socket.gethostname()
        marked = 0
        for table in RUN_TABLES:
            if not self.scalar(
                "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = 'pid'", [table]
            ):
                continue  # a file not migrated that far (only tests hold one back)
            rows = self._con.execute(f"SELECT run_id, pid, host FROM {table} WHERE status = 'running'").fetchall()
            stale = [run_id for run_id, pid, run_host in rows if pid is None or (run_host == host and not _pid_alive(pid))]
            if stale:
                with self.transaction() as con:
                    con.execute(
                        f"UPDATE {table} SET status = 'interrupted', finished_at = coalesce(finished_at, now()), "
                        "error = coalesce(error, 'interrupted: the process running it ended before it finished') "
                        "WHERE run_id IN (SELECT unnest(?::VARCHAR[])) AND status = 'running'",
                        [stale],
                    )
            marked += len(stale)
        return marked

    def _secure_files(self) -> None:
        access.secure_files(self.path)

    @property
    def schema_version(self) -> int:
        return migrate.current_version(self._con)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The underlying DuckDB connection (for advanced use; not thread-safe).
        On a store that does not hold its file, use it inside ``with
        store.session():``; outside one the file stays open until
        :meth:`release`."""
        lease.pin(self)
        return self._con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the same database, for use from another thread."""
        lease.pin(self)
        if self._con is None:
            raise StoreError(f"{self.path}: this store is closed")
        cur = self._con.cursor()
        # A sandboxed store's configuration is locked, with the zone set
        # before locking; setting it again would be refused.
        if cur.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] != "UTC":
            cur.execute("SET TimeZone = 'UTC'")
        return cur

    @property
    def holds_file(self) -> bool:
        """False for a store opened with ``hold=False`` (it opens the file per unit of work)."""
        return self._lease.hold

    def session(self) -> AbstractContextManager[Store]:
        """``with store.session():`` holds the file for the calls inside (one
        open instead of one per call; needed for ``connection``/``cursor()``
        on a store opened with ``hold=False``). Re-entrant."""
        return lease.session(self)

    def release(self) -> bool:
        """Let go of the file now (a ``hold=False`` store reopens it when
        next used); True if it was open. A no-op inside a session."""
        if self._lease.hold:
            return False
        return lease.release(self)

    def close(self) -> None:
        self._lease.closed = True
        with registry.LOCK:
            if self._con is None:
                registry.remove(self)
                return
            self._detach()
        self._secure_files()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        if self._lease.closed or (self._con is None and self._lease.hold):
            mode += ", closed"
        elif self._con is None:
            mode += ", file not held"
        return f"<Store {self.path} ({mode})>"

    # -- transactions ----------------------------------------------------
    @contextmanager
    def transaction(self, con: duckdb.DuckDBPyConnection | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: everything inside commits or nothing does.
        ``con``: a :meth:`cursor` to run it on (from another thread) instead
        of the store's own connection; writers still take turns."""
        self._require_writable()
        with self._write_lock:
            target = con if con is not None else self._con
            target.execute("BEGIN TRANSACTION")
            try:
                yield target
            except BaseException:
                target.execute("ROLLBACK")
                raise
            target.execute("COMMIT")
        self._secure_files()

    @contextmanager
    def bulk_writes(self, *, checkpoint_threshold: str = "1GiB", memory_limit: str = "512MB") -> Iterator[None]:
        """Settings for a long stream of batch writes (an import, a bulk sync).

        - The write-ahead log may grow, and is folded into the file once at
          the end: DuckDB checkpoints whenever the WAL passes 16 MiB, which
          during a bulk load rewrote the tables after every batch or two
          (measured on 100k conversations: the merge took 4.5-8 s with it,
          2.2-3.8 s plus one 1.7 s checkpoint without). Durability is
          unchanged: every batch is committed to the WAL, replayed after a
          crash.
        - Memory is capped: otherwise DuckDB keeps every page it wrote cached
          (up to 80% of RAM by default) and the process grew to 2 GB while
          importing 1 M conversations; with the cap it stayed under 1 GB at
          the same speed.
        """
        self._require_writable()
        con = self._con
        old = con.execute(
            "SELECT current_setting('checkpoint_threshold'), current_setting('memory_limit')"
        ).fetchall()[0]
        con.execute(f"SET checkpoint_threshold = '{checkpoint_threshold}'")
        con.execute(f"SET memory_limit = '{memory_limit}'")
        try:
            yield
        finally:
            con.execute(f"SET checkpoint_threshold = '{old[0]}'")
            con.execute(f"SET memory_limit = '{old[1]}'")
            with suppress(duckdb.Error):
                con.execute("CHECKPOINT")
            self._secure_files()

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")

    # -- queries -----------------------------------------------------------
    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        """Run a query and return a polars frame. Pass values as ``params``
        (``?`` placeholders), never formatted into the query text."""
        return access.frame(self._checked(query), query, params, read_only=self.read_only)

    def read(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        """Like :meth:`sql`, for a query assembled from pieces that may come
        from outside the code (notebook parameters, widget state): on a
        sandboxed store it runs as is (DuckDB refuses files and settings);
        on any other it must be one SELECT of the database's own tables and
        views, with no file, environment or nested-SQL function
        (:mod:`pe_toolkit.store.guard`)."""
        return access.frame(self._checked(query, always=True), query, params, read_only=self.read_only)

    def arrow(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        return access.arrow(self._checked(query), query, params)

    def scalar(self, query: str, params: Sequence[Any] | None = None) -> Any:
        return access.scalar(self._checked(query), query, params)

    def _checked(self, query: str, *, always: bool = False) -> duckdb.DuckDBPyConnection:
        """The connection to run ``query`` on, once it may run there. A
        read-only store on a writer's connection (same file, same process)
        cannot be sandboxed by DuckDB (one configuration per file and
        process), so its SQL must be one SELECT of the store's own tables,
        as :meth:`read` asks of every unsandboxed store."""
        if self._con is None:
            raise StoreError(f"{self.path}: this store is closed")
        if not self.sandboxed and (always or self.read_only):
            from .guard import check_select

            check_select(self._con, query)
        return self._con

    def _selection(self, filter: ConversationFilter | None, filters: dict[str, Any]) -> tuple[str, list[Any]]:
        """SQL over ``conversations c`` for the one filter vocabulary (pe_toolkit.store.filters)."""
        selection = ConversationFilter.build(filter, **filters)
        selection.check(self._con)
        return selection.where("c")

    def conversations(
        self,
        filter: ConversationFilter | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        **constraints: Any,
    ) -> pl.DataFrame:
        """Conversation rows (no messages) in a stable order (by id).

        ``filter`` and keyword filters: the one vocabulary of
        :class:`ConversationFilter` (``dataset``, ``tier``, ``ids``, quality,
        date, risk and alert bounds, ``crisis_categories``, ``labels``), as
        for :meth:`count`, :meth:`messages`, :meth:`scores` and the exports.
        """
        where, params = self._selection(filter, constraints)
        page = ""
        if limit is not None:
            page = " LIMIT ? OFFSET ?"
            params += [int(limit), int(offset)]
        return self.sql(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE {where} ORDER BY c.id{page}",
            params,
        )

    def count(self, filter: ConversationFilter | None = None, **constraints: Any) -> int:
        where, params = self._selection(filter, constraints)
        return int(self.scalar(f"SELECT count(*) FROM conversations c WHERE {where}", params))

    def messages(
        self,
        filter: ConversationFilter | None = None,
        *,
        role: str | None = None,
        **constraints: Any,
    ) -> pl.DataFrame:
        """Message rows of the matching conversations, in conversation order."""
        where, params = self._selection(filter, constraints)
        role_sql = ""
        if role is not None:
            role_sql = " AND m.role = ?"
            params.append(role)
        return self.sql(
            "SELECT m.conversation_id, m.idx, m.role, m.content, m.timestamp "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            f"WHERE {where}{role_sql} ORDER BY m.conversation_id, m.idx",
            params,
        )

    def scores(
        self,
        level: str = "conversation",
        filter: ConversationFilter | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        **constraints: Any,
    ) -> pl.DataFrame:
        """Current analysis rows of the matching conversations (see the
        module docstring for what "current" means), from the view of
        ``level``: ``"conversation"`` (``current_conversation_scores``, by
        conversation id), ``"message"`` (``current_message_scores``, by
        conversation and message index) or ``"evidence"``
        (``current_evidence``, by message and offset). Filters as for
        :meth:`conversations` (``ids=``, ``dataset=``, ``tier=``,
        ``min_risk=``, ``alert=``, ...). Empty when nothing current is stored.

        >>> store.scores(ids=["conv_1"])            # one conversation's scores
        >>> store.scores("evidence", tier="research")
        """
        if level not in SCORE_VIEWS:
            raise InputError(f"level must be one of {', '.join(SCORE_VIEWS)}, got {level!r}")
        view, order = SCORE_VIEWS[level]
        where, params = self._selection(filter, constraints)
        selected = ""
        if where != "TRUE":
            selected = f" SEMI JOIN (SELECT c.id FROM conversations c WHERE {where}) c ON c.id = x.conversation_id"
        page = ""
        if limit is not None:
            page = " LIMIT ? OFFSET ?"
            params += [int(limit), int(offset)]
        return self.sql(f"SELECT x.* FROM {view} x{selected} ORDER BY {order}{page}", params)

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """One conversation as the API's conversation object, or None."""
        from .api_objects import api_objects_sql

        sql, params = api_objects_sql(ConversationFilter(ids=[conversation_id]))
        rows = access.rows(self._con, sql, params)
        if not rows:
            return None
        import orjson

        try:
            return orjson.loads(rows[0][1])
        except orjson.JSONDecodeError as exc:
            # The importer refuses non-finite numbers since migration 0010;
            # a document stored before can still hold one (NaN, 1e400).
            raise StoreError(
                f"conversation {conversation_id}: stored document is not valid JSON ({exc}); "
                "re-import it to replace it"
            ) from None

    def summary(self) -> StoreSummary:
        frame = self.sql(
            "SELECT dataset, tier, conversations, messages, avg_quality FROM ("
            "SELECT c.dataset, c.tier, count(*) AS conversations, "
            "sum(c.message_count)::BIGINT AS messages, "
            "round(avg(c.overall_quality), 3) AS avg_quality "
            "FROM conversations c GROUP BY ALL) ORDER BY dataset NULLS LAST, "
            "list_position(['basic','standard','professional','clinical','research'], tier) NULLS LAST"
        )
        dead = self.scalar("SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL")
        return StoreSummary(path=str(self.path), frame=frame, open_dead_letters=int(dead))

    # -- writes ------------------------------------------------------------
    def upsert(self, batch: pa.Table | pa.RecordBatch, *, source: str | None = None) -> UpsertResult:
        """Insert or replace a batch of conversations in one transaction.

        ``batch`` follows :data:`pe_toolkit.schema.CONVERSATION_SCHEMA`.
        Conversations are keyed by id; a conversation whose content hash is
        unchanged is not rewritten. When an id occurs several times in the
        batch, the last occurrence wins (as for a file with duplicates).
        """
        self._require_writable()
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        batch = batch.select(CONVERSATION_SCHEMA.names).cast(CONVERSATION_SCHEMA)
        if source is not None:
            batch = batch.set_column(
                batch.schema.get_field_index("source"), "source", pa.repeat(pa.scalar(source), batch.num_rows)
            )
        rows = batch.num_rows
        batch = _last_occurrence_wins(batch)
        _check_quality_values(batch)
        with self._write_lock:
            self._con.register("_incoming", access.for_threads(batch))
            try:
                with self.transaction() as con:
                    result = self._merge(con)
                    result.repeated = rows - batch.num_rows
                    return result
            finally:
                self._con.unregister("_incoming")
                self._con.execute("DROP TABLE IF EXISTS _hashes; DROP TABLE IF EXISTS _changed")

    def _merge(self, con: duckdb.DuckDBPyConnection) -> UpsertResult:
        # Reads go straight to the registered Arrow batches, which DuckDB
        # scans in parallel; only (id, hash) pairs are materialized.
        con.execute(f"CREATE OR REPLACE TEMP TABLE _hashes AS SELECT id, {CONTENT_HASH_SQL} AS content_hash FROM _incoming")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _changed AS "
            "SELECT h.id, h.content_hash, c.content_hash AS previous_hash, c.id IS NOT NULL AS existed FROM _hashes h "
            "LEFT JOIN conversations c ON c.id = h.id "
            "WHERE c.id IS NULL OR c.content_hash <> h.content_hash"
        )
        created = [r[0] for r in con.execute("SELECT id FROM _changed WHERE NOT existed ORDER BY id").fetchall()]
        # The hashes come with the join above: a load that repeats an id
        # needs the one before its first write (LoadedIds.settle), which
        # the cache no longer holds once that write is merged.
        hashes = con.sql("SELECT id, previous_hash, content_hash FROM _changed WHERE existed ORDER BY id").to_arrow_table()
        hashes = hashes.cast(UPDATED_HASHES)
        updated = hashes.column("id").to_pylist()
        if updated:
            _refuse_redacted_over_full(con)
        total = con.execute("SELECT count(*) FROM _hashes").fetchall()[0][0]
        if updated:
            con.execute("DELETE FROM messages WHERE conversation_id IN (SELECT id FROM _changed WHERE existed)")
            con.execute("DELETE FROM conversations WHERE id IN (SELECT id FROM _changed WHERE existed)")
        written = 0
        if created or updated:
            con.execute(
                f"INSERT INTO conversations ({_CONVERSATION_COLUMNS}) "
                "SELECT i.id, i.source, i.dataset, i.tier, i.created_at, len(i.messages), "
                + ", ".join(f"i.{m}" for m in QUALITY_METRICS)
                + ", i.metadata, ch.content_hash, now() FROM _incoming i JOIN _changed ch ON ch.id = i.id"
            )
            written = con.execute(
                "INSERT INTO messages (conversation_id, idx, role, content, timestamp) "
                "SELECT id, unnest(range(len(messages)))::INTEGER, "
                "unnest(messages).role, unnest(messages).content, unnest(messages).timestamp "
                "FROM _incoming SEMI JOIN _changed USING (id)"
            ).fetchall()[0][0]
        return UpsertResult(
            inserted=len(created),
            updated=len(updated),
            unchanged=total - len(created) - len(updated),
            messages_written=int(written),
            created_ids=created,
            updated_ids=updated,
            updated_hashes=hashes,
        )

    def add_dead_letters(self, rows: Sequence[tuple[str, str, str, str | None]]) -> None:
        """Record failed records ``(source, locator, reason, payload)``.

        A record that failed before (same source and locator) has its
        attempt count raised instead of a second row.
        """
        if not rows:
            return
        table = pa.table(
            {
                "source": [r[0] for r in rows],
                "locator": [r[1] for r in rows],
                "reason": [r[2] for r in rows],
                "payload": [r[3] for r in rows],
            }
        )
        with self._write_lock:
            self._con.register("_dead", table)
            try:
                with self.transaction() as con:
                    con.execute(
                        "UPDATE dead_letters d SET attempts = d.attempts + 1, last_seen = now(), "
                        "reason = n.reason, payload = n.payload, resolved_at = NULL "
                        "FROM _dead n WHERE d.source = n.source AND d.locator = n.locator"
                    )
                    con.execute(
                        "INSERT INTO dead_letters (source, locator, reason, payload, attempts, first_seen, last_seen) "
                        "SELECT source, locator, reason, payload, 1, now(), now() FROM _dead n "
                        "WHERE NOT EXISTS (SELECT 1 FROM dead_letters d "
                        "WHERE d.source = n.source AND d.locator = n.locator)"
                    )
            finally:
                self._con.unregister("_dead")

    def resolve_dead_letters(self, source: str, locators: Sequence[str]) -> None:
        """Mark dead letters as resolved (the record later imported fine)."""
        if not locators:
            return
        with self.transaction() as con:
            con.execute(
                "UPDATE dead_letters SET resolved_at = now() WHERE source = ? "
                "AND locator IN (SELECT unnest(?::VARCHAR[])) AND resolved_at IS NULL",
                [source, list(locators)],
            )

    def dead_letters(self, *, include_resolved: bool = False) -> pl.DataFrame:
        cond = "" if include_resolved else "WHERE resolved_at IS NULL"
        return self.sql(
            "SELECT source, locator, reason, attempts, first_seen, last_seen, resolved_at "
            f"FROM dead_letters {cond} ORDER BY source, locator"
        )

    # -- run bookkeeping (pe_toolkit.store.runs) --------------------------
    def start_run(self, kind: str, source: str | None = None, **values: Any) -> str:
        """Record a run as ``running``, with the process running it, so a
        killed one is found (:meth:`mark_interrupted_runs`); return its id.
        ``kind``: ``"import"`` or ``"sync"`` (``ingest_runs``, with
        ``source``) or ``"analysis"`` (``analysis_runs``); ``values``: the
        table's other columns (``analysis_version``, ``selected``...)."""
        if source is not None:
            values["source"] = source
        with self.transaction() as con:
            return runs.start(con, kind, run_owner(), values)

    def update_run(self, run_id: str, *, con: duckdb.DuckDBPyConnection | None = None, **values: Any) -> None:
        """Set a running run's counts; with ``con``, inside that open
        transaction (so they commit with the writes they count)."""
        if con is not None:
            runs.update(con, run_id, values)
            return
        with self.transaction() as own:
            runs.update(own, run_id, values)

    def finish_run(self, run_id: str, result: UpsertResult | None = None, *, invalid: int | None = None,
                   error: str | None = None, note: str | None = None, **values: Any) -> None:  # fmt: skip
        """Mark a run ``completed`` (``failed`` with ``error``), with its final
        counts: an import's ``result`` and ``invalid``, or ``values``;
        ``note``: a message kept on a run that completed all the same."""
        if result is not None:
            values.update(inserted=result.inserted, updated=result.updated, unchanged=result.unchanged, invalid=invalid or 0)
        elif invalid is not None:
            values["invalid"] = invalid
        with self.transaction() as con:
            runs.finish(con, run_id, values, error=error, note=note)

    def labels(self, key: str, **options: Any) -> pl.DataFrame:
        """A label an import carried in, as training rows for ``learn.fit``: see
        :func:`pe_toolkit.learn.labels.from_metadata` (same options)."""
        from ..learn.labels import from_metadata

        return from_metadata(self, key, **options)


def _check_quality_values(batch: pa.Table) -> None:
    """Refuse quality values outside 0-1 (NaN and infinities included): the
    importers send such records to dead_letters first; this guards batches
    built by other code, since a NaN stored reaches JSON output as NaN,
    which is not JSON."""
    for metric in QUALITY_METRICS:
        values = batch.column(metric)
        in_range = pc.and_(pc.greater_equal(values, 0), pc.less_equal(values, 1))  # NaN compares false
        bad = pc.fill_null(pc.invert(in_range), False)
        if pc.any(bad).as_py():
            first = pc.index(bad, True).as_py()
            raise InputError(
                f"conversation {batch.column('id')[first].as_py()}: {metric} must be a number "
                f"between 0 and 1, got {values[first].as_py()}"
            )


# Set in the metadata of each conversation of a redacted export (see
# pe_toolkit.exports.redact.REDACTED_KEY; the store does not import the exports).
_REDACTED_PATH = "$.pe_redacted"


def _refuse_redacted_over_full(con: duckdb.DuckDBPyConnection) -> None:
    """A redacted export's copy of a conversation stored here in full would
    replace its text with the redacted one (a researcher importing a shared
    file back into the cache it came from): refused, the batch rolled back.
    A redacted copy over a redacted copy, or a new id, is imported."""
    flag = "coalesce(try_cast(json_extract({}.metadata, '" + _REDACTED_PATH + "') AS BOOLEAN), false)"
    clash = con.execute(
        "SELECT ch.id FROM _changed ch JOIN _incoming i ON i.id = ch.id JOIN conversations c ON c.id = ch.id "
        f"WHERE ch.existed AND {flag.format('i')} AND NOT {flag.format('c')} ORDER BY ch.id"
    ).fetchall()
    if clash:
        raise InputError(
            f"{len(clash):,} conversation(s) are redacted copies (metadata.pe_redacted, written by export --redact) of "
            f"conversations stored in full in this cache (first: {clash[0][0]!r}); importing them would replace the "
            "stored text with the redacted one: import the file into another cache"
        )


def _last_occurrence_wins(batch: pa.Table) -> pa.Table:
    """Drop earlier duplicates of an id, keeping the batch order."""
    ids = batch.column("id")
    if pc.count_distinct(ids).as_py() == batch.num_rows:
        return batch
    frame = pl.from_arrow(batch).with_row_index("_ord")  # type: ignore[union-attr]  # typed DataFrame | Series; a Table always gives a DataFrame
    keep = frame.unique(subset="id", keep="last", maintain_order=True)["_ord"]
    return batch.take(pa.array(keep.to_numpy()))


# The Store API a released store (hold=False) runs inside a lease: each call
# opens the file if needed and lets go after (pe_toolkit.store.lease).
for _name in ("sql", "read", "arrow", "scalar", "conversations", "count", "messages", "scores", "conversation",
              "summary", "upsert", "add_dead_letters", "resolve_dead_letters", "dead_letters", "start_run",
              "update_run", "finish_run", "labels", "mark_interrupted_runs"):  # fmt: skip
    setattr(Store, _name, lease.leased(getattr(Store, _name)))
for _name in ("transaction", "bulk_writes"):
    setattr(Store, _name, lease.leased_context(getattr(Store, _name)))
Store.schema_version = property(lease.leased(Store.__dict__["schema_version"].fget))  # type: ignore[method-assign,assignment]  # a property re-made around its getter


def open_store(
    path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    hold: bool = True,
    lock_wait: float | None = None,
) -> Store:
    """Open the cache (``PE_CACHE`` / config / ``data/pe_cache.duckdb``),
    waiting up to ``lock_wait`` seconds (default $PE_LOCK_WAIT, else 120; said on stderr) while another
    process holds it. ``hold=False``: hold the file only per unit of work,
    so several notebooks, scripts and the CLI can use it at once (see
    :mod:`pe_toolkit.store.lease`)."""
    return Store(path, read_only=read_only, hold=hold, lock_wait=lease.lock_wait() if lock_wait is None else lock_wait)

"""Stores that hold the cache file only for a unit of work (``hold=False``).

DuckDB lets one process write a file, and no other process open it
meanwhile, not even to read; read-only opens of several processes can
share it. A notebook kernel that kept its store open for the whole session
kept every other notebook, script and CLI command out of the cache. So the
stores handed to notebooks do not hold the file:

- every query and write of the Store API (``sql``, ``read``, ``scores``,
  ``transaction``, ``upsert``, ...) runs inside a *lease*: the file is
  opened if it is not, the work runs, and once the outermost lease of the
  store ends the file is closed again (``linger`` seconds later, so a
  burst of calls, a widget redrawing, opens it once);
- ``with store.session():`` makes one lease of several calls (and is the
  way to use ``store.connection`` or ``store.cursor()`` on such a store);
- opening waits while another process holds the file, up to ``lock_wait``
  seconds, saying so once on stderr, then raises
  :class:`~pe_toolkit.errors.StoreLockedError`;
- ``store.connection`` / ``store.cursor()`` outside a session reopen the
  file and keep it (the caller holds a connection object; closing it under
  the caller would break it) until :meth:`release` or ``close``.

Opening a small cache costs a few milliseconds (figures in
benchmarks/RESULTS.md), which is nothing next to a person clicking a
widget. Temporary tables and views live only as long as a lease.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..errors import ConfigError, StoreError, StoreLockedError

# Seconds to wait for another process to let go of the file (released
# stores, open_store, the CLI); $PE_LOCK_WAIT overrides it (see lock_wait()).
LOCK_WAIT = 120.0


def lock_wait() -> float:
    """``$PE_LOCK_WAIT`` or :data:`LOCK_WAIT`, read when a store opens (not at
    import: a bad value must not break ``import pe_toolkit``)."""
    raw = os.environ.get("PE_LOCK_WAIT", "").strip()
    if not raw:
        return LOCK_WAIT
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"PE_LOCK_WAIT={raw!r} is not a number of seconds (e.g. 120)") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"PE_LOCK_WAIT={raw!r} must be a finite number of seconds, 0 or more")
    return seconds
# Seconds a released store keeps the file after its last lease. Reopening
# costs a few tens of milliseconds, and a writer elsewhere waits this long
# at most (plus the retry step).
LINGER = 0.5
_RETRY_STEP = 0.1

F = TypeVar("F", bound=Callable[..., Any])


class Leased(Protocol):
    """What a lease uses of a store (:class:`pe_toolkit.store.core.Store`):
    a protocol, so this module sits below ``core`` with no import of it."""

    path: Path
    _lease: LeaseState
    _con: Any

    def _reattach(self) -> None: ...
    def _close_file(self) -> None: ...
    def _secure_files(self) -> None: ...


S = TypeVar("S", bound=Leased)


class LeaseState:
    """The bookkeeping of one store's leases (held by the store)."""

    def __init__(self, hold: bool, lock_wait: float, linger: float = LINGER) -> None:
        self.hold = hold
        self.lock_wait = lock_wait
        self.linger = linger
        self.timer: threading.Timer | None = None
        self.ended = 0.0  # monotonic time the last lease ended
        self.depth = 0  # leases open, all threads
        self.pinned = False  # a connection object was handed out outside a lease
        self.closed = False  # close() was called: no reopening
        self.lock = threading.RLock()
        self.opens = 0  # how many times the file was (re)opened by a lease


def _announce(store: Leased, exc: StoreLockedError, wait: float) -> None:
    who = f"process {exc.pid}" if exc.pid else "another process"
    if exc.holder:
        who += f" ({' '.join(exc.holder.split())[:80]})"  # a `python -c` command line holds newlines
    print(f"waiting for {store.path}: {who} is using it (up to {wait:.0f} s)", file=sys.stderr, flush=True)


# A process waiting for the file leaves a marker beside it, named with its
# pid and thread, so that a holder that would otherwise keep the file under
# steady use (the mirror serving requests) can let go of it for the waiter.
# The waiter touches it at each retry: a marker not touched for
# MARKER_FRESH seconds (a killed waiter's, a pid since reused) is ignored.
_WAITING = ".waiting-"
MARKER_FRESH = 10.0


def _marker(path: Path) -> Path:
    return path.with_name(f".{path.name}{_WAITING}{os.getpid()}-{threading.get_ident()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: it exists
    return True


def others_waiting(path: Path) -> bool:
    """Whether another live process is waiting to open ``path`` now: a
    marker of another pid, touched in the last ``MARKER_FRESH`` seconds."""
    now = time.time()
    for marker in path.parent.glob(f".{glob.escape(path.name)}{_WAITING}*"):
        pid = marker.name[len(f".{path.name}{_WAITING}") :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            fresh = now - marker.stat().st_mtime < MARKER_FRESH
        except OSError:
            continue  # gone meanwhile
        if fresh and _alive(int(pid)):
            return True
    return False


def wait_for_file(store: Leased, open_file: Callable[[], None]) -> None:
    """``open_file()``, retried while another process holds the file, up to
    the store's ``lock_wait`` seconds (said once on stderr; a marker beside
    the file says so to the holder meanwhile, see :func:`others_waiting`)."""
    deadline = time.monotonic() + store._lease.lock_wait
    announced = False
    marker = _marker(Path(store.path))
    try:
        while True:
            try:
                open_file()
            except StoreLockedError as exc:
                if time.monotonic() >= deadline:
                    raise
                if not announced:
                    _announce(store, exc, store._lease.lock_wait)
                    announced = True
                with contextlib.suppress(OSError):  # a read-only folder: wait without it
                    os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
                    os.utime(marker)  # still waiting (see MARKER_FRESH)
                time.sleep(_RETRY_STEP)
                continue
            if announced:
                print(f"{store.path} is free again, going on", file=sys.stderr, flush=True)
            return
    finally:
        if announced:
            with contextlib.suppress(OSError):
                marker.unlink()


def reopen(store: Leased) -> None:
    """Connect a released store, waiting while another process holds the file."""
    state = store._lease
    if state.closed:
        raise StoreError(f"{store.path}: this store is closed")

    wait_for_file(store, store._reattach)
    state.opens += 1


def let_go(store: Leased) -> None:
    """Close the file of a released store (it reopens on the next use)."""
    state = store._lease
    if state.timer is not None:
        state.timer.cancel()
        state.timer = None
    store._close_file()
    state.pinned = False
    store._secure_files()


@contextmanager
def session(store: S) -> Iterator[S]:
    """Hold the file for the calls inside (re-entrant, any thread)."""
    state = store._lease
    if state.hold:
        if store._con is None:
            raise StoreError(f"{store.path}: this store is closed")
        yield store
        return
    with state.lock:
        if store._con is None:
            reopen(store)
        state.depth += 1
    try:
        yield store
    finally:
        with state.lock:
            state.depth -= 1
            if state.depth == 0 and not state.pinned:
                _end(store)


def _end(store: Leased) -> None:
    """The last lease ended: let go now, or after ``linger`` seconds unless
    another lease starts meanwhile."""
    state = store._lease
    if state.linger <= 0:
        let_go(store)
        return
    state.ended = time.monotonic()
    if state.timer is None:
        state.timer = threading.Timer(state.linger, _linger_over, args=(store, state))
        state.timer.daemon = True
        state.timer.start()


def _linger_over(store: Leased, state: LeaseState) -> None:
    with state.lock:
        state.timer = None
        if state.depth or state.pinned or state.closed or store._con is None:
            return
        left = state.linger - (time.monotonic() - state.ended)
        if left > 0:  # used again meanwhile: wait out the rest
            state.timer = threading.Timer(left, _linger_over, args=(store, state))
            state.timer.daemon = True
            state.timer.start()
            return
        let_go(store)


def pin(store: Leased) -> None:
    """``connection``/``cursor()`` of a released store: open it and keep it
    open until ``release()`` when no lease is running (see module doc)."""
    state = store._lease
    if state.hold:
        return
    with state.lock:
        if store._con is None:
            reopen(store)
        if state.depth == 0:
            state.pinned = True


def release(store: Leased) -> bool:
    """Let go of the file now if no lease is running; True if it was open."""
    state = store._lease
    with state.lock:
        if state.depth:
            return False
        if store._con is None:
            state.pinned = False
            return False
        let_go(store)  # clears the pin too
        return True


def leased(method: F) -> F:
    """A Store method that runs inside a lease when the store does not hold its file."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._lease.hold:
            return method(self, *args, **kwargs)
        with session(self):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature, mypy cannot see it


def leased_context(method: F) -> F:
    """The same for a Store method that is a context manager (``transaction``)."""

    @functools.wraps(method)
    @contextmanager
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        if self._lease.hold:
            with method(self, *args, **kwargs) as value:
                yield value
            return
        with session(self), method(self, *args, **kwargs) as value:
            yield value

    return wrapper  # type: ignore[return-value]  # as above

"""Waits that Ctrl-C can end.

polars installs its own SIGINT handler with ``SA_RESTART``: under it the
kernel resumes an untimed lock wait after Python's handler has run, so a
main thread blocked in ``queue.get()`` slept through Ctrl-C until the next
item came (after fetches sleeping out a 30 s Retry-After, 30 s later). A
timed wait is not resumed: waiting in short timed steps lets the
KeyboardInterrupt through at once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T", covariant=True)
R = TypeVar("R")

STEP = 0.1  # seconds between checks for a pending signal


class _Gettable(Protocol[T]):
    def get(self, block: bool = ..., timeout: float | None = ...) -> T: ...


def get(q: _Gettable[T], timeout: float | None = None) -> T:
    """``q.get(timeout=timeout)``, in timed steps (a ``queue.Queue`` or
    ``SimpleQueue``): raises ``queue.Empty`` once ``timeout`` seconds have
    passed with nothing (never, without one)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = STEP if deadline is None else min(STEP, max(0.0, deadline - time.monotonic()))
        try:
            return q.get(timeout=step)
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            continue


# The one thread call() runs work on: a thread per call cost 0.8 ms a query
# (measured on a busy two-core machine), a standing one 0.17 ms.
_jobs: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[tuple[bool, Any]]]] = queue.SimpleQueue()
_worker: threading.Thread | None = None
_start = threading.Lock()


def _serve() -> None:
    while True:
        work, done = _jobs.get()
        try:
            done.put((True, work()))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
            done.put((False, exc))
        del work, done  # hold no result or frame until the next job


def call(work: Callable[[], R], cancel: Callable[[], object]) -> R:
    """``work()`` on a worker thread while this thread waits in timed steps,
    so Ctrl-C reaches it even while the work sits in C code that never
    looks for signals. On KeyboardInterrupt: ``cancel()`` (which must make
    the work end soon), wait for the work to end, raise the
    KeyboardInterrupt. Calls take turns on one standing worker (restarted
    after a fork, which leaves it behind)."""
    global _worker
    with _start:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_serve, name="pe-toolkit-worker", daemon=True)
            _worker.start()
    done: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    _jobs.put((work, done))
    try:
        ok, value = get(done)
    except KeyboardInterrupt:
        _cancel_until_done(done, cancel)
        raise
    if not ok:
        raise value
    return value


def _cancel_until_done(done: queue.SimpleQueue[tuple[bool, Any]], cancel: Callable[[], object]) -> None:
    """Cancel until the work ends, so the worker is free for the next call.
    Once is not enough: an interrupt that lands while DuckDB binds a query
    is cleared when the work starts the query's execution (a 22 s wait
    after Ctrl-C), so it is repeated every step. A second Ctrl-C meanwhile
    does not abandon the work, which still holds the connection."""
    while True:
        try:
            cancel()
            done.get(timeout=STEP)
            return
        except queue.Empty:
            continue
        except KeyboardInterrupt:
            continue

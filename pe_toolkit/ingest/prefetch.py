"""Run a generator a few items ahead in a background thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, Final, TypeVar, overload

from .. import interruptible

T = TypeVar("T")


class Idle:
    """What :func:`prefetch` yields, given ``idle``, when nothing came for that long."""

    def __repr__(self) -> str:
        return "IDLE"


IDLE: Final = Idle()


@overload
def prefetch(items: Iterator[T], depth: int = 2, *, stop: threading.Event | None = None, idle: None = None) -> Generator[T, None, None]: ...
@overload
def prefetch(items: Iterator[T], depth: int = 2, *, stop: threading.Event | None = None, idle: float) -> Generator[T | Idle, None, None]: ...
def prefetch(items: Iterator[T], depth: int = 2, *, stop: threading.Event | None = None, idle: float | None = None) -> Generator[Any, None, None]:
    """Run a generator in a background thread, ``depth`` items ahead.

    Parsing the next chunk (its own DuckDB connection) overlaps with writing
    the current one; DuckDB releases the GIL while it works. Errors raised
    by the generator re-raise here, in order.

    ``stop`` is set when this generator ends or is closed (Ctrl-C in the
    consumer). Closing waits for the background thread, which notices
    only between items: a generator that can block for long (fetches
    sleeping out a Retry-After) should be given the same event and end
    its waits when it is set.

    ``idle`` (seconds): yield :data:`IDLE` whenever nothing came for that
    long, so that a consumer with a deadline of its own (writing a partial
    batch after a while) meets it while the generator is blocked.
    """
    q: queue.Queue[tuple[BaseException | None, Any]] = queue.Queue(maxsize=depth)
    stop = stop if stop is not None else threading.Event()
    done = object()

    def worker() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((None, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put((exc, None))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()
        q.put((None, done))

    thread = threading.Thread(target=worker, name="pe-import-parse", daemon=True)
    thread.start()
    try:
        while True:
            try:
                exc, item = interruptible.get(q, idle)  # Ctrl-C ends the wait (see pe_toolkit.interruptible)
            except queue.Empty:
                yield IDLE
                continue
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)

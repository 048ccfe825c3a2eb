"""Score new conversations right after they land.

:func:`auto_analyze` subscribes to ``conversation.created`` /
``conversation.updated`` and runs the incremental analysis
(``pe_toolkit.analysis.analyze(store, incremental=True)``, which scores
exactly the conversations that are new or changed) in batches: once at
least ``min_batch`` conversations have arrived, and for the remainder when
the sync or import that wrote them ends (``sync.completed``,
``sync.failed``, ``import.completed``). One analysis per batch of writes,
never one per conversation; and one at the first completed sync or import
even without writes, for what an interrupted earlier run stored and left
unscored. An interrupted run (Ctrl-C, SIGTERM) starts no analysis.

    >>> stop = auto_analyze(store)
    >>> pe.sync(store)            # conversations are scored as batches land
    >>> stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..events import Event, EventBus, bus as default_bus
from ..store import Store

log = logging.getLogger(__name__)

WRITE_TOPICS = ("conversation.created", "conversation.updated")
FLUSH_TOPICS = ("sync.completed", "sync.failed", "import.completed")
# The ends after which what earlier runs left unscored is caught up on: a
# failed sync's end runs in its exception path, so only what it wrote is scored.
CATCH_UP_TOPICS = ("sync.completed", "import.completed")


class _Batcher:
    def __init__(self, store: Store, events: EventBus, min_batch: int) -> None:
        self.store, self.events, self.min_batch = store, events, min_batch
        self.waiting = 0
        self.runs = 0
        self.attempted = False
        self._lock = threading.Lock()
        self._running = False
        # The last analysis that failed. The event bus isolates handlers (a
        # raise here would be logged as a traceback and the sync would go on
        # to exit 0 with nothing scored): the caller reads it instead.
        self.error: BaseException | None = None

    def on_write(self, event: Event) -> None:
        with self._lock:
            self.waiting += len(event.payload.get("ids") or ())
            due = self.waiting >= self.min_batch
        if due:
            self.run()

    def on_flush(self, event: Event) -> None:
        if event.payload.get("error") == "interrupted":
            return  # Ctrl-C or SIGTERM: stop now; the next run scores what was written
        # The first completed sync or import runs it even when nothing was
        # written here: a sync interrupted after its writes left them
        # unscored, and its rerun, fetching nothing new, exited 0 with
        # nothing scored. The analysis is incremental: it scores what is
        # new, changed or outdated (after an analyzer's upgrade, everything).
        if self.waiting or (not self.attempted and event.topic in CATCH_UP_TOPICS):
            self.run()

    def run(self) -> None:
        from . import analyze  # deferred: subscribing must not load every analyzer

        with self._lock:
            if self._running:  # analysis writes scores; never re-enter from its own events
                return
            self._running, self.waiting, self.attempted = True, 0, True
        try:
            analyze(self.store, incremental=True, progress=False, events=self.events)
            self.runs += 1
        except Exception as exc:  # noqa: BLE001 - any failure is kept and reported by the caller
            self.error = exc
            log.warning("the analysis after the sync's writes failed: %s", exc)
        finally:
            with self._lock:
                self._running = False


def auto_analyze(store: Store, *, bus: EventBus | None = None, min_batch: int = 5000) -> Callable[[], None]:
    """Subscribe incremental analysis to ``bus`` (default: the process bus);
    returns a function that unsubscribes. The analysis runs in the thread
    that publishes (the sync's), so its writes share the store's connection.
    A failed analysis is kept in ``unsubscribe.batcher.error`` (the sync goes
    on; its caller says so)."""
    events = bus or default_bus
    batcher = _Batcher(store, events, max(1, int(min_batch)))
    stops = [events.subscribe(t, batcher.on_write) for t in WRITE_TOPICS]
    stops += [events.subscribe(t, batcher.on_flush) for t in FLUSH_TOPICS]

    def unsubscribe() -> None:
        for stop in stops:
            stop()

    unsubscribe.batcher = batcher  # type: ignore[attr-defined]  # a function attribute: callers keep one callable, tests reach the batcher
    return unsubscribe

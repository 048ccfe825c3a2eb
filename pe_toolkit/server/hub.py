"""Fan-out of live events to SSE streams and WebSocket subscribers.

Publishers are threads (the store watcher, job workers); subscribers are
coroutines on the server's event loop. :meth:`EventHub.publish` is
thread-safe: it numbers the event, keeps it in a short history (so a
reconnecting SSE client can send ``Last-Event-ID`` and miss nothing that is
still there) and hands it to each matching subscriber's queue on the loop.
A subscriber that falls more than ``queue_size`` events behind loses the
oldest ones and is told so with a ``stream.overflow`` event, rather than
letting one slow notebook hold memory for everyone.

Topics: ``conversation.created``, ``conversation.updated``,
``conversation.deleted`` (``{ids, count, truncated}``), ``job.progress``,
``job.completed``, ``job.failed``, ``job.cancelled``
(``{job_id, processing_type, dataset_name, status, progress, ...}``),
``export.ready``, ``export.failed``. Patterns: exact, ``prefix.*`` or
``*``, as in :mod:`pe_toolkit.events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .envelope import now_iso

MAX_IDS_PER_EVENT = 1000


@dataclass(frozen=True)
class LiveEvent:
    id: int
    topic: str
    data: dict[str, Any]
    timestamp: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.topic, "data": self.data, "timestamp": self.timestamp}


def matches(patterns: Iterable[str], topic: str) -> bool:
    return any(pattern in ("*", topic) or (pattern.endswith(".*") and topic.startswith(pattern[:-1])) for pattern in patterns)


def id_payload(ids: list[str], **extra: Any) -> dict[str, Any]:
    """An event payload naming changed conversations, capped so one big import
    does not become a multi-megabyte event."""
    return {
        "ids": ids[:MAX_IDS_PER_EVENT],
        "count": len(ids),
        "truncated": len(ids) > MAX_IDS_PER_EVENT,
        **extra,
    }


@dataclass(eq=False)
class Subscription:
    topics: tuple[str, ...]
    queue: asyncio.Queue[LiveEvent | None]
    dropped: int = 0
    closed: bool = False
    _hub: EventHub | None = field(default=None, repr=False)

    async def next(self, timeout: float | None = None) -> LiveEvent | None:
        """The next event; None when the hub closes. TimeoutError after
        ``timeout`` seconds without one (callers send keep-alives)."""
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            return LiveEvent(0, "stream.overflow", {"dropped": dropped}, now_iso())
        if timeout is None:
            return await self.queue.get()
        return await asyncio.wait_for(self.queue.get(), timeout)

    def close(self) -> None:
        if self._hub is not None:
            self._hub._remove(self)
        self.closed = True


class EventHub:
    def __init__(self, history: int = 1000, queue_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._history: deque[LiveEvent] = deque(maxlen=history)
        self._subscribers: list[Subscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue_size = queue_size
        self.published = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, topic: str, data: dict[str, Any]) -> LiveEvent:
        with self._lock:
            event = LiveEvent(next(self._ids), topic, data, now_iso())
            self._history.append(event)
            targets = [s for s in self._subscribers if matches(s.topics, topic)]
            self.published += 1
        loop = self._loop
        if targets and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(self._deliver, targets, event)
        return event

    @staticmethod
    def _deliver(targets: list[Subscription], event: LiveEvent) -> None:
        for sub in targets:
            if sub.closed:
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(event)

    def subscribe(self, topics: Iterable[str] = ("*",), *, after: int | None = None) -> Subscription:
        """Subscribe from the event loop; with ``after`` (a Last-Event-ID),
        events still in the history are queued first."""
        sub = Subscription(tuple(topics) or ("*",), asyncio.Queue(self._queue_size), _hub=self)
        with self._lock:
            if after is not None:
                for event in self._history:
                    if event.id > after and matches(sub.topics, event.topic):
                        self._deliver([sub], event)
            self._subscribers.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (their ``next`` returns None)."""
        with self._lock:
            subs, self._subscribers = self._subscribers, []
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def end() -> None:
            for sub in subs:
                sub.closed = True
                if sub.queue.full():
                    sub.queue.get_nowait()
                sub.queue.put_nowait(None)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(end)

"""In-process publish/subscribe for sync, import and analysis events.

Topics used by pe_toolkit: ``conversation.created``, ``conversation.updated``
(payload ``{"ids": [...], "source": str}``), ``sync.progress``,
``sync.completed``, ``sync.failed``, ``import.completed``,
``analysis.completed``. Subscribe to one topic, to a prefix with ``*``
(``"sync.*"``) or to everything with ``"*"``.

Written here rather than taken from blinker: we need wildcard topics and
strong references by default (a lambda subscribed in a notebook cell must
not vanish at the next garbage collection), and the whole thing is a dict
of lists behind a lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    topic: str
    payload: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, list[Handler]] = {}

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(event)`` for matching events; returns an unsubscribe function."""
        with self._lock:
            self._handlers.setdefault(topic, []).append(handler)

        def unsubscribe() -> None:
            with self._lock:
                handlers = self._handlers.get(topic, [])
                if handler in handlers:
                    handlers.remove(handler)

        return unsubscribe

    def _matching(self, topic: str) -> list[Handler]:
        with self._lock:
            found: list[Handler] = []
            for pattern, handlers in self._handlers.items():
                if pattern == topic or pattern == "*" or (
                    pattern.endswith(".*") and topic.startswith(pattern[:-1])
                ):
                    found.extend(handlers)
            return found

    def publish(self, topic: str, **payload: Any) -> Event:
        """Deliver synchronously, in subscription order. A failing handler is
        logged and does not stop the publisher (a broken chart must not
        abort a sync)."""
        event = Event(topic, payload)
        for handler in self._matching(topic):
            try:
                handler(event)
            except Exception:  # isolation is the point
                log.exception("event handler for %s failed", topic)
        return event

    def clear(self) -> None:
        with self._lock:
            self._handlers.clear()


bus = EventBus()
"""The process-wide default bus."""

"""SseSource: a LiveMonitor's events from the mirror's update stream.

The widgets never touch the network: this adapter takes a
:class:`pe_toolkit.Client` (which holds the URL, the key and the
resilience) and reads :meth:`~pe_toolkit.client.Client.stream_updates` on a
background thread, handing each event to the monitor as the in-process bus
would (:class:`~pe_toolkit.events.Event`, stamped with the server's time).

>>> api = pe.Client(base_url="http://127.0.0.1:8000/v1", api_key="lab-key-1")
>>> monitor = LiveMonitor(SseSource(api, topics=["conversation.*", "job.*"]))
>>> monitor.stop()          # closes the stream and ends the thread
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..errors import ApiError
from ..events import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


class _Streams(Protocol):
    def stream_updates(self, topics: Any = None, *, last_event_id: str | None = None) -> Any: ...


class SseSource:
    """An :class:`~pe_toolkit.widgets.EventSource` over a client's update
    stream. ``topics``: patterns as on the stream (``conversation.*``,
    ``job.*``, ``*``). The stream's own ``stream.open`` is not passed on
    (it only says the subscription is in place: :meth:`wait_connected`).

    After :meth:`stop`, :meth:`start` resumes after the last event seen
    (``Last-Event-ID``), so events published in between still arrive if the
    server keeps them. When the stream gives up (see
    :mod:`pe_toolkit.client.stream`) or the key is refused, the thread ends
    and :attr:`error` holds the error.
    """

    def __init__(self, client: _Streams, topics: Sequence[str] = ("*",), *, skip: Sequence[str] = ("stream.open",)) -> None:
        self.client = client
        self.topics = tuple(topics) or ("*",)
        self.skip = frozenset(skip)
        self.events = 0
        self.error: ApiError | None = None
        self.last_event_id: str | None = None
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SseSource {state} topics={list(self.topics)} events={self.events}>"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, handler: Handler) -> None:
        self.stop()
        self.error = None
        self._connected.clear()
        self._stream = self.client.stream_updates(list(self.topics), last_event_id=self.last_event_id)
        self._thread = threading.Thread(target=self._follow, args=(self._stream, handler), name="pe-sse-source", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Close the stream and wait (up to ``timeout`` s) for the thread."""
        if self._stream is not None:
            self._stream.close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the update stream's thread did not end within %.0f s", timeout)
        self._stream, self._thread = None, None
        self._connected.clear()

    def wait_connected(self, timeout: float = 30.0) -> bool:
        """Block until the server confirmed the subscription (True), the
        stream failed or ``timeout`` passed (False)."""
        return self._connected.wait(timeout) and self.error is None and self.running

    def _follow(self, stream: Any, handler: Handler) -> None:
        try:
            for item in stream:
                if item.id:
                    self.last_event_id = item.id
                if item.topic == "stream.open":
                    self._connected.set()
                if item.topic in self.skip:
                    continue
                self.events += 1
                try:
                    handler(item.to_event())
                except Exception:  # as on the bus: a broken chart must not end the stream
                    log.exception("update stream handler failed for %s", item.topic)
        except ApiError as exc:
            self.error = exc
            log.warning("the update stream stopped: %s", exc)
        finally:
            self._connected.set()  # wake a waiter: connected or failed, it need not wait longer

"""The mirror's update stream (``GET /v1/stream/updates``) for the blocking client.

:meth:`Client.stream_updates` returns an :class:`UpdateStream`: iterate it
for :class:`StreamEvent` objects; :meth:`UpdateStream.close` (from any
thread) ends the iteration, even while it waits for the next event.

Each connection goes through the client's request core like every other
request: endpoint choice and failover, the circuit breaker, rate pacing,
the ``Authorization`` header and the mapping of error answers to
:mod:`pe_toolkit.errors` (a 401 raises :class:`AuthenticationError` at
once and is never retried).

Reconnecting, as a browser's ``EventSource`` does: when the stream ends or
drops after it was open, the client waits the server's ``retry:`` time
(milliseconds; the mirror sends 3000) and reconnects with
``Last-Event-ID`` set to the last event id it saw, so the server replays
what was missed (the mirror keeps its last 1,000 events). When connecting
fails (no answer, 429, 502-504, a body that is not an event stream) it
waits ``retry`` x 2^(n-1) (n = consecutive failures; the client's
``RetryPolicy.backoff_base`` until the server has sent a ``retry:``),
capped at ``max_backoff``, jittered between half and all of it, and never
less than a ``Retry-After``; after ``RetryPolicy.max_attempts``
consecutive failed connections the last error is raised. Any event
received resets the count.

The reader waits at most the client's timeout for a byte; the mirror sends
a keep-alive comment every 15 s, so silence longer than that means the
connection is dead, and it is reconnected. Opening a connection (up to the
stream's headers, or the whole of an error answer, capped at
``max_response_bytes``) must finish within that time too; the open
stream itself has no total deadline, it is meant to last.

Parsing is httpx-sse's (the ``text/event-stream`` line and field rules);
what is ours is the reconnection above, and skipping blocks without data,
which httpx-sse passes on (e.g. after a keep-alive comment once an id was
seen) but the SSE specification does not dispatch.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from ..errors import ApiError, CircuitOpenError, ConfigError, MalformedResponseError, TransportError
from ..events import Event
from . import deadline as deadlines
from .core import Call, CallState, RequestCore
from .retry import RetryPolicy, is_retryable

log = logging.getLogger("pe_toolkit.client")

OPEN_TOPIC = "stream.open"  # the mirror's first event: the subscription is in place


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One server-sent event. ``topic`` is its ``event:`` field, ``id`` its
    ``id:`` (None when the server gave none), ``data`` its ``data:`` parsed
    as JSON (the text as it came if it is not JSON). The mirror's data is
    ``{id, type, data, timestamp}``."""

    topic: str
    data: Any
    id: str | None = None

    @property
    def payload(self) -> dict[str, Any]:
        """What the event is about: the mirror's inner ``data`` object."""
        data = self.data
        if isinstance(data, dict):
            inner = data.get("data")
            if "type" in data and isinstance(inner, dict):
                return inner
            return data
        return {"data": data}

    @property
    def timestamp(self) -> datetime | None:
        """When the server published it (None if it did not say)."""
        raw = self.data.get("timestamp") if isinstance(self.data, dict) else None
        if not isinstance(raw, str):
            return None
        try:
            at = datetime.fromisoformat(raw)
        except ValueError:
            return None
        return at if at.tzinfo else at.replace(tzinfo=UTC)

    def to_event(self) -> Event:
        """As an in-process :class:`pe_toolkit.events.Event` (what the bus
        delivers), stamped with the server's time when it gave one."""
        at = self.timestamp
        return Event(self.topic, dict(self.payload), at) if at else Event(self.topic, dict(self.payload))


def _decode(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _reconnectable(exc: ApiError) -> bool:
    # An open circuit is a server that failed repeatedly: wait and try
    # again like any other failed connection (bounded by max_attempts).
    return isinstance(exc, CircuitOpenError) or is_retryable(exc, "idempotent")


def _interrupt(response: httpx.Response) -> None:
    """Wake a thread blocked reading ``response``: shutting the socket down
    ends its read at once (closing the file descriptor would not, on Linux).
    Transports without a socket (in-process ones) end at their next event."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


class UpdateStream:
    """Events of ``GET /v1/stream/updates``, reconnecting as the module
    docstring says. Iterate it once; :meth:`close` from any thread.

    ``last_event_id`` (resume after this event), ``retry`` (seconds, the
    server's reconnection time once it sent one), ``reconnects`` and
    ``connected`` (a connection is open now) may be read while iterating.
    """

    def __init__(
        self,
        core: RequestCore,
        http: httpx.Client,
        call: Callable[[str | None], Call[Any]],
        *,
        reconnect: bool = True,
        last_event_id: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._core, self._http, self._call = core, http, call
        self.reconnect = reconnect
        self.policy = policy or core.retry
        self.last_event_id = last_event_id or None
        self.retry: float | None = None
        self.reconnects = 0
        self.connected = False
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None
        self._iterator: Iterator[StreamEvent] | None = None

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def __enter__(self) -> UpdateStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    def close(self) -> None:
        """End the iteration (thread-safe; calling it again is harmless)."""
        self._closing.set()
        with self._lock:
            response = self._response
        if response is not None:
            _interrupt(response)

    # -- the loop --------------------------------------------------------------
    def _run(self) -> Iterator[StreamEvent]:
        state = CallState()  # shared by the connections: failover skips the endpoint that just failed
        failures = 0
        while not self._closing.is_set():
            error: ApiError | None = None
            received = False
            try:
                for event in self._connection(state):
                    received = True
                    yield event
            except ApiError as exc:
                error = exc
            if self._closing.is_set():
                return
            if error is not None and not _reconnectable(error):
                raise error
            if not self.reconnect:
                if error is not None:
                    raise error
                return
            if received:
                failures = 0
            if error is None or received:
                delay = self.retry if self.retry is not None else self.policy.backoff_base
            else:
                failures += 1
                if failures >= self.policy.max_attempts:
                    raise error
                delay = self._backoff(failures, getattr(error, "retry_after", None))
            self.reconnects += 1
            log.info("update stream %s; reconnecting in %.1f s", error or "ended", delay)
            if self._closing.wait(delay):
                return

    def _backoff(self, failures: int, hint: float | None) -> float:
        base = self.retry if self.retry is not None else self.policy.backoff_base
        delay = min(self.policy.max_backoff, base * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        return max(delay, float(hint)) if hint else delay

    def _connection(self, state: CallState) -> Iterator[StreamEvent]:
        try:
            # Imported here so that `import pe_toolkit.client` works on an
            # environment installed before this dependency was added.
            from httpx_sse import EventSource
        except ImportError:
            raise ConfigError("the update stream needs httpx-sse: pip install 'httpx-sse>=0.4'") from None
        core = self._core
        attempt = core.plan(self._call(self.last_event_id), state)
        response: httpx.Response | None = None
        where = f"GET {attempt.request.url.raw_path.decode('ascii', 'replace')}"
        try:
            if attempt.delay and self._closing.wait(attempt.delay):
                return
            # Only the opening is bounded (never across a yield: see deadline.bounded).
            with deadlines.bounded(core.start(attempt, budget=False)):
                try:
                    response = self._http.send(attempt.request, stream=True)
                except httpx.HTTPError as exc:
                    raise core.transport_failed(attempt, exc) from None
            with self._lock:
                self._response = response
            if self._closing.is_set():
                return
            if response.status_code != 200:
                with deadlines.bounded(attempt.deadline_at):
                    try:
                        body = core.body(attempt, response)
                        for chunk in response.iter_bytes():
                            body.add(chunk)
                    except httpx.HTTPError as exc:
                        raise core.transport_failed(attempt, exc) from None
                core.complete(attempt, response, body.content)  # raises the mapped error
                raise core.stream_failed(attempt, MalformedResponseError(f"{where}: HTTP {response.status_code}, not an event stream"))
            kind = response.headers.get("content-type", "").partition(";")[0].strip()
            if kind != "text/event-stream":
                raise core.stream_failed(attempt, MalformedResponseError(f"{where}: expected text/event-stream, got {kind or 'no content type'}"))
            core.stream_succeeded(attempt, response)
            self.connected = True
            try:
                for sse in EventSource(response).iter_sse():
                    if sse.retry is not None and sse.retry >= 0:
                        self.retry = sse.retry / 1000.0
                    if sse.id:
                        self.last_event_id = sse.id
                    if sse.data == "":
                        continue
                    yield StreamEvent(sse.event, _decode(sse.data), sse.id or None)
            except httpx.HTTPError as exc:
                if self._closing.is_set():
                    return
                raise TransportError(core.scrub(f"{where}: the stream broke off: {type(exc).__name__}: {exc}")) from None
        finally:
            self.connected = False
            core.abandon(attempt)
            with self._lock:
                self._response = None
            if response is not None:
                response.close()

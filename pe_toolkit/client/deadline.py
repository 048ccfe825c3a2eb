"""A total deadline per request, enforced where the bytes are read.

httpx's timeouts bound each operation (a connect, one read, one write):
a server that sends one byte a second never lets a read time out, so a
``timeout=2`` request could wait for hours. The clients therefore give
each attempt an absolute deadline (:meth:`.core.RequestCore.start`) and
make every wait of that attempt end by it:

- the blocking client's default transport gets a network backend whose
  connects, reads and writes wait at most what is left of the deadline of
  the request being sent *in the current thread* (a ``ContextVar`` set
  around the send with :func:`bounded`; each thread has its own), and
  raise httpcore's timeout when nothing is left;
- the async client wraps the attempt in ``asyncio.timeout`` (cancelling
  the task ends any await, whatever the transport);
- both check the deadline between body chunks, which is what bounds a
  caller-supplied transport (``transport=``) in the blocking client.

Installing the backend reaches into ``httpx.HTTPTransport._pool``: httpx
offers no public way to pass httpcore a network backend. If a future httpx
moves it, :func:`http_transport` leaves the transport as it is and the
chunk checks still bound the body (tests/test_client_deadline.py fails
for the headers, which says so).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

_until: ContextVar[float | None] = ContextVar("pe_toolkit_request_deadline", default=None)


@contextlib.contextmanager
def bounded(until: float | None) -> Iterator[None]:
    """Every connect, read and write of the default transport in this block
    ends by ``until`` (``time.monotonic()``). Never wrap a ``yield`` in it:
    a generator shares its caller's context."""
    token = _until.set(until)
    try:
        yield
    finally:
        _until.reset(token)


def _bound(timeout: float | None, error: type[Exception]) -> float | None:
    until = _until.get()
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise error("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A socket stream whose every wait is cut to the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _bound(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend with :class:`_Stream` streams."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _bound(timeout, httpcore.ConnectTimeout), local_address, socket_options)
        return _Stream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _bound(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def http_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """The blocking client's default transport, its waits bounded by :func:`bounded`."""
    transport = httpx.HTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.ConnectionPool) and isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = DeadlineBackend(backend)
    return transport

"""A request ends by its deadline and never reads more than the size cap.

Against real loopback servers written for the purpose (a raw socket server:
the mirror cannot be made to misbehave this way): one trickles its answer a
byte at a time, fast enough that no single read ever times out; one sends
a body far larger than the client accepts. Both clients, sync and async.
Timings are asserted only against generous bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from pe_toolkit.client import AsyncClient, Client, RetryPolicy
from pe_toolkit.client.core import BreakerPolicy
from pe_toolkit.client.options import resolve_options
from pe_toolkit.errors import (
    CircuitOpenError,
    ConfigError,
    DeadlineExceededError,
    ResponseTooLargeError,
    TransportError,
)

KEY = "pe_test_key_4f9c2a7d1e"
BODY = b'{"success":true,"data":{"datasets":[],"total":0},"message":"ok","timestamp":"2026-01-01T00:00:00Z","request_id":"r"}'
TRICKLE_FOR = 30.0  # the server gives up on a connection after this long, so a failing test ends


class RawServer:
    """A loopback HTTP/1.1 server that answers every request with
    ``behaviour(conn)``; counts connections and the bytes it managed to send."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.sent = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                getattr(self, "_" + self.behaviour)(conn)
            except OSError:
                return  # the client hung up: what a bounded client does

    def _send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def _trickle_headers(self, conn: socket.socket) -> None:
        # A status line, then a header one byte every 0.3 s: each read gets
        # a byte well within any read timeout, the headers never end.
        self._send(conn, b"HTTP/1.1 200 OK\r\nX-Slow: ")
        end = time.monotonic() + TRICKLE_FOR
        while time.monotonic() < end and not self._stop.is_set():
            self._send(conn, b"a")
            time.sleep(0.3)

    def _trickle_body(self, conn: socket.socket) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        self._send(conn, head.encode())
        end = time.monotonic() + TRICKLE_FOR
        for byte in BODY:
            if time.monotonic() > end or self._stop.is_set():
                return
            self._send(conn, bytes([byte]))
            time.sleep(0.3)

    def _huge_declared(self, conn: socket.socket) -> None:
        self._huge(conn, f"Content-Length: {64 * 1024 * 1024}\r\n")

    def _huge_undeclared(self, conn: socket.socket) -> None:
        self._huge(conn, "Connection: close\r\n")  # the body ends when the connection does

    def _huge(self, conn: socket.socket, framing: str) -> None:
        self._send(conn, f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n".encode())
        self._send(conn, b'{"success":true,"data":"')
        chunk = b"x" * 65536
        while self.sent < 64 * 1024 * 1024 and not self._stop.is_set():
            self._send(conn, chunk)


@contextlib.contextmanager
def raw_server(behaviour: str) -> Iterator[RawServer]:
    with RawServer(behaviour) as server:
        yield server


def _options(**kwargs):
    kwargs.setdefault("retry", RetryPolicy(max_attempts=2, max_elapsed=60.0, backoff_base=0.01, max_backoff=0.05))
    kwargs.setdefault("breaker", BreakerPolicy(failure_threshold=2, recovery_timeout=60.0))
    kwargs.setdefault("timeout", 2.0)
    return kwargs


@pytest.mark.parametrize("behaviour", ["trickle_headers", "trickle_body"])
def test_sync_timeout_bounds_a_trickled_answer_and_trips_the_breaker(behaviour: str) -> None:
    with raw_server(behaviour) as server, Client(KEY, server.url, **_options()) as api:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as info:
            api.list_datasets()
        elapsed = time.monotonic() - started
        assert isinstance(info.value, TransportError)  # retried and counted like any transport failure
        assert "2 s" in str(info.value) and "deadline" in str(info.value)
        assert elapsed < 15, elapsed  # two attempts of 2 s each, with room to spare
        assert server.connections == 2
        # Two consecutive failures opened the circuit: the next call fails fast, offline.
        with pytest.raises(CircuitOpenError):
            api.list_datasets()
        assert server.connections == 2


@pytest.mark.parametrize("behaviour", ["trickle_headers", "trickle_body"])
def test_async_timeout_bounds_a_trickled_answer_and_trips_the_breaker(behaviour: str) -> None:
    async def main(url: str) -> float:
        async with AsyncClient(KEY, url, **_options()) as api:
            started = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                await api.list_datasets()
            elapsed = time.monotonic() - started
            with pytest.raises(CircuitOpenError):
                await api.list_datasets()
            return elapsed

    with raw_server(behaviour) as server:
        elapsed = asyncio.run(main(server.url))
        assert elapsed < 15, elapsed
        assert server.connections == 2


def test_the_retry_budget_bounds_the_whole_call_attempts_included() -> None:
    # Each attempt may take 5 s, but the call has 2 s in all.
    policy = RetryPolicy(max_attempts=10, max_elapsed=2.0, backoff_base=0.01, max_backoff=0.05)
    with raw_server("trickle_body") as server, Client(KEY, server.url, **_options(retry=policy, timeout=5.0, deadline=5.0)) as api:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            api.list_datasets()
        assert time.monotonic() - started < 4.5
        assert server.connections == 1


def test_an_explicit_deadline_is_independent_of_the_timeout() -> None:
    with raw_server("trickle_body") as server, Client(KEY, server.url, **_options(timeout=30.0, deadline=1.0)) as api:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="1 s"):
            api.list_datasets()
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("behaviour", ["huge_declared", "huge_undeclared"])
def test_sync_an_oversized_answer_is_refused_without_reading_it(behaviour: str) -> None:
    with raw_server(behaviour) as server, Client(KEY, server.url, **_options(timeout=10.0, max_response_bytes=1024 * 1024)) as api:
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLargeError) as info:
                api.list_datasets()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert "max_response_bytes" in str(info.value) and "1 MiB" in str(info.value)
        assert peak < 16 * 1024 * 1024, peak  # the 64 MiB body never sat in memory
        assert server.connections == 1  # not retried: the same request gets the same answer
        api.close()
        time.sleep(0.2)
        assert server.sent < 32 * 1024 * 1024  # the client hung up long before the end
        assert api.endpoints[0].breaker.state.value == "closed"


@pytest.mark.parametrize("behaviour", ["huge_declared", "huge_undeclared"])
def test_async_an_oversized_answer_is_refused_without_reading_it(behaviour: str) -> None:
    async def main(url: str) -> str:
        async with AsyncClient(KEY, url, **_options(timeout=10.0, max_response_bytes=1024 * 1024)) as api:
            with pytest.raises(ResponseTooLargeError) as info:
                await api.list_datasets()
            return str(info.value)

    with raw_server(behaviour) as server:
        message = asyncio.run(main(server.url))
        assert "max_response_bytes" in message
        assert server.connections == 1
        time.sleep(0.2)
        assert server.sent < 32 * 1024 * 1024


def test_deadline_and_size_cap_are_validated() -> None:
    opts = resolve_options(KEY, "http://127.0.0.1:9", timeout=3.0)
    assert opts.deadline == 3.0  # by default the timeout bounds the whole request
    assert opts.max_response_bytes == 64 * 1024 * 1024
    opts = resolve_options(KEY, "http://127.0.0.1:9", timeout=3.0, deadline=20.0, max_response_bytes=1000)
    assert (opts.deadline, opts.max_response_bytes) == (20.0, 1000)
    with pytest.raises(ConfigError, match="deadline"):
        resolve_options(KEY, "http://127.0.0.1:9", deadline=0)
    with pytest.raises(ConfigError, match="max_response_bytes"):
        resolve_options(KEY, "http://127.0.0.1:9", max_response_bytes=0)

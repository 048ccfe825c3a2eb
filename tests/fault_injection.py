"""Fault injection for tests: an ASGI middleware that makes a healthy server misbehave.

Wrap any ASGI app (the mirror, or anything else) and choose rates::

    faults = Faults(error_503=0.2, burst_429=0.05, truncate=0.05, drop=0.02, seed=7)
    with serve_with_faults(create_app(config), faults) as (url, injector):
        ...  # a client against `url` sees 503s, 429 bursts, cut bodies, resets
        injector.stats  # Counter of what was injected

or force an exact sequence for the next requests, then back to the rates::

    injector.script("503", "503", "ok", "drop")

Kinds: ``ok``, ``500``, ``503`` (with ``Retry-After``), ``429`` (a burst of
``burst_length`` responses with ``Retry-After`` and the contract's
``RATE_LIMIT_EXCEEDED`` envelope), ``delay`` (sleep up to ``delay_seconds``,
then answer normally), ``truncate`` (the real body cut in half, with a
matching Content-Length, so the HTTP exchange completes but the JSON does
not parse), ``invalid_json`` (a proxy's HTML error page labelled
``application/json``), ``drop`` (the connection is closed without any
response; under servers other than uvicorn, after the status line).

Deterministic: one ``random.Random(seed)`` draws for each request in arrival
order, so a sequential client sees the same faults on every run. Only paths
matching ``paths`` (default ``^/v1/``) are touched, so ``/health`` stays
usable for readiness checks. Error bodies follow the API envelope.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

KINDS = ("ok", "500", "503", "429", "delay", "truncate", "invalid_json", "drop")
INVALID_BODY = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1><p>upstream closed</p></body></html>"


@dataclass(frozen=True)
class Faults:
    """Probabilities per request (checked in this order; the first that fires wins)."""

    drop: float = 0.0
    error_500: float = 0.0
    error_503: float = 0.0
    burst_429: float = 0.0
    truncate: float = 0.0
    invalid_json: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 0.2
    burst_length: int = 3
    retry_after: int = 1
    seed: int = 0
    paths: str = r"^/v1/"

    def __post_init__(self) -> None:
        for name in ("drop", "error_500", "error_503", "burst_429", "truncate", "invalid_json", "delay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability, got {value}")
        if self.burst_length < 1 or self.retry_after < 0 or self.delay_seconds < 0:
            raise ValueError("burst_length >= 1, retry_after >= 0 and delay_seconds >= 0 are required")


def _envelope(code: str, message: str, **extra: Any) -> tuple[bytes, str]:
    rid = "req_fault_" + uuid.uuid4().hex[:16]
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    error = {"code": code, "message": message, "details": "injected fault", "request_id": rid, **extra}
    body = {"success": False, "data": None, "message": message, "timestamp": now, "request_id": rid, "error": error}
    return orjson.dumps(body), rid


class FaultInjector:
    """ASGI middleware; ``FaultInjector(app, Faults(...))`` or keyword rates."""

    def __init__(self, app: Any, faults: Faults | None = None, **rates: Any) -> None:
        self.app = app
        self.state = getattr(app, "state", None)  # so ServerThread can still end live streams
        self.faults = replace(faults or Faults(), **rates)
        self._rng = random.Random(self.faults.seed)
        self._paths = re.compile(self.faults.paths)
        self._lock = threading.Lock()
        self._script: list[str] = []
        self._burst_left = 0
        self.stats: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []

    def configure(self, **changes: Any) -> None:
        """Change rates while serving (the random sequence continues)."""
        with self._lock:
            self.faults = replace(self.faults, **changes)
            self._paths = re.compile(self.faults.paths)

    def script(self, *kinds: str) -> None:
        """Force these faults on the next matching requests, in order."""
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; expected {KINDS}")
        with self._lock:
            self._script.extend(kinds)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._burst_left = 0
            self._rng = random.Random(self.faults.seed)
            self.stats.clear()
            self.log.clear()

    def _choose(self, path: str) -> tuple[str, float]:
        with self._lock:
            f = self.faults
            delay = self._rng.uniform(0.0, f.delay_seconds)
            if self._script:
                kind = self._script.pop(0)
                if kind == "429":
                    self._burst_left = f.burst_length - 1
            elif self._burst_left > 0:
                self._burst_left -= 1
                kind = "429"
            else:
                kind = "ok"
                for name, rate in (
                    ("drop", f.drop),
                    ("500", f.error_500),
                    ("503", f.error_503),
                    ("429", f.burst_429),
                    ("truncate", f.truncate),
                    ("invalid_json", f.invalid_json),
                    ("delay", f.delay),
                ):
                    if rate and self._rng.random() < rate:
                        kind = name
                        break
                if kind == "429":
                    self._burst_left = f.burst_length - 1
            self.stats[kind] += 1
            self.log.append((path, kind))
            return kind, delay

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._paths.search(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        kind, delay = self._choose(scope["path"])
        if kind == "ok":
            await self.app(scope, receive, send)
        elif kind == "delay":
            await asyncio.sleep(delay)
            await self.app(scope, receive, send)
        elif kind in ("500", "503"):
            body, rid = _envelope("PROCESSING_ERROR", "injected server error" if kind == "500" else "service unavailable (injected)")
            headers = [(b"retry-after", str(self.faults.retry_after).encode())] if kind == "503" else []
            await self._reply(send, int(kind), body, rid, headers)
        elif kind == "429":
            retry = self.faults.retry_after
            body, rid = _envelope("RATE_LIMIT_EXCEEDED", "rate limit exceeded (injected)", retry_after=retry)
            reset = int(datetime.now(UTC).timestamp()) + retry
            headers = [
                (b"retry-after", str(retry).encode()),
                (b"x-ratelimit-limit", b"100"),
                (b"x-ratelimit-remaining", b"0"),
                (b"x-ratelimit-reset", str(reset).encode()),
            ]
            await self._reply(send, 429, body, rid, headers)
        elif kind == "drop":
            await self._drop(scope, receive, send)
        else:
            await self._rewrite(kind, scope, receive, send)

    @staticmethod
    async def _reply(send: Any, status: int, body: bytes, rid: str, headers: list[tuple[bytes, bytes]]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", rid.encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _drop(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # uvicorn's `send` is a bound method of its request cycle, which
        # holds the connection's transport: closing it ends the connection
        # before a single response byte (the client sees a reset).
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None:
            transport.abort() if hasattr(transport, "abort") else transport.close()
            await asyncio.sleep(0.01)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        raise ConnectionAbortedError("injected dropped connection")

    async def _rewrite(self, kind: str, scope: dict[str, Any], receive: Any, send: Any) -> None:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
        if kind == "truncate":
            body = body[: max(1, len(body) // 2)]
        else:
            body = INVALID_BODY
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextmanager
def serve_with_faults(app: Any, faults: Faults | None = None, **rates: Any) -> Iterator[tuple[str, FaultInjector]]:
    """Serve ``app`` wrapped in a :class:`FaultInjector` under uvicorn on a
    free 127.0.0.1 port in a background thread; yields ``(base_url, injector)``."""
    from pe_toolkit.server.runner import ServerThread

    injector = FaultInjector(app, faults, **rates)
    with ServerThread(injector) as server:
        yield server.url, injector


__all__ = ["KINDS", "FaultInjector", "Faults", "serve_with_faults"]

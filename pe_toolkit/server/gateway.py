"""The door every request passes: request id, body size, key, rate limit.

A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: the
latter wraps each request in extra tasks and streams, which costs about a
fifth of the single-conversation GET budget (benchmarks/RESULTS.md). It sits
outside FastAPI's own error middleware, so even a 500 leaves with the
request id and the rate-limit headers.

- ``/v1/*`` (HTTP and WebSocket) needs ``Authorization: Bearer <key>``; keys
  are compared with :func:`hmac.compare_digest` against every configured key
  (no early exit), and a key never appears in a log, a response or a repr.
- Each key has its own budget (:class:`RateLimiter`); requests without a
  valid key are budgeted per client address, so guessing keys is throttled
  like anything else. ``X-RateLimit-Limit/Remaining/Reset`` go on every
  ``/v1`` response.
- Bodies above ``max_body_bytes`` get 413 before they are read: at once when
  ``Content-Length`` says so, otherwise as soon as the streamed body passes
  the limit.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Secret
from .envelope import (
    INVALID_API_KEY,
    RATE_LIMIT_EXCEEDED,
    VALIDATION_ERROR,
    error_body,
    new_request_id,
)
from .ratelimit import RateDecision, RateLimiter

PROTECTED_PREFIX = "/v1"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit; an
    HTTPException so FastAPI's body parsing lets it through unchanged."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class KeyRing:
    """The accepted keys, matched in constant time; ``repr`` shows a count."""

    __slots__ = ("_keys",)

    def __init__(self, keys: tuple[Secret, ...]) -> None:
        self._keys = tuple(k.reveal().encode() for k in keys)

    def match(self, token: bytes) -> int | None:
        """Index of the key equal to ``token``; every key is compared."""
        found = None
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(token, key):
                found = index
        return found

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"<KeyRing of {len(self._keys)} key(s)>"


@dataclass
class Usage:
    """Counters for /v1/statistics/overview (process lifetime)."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    rejected_auth: int = 0
    rejected_rate: int = 0
    rejected_size: int = 0


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value
    return None


def is_protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


# A fast lane answers some GETs by itself: given the scope and the rest of
# the path after its prefix, it returns (status, JSON body), or None to let
# the app answer as usual.
Lane = Callable[[Scope, str], tuple[int, bytes] | None]


class Gateway:
    """``lanes``: path prefix -> :data:`Lane`, tried for admitted GETs
    before FastAPI. The single-conversation GET is one: FastAPI's error,
    exception and exit-stack middlewares plus routing over every route cost
    about as much as the lookup itself (benchmarks/RESULTS.md), and that
    route's only failure is a 404 the lane renders itself."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyRing,
        limiter: RateLimiter,
        max_body_bytes: int,
        usage: Usage,
        lanes: dict[str, Lane] | None = None,
    ) -> None:
        self.app, self.keys, self.limiter = app, keys, limiter
        self.max_body_bytes, self.usage = max_body_bytes, usage
        self.lanes = tuple((lanes or {}).items())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _admit(self, scope: Scope) -> tuple[int | None, RateDecision]:
        """(key index or None, the budget decision for this request)."""
        token = _bearer(scope)
        key = self.keys.match(token) if token is not None else None
        if key is None:
            client = scope.get("client")
            decision = self.limiter.hit(f"anon:{client[0] if client else '-'}")
        else:
            decision = self.limiter.hit(f"key:{key}")
        return key, decision

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        rid = new_request_id(_header(scope, b"x-request-id"))
        state["request_id"] = rid
        extra = [(b"x-request-id", rid.encode())]
        usage = self.usage
        usage.requests += 1
        if is_protected(scope["path"]):
            key, decision = self._admit(scope)
            state["key_id"] = key
            state["rate"] = decision
            extra += decision.headers()
            if not decision.allowed:
                usage.rejected_rate += 1
                body = error_body(
                    RATE_LIMIT_EXCEEDED,
                    f"rate limit of {decision.limit} requests per window exceeded; retry in {decision.retry_after} s",
                    rid,
                    extra={"retry_after": decision.retry_after},
                )
                return await self._reply(send, 429, body, extra)
            if key is None:
                usage.rejected_auth += 1
                body = error_body(INVALID_API_KEY, "missing or invalid API key (Authorization: Bearer <key>)", rid)
                return await self._reply(send, 401, body, [*extra, (b"www-authenticate", b"Bearer")])
            if scope["method"] == "GET":
                path = scope["path"]
                for prefix, lane in self.lanes:
                    if path.startswith(prefix):
                        answer = lane(scope, path[len(prefix) :])
                        if answer is not None:
                            usage.by_status[answer[0]] += 1
                            return await self._reply(send, answer[0], answer[1], extra)

        length = _header(scope, b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                too_big = False
            if too_big:
                usage.rejected_size += 1
                body = error_body(VALIDATION_ERROR, f"request body larger than {self.max_body_bytes} bytes", rid, details="body")
                return await self._reply(send, 413, body, [*extra, (b"connection", b"close")])

        limit = self.max_body_bytes
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    usage.rejected_size += 1
                    raise BodyTooLarge(limit)
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
                usage.by_status[message["status"]] += 1
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)

    @staticmethod
    async def _reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        rid = new_request_id(_header(scope, b"x-request-id"))
        state["request_id"] = rid
        if not is_protected(scope["path"]):
            return await self.app(scope, receive, send)
        self.usage.requests += 1
        key, decision = self._admit(scope)
        state["key_id"], state["rate"] = key, decision
        if decision.allowed and key is not None:
            return await self.app(scope, receive, send)
        if decision.allowed:
            self.usage.rejected_auth += 1
            status, body = 401, error_body(INVALID_API_KEY, "missing or invalid API key (Authorization: Bearer <key>)", rid)
        else:
            self.usage.rejected_rate += 1
            status = 429
            body = error_body(
                RATE_LIMIT_EXCEEDED, "rate limit exceeded", rid, extra={"retry_after": decision.retry_after}
            )
        await receive()  # the websocket.connect message
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-request-id", rid.encode()),
                        *decision.headers(),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:  # pragma: no cover - servers without the denial-response extension
            await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized" if status == 401 else "rate limited"})

"""Live updates: server-sent events and the WebSocket.

``GET /v1/stream/updates[?topics=conversation.*,job.*]`` is a
``text/event-stream``: ``retry:``, a ``stream.open`` event once the
subscription is in place, then one event per change (``id:`` for
``Last-Event-ID`` resumption, ``event:`` the topic, ``data:`` JSON
``{id, type, data, timestamp}``) and a ``: keep-alive`` comment every
``heartbeat`` seconds.

``/v1/ws`` takes JSON text frames ``{"type", "request_id", "data"}``:
``analyze_conversation`` and ``get_quality_suggestions`` (``data`` holds a
``conversation`` object or a stored ``conversation_id``),
``subscribe_to_updates`` (``data.topics``, default all),
``unsubscribe_from_updates`` and ``ping``. Every answer echoes the
``request_id``; a frame that cannot be understood gets an ``error`` answer
and the socket stays open. Each request frame spends one request of the
key's rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ...errors import PeToolkitError
from .. import queries
from ..envelope import (
    PROCESSING_ERROR,
    RATE_LIMIT_EXCEEDED,
    RESOURCE_NOT_FOUND,
    VALIDATION_ERROR,
    ApiProblem,
    now_iso,
    request_id_of,
)
from ..handlers import translate
from ..hub import LiveEvent, Subscription
from ..models import ConversationIn, validated
from ._common import mirror

router = APIRouter()
log = logging.getLogger("pe_toolkit.server")


def _topics(raw: str | None) -> list[str]:
    if not raw:
        return ["*"]
    found = [t.strip() for t in raw.split(",") if t.strip()]
    return found or ["*"]


def _sse(event: LiveEvent) -> bytes:
    body = orjson.dumps(event.as_dict())
    head = f"id: {event.id}\n" if event.id else ""
    return f"{head}event: {event.topic}\ndata: ".encode() + body + b"\n\n"


@router.get("/v1/stream/updates", summary="Server-sent events: conversation changes and job progress")
async def updates(request: Request, topics: str | None = Query(None, max_length=500)) -> StreamingResponse:
    m = mirror(request)
    wanted = _topics(topics)
    last = request.headers.get("last-event-id")
    # isascii too: str.isdigit() takes "²", which int() refuses (a 500 before)
    after = int(last) if last and last.isascii() and last.isdigit() else None
    sub = m.hub.subscribe(wanted, after=after)
    opened = LiveEvent(0, "stream.open", {"topics": wanted, "request_id": request_id_of(request.scope)}, now_iso())
    heartbeat = m.config.heartbeat

    async def stream():
        try:
            yield b"retry: 3000\n" + _sse(opened)
            while True:
                try:
                    event = await sub.next(timeout=heartbeat)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event is None:
                    return
                yield _sse(event)
        finally:
            sub.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _Session:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.mirror = mirror(ws)
        self.key = ws.scope.get("state", {}).get("key_id")
        self.send_lock = asyncio.Lock()
        self.subscription: Subscription | None = None
        self.pusher: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        message.setdefault("timestamp", now_iso())
        async with self.send_lock:
            await self.ws.send_text(orjson.dumps(message).decode())

    async def error(self, request_id: Any, code: str, message: str, **extra: Any) -> None:
        error = {"code": code, "message": message, "details": extra.pop("details", ""), "request_id": request_id, **extra}
        await self.send({"type": "error", "request_id": request_id, "success": False, "error": error})

    async def run(self) -> None:
        try:
            while True:
                frame = await self.ws.receive()
                if frame["type"] == "websocket.disconnect":
                    return
                try:
                    await self.handle(frame)
                except (WebSocketDisconnect, OSError, RuntimeError):
                    return  # the client left while we were answering
        except WebSocketDisconnect:
            return
        finally:
            await self.unsubscribe()

    async def handle(self, frame: Mapping[str, Any]) -> None:
        text = frame.get("text")
        if text is None:
            await self.error(None, VALIDATION_ERROR, "binary frames are not supported; send JSON text")
            return
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            await self.error(None, VALIDATION_ERROR, f"malformed JSON ({exc.msg})")
            return
        if not isinstance(message, dict):
            await self.error(None, VALIDATION_ERROR, "a message must be a JSON object with a type")
            return
        rid = message.get("request_id")
        if rid is not None and not isinstance(rid, (str, int)):
            rid = None
        kind = message.get("type")
        handler = self.HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            await self.error(rid, VALIDATION_ERROR, f"unknown message type {kind!r}; expected one of {', '.join(self.HANDLERS)}", details="type")
            return
        decision = self.mirror.limiter.hit(f"key:{self.key}")
        if not decision.allowed:
            await self.error(rid, RATE_LIMIT_EXCEEDED, "rate limit exceeded", retry_after=decision.retry_after)
            return
        data = message.get("data")
        if data is None:
            data = {k: v for k, v in message.items() if k not in ("type", "request_id")}
        if not isinstance(data, dict):
            await self.error(rid, VALIDATION_ERROR, "data must be a JSON object", details="data")
            return
        try:
            await handler(self, rid, data)
        except ApiProblem as problem:
            await self.error(rid, problem.code, problem.message, details=problem.details, **problem.extra)
        except PeToolkitError as exc:
            translated = translate(exc)
            await self.error(rid, translated.code, translated.message)
        except (WebSocketDisconnect, OSError, RuntimeError):
            raise
        except Exception as exc:  # a bug answers this frame, the socket stays up
            log.error("websocket %s failed", kind, exc_info=exc)
            await self.error(rid, PROCESSING_ERROR, "internal server error", details=type(exc).__name__)

    async def _conversation(self, data: dict[str, Any]) -> dict[str, Any]:
        if "conversation" in data:
            conversation = data["conversation"]
            validated(ConversationIn, conversation, prefix="conversation")
            return conversation
        cid = data.get("conversation_id")
        if isinstance(cid, str) and cid:
            raw = await run_in_threadpool(self._stored, cid)
            if raw is None:
                raise ApiProblem(404, RESOURCE_NOT_FOUND, f"conversation {cid[:256]!r} not found")
            return orjson.loads(raw)
        raise ApiProblem(422, VALIDATION_ERROR, "data needs a conversation object or a conversation_id", details="conversation")

    def _stored(self, cid: str) -> bytes | None:
        try:
            return self.mirror.snapshot.get(cid)
        except Exception:  # noqa: BLE001 - NotReady: ask the store
            return queries.conversation_json(self.mirror.db, cid)

    async def analyze(self, rid: Any, data: dict[str, Any]) -> None:
        conversation = await self._conversation(data)
        result = await self.mirror.analysis.run("validate_messages", conversation)
        await self.send({"type": "analysis_result", "request_id": rid, "success": True, "data": result})

    async def suggest(self, rid: Any, data: dict[str, Any]) -> None:
        conversation = await self._conversation(data)
        result = await self.mirror.analysis.run("suggestions", conversation)
        await self.send({"type": "quality_suggestions", "request_id": rid, "success": True, "data": result})

    async def subscribe(self, rid: Any, data: dict[str, Any]) -> None:
        topics = data.get("topics", ["*"])
        if isinstance(topics, str):
            topics = [topics]
        if not isinstance(topics, list) or not all(isinstance(t, str) and t for t in topics):
            raise ApiProblem(422, VALIDATION_ERROR, "topics must be a list of topic patterns", details="topics")
        await self.unsubscribe()
        self.subscription = self.mirror.hub.subscribe(topics or ["*"])
        self.pusher = asyncio.create_task(self._push(self.subscription))
        await self.send({"type": "subscribed", "request_id": rid, "success": True, "data": {"topics": topics or ["*"]}})

    async def unsubscribe_message(self, rid: Any, data: dict[str, Any]) -> None:
        was = self.subscription is not None
        await self.unsubscribe()
        await self.send({"type": "unsubscribed", "request_id": rid, "success": True, "data": {"was_subscribed": was}})

    async def ping(self, rid: Any, data: dict[str, Any]) -> None:
        await self.send({"type": "pong", "request_id": rid, "success": True, "data": {}})

    async def unsubscribe(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
        if self.pusher is not None:
            self.pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pusher
            self.pusher = None

    async def _push(self, sub: Subscription) -> None:
        while True:
            event = await sub.next()
            if event is None:
                with contextlib.suppress(Exception):
                    await self.ws.close(1001)
                return
            try:
                await self.send({"type": "update", "event": event.topic, "id": event.id, "data": event.data, "timestamp": event.timestamp})
            except Exception:  # noqa: BLE001 - the socket went away: stop pushing
                return

    HANDLERS: ClassVar[dict[str, Any]] = {
        "analyze_conversation": analyze,
        "get_quality_suggestions": suggest,
        "subscribe_to_updates": subscribe,
        "unsubscribe_from_updates": unsubscribe_message,
        "ping": ping,
    }


@router.websocket("/v1/ws", name="JSON messages: analyze_conversation, get_quality_suggestions, subscribe_to_updates")
async def websocket(ws: WebSocket) -> None:
    await ws.accept()
    await _Session(ws).run()

"""Datasets and conversations."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from ...store import ConversationFilter
from .. import queries
from ..envelope import RESOURCE_NOT_FOUND, JSONBytes, error_body, fragment, not_found, ok, request_id_of, success_body
from ..gateway import Lane
from ..objects import NotReady, ObjectSnapshot
from ._common import MAX_OFFSET, Tier, mirror

router = APIRouter()


@router.get("/v1/datasets", summary="Datasets in the store")
def list_datasets(request: Request) -> JSONBytes:
    found = queries.datasets(mirror(request).db)
    return ok(request, {"datasets": found, "total": len(found)}, f"{len(found)} datasets")


@router.get("/v1/datasets/{name:path}", summary="One dataset's statistics and schema")
def get_dataset(request: Request, name: str) -> JSONBytes:
    found = queries.dataset_detail(mirror(request).db, name)
    if found is None:
        raise not_found(f"dataset {name!r}")
    return ok(request, found, "Dataset retrieved")


@router.get("/v1/conversations", summary="Conversation summaries, filtered and paginated (stable id order)")
def list_conversations(
    request: Request,
    dataset: str | None = Query(None, min_length=1, max_length=200),
    tier: Tier | None = None,
    min_quality: float | None = Query(None, ge=0.0, le=1.0, allow_inf_nan=False),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    after: str | None = Query(
        None, min_length=1, max_length=1024,
        description="Extension: the ids after this one (keyset page; offset is then not used and answered as 0).",
    ),
) -> JSONBytes:
    filter = ConversationFilter(dataset=dataset, tier=tier, min_quality=min_quality)
    total, page, has_more = queries.conversation_page(mirror(request).db, filter, limit, offset, after)
    data = {"conversations": fragment(page), "total": total, "limit": limit, "offset": 0 if after is not None else offset, "has_more": has_more}
    if after is not None:
        data["after"] = after  # the echo tells a client its cursor was honoured
    return ok(request, data, "Conversations retrieved")


class ConversationEndpoint:
    """One full conversation"""

    # GET /v1/conversations/{id} is answered by the gateway's fast lane
    # (conversation_lane below) once the object snapshot is built; this
    # endpoint serves the first seconds before that (from DuckDB) and HEAD.
    # A raw ASGI endpoint on a plain Starlette route (app.py): no
    # Request/Response objects and no dependency solving.
    __name__ = "get_conversation"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conversation_id: str = scope["path_params"]["conversation_id"]
        m = scope["app"].state.mirror
        try:
            raw = m.snapshot.get(conversation_id)
        except NotReady:
            raw = await run_in_threadpool(queries.conversation_json, m.db, conversation_id)
        if raw is None:
            raise not_found(f"conversation {conversation_id[:256]!r}")
        body = success_body(fragment(raw), "Conversation retrieved", request_id_of(scope))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


get_conversation = ConversationEndpoint()


def conversation_lane(snapshot: ObjectSnapshot) -> Lane:
    """The same answer as :class:`ConversationEndpoint`, for the gateway's
    fast lane (``/v1/conversations/`` + an id); None (the app answers) for
    anything else and while the snapshot is being built."""

    def lane(scope: Scope, rest: str) -> tuple[int, bytes] | None:
        if not rest or "/" in rest:
            return None
        try:
            raw = snapshot.get(rest)
        except NotReady:
            return None
        rid = request_id_of(scope)
        if raw is None:
            return 404, error_body(RESOURCE_NOT_FOUND, f"conversation {rest[:256]!r} not found", rid)
        return 200, success_body(fragment(raw), "Conversation retrieved", rid)

    return lane


# (path, endpoint, methods): plain Starlette routes, matched before the rest
# ":path": an id may hold a "/" (sent as %2F, decoded before routing)
FAST_ROUTES = [("/v1/conversations/{conversation_id:path}", get_conversation, ["GET"])]

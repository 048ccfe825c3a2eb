"""Quality metrics of the store and validation of one conversation."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from ...store import ConversationFilter
from .. import queries
from ..envelope import JSONBytes, ok
from ..models import ConversationIn, json_body, validated
from ._common import Tier, mirror

router = APIRouter()


@router.get("/v1/quality/metrics", summary="Quality statistics of the store, by tier")
def quality_metrics(
    request: Request,
    dataset: str | None = Query(None, min_length=1, max_length=200),
    tier: Tier | None = None,
) -> JSONBytes:
    data = queries.quality_metrics(mirror(request).db, ConversationFilter(dataset=dataset, tier=tier))
    data["filters_applied"] = {k: v for k, v in (("dataset", dataset), ("tier", tier)) if v is not None}
    return ok(request, data, "Quality metrics retrieved")


@router.post("/v1/quality/validate", summary="Score one conversation with the toolkit's analyzers")
async def validate(request: Request) -> JSONBytes:
    body = await json_body(request)
    validated(ConversationIn, body)
    result = await mirror(request).analysis.run("validate", body)
    return ok(request, result, "Conversation validated")

"""``GET /v1/statistics/overview``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from .. import queries
from ..envelope import JSONBytes, ok
from ._common import mirror

router = APIRouter()


@router.get("/v1/statistics/overview", summary="Store, processing and usage statistics")
def overview(request: Request) -> JSONBytes:
    m = mirror(request)
    data = queries.overview(m.db)
    data["processing_statistics"] = {
        "jobs": m.jobs.counts(),
        "exports": queries.exports_by_status(m.db),
        "analysed_conversations": queries.analysed_conversations(m.db),
        "search_index": {"ready": m.search.ready.is_set(), "documents": m.search.documents, "pending": m.search.pending},
        "live_subscribers": m.hub.subscribers,
    }
    usage = m.usage
    key = request.scope.get("state", {}).get("key_id")
    mine = m.limiter.peek(f"key:{key}")
    data["api_usage"] = {
        "requests_served": usage.requests,
        "responses_by_status": {str(k): v for k, v in sorted(usage.by_status.items())},
        "rejected": {"auth": usage.rejected_auth, "rate_limit": usage.rejected_rate, "body_size": usage.rejected_size},
        "keys_configured": len(m.keys),
        "rate_limit": {"requests": m.config.rate_limit, "window_seconds": m.config.rate_window},
        "this_key": {"remaining": mine.remaining, "reset": mine.reset},
    }
    return ok(request, data, "Statistics retrieved")

"""``POST /v1/search``: BM25 over message content (see ``server/search.py``)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ...store import ConversationFilter
from ..envelope import PROCESSING_ERROR, ApiProblem, JSONBytes, invalid, ok
from ..models import SearchIn, json_body, validated
from ..search import snippet
from ._common import MAX_OFFSET, mirror

router = APIRouter()
INDEX_WAIT = 30.0


@router.post("/v1/search", summary="Full-text search over message content, ranked by relevance")
async def search(request: Request) -> JSONBytes:
    body = validated(SearchIn, await json_body(request))
    if body.offset > MAX_OFFSET:
        # The list route's cap: past it DuckDB's OFFSET overflows (a 500).
        raise invalid("offset", f"must be at most {MAX_OFFSET}")
    m = mirror(request)
    filters = body.filters.model_dump(exclude_none=True) if body.filters else {}

    def run() -> dict[str, Any]:
        started = time.perf_counter()
        index = m.search
        if index.error and not index.ready.is_set():
            raise ApiProblem(503, PROCESSING_ERROR, "the search index could not be built; see the server log", headers={"Retry-After": "30"})
        if not index.ready.wait(INDEX_WAIT):
            raise ApiProblem(
                503,
                PROCESSING_ERROR,
                f"the search index is being built ({index.pending:,} conversations to go); retry shortly",
                headers={"Retry-After": "5"},
            )
        terms = index.query_terms(body.query)
        if not terms:
            raise invalid("query", "contains no searchable words (letters or digits)")
        selection = ConversationFilter(**filters)
        hits, total = index.search(body.query, terms, selection, limit=body.limit, offset=body.offset)
        texts = index.messages_of([h.conversation_id for h in hits])
        wanted = set(terms)
        results = []
        for hit in hits:  # one page: at most `limit` conversations
            text, marks = snippet(texts.get(hit.conversation_id, []), wanted)
            results.append(
                {
                    "conversation_id": hit.conversation_id,
                    "relevance_score": hit.relevance_score,
                    "snippet": text,
                    "highlights": marks,
                    "matched_terms": hit.matched_terms,
                    "quality_score": hit.quality_score,
                    "tier": hit.tier,
                    "metadata": hit.metadata,
                }
            )
        return {
            "query": body.query,
            "terms": terms,
            "results": results,
            "total_matches": total,
            "limit": body.limit,
            "offset": body.offset,
            "search_time_ms": round((time.perf_counter() - started) * 1000.0, 2),
            "filters_applied": filters,
        }

    data = await run_in_threadpool(run)
    return ok(request, data, f"{data['total_matches']} matching conversations")

"""Every route of ``API_CONTRACT.md`` as a :class:`~.core.Call` builder.

The sync and async clients and the compatibility facade all build their
requests here, so a route's path, parameters, retry safety and decoding
are written once. Path parameters are percent-encoded (an id containing
``/`` stays one path segment); ``.`` and ``..`` are refused
(:class:`~pe_toolkit.errors.InputError`): URL normalisation (httpx's, and
any proxy's) resolves them even percent-encoded, so
``/v1/conversations/..`` would reach ``/v1``, another route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import InputError
from .core import Call
from .models import (
    ApiInfo,
    Conversation,
    ConversationPage,
    DatasetInfo,
    DatasetList,
    ExportInfo,
    Health,
    Job,
    QualityOverview,
    SearchResults,
    StatisticsOverview,
    ValidationResult,
)

MAX_PAGE = 1000  # the contract's largest `limit`
EXPORT_FORMATS = ("jsonl", "csv", "parquet", "huggingface", "openai")
PROCESSING_TYPES = ("quality_validation", "export", "analysis")


def _seg(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"expected a non-empty string as a path parameter, got {value!r}")
    if value in (".", ".."):
        # Dot segments are removed by URL normalisation (RFC 3986 5.2.4),
        # and %2E is the same unreserved character, so no encoding keeps
        # them in place: the request would go to another route.
        raise InputError(f"{value!r} cannot be a path parameter: it would name another route")
    return quote(value, safe="")


def api_info() -> Call[ApiInfo]:
    return Call("GET", "/", root=True, decode=ApiInfo.from_api)


def health(pin: str | None = None, timeout: float | None = None) -> Call[Health]:
    return Call("GET", "/health", root=True, pin=pin, decode=Health.from_api, timeout=timeout)


def list_datasets() -> Call[DatasetList]:
    return Call("GET", "/datasets", decode=DatasetList.from_api)


def get_dataset(name: str) -> Call[DatasetInfo]:
    return Call("GET", f"/datasets/{_seg(name)}", decode=DatasetInfo.from_api)


def list_conversations(
    *,
    dataset: str | None = None,
    tier: str | None = None,
    min_quality: float | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Call[ConversationPage]:
    params = {"dataset": dataset, "tier": tier, "min_quality": min_quality, "limit": int(limit), "offset": int(offset)}
    return Call("GET", "/conversations", params=params, decode=ConversationPage.from_api)


def get_conversation(conversation_id: str) -> Call[Conversation]:
    return Call("GET", f"/conversations/{_seg(conversation_id)}", decode=Conversation.from_api)


def quality_metrics(*, dataset: str | None = None, tier: str | None = None) -> Call[QualityOverview]:
    return Call("GET", "/quality/metrics", params={"dataset": dataset, "tier": tier}, decode=QualityOverview.from_api)


def validate(conversation: Mapping[str, Any] | Conversation) -> Call[ValidationResult]:
    body = conversation.to_dict() if isinstance(conversation, Conversation) else dict(conversation)
    # Read-only scoring: repeating it changes nothing.
    return Call("POST", "/quality/validate", json=body, safety="idempotent", decode=ValidationResult.from_api)


def submit_job(dataset_name: str, processing_type: str, parameters: Mapping[str, Any] | None = None) -> Call[Job]:
    body = {"dataset_name": dataset_name, "processing_type": processing_type, "parameters": dict(parameters or {})}
    return Call("POST", "/processing/submit", json=body, safety="unsafe", decode=Job.from_api)


def get_job(job_id: str, *, pin: str | None = None) -> Call[Job]:
    return Call("GET", f"/processing/jobs/{_seg(job_id)}", pin=pin, decode=Job.from_api)


def search(
    query: str,
    *,
    filters: Mapping[str, Any] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Call[SearchResults]:
    body = {"query": query, "filters": {k: v for k, v in (filters or {}).items() if v is not None}, "limit": int(limit), "offset": int(offset)}
    return Call("POST", "/search", json=body, safety="idempotent", decode=SearchResults.from_api)


def statistics() -> Call[StatisticsOverview]:
    return Call("GET", "/statistics/overview", decode=StatisticsOverview.from_api)


def start_export(
    *,
    dataset: str | None = None,
    format: str = "jsonl",
    tier: str | None = None,
    min_quality: float | None = None,
) -> Call[ExportInfo]:
    form = {"dataset": dataset, "format": format, "tier": tier, "min_quality": min_quality}
    # A repeated export makes a second file and nothing else: safe to retry
    # after a timeout or a 502-504, not after a 500 (it may have worked).
    return Call("POST", "/export", form=form, safety="safe", decode=ExportInfo.from_api)


def stream_updates(
    topics: str | list[str] | tuple[str, ...] | None = None,
    *,
    last_event_id: str | None = None,
    timeout: float | None = None,
) -> Call[Any]:
    """``GET /v1/stream/updates`` (the mirror's server-sent events; not in
    the published contract). Opened and read by :mod:`.stream`, never
    through :meth:`Client.request`: the body is a stream, not an envelope."""
    if isinstance(topics, (list, tuple)):
        topics = ",".join(t.strip() for t in topics if t and t.strip())
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return Call("GET", "/stream/updates", params={"topics": topics or None}, headers=headers, timeout=timeout)

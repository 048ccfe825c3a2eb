"""Typed results of the API, each one step away from a polars frame.

Every model is built from the ``data`` of a contract response by
``from_api`` (a missing required field raises ``KeyError``/``TypeError``,
which the request core reports as
:class:`~pe_toolkit.errors.MalformedResponseError`). Lists carry
``to_polars()``; a conversation gives its messages as a frame in the
store's message layout (``conversation_id, idx, role, content,
timestamp``), so client results and store queries join without reshaping.
Unknown extra fields are ignored (forward compatibility); ``raw`` keeps the
server's dict where callers may want the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from ..schema import QUALITY_METRICS

TERMINAL_JOB_STATES = frozenset({"completed", "failed", "cancelled"})

SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "dataset": pl.String(),
    "tier": pl.String(),
    "quality_score": pl.Float64(),
    "message_count": pl.Int32(),
    "created_at": pl.Datetime("us", "UTC"),
}

MESSAGE_FRAME_SCHEMA: dict[str, pl.DataType] = {
    "conversation_id": pl.String(),
    "idx": pl.Int32(),
    "role": pl.String(),
    "content": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
}


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 text (``Z`` accepted) to an aware datetime; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 string, got {type(value).__name__}")
    return datetime.fromisoformat(value)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _frame(rows: Sequence[Mapping[str, Any]], schema: Mapping[str, pl.DataType] | None = None) -> pl.DataFrame:
    if schema is None:
        return pl.DataFrame(list(rows)) if rows else pl.DataFrame()
    return pl.DataFrame(list(rows), schema=dict(schema), orient="row") if rows else pl.DataFrame(schema=dict(schema))


# -- datasets ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    description: str | None
    conversations: int | None
    quality_score: float | None
    tiers: tuple[str, ...]

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Dataset:
        return cls(
            name=d["name"],
            description=d.get("description"),
            conversations=d.get("conversations"),
            quality_score=_float(d.get("quality_score")),
            tiers=tuple(d.get("tiers") or ()),
        )


@dataclass(frozen=True, slots=True)
class DatasetList:
    items: tuple[Dataset, ...]
    total: int

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> DatasetList:
        items = tuple(Dataset.from_api(x) for x in d["datasets"])
        return cls(items, int(d.get("total", len(items))))

    def __iter__(self) -> Iterator[Dataset]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_polars(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "name": [x.name for x in self.items],
                "description": [x.description for x in self.items],
                "conversations": [x.conversations for x in self.items],
                "quality_score": [x.quality_score for x in self.items],
                "tiers": [list(x.tiers) for x in self.items],
            },
            schema={
                "name": pl.String(),
                "description": pl.String(),
                "conversations": pl.Int64(),
                "quality_score": pl.Float64(),
                "tiers": pl.List(pl.String()),
            },
        )


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    name: str
    description: str | None
    total_conversations: int | None
    average_quality: float | None
    tier_distribution: dict[str, int]
    last_updated: datetime | None
    schema: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> DatasetInfo:
        stats = d.get("statistics") or {}
        return cls(
            name=d["name"],
            description=d.get("description"),
            total_conversations=stats.get("total_conversations"),
            average_quality=_float(stats.get("average_quality")),
            tier_distribution=dict(stats.get("tier_distribution") or {}),
            last_updated=parse_time(stats.get("last_updated")),
            schema=dict(d.get("schema") or {}),
            raw=dict(d),
        )

    def tiers_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"tier": list(self.tier_distribution), "conversations": list(self.tier_distribution.values())},
            schema={"tier": pl.String(), "conversations": pl.Int64()},
        )


# -- conversations ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: str
    dataset: str | None
    tier: str | None
    quality_score: float | None
    message_count: int | None
    created_at: datetime | None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ConversationSummary:
        cid = d["id"]
        if not isinstance(cid, str) or not cid:
            raise TypeError("conversation id must be a non-empty string")
        return cls(
            id=cid,
            dataset=d.get("dataset"),
            tier=d.get("tier"),
            quality_score=_float(d.get("quality_score")),
            message_count=d.get("message_count"),
            created_at=parse_time(d.get("created_at")),
        )

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SUMMARY_SCHEMA}


def summaries_frame(items: Iterable[ConversationSummary]) -> pl.DataFrame:
    """Summaries as a frame with :data:`SUMMARY_SCHEMA`."""
    return _frame([s.as_row() for s in items], SUMMARY_SCHEMA)


@dataclass(frozen=True, slots=True)
class SummaryFrame:
    """A page of ``GET /v1/conversations`` decoded straight into a frame
    (:data:`SUMMARY_SCHEMA`): the sync's listing, where building one object
    per summary cost ten times more than the frame."""

    frame: pl.DataFrame
    total: int

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> SummaryFrame:
        rows = d["conversations"]
        if not isinstance(rows, list):
            raise TypeError("conversations must be a list")
        text_schema = {**SUMMARY_SCHEMA, "created_at": pl.String()}
        try:
            frame = pl.from_dicts(rows, schema=text_schema) if rows else pl.DataFrame(schema=text_schema)
            # A summary's unreadable date is null, not a failed page: the
            # summary then differs from the stored row, so the conversation
            # is fetched and checked whole (a bad one goes to dead_letters).
            # One such date made every incremental sync fail at the listing.
            frame = frame.with_columns(pl.col("created_at").str.to_datetime(time_zone="UTC", time_unit="us", strict=False))
        except (pl.exceptions.PolarsError, AttributeError) as exc:
            raise ValueError(f"conversation summaries do not follow the contract: {str(exc).splitlines()[0]}") from None
        if frame["id"].null_count() or (frame["id"].str.len_chars() == 0).any():
            raise ValueError("a conversation summary has no id")
        return cls(frame, int(d["total"]))


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of ``GET /v1/conversations``."""

    items: tuple[ConversationSummary, ...]
    total: int
    limit: int
    offset: int
    has_more: bool

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ConversationPage:
        items = tuple(ConversationSummary.from_api(x) for x in d["conversations"])
        total, limit, offset = int(d["total"]), int(d.get("limit", len(items))), int(d.get("offset", 0))
        has_more = d.get("has_more")
        return cls(items, total, limit, offset, bool(has_more) if has_more is not None else offset + len(items) < total)

    def __iter__(self) -> Iterator[ConversationSummary]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_polars(self) -> pl.DataFrame:
        return summaries_frame(self.items)


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    timestamp: datetime | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Message:
        role, content = d["role"], d["content"]
        if not isinstance(role, str) or not isinstance(content, str):
            raise TypeError("message role and content must be strings")
        return cls(role, content, parse_time(d.get("timestamp")))


@dataclass(frozen=True, slots=True)
class QualityMetrics:
    therapeutic_accuracy: float | None
    conversation_coherence: float | None
    emotional_authenticity: float | None
    clinical_compliance: float | None
    safety_score: float | None
    overall_quality: float | None

    @classmethod
    def from_api(cls, d: Mapping[str, Any] | None) -> QualityMetrics | None:
        if d is None:
            return None
        return cls(**{m: _float(d.get(m)) for m in QUALITY_METRICS})

    def as_dict(self) -> dict[str, float | None]:
        return {m: getattr(self, m) for m in QUALITY_METRICS}


@dataclass(frozen=True, slots=True)
class Conversation:
    """A full conversation. ``raw`` is the API object exactly as served
    (what :meth:`to_dict` returns and the store imports)."""

    id: str
    messages: tuple[Message, ...]
    quality_metrics: QualityMetrics | None
    metadata: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Conversation:
        cid = d["id"]
        if not isinstance(cid, str) or not cid:
            raise TypeError("conversation id must be a non-empty string")
        return cls(
            id=cid,
            messages=tuple(Message.from_api(m) for m in d["messages"]),
            quality_metrics=QualityMetrics.from_api(d.get("quality_metrics")),
            metadata=dict(d.get("metadata") or {}),
            raw=dict(d),
        )

    @property
    def dataset(self) -> str | None:
        return self.metadata.get("dataset")

    @property
    def tier(self) -> str | None:
        return self.metadata.get("tier")

    @property
    def created_at(self) -> datetime | None:
        return parse_time(self.metadata.get("created_at"))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)

    def messages_frame(self) -> pl.DataFrame:
        return messages_frame([self])


def messages_frame(conversations: Iterable[Conversation]) -> pl.DataFrame:
    """Messages of several conversations in the store's message layout."""
    rows = [
        {"conversation_id": c.id, "idx": i, "role": m.role, "content": m.content, "timestamp": m.timestamp}
        for c in conversations
        for i, m in enumerate(c.messages)
    ]
    return _frame(rows, MESSAGE_FRAME_SCHEMA)


def conversations_frame(conversations: Iterable[Conversation]) -> pl.DataFrame:
    """One row per conversation: id, dataset, tier, created_at, message_count and the six metrics."""
    schema: dict[str, pl.DataType] = {
        "id": pl.String(),
        "dataset": pl.String(),
        "tier": pl.String(),
        "created_at": pl.Datetime("us", "UTC"),
        "message_count": pl.Int32(),
        **{m: pl.Float64() for m in QUALITY_METRICS},
    }
    rows = []
    for c in conversations:
        metrics = c.quality_metrics.as_dict() if c.quality_metrics else dict.fromkeys(QUALITY_METRICS)
        rows.append(
            {"id": c.id, "dataset": c.dataset, "tier": c.tier, "created_at": c.created_at, "message_count": len(c.messages), **metrics}
        )
    return _frame(rows, schema)


# -- quality ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QualityOverview:
    """``GET /v1/quality/metrics``."""

    average_quality: float | None
    total_conversations: int | None
    quality_distribution: dict[str, int]
    tier_metrics: dict[str, dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> QualityOverview:
        overall = d["overall_statistics"]
        return cls(
            average_quality=_float(overall.get("average_quality")),
            total_conversations=overall.get("total_conversations"),
            quality_distribution=dict(overall.get("quality_distribution") or {}),
            tier_metrics={k: dict(v) for k, v in (d.get("tier_metrics") or {}).items()},
            raw=dict(d),
        )

    def to_polars(self) -> pl.DataFrame:
        """One row per tier: tier, average_quality, count."""
        rows = [{"tier": t, "average_quality": _float(v.get("average_quality")), "count": v.get("count")} for t, v in self.tier_metrics.items()]
        return _frame(rows, {"tier": pl.String(), "average_quality": pl.Float64(), "count": pl.Int64()})


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """``POST /v1/quality/validate``."""

    conversation_id: str | None
    metrics: QualityMetrics | None
    recommendations: tuple[str, ...]
    tier_classification: str | None
    validation_timestamp: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ValidationResult:
        return cls(
            conversation_id=d.get("conversation_id"),
            metrics=QualityMetrics.from_api(d["validation_results"]),
            recommendations=tuple(d.get("recommendations") or ()),
            tier_classification=d.get("tier_classification"),
            validation_timestamp=parse_time(d.get("validation_timestamp")),
            raw=dict(d),
        )


# -- processing jobs --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Job:
    """A processing job (submitted or polled). ``endpoint`` is the base URL
    that knows the job: follow-up calls go there, not to a failover mirror."""

    job_id: str
    status: str
    progress: float
    dataset_name: str | None
    processing_type: str | None
    submitted_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion: datetime | None
    parameters: dict[str, Any]
    results: Any
    raw: dict[str, Any] = field(repr=False, compare=False)
    endpoint: str | None = field(default=None, compare=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Job:
        return cls(
            job_id=d["job_id"],
            status=d["status"],
            progress=float(d.get("progress") or 0.0),
            dataset_name=d.get("dataset_name"),
            processing_type=d.get("processing_type"),
            submitted_at=parse_time(d.get("submitted_at")),
            started_at=parse_time(d.get("started_at")),
            completed_at=parse_time(d.get("completed_at")),
            estimated_completion=parse_time(d.get("estimated_completion")),
            parameters=dict(d.get("parameters") or {}),
            results=d.get("results"),
            raw=dict(d),
        )

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_JOB_STATES


# -- search -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SearchHit:
    conversation_id: str
    relevance_score: float | None
    snippet: str | None
    quality_score: float | None
    tier: str | None
    metadata: dict[str, Any]

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> SearchHit:
        return cls(
            conversation_id=d["conversation_id"],
            relevance_score=_float(d.get("relevance_score")),
            snippet=d.get("snippet"),
            quality_score=_float(d.get("quality_score")),
            tier=d.get("tier"),
            metadata=dict(d.get("metadata") or {}),
        )


@dataclass(frozen=True, slots=True)
class SearchResults:
    query: str
    hits: tuple[SearchHit, ...]
    total_matches: int
    search_time_ms: float | None
    filters_applied: dict[str, Any]

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> SearchResults:
        hits = tuple(SearchHit.from_api(x) for x in d["results"])
        return cls(
            query=d.get("query", ""),
            hits=hits,
            total_matches=int(d.get("total_matches", len(hits))),
            search_time_ms=_float(d.get("search_time_ms")),
            filters_applied=dict(d.get("filters_applied") or {}),
        )

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def to_polars(self) -> pl.DataFrame:
        rows = [
            {
                "conversation_id": h.conversation_id,
                "relevance_score": h.relevance_score,
                "snippet": h.snippet,
                "quality_score": h.quality_score,
                "tier": h.tier,
                "dataset": h.metadata.get("dataset"),
            }
            for h in self.hits
        ]
        return _frame(
            rows,
            {
                "conversation_id": pl.String(),
                "relevance_score": pl.Float64(),
                "snippet": pl.String(),
                "quality_score": pl.Float64(),
                "tier": pl.String(),
                "dataset": pl.String(),
            },
        )


# -- statistics, exports, health ---------------------------------------------
@dataclass(frozen=True, slots=True)
class StatisticsOverview:
    total_conversations: int | None
    total_datasets: int | None
    quality_distribution: dict[str, Any]
    processing_statistics: dict[str, Any]
    api_usage: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> StatisticsOverview:
        if not isinstance(d, Mapping):
            raise TypeError("statistics overview must be an object")
        return cls(
            total_conversations=d.get("total_conversations"),
            total_datasets=d.get("total_datasets"),
            quality_distribution=dict(d.get("quality_distribution") or {}),
            processing_statistics=dict(d.get("processing_statistics") or {}),
            api_usage=dict(d.get("api_usage") or {}),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """``POST /v1/export`` (202). ``endpoint``: the base URL that holds the file."""

    export_id: str
    dataset: str | None
    format: str
    filters: dict[str, Any]
    status: str | None
    estimated_size: Any
    download_url: str
    expires_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    endpoint: str | None = field(default=None, compare=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ExportInfo:
        return cls(
            export_id=d["export_id"],
            dataset=d.get("dataset"),
            format=d.get("format", "jsonl"),
            filters=dict(d.get("filters") or {}),
            status=d.get("status"),
            estimated_size=d.get("estimated_size"),
            download_url=d["download_url"],
            expires_at=parse_time(d.get("expires_at")),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class Health:
    status: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Health:
        return cls(status=d["status"], raw=dict(d))

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"


@dataclass(frozen=True, slots=True)
class ApiInfo:
    """``GET /``: name, version and the endpoints the server announces."""

    raw: dict[str, Any]

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> ApiInfo:
        if not isinstance(d, Mapping):
            raise TypeError("API info must be an object")
        return cls(dict(d))

    @property
    def endpoints(self) -> list[Any]:
        return list(self.raw.get("endpoints") or [])

"""Request bodies, validated strictly (a number is not a string).

Bodies are read and parsed here with orjson rather than by FastAPI, so the
answers are the contract's: 400 ``VALIDATION_ERROR`` for a body that is not
JSON at all, 422 naming the bad field (``messages[2].role``) for JSON that
does not fit the model, 413 for one above the size limit (raised while
reading). Unknown fields are ignored, as the published API does.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request

from ..schema import QUALITY_METRICS
from .envelope import VALIDATION_ERROR, ApiProblem, invalid
from .handlers import describe_errors

Tier = Literal["basic", "standard", "professional", "clinical", "research"]
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# What a caller says about a conversation it asks us to score: the published
# SDK and tests send "tier": "unknown" for one not yet classified, and any
# number as its score. Taken as information and echoed, never used.
InformationalTier = Annotated[str, Field(max_length=200)]
InformationalScore = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class MessageIn(_Strict):
    role: Literal["user", "assistant", "system"]
    content: str
    timestamp: str | None = None


class ConversationIn(_Strict):
    """A conversation to validate; ``tier`` and ``quality_score`` are the
    caller's information (see :data:`INFORMATIONAL`)."""

    id: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=10_000)]
    quality_metrics: dict[str, Unit | None] | None = None
    quality_score: InformationalScore | None = None
    tier: InformationalTier | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None

    @field_validator("quality_metrics")
    @classmethod
    def _known_metrics(cls, value: dict[str, float | None] | None) -> dict[str, float | None] | None:
        if value:
            unknown = sorted(set(value) - set(QUALITY_METRICS))
            if unknown:
                raise ValueError(f"unknown metric(s) {', '.join(unknown)}")
        return value


INFORMATIONAL = ("tier", "quality_score")


class SearchFilters(_Strict):
    tier: Tier | None = None
    min_quality: Unit | None = None
    dataset: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class SearchIn(_Strict):
    query: Annotated[str, Field(min_length=1, max_length=1000)]
    filters: SearchFilters | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 10
    offset: Annotated[int, Field(ge=0)] = 0


class SubmitIn(_Strict):
    dataset_name: Annotated[str, Field(min_length=1, max_length=200)]
    processing_type: Literal["quality_validation", "export", "analysis"]
    parameters: dict[str, Any] = Field(default_factory=dict)


class JobParameters(_Strict):
    """``parameters`` of quality_validation and analysis jobs: the ones named
    here are validated and applied; any other is kept and echoed, not
    applied (the upstream suite sends options of its own server).
    ``tier_filter`` is the upstream name of ``tier`` (one tier or several)."""

    tier: Tier | None = None
    tier_filter: Tier | list[Tier] | None = None
    min_quality: Unit | None = None


class ExportParameters(_Strict):
    """The options of an export (the form fields of POST /v1/export)."""

    format: Literal["jsonl", "csv", "parquet", "huggingface", "openai"]
    tier: Tier | None = None
    min_quality: Unit | None = None
    redact: bool = False


class ExportJobParameters(ExportParameters):
    """``parameters`` of an export job: as :class:`JobParameters`, the
    known ones applied, the others echoed."""

    tier_filter: Tier | list[Tier] | None = None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # be liberal: try to parse what was sent
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


async def json_body(request: Request) -> Any:
    if not _is_json(request.headers.get("content-type")):
        raise invalid("body", "expected JSON (Content-Type: application/json)", status=400)
    return parse_json(await request.body())


def parse_json(raw: bytes) -> Any:
    """The JSON value of a body, or the contract's 400."""
    if not raw.strip():
        raise invalid("body", "empty; expected a JSON object", status=400)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid("body", f"malformed JSON ({exc.msg} at position {exc.pos})", status=400) from None


_FORM_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def form_fields(raw: bytes) -> dict[str, str] | None:
    """``raw`` read as an url-encoded form if it is one (every field a
    ``name=value`` with a plain name), else None; empty values are left out
    as in a parsed form."""
    try:
        text = raw.decode("utf-8").strip()
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    if not pairs or not all(_FORM_FIELD.fullmatch(name) for name, _ in pairs):
        return None
    return {name: value for name, value in pairs if value != ""}


def validated(model: type[_Strict], value: Any, *, prefix: str = "") -> Any:
    """``model`` of ``value`` or a 422 naming the bad fields."""
    if not isinstance(value, dict):
        raise invalid(prefix or "body", f"expected a JSON object, got {type(value).__name__}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        # "body" first: describe_errors strips one location word, and a
        # field may itself be called "query".
        errors = [dict(e, loc=("body", *((prefix,) if prefix else ()), *e["loc"])) for e in exc.errors()]
        message, names = describe_errors(errors)
        raise ApiProblem(422, VALIDATION_ERROR, message, details=names) from None


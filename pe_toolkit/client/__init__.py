"""The Pixelated Empathy API client (``API_CONTRACT.md``), sync and async.

- :class:`Client` / :class:`AsyncClient`: every route, typed results with
  ``to_polars()``, retries with full-jitter backoff (tenacity), pacing from
  the rate-limit headers, a circuit breaker per base URL and failover
  between base URLs. One request/response core (:mod:`.core`) serves both.
- :class:`PixelatedEmpathyAPI`: the published SDK's method names returning
  plain dicts, over the same client.

Module map: ``core`` (build, send-agnostic parse, error mapping, routing),
``routes`` (the contract's routes), ``models`` (typed results), ``retry``,
``breaker``, ``pacing``, ``pagination`` (pure policies), ``flows`` (job and
export helpers), ``options`` (configuration), ``sync_client``,
``async_client``, ``facade``, ``stream`` (the mirror's update stream,
:meth:`Client.stream_updates`).
"""

from ..errors import (
    ApiError,
    ApiStatusError,
    AuthenticationError,
    CircuitOpenError,
    DeadlineExceededError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestValidationError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
)
from .async_client import AsyncClient
from .breaker import BreakerState, CircuitBreaker
from .core import BreakerPolicy, Call
from .facade import PixelatedEmpathyAPI, PixelatedEmpathyAPIError
from .models import (
    ApiInfo,
    Conversation,
    ConversationPage,
    ConversationSummary,
    Dataset,
    DatasetInfo,
    DatasetList,
    ExportInfo,
    Health,
    Job,
    Message,
    QualityMetrics,
    QualityOverview,
    SearchHit,
    SearchResults,
    StatisticsOverview,
    ValidationResult,
    conversations_frame,
    messages_frame,
    summaries_frame,
)
from .pacing import PacingPolicy
from .retry import RetryPolicy
from .stream import StreamEvent, UpdateStream
from .sync_client import Client

__all__ = [
    "ApiError",
    "ApiInfo",
    "ApiStatusError",
    "AsyncClient",
    "AuthenticationError",
    "BreakerPolicy",
    "BreakerState",
    "Call",
    "CircuitBreaker",
    "CircuitOpenError",
    "Client",
    "Conversation",
    "ConversationPage",
    "ConversationSummary",
    "Dataset",
    "DatasetInfo",
    "DatasetList",
    "DeadlineExceededError",
    "ExportInfo",
    "Health",
    "Job",
    "MalformedResponseError",
    "Message",
    "NotFoundError",
    "PacingPolicy",
    "PermissionDeniedError",
    "PixelatedEmpathyAPI",
    "PixelatedEmpathyAPIError",
    "QualityMetrics",
    "QualityOverview",
    "RateLimitError",
    "RequestValidationError",
    "ResponseTooLargeError",
    "RetryPolicy",
    "SearchHit",
    "SearchResults",
    "ServerError",
    "StatisticsOverview",
    "StreamEvent",
    "TransportError",
    "UpdateStream",
    "ValidationResult",
    "conversations_frame",
    "messages_frame",
    "summaries_frame",
]

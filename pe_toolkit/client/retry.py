"""When to repeat a request, and how long to wait first (built on tenacity).

Every request is classified by what repeating it does:

- ``idempotent``: GETs and read-only POSTs (search, validate). Retried on
  connect errors, timeouts, dropped connections, malformed bodies (not
  complete envelopes whose data breaks the contract: the same request
  gets the same answer), 429,
  500, 502, 503 and 504.
- ``safe``: repeating it is harmless but not a no-op (``POST /v1/export``
  makes a second export file; the client uses the one it gets). As
  ``idempotent`` except 500, after which the server may have done the
  work.
- ``unsafe``: ``POST /v1/processing/submit`` would queue a second job.
  Retried only when the request provably never reached the handler: the
  connection could not be made, or the gateway refused it with 429.

Waits are exponential backoff with *full jitter* (a uniform draw between 0
and ``base * 2**(attempt-1)``, capped at ``max_backoff``), which spreads
concurrent clients apart; a server hint (``Retry-After`` or
``error.retry_after``) is a floor. The attempts stop at ``max_attempts`` or
when the next wait would pass ``max_elapsed`` seconds since the first try,
whichever comes first; the last error is raised as is.

tenacity supplies the loop, the stop conditions and the jittered
exponential for the sync and the async client alike; what is ours is the
classification above and the Retry-After floor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import tenacity

from ..errors import (
    ApiError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
    TransportError,
)

log = logging.getLogger("pe_toolkit.client")

Safety = Literal["idempotent", "safe", "unsafe"]

GATEWAY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first try; ``max_elapsed`` bounds the
    whole call including waits (seconds); backoff in seconds."""

    max_attempts: int = 6
    max_elapsed: float = 60.0
    backoff_base: float = 0.5
    max_backoff: float = 30.0
    retry_after_jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_elapsed <= 0 or self.backoff_base < 0 or self.max_backoff < 0:
            raise ValueError("max_attempts >= 1, max_elapsed > 0 and non-negative backoff are required")

    @classmethod
    def from_max_retries(cls, max_retries: int, **kwargs: Any) -> RetryPolicy:
        """The published SDK's knob: retries after the first attempt."""
        return cls(max_attempts=max(0, int(max_retries)) + 1, **kwargs)


def is_retryable(exc: BaseException, safety: Safety) -> bool:
    """Whether ``exc``, raised by one attempt of a ``safety`` request, may be retried."""
    if isinstance(exc, RateLimitError):
        return True
    if isinstance(exc, TransportError):
        return safety != "unsafe" or not getattr(exc, "request_sent", True)
    if safety == "unsafe":
        return False
    if isinstance(exc, MalformedResponseError):
        # A cut-off or garbled body may come out whole next time; data that
        # breaks the contract in a complete envelope will not (core.complete
        # marks it transient=False).
        return getattr(exc, "transient", True)
    if isinstance(exc, ServerError):
        return exc.status in GATEWAY_STATUSES or (exc.status == 500 and safety == "idempotent")
    return False


class wait_backoff_or_hint(tenacity.wait.wait_base):
    """Full-jitter exponential backoff, but never less than the server's
    ``retry_after`` hint (plus a little jitter, so clients told the same
    instant do not all return at once)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._backoff = tenacity.wait_random_exponential(multiplier=policy.backoff_base, max=policy.max_backoff)
        self._jitter = tenacity.wait_random(0, policy.retry_after_jitter)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        hint = getattr(exc, "retry_after", None)
        if hint:
            return max(backoff, float(hint) + self._jitter(retry_state))
        return backoff


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
    log.info("retrying after %s (attempt %d), waiting %.2f s", exc, retry_state.attempt_number, sleep)


def retry_options(policy: RetryPolicy, safety: Safety) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying``
    (a fresh controller per call: tenacity keeps per-call state on it)."""

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, ApiError) and is_retryable(exc, safety)

    return {
        "stop": tenacity.stop_after_attempt(policy.max_attempts) | tenacity.stop_before_delay(policy.max_elapsed),
        "wait": wait_backoff_or_hint(policy),
        "retry": tenacity.retry_if_exception(retryable),
        "before_sleep": _log_retry,
        "reraise": True,
    }

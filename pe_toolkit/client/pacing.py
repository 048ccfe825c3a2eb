"""Client-side pacing from ``X-RateLimit-Limit/Remaining/Reset``.

The contract's budgets are per key per hour (research: 1,000). Running at
full speed until the server answers 429 wastes the requests that fail and
makes every concurrent worker back off at once; instead, once the remaining
budget falls to a reserve (a fraction of the limit), the pacer spaces
requests evenly over the time left until the reset, so the budget lasts
exactly to the end of the window. With nothing left it waits for the reset
(or, when that is further away than ``max_wait``, raises
:class:`~pe_toolkit.errors.RateLimitError` at once, so a sync stops with a
clear message instead of sleeping for an hour).

Written here rather than taken from a token-bucket library (pyrate-limiter,
aiolimiter): those enforce a rate *we* choose; this follows a budget the
*server* reports in every response, shared with every other client of the
same key. :func:`pacing_delay` is the whole policy, a pure function.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import RateLimitError

RESET_MARGIN = 0.1  # seconds after the reset instant, for clock granularity


def pacing_delay(now: float, remaining: float, reset: float, reserve: float, last_slot: float) -> float:
    """Seconds to wait before the next request.

    ``remaining`` requests are left until the Unix time ``reset``;
    ``last_slot`` is when the previous paced request was scheduled. Above
    ``reserve`` there is no delay; at or below it requests are spaced
    ``(reset - now) / remaining`` apart; at zero we wait for the reset.
    """
    window = reset - now
    if window <= 0 or remaining > reserve:
        return 0.0
    if remaining <= 0:
        return window + RESET_MARGIN
    spacing = window / remaining
    return max(0.0, last_slot + spacing - now)


@dataclass(frozen=True)
class PacingPolicy:
    """``reserve_fraction`` of the limit (at least ``min_reserve`` requests)
    is where pacing starts; ``max_wait`` bounds one wait; ``enabled=False``
    turns pacing off (the server's 429s are still honoured by retries)."""

    reserve_fraction: float = 0.1
    min_reserve: int = 2
    max_wait: float = 120.0
    enabled: bool = True


class RatePacer:
    """The budget of one endpoint, as last reported by its server."""

    def __init__(self, policy: PacingPolicy | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy or PacingPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self.limit: int | None = None
        self.remaining: float | None = None  # our estimate: server's figure minus what we sent since
        self.reset: float | None = None
        self._last_slot = 0.0

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take the budget from a response's headers (ignored when absent or garbled)."""
        try:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return
        with self._lock:
            if self.reset is None or reset > self.reset + 0.5:
                # A new window: the server's figure replaces our estimate.
                self.reset, self.remaining, self._last_slot = reset, float(remaining), 0.0
            elif abs(reset - self.reset) <= 0.5:
                # Same window: responses arrive out of order under concurrency;
                # the budget only shrinks, so the smaller figure is the truer one.
                self.remaining = min(self.remaining if self.remaining is not None else remaining, remaining)
            self.limit = limit

    def reserve(self) -> float:
        """Book the next request; return how long to sleep before sending it.

        Raises :class:`RateLimitError` when the wait would exceed ``max_wait``.
        """
        policy = self.policy
        if not policy.enabled:
            return 0.0
        with self._lock:
            if self.remaining is None or self.reset is None or self.limit is None:
                return 0.0
            now = self._clock()
            if now >= self.reset:
                return 0.0
            reserve = max(policy.min_reserve, policy.reserve_fraction * self.limit)
            delay = pacing_delay(now, self.remaining, self.reset, reserve, self._last_slot)
            if delay > policy.max_wait:
                raise RateLimitError(
                    f"rate-limit budget exhausted ({max(0, math.floor(self.remaining))} of {self.limit} requests "
                    f"left, window resets in {self.reset - now:.0f} s); try again later",
                    status=429,
                    code="RATE_LIMIT_EXCEEDED",
                    retry_after=delay,
                )
            if delay > 0 or self.remaining <= reserve:
                self._last_slot = now + delay
            self.remaining -= 1
            return delay

    def __repr__(self) -> str:
        return f"<RatePacer remaining={self.remaining} limit={self.limit} reset={self.reset}>"

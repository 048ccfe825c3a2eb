"""Per-key request budgets in fixed windows (the contract's requests per hour).

Windows are aligned to multiples of the window length since the epoch, so
``X-RateLimit-Reset`` is the same instant for every key and a client can
plan around it; the price of fixed windows is that a key may spend two
budgets in quick succession across a boundary, which the contract's hourly
quotas accept. Written here rather than taken from a library: it is a dict
of counters behind a lock, and the ones on PyPI (slowapi, limits) bring
storage backends and decorators this single-process mirror does not need.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int | None  # None: no limit (and no budget headers)
    remaining: int | None
    reset: int | None  # Unix seconds when the window ends
    retry_after: int  # seconds to wait when not allowed (0 when allowed)

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.limit is None:
            return []
        found = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]
        if not self.allowed:
            found.append((b"retry-after", str(self.retry_after).encode()))
        return found


UNLIMITED = RateDecision(True, None, None, None, 0)


class RateLimiter:
    """``limit`` requests per bucket per ``window`` seconds; thread-safe.
    ``limit=None``: every request is allowed and no budget is announced."""

    _PURGE_AT = 10_000  # buckets kept before stale ones are dropped

    def __init__(self, limit: int | None, window: float = 3600.0, *, clock: Callable[[], float] = time.time) -> None:
        if (limit is not None and limit < 1) or window <= 0:
            raise ValueError("limit must be >= 1 (or None) and window > 0")
        self.limit, self.window, self._clock = limit, float(window), clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}  # bucket -> (window index, used)

    def _window(self, now: float) -> tuple[int, int]:
        index = int(now // self.window)
        return index, math.ceil((index + 1) * self.window)

    def hit(self, bucket: str) -> RateDecision:
        """Spend one request from ``bucket`` if its budget allows."""
        if self.limit is None:
            return UNLIMITED
        now = self._clock()
        index, reset = self._window(now)
        with self._lock:
            current, used = self._counts.get(bucket, (index, 0))
            if current != index:
                used = 0
            if used >= self.limit:
                self._counts[bucket] = (index, used)
                return RateDecision(False, self.limit, 0, reset, max(1, math.ceil(reset - now)))
            used += 1
            self._counts[bucket] = (index, used)
            if len(self._counts) > self._PURGE_AT:
                self._purge(index)
        return RateDecision(True, self.limit, self.limit - used, reset, 0)

    def peek(self, bucket: str) -> RateDecision:
        """The bucket's state without spending anything."""
        if self.limit is None:
            return UNLIMITED
        now = self._clock()
        index, reset = self._window(now)
        with self._lock:
            current, used = self._counts.get(bucket, (index, 0))
        if current != index:
            used = 0
        return RateDecision(used < self.limit, self.limit, max(0, self.limit - used), reset, 0)

    def _purge(self, index: int) -> None:
        for bucket in [b for b, (i, _) in self._counts.items() if i != index]:
            del self._counts[bucket]

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

The server's figures cannot count the requests it has not seen yet: the
pacer keeps the number booked and not yet finished, and takes the others
off each figure (erring low by at most the requests in flight). Without
that, requests sleeping out a pacing delay past a window's end landed in
the next window unseen by its first figures, and a 40-per-2-s mirror
answered 429 at that window's end.

Written here rather than taken from a token-bucket library (pyrate-limiter,
aiolimiter): those enforce a rate *we* choose; this follows a budget the
*server* reports in every response, shared with every other client of the
same key. :func:`pacing_delay` is the whole policy, a pure function.

A long wait is never silent: :class:`WaitNotice` says once, at WARNING on
the ``pe_toolkit.client`` logger and on any progress bar attached, how long
a request waits, why (pacing, or the server's ``Retry-After``) and the
setting that changes it. Without it a paced pull looks like a hang.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import RateLimitError

log = logging.getLogger("pe_toolkit.client")

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
    turns pacing off (the server's 429s are still honoured by retries).
    A wait of ``notice_after`` seconds or more (pacing or a server's
    ``Retry-After``) is announced once (:class:`WaitNotice`)."""

    reserve_fraction: float = 0.1
    min_reserve: int = 2
    max_wait: float = 120.0
    enabled: bool = True
    notice_after: float = 5.0


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
        # Requests booked and not yet finished (:meth:`release`), the one
        # being observed included. A server's figure cannot count those it
        # has not seen yet: above all the ones sleeping out a pacing delay,
        # which may land in the next window (a 40-per-2-s mirror answered 429
        # when three such sleepers spent the end of the window after them).
        self._pending = 0

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take the budget from a response's headers (ignored when absent or
        garbled): the server's figure less the other requests still pending,
        which it may not have seen (one it has seen is then counted twice:
        the estimate errs low by at most the requests in flight)."""
        try:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return
        with self._lock:
            left = float(remaining - max(0, self._pending - 1))
            if self.reset is None or reset > self.reset + 0.5:
                # A new window: the server's figure replaces our estimate.
                self.reset, self.remaining, self._last_slot = reset, left, 0.0
            elif abs(reset - self.reset) <= 0.5:
                # Same window: responses arrive out of order under concurrency;
                # the budget only shrinks, so the smaller figure is the truer one.
                self.remaining = min(self.remaining if self.remaining is not None else left, left)
            self.limit = limit

    def release(self) -> None:
        """A request booked by :meth:`reserve` is finished (answered, failed
        or never sent)."""
        with self._lock:
            self._pending = max(0, self._pending - 1)

    def reserve(self) -> float:
        """Book the next request; return how long to sleep before sending it.

        Raises :class:`RateLimitError` when the wait would exceed ``max_wait``.
        """
        with self._lock:
            delay = self._book()
            self._pending += 1
            return delay

    def _book(self) -> float:
        """The delay of the next request (called under the lock)."""
        policy = self.policy
        if not policy.enabled:
            return 0.0
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


def _clock_time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%H:%M:%S UTC")


# The attribute of a log record that is a WaitNotice announcement.
WAIT_NOTICE = "wait_notice"


def is_wait_notice(record: logging.LogRecord) -> bool:
    """Whether ``record`` is a :class:`WaitNotice` announcement."""
    return bool(getattr(record, WAIT_NOTICE, False))


class WaitNotice:
    """Announces long waits of one client, once per cause.

    Pacing is announced once per endpoint and rate-limit window (the
    spacing then stays much the same until the reset); a retry wait once
    until a request succeeds again. Attached progress bars
    (:meth:`shown_on`) get a short postfix with each announcement.
    Thread-safe: fetches run on worker threads.

    The full text is a WARNING of ``pe_toolkit.client`` whose record carries
    ``wait_notice=True`` (:data:`WAIT_NOTICE`), so a program with its own
    output contract (the CLI: one line for a failure) can keep these to
    its progress bars with a logging filter (:func:`is_wait_notice`).
    """

    def __init__(self, after: float = 5.0) -> None:
        self.after = after
        self._lock = threading.Lock()
        self._said: set[tuple[Any, ...]] = set()
        self._retrying = False
        self._bars: list[Any] = []

    def pacing(self, url: str, delay: float, pacer: RatePacer) -> None:
        """A request to ``url`` waits ``delay`` s for ``pacer``'s budget."""
        if delay < self.after:
            return
        limit, remaining, reset = pacer.limit, pacer.remaining, pacer.reset
        if not self._first(("pace", url, reset)):
            return
        at = _clock_time(reset) if reset is not None else "the reset"
        budget = "The budget is the server's (for the mirror: pe-toolkit serve --rate-limit, PE_RATE_LIMIT)"
        if remaining is not None and remaining <= 0:
            text = (
                f"waiting {delay:.0f} s before the next request to {url}: this key's {limit} requests of the "
                f"rate-limit window are spent; the window resets at {at}. {budget}; "
                "Client(pacing=PacingPolicy(max_wait=...)) sets how long the client waits before raising RateLimitError"
            )
            short = f"waiting {delay:.0f} s: rate limit spent"
        else:
            left = max(0, math.floor(remaining or 0))
            text = (
                f"waiting {delay:.0f} s before the next request to {url}, and about as long before each one "
                f"until the rate-limit window resets at {at}: {left} of {limit} requests are left, and the client "
                f"spaces them to last the window instead of running into 429s. {budget}; "
                "Client(pacing=PacingPolicy(reserve_fraction=..., enabled=False)) changes the pacing"
            )
            short = f"paced: {delay:.0f} s/request until {at}"
        self._say(text, short)

    def retry(self, delay: float, exc: BaseException | None, attempt: int) -> None:
        """A call waits ``delay`` s before its attempt ``attempt + 1`` after ``exc``."""
        if delay < self.after:
            return
        hint = getattr(exc, "retry_after", None)
        with self._lock:
            if self._retrying:
                return
            self._retrying = True
        if hint:
            why = f"the server asked to retry after {float(hint):.0f} s (Retry-After)"
            short = f"waiting {delay:.0f} s: server asked (Retry-After)"
        else:
            why = "backing off after repeated failures"
            short = f"waiting {delay:.0f} s: backing off"
        self._say(
            f"waiting {delay:.0f} s before attempt {attempt + 1}: {why}; the last answer: {exc}. "
            "Client(retry=RetryPolicy(max_elapsed=..., max_attempts=...)) bounds how long a call keeps retrying",
            short,
        )

    def succeeded(self) -> None:
        """A request got its answer: the next long retry wait is news again."""
        self._retrying = False

    @contextlib.contextmanager
    def shown_on(self, bar: Any) -> Iterator[Any]:
        """Show announcements as ``bar``'s postfix while the block runs."""
        with self._lock:
            self._bars.append(bar)
        try:
            yield bar
        finally:
            with self._lock:
                self._bars.remove(bar)

    def _first(self, key: tuple[Any, ...]) -> bool:
        with self._lock:
            if key in self._said:
                return False
            self._said.add(key)
            return True

    def _say(self, text: str, short: str) -> None:
        log.warning("%s", text, extra={WAIT_NOTICE: True})
        with self._lock:
            bars = list(self._bars)
        for bar in bars:
            bar.set_postfix_str(short, refresh=False)

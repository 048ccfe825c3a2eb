"""A circuit breaker per API endpoint: stop hammering a server that is down.

States: *closed* (calls pass; consecutive failures are counted), *open*
(calls fail fast with :class:`~pe_toolkit.errors.CircuitOpenError` until
``recovery_timeout`` has passed), *half-open* (exactly one call, the probe,
is let through; its outcome closes or re-opens the circuit).

Written here rather than taken from pybreaker/aiobreaker: those are either
sync-only or async-only, count exceptions inside a wrapped call (we count
outcomes the shared request core classifies, from both clients), and none
gives the "which endpoint may I use, and when is the next probe" answer the
failover router needs. The whole machine is a few fields behind a lock.

*Isolated failures.* A request that keeps failing while other requests to
the same endpoint succeed is that resource's trouble, not the server's (one
conversation the server cannot render). Each failure names its request
(``key``); once a success has come after a key's first failure, later
failures of that key are not counted. Without this, two such ids retried
six times each at the end of a sync were twelve "consecutive" failures: the
circuit opened, the run failed as if the API were down, and every re-run
ended the same way. A server that is down fails new requests too, which
still count.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from enum import Enum

# Failing request keys remembered per breaker (oldest forgotten first).
_KEYS_KEPT = 4096


class BreakerState(str, Enum):  # noqa: UP042 - StrEnum would change str() of a state (its value, not its name)
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Thread-safe; also safe from asyncio (no await while holding the lock).

    ``failure_threshold`` consecutive failures open the circuit. After
    ``recovery_timeout`` seconds :meth:`allow` lets one probe through; while
    it is in flight every other caller is refused.
    """

    def __init__(
        self,
        failure_threshold: int = 10,
        recovery_timeout: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or recovery_timeout < 0:
            raise ValueError("failure_threshold must be >= 1 and recovery_timeout >= 0")
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        # key -> whether a success came after its first failure (isolated).
        self._failed_keys: OrderedDict[Hashable, bool] = OrderedDict()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a probe will be allowed (0 when calls pass now)."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                return max(0.0, self._opened_at + self.recovery_timeout - self._clock())
            if self._state is BreakerState.HALF_OPEN and self._probe_in_flight:
                return self.recovery_timeout
            return 0.0

    def allow(self) -> bool:
        """May a call go out now? In half-open state, True claims the probe:
        the caller must report its outcome (or :meth:`release` it)."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if self._clock() - self._opened_at < self.recovery_timeout:
                    return False
                self._state = BreakerState.HALF_OPEN
                self._probe_in_flight = False
            if self._probe_in_flight:
                return False
            self._probe_in_flight = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probe_in_flight = False
            for key in self._failed_keys:
                self._failed_keys[key] = True

    def record_failure(self, key: Hashable | None = None) -> None:
        """One failure; ``key`` names the request (see *Isolated failures*
        in the module docstring). A failed half-open probe always re-opens."""
        with self._lock:
            if key is not None:
                if self._failed_keys.get(key) and self._state is not BreakerState.HALF_OPEN:
                    return  # it fails alone: others succeeded since its first failure
                if key not in self._failed_keys:
                    self._failed_keys[key] = False
                    if len(self._failed_keys) > _KEYS_KEPT:
                        self._failed_keys.popitem(last=False)
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._open()

    def trip(self) -> None:
        """Open at once (a failed health check: skip this endpoint)."""
        with self._lock:
            self._failures = max(self._failures, self.failure_threshold)
            self._open()

    def release(self) -> None:
        """Give back a claimed probe whose outcome is unknown (the call was
        cancelled), so the next caller can probe instead."""
        with self._lock:
            self._probe_in_flight = False

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._probe_in_flight = False

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._state.value}, {self._failures} consecutive failure(s)>"

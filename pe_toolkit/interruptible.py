"""Waits that Ctrl-C can end.

polars installs its own SIGINT handler with ``SA_RESTART``: under it the
kernel resumes an untimed lock wait after Python's handler has run, so a
main thread blocked in ``queue.get()`` slept through Ctrl-C until the next
item came (after fetches sleeping out a 30 s Retry-After, 30 s later). A
timed wait is not resumed: waiting in short timed steps lets the
KeyboardInterrupt through at once.
"""

from __future__ import annotations

import queue
import time
from typing import Protocol, TypeVar

T = TypeVar("T", covariant=True)

STEP = 0.1  # seconds between checks for a pending signal


class _Gettable(Protocol[T]):
    def get(self, block: bool = ..., timeout: float | None = ...) -> T: ...


def get(q: _Gettable[T], timeout: float | None = None) -> T:
    """``q.get(timeout=timeout)``, in timed steps (a ``queue.Queue`` or
    ``SimpleQueue``): raises ``queue.Empty`` once ``timeout`` seconds have
    passed with nothing (never, without one)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = STEP if deadline is None else min(STEP, max(0.0, deadline - time.monotonic()))
        try:
            return q.get(timeout=step)
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            continue

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
from typing import Protocol, TypeVar

T = TypeVar("T", covariant=True)

STEP = 0.1  # seconds between checks for a pending signal


class _Gettable(Protocol[T]):
    def get(self, block: bool = ..., timeout: float | None = ...) -> T: ...


def get(q: _Gettable[T]) -> T:
    """``q.get()``, in timed steps (a ``queue.Queue`` or ``SimpleQueue``)."""
    while True:
        try:
            return q.get(timeout=STEP)
        except queue.Empty:
            continue

"""Request-time analysis under a deadline, in worker processes.

``POST /v1/quality/validate`` and the WebSocket's ``analyze_conversation``
/ ``get_quality_suggestions`` score text a client sent. A thread running
a scan cannot be stopped, so a client that leaves would not free it: the
scans run in a small process pool instead, and a request that outlives
``ServerConfig.analysis_deadline`` answers 504 at once while its worker
processes are terminated (the pool is replaced; requests that were running
in it at that moment answer 503 and may be retried). The pool is created
on first use, its workers import the analyzers before the first request's
clock starts, and it is shut down with the server.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import quality
from .envelope import PROCESSING_ERROR, ApiProblem

log = logging.getLogger("pe_toolkit.server")

# How long new workers may take to import the analyzers (not counted
# against a request's deadline; a cold import under load takes seconds).
STARTUP_BOUND = 120.0


_WARM_UP = {
    "id": "warm_up",
    "messages": [
        {"role": "user", "content": "My name is Sam and I have not been sleeping."},
        {"role": "assistant", "content": "That sounds hard, Sam. What has changed lately?"},
    ],
}


def _warm() -> None:
    # The analyzers load their lexicons and gazetteers on first use (about
    # 2 s): a throwaway conversation pays that before any request's clock.
    quality.validate(_WARM_UP)


def _validate_with_messages(conversation: dict[str, Any]) -> dict[str, Any]:
    return quality.validate(conversation, include_messages=True)


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "validate": quality.validate,
    "validate_messages": _validate_with_messages,
    "suggestions": quality.suggestions,
}


def _run(task: str, conversation: dict[str, Any]) -> tuple[bool, Any]:
    # Expected failures travel back as plain values: ApiProblem's keyword
    # arguments do not survive pickling as an exception.
    from ..errors import PeToolkitError
    from .handlers import translate

    try:
        return True, TASKS[task](conversation)
    except (ApiProblem, PeToolkitError) as exc:
        problem = exc if isinstance(exc, ApiProblem) else translate(exc)
        return False, (problem.status, problem.code, problem.message, problem.details, problem.headers, problem.extra)


class AnalysisPool:
    """Worker processes for request-time analysis (see the module doc)."""

    def __init__(self, deadline: float, workers: int) -> None:
        self.deadline = deadline
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[None] | None = None
        self._closed = False

    def _current(self) -> tuple[ProcessPoolExecutor, Future[None]]:
        with self._lock:
            if self._closed:
                raise ApiProblem(503, PROCESSING_ERROR, "the server is shutting down")
            if self._pool is None or self._ready is None:
                # forkserver, not fork: the server process runs threads
                # (uvicorn, jobs, the watcher) whose locks a fork would copy.
                context = multiprocessing.get_context("forkserver")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
                self._ready = self._pool.submit(_warm)
            return self._pool, self._ready

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Terminate ``pool``'s workers (a scan past its deadline cannot be
        interrupted otherwise) so the next request gets a fresh pool."""
        with self._lock:
            if self._pool is pool:
                self._pool, self._ready = None, None
        # ProcessPoolExecutor has no public way to stop a running task
        # before Python 3.14 (terminate_workers); its process table is it.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, task: str, conversation: dict[str, Any]) -> dict[str, Any]:
        pool, ready = self._current()
        try:
            await asyncio.wait_for(asyncio.wrap_future(ready), STARTUP_BOUND)
            future = pool.submit(_run, task, conversation)
        except (BrokenProcessPool, RuntimeError, TimeoutError) as exc:
            self._discard(pool)
            raise ApiProblem(503, PROCESSING_ERROR, f"the analysis workers could not start ({type(exc).__name__}); retry shortly",
                             headers={"Retry-After": "5"}) from None  # fmt: skip
        try:
            done, value = await asyncio.wait_for(asyncio.wrap_future(future), self.deadline)
        except TimeoutError:
            log.warning("request-time analysis exceeded its %g s deadline; restarting the analysis workers", self.deadline)
            self._discard(pool)
            raise ApiProblem(
                504,
                PROCESSING_ERROR,
                f"analysis did not finish within the server's {self.deadline:g} s deadline "
                "(send a shorter conversation; the operator sets --analysis-deadline)",
                details="analysis_deadline",
            ) from None
        except BrokenProcessPool:
            self._discard(pool)
            raise ApiProblem(503, PROCESSING_ERROR, "the analysis worker was restarted while running this request; retry",
                             headers={"Retry-After": "1"}) from None  # fmt: skip
        if not done:
            status, code, message, details, headers, extra = value
            raise ApiProblem(status, code, message, details=details, headers=headers, extra=extra)
        result: dict[str, Any] = value
        return result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool, self._ready = self._pool, None, None
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)

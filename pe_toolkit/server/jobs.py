"""Processing jobs: queued, run in background threads, persisted.

Every job is a row in ``server_jobs`` from the moment it is submitted, so
its record survives a restart. While it runs, its state lives in memory
(what ``GET /v1/processing/jobs/{id}`` reads) and is written back at most
once a second, and at every change of status. When the server starts, jobs
left ``running`` by a server that died are marked ``failed`` with the
reason (they may have half-finished; resubmitting is the caller's choice),
and jobs still ``queued`` are run.

A job type is a function ``run(ctx) -> results`` (see ``tasks.py``); it
reports progress with ``ctx.progress(fraction)``, which also raises
:class:`JobCancelled` when the job was cancelled or the server is stopping.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ..errors import PeToolkitError
from .db import ServerDB
from .envelope import iso
from .hub import EventHub

log = logging.getLogger("pe_toolkit.server")

PROCESSING_TYPES = ("quality_validation", "export", "analysis")
ACTIVE = ("queued", "running")
INTERRUPTED = "interrupted: the server stopped while this job was running; submit it again"
# Seconds per conversation before this server has timed a job of the type
# (refined by every completed job; only feeds estimated_completion).
PRIOR_SECONDS_PER_CONVERSATION = {"quality_validation": 0.002, "analysis": 0.002, "export": 0.00005}
PERSIST_EVERY = 1.0  # seconds between writes of a running job's progress
PUBLISH_STEP = 1.0  # progress points between job.progress events

_COLUMNS = (
    "job_id, processing_type, dataset_name, parameters, status, progress, submitted_at, "
    "started_at, completed_at, estimated_completion, results, error"
)


class JobCancelled(BaseException):
    """Raised inside a job by ``ctx.progress`` once it should stop.

    A BaseException, as KeyboardInterrupt is: the analysis reports progress
    through the event bus, whose handlers are isolated with ``except
    Exception``, so an Exception raised there was logged and swallowed and a
    cancelled analysis job ran to its end."""


def new_job_id(prefix: str = "job") -> str:
    return f"{prefix}_{secrets.token_urlsafe(18)}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Job:
    job_id: str
    processing_type: str
    dataset_name: str
    parameters: dict[str, Any]
    status: str = "queued"
    progress: float = 0.0
    submitted_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    estimated_completion: datetime | None = None
    results: dict[str, Any] | None = None
    error: str | None = None
    size: int = 0  # conversations the job covers (for estimates)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_api(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "dataset_name": self.dataset_name,
            "processing_type": self.processing_type,
            "status": self.status,
            "progress": round(self.progress, 1),
            "parameters": self.parameters,
            "submitted_at": iso(self.submitted_at),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "estimated_completion": iso(self.estimated_completion),
            "results": self.results,
            "error": self.error,
        }

    def row(self) -> list[Any]:
        return [
            self.job_id,
            self.processing_type,
            self.dataset_name,
            orjson.dumps(self.parameters).decode(),
            self.status,
            self.progress,
            self.submitted_at,
            self.started_at,
            self.completed_at,
            self.estimated_completion,
            orjson.dumps(self.results).decode() if self.results is not None else None,
            self.error,
        ]

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Job:
        (job_id, kind, dataset, params, status, progress, submitted, started, completed, eta, results, error) = row
        return cls(
            job_id,
            kind,
            dataset,
            orjson.loads(params) if params else {},
            status,
            float(progress or 0.0),
            submitted,
            started,
            completed,
            eta,
            orjson.loads(results) if results else None,
            error,
        )


class JobContext:
    """What a running job sees."""

    def __init__(self, job: Job, manager: JobManager) -> None:
        self.job, self._manager = job, manager
        self.parameters = job.parameters
        self.dataset_name = job.dataset_name
        self.db = manager.db
        self.store_path = manager.db.path

    def check(self) -> None:
        if self.job.cancel.is_set():
            raise JobCancelled

    def progress(self, fraction: float) -> None:
        """Report progress (0..1, never backwards) and stop if cancelled."""
        self.check()
        self._manager._progress(self.job, max(0.0, min(1.0, fraction)) * 100.0)


Runner = Callable[[JobContext], dict[str, Any]]


class JobManager:
    def __init__(
        self,
        db: ServerDB,
        hub: EventHub,
        runners: dict[str, Runner],
        *,
        workers: int = 1,
    ) -> None:
        self.db, self.hub, self.runners = db, hub, runners
        self.workers = workers
        self._active: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._rates: dict[str, float] = dict(PRIOR_SECONDS_PER_CONVERSATION)
        self._last_persist: dict[str, float] = {}
        self._last_published: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Resolve what a previous server left behind; queue its queued jobs."""
        with self.db.write() as con:
            failed = con.execute(
                "UPDATE server_jobs SET status = 'failed', error = ?, completed_at = now() WHERE status = 'running'",
                [INTERRUPTED],
            ).fetchall()[0][0]
            con.execute(
                "UPDATE server_exports SET status = 'failed', error = ?, completed_at = now() "
                "WHERE status = 'processing' AND export_id IN (SELECT job_id FROM server_jobs WHERE status = 'failed')",
                [INTERRUPTED],
            )
        queued = [Job.from_row(r) for r in self.db.rows(
            f"SELECT {_COLUMNS} FROM server_jobs WHERE status = 'queued' ORDER BY submitted_at"
        )]
        for job in queued:
            with self._lock:
                self._active[job.job_id] = job
            self._queue.put(job.job_id)
        return {"failed": int(failed), "requeued": len(queued)}

    def start(self) -> None:
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"pe-server-job-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop workers; running jobs end at their next progress report."""
        self._stopping.set()
        with self._lock:
            for job in self._active.values():
                if job.status == "running":
                    job.cancel.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- API -------------------------------------------------------------------
    def submit(
        self,
        processing_type: str,
        dataset_name: str,
        parameters: dict[str, Any],
        *,
        size: int = 0,
        job_id: str | None = None,
    ) -> Job:
        if processing_type not in self.runners:
            raise ValueError(f"unknown processing type {processing_type}")
        job = Job(job_id or new_job_id(), processing_type, dataset_name, parameters, size=size)
        job.estimated_completion = job.submitted_at + timedelta(seconds=self._queue_seconds() + self._estimate(job))
        with self.db.write() as con:
            con.execute(f"INSERT INTO server_jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", job.row())
        with self._lock:
            self._active[job.job_id] = job
        self._queue.put(job.job_id)
        return job

    def active(self, job_id: str) -> Job | None:
        """The job if it is queued or running in this process (no query)."""
        with self._lock:
            return self._active.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._active.get(job_id)
        if job is not None:
            return job
        row = self.db.one(f"SELECT {_COLUMNS} FROM server_jobs WHERE job_id = ?", [job_id])
        return Job.from_row(row) if row else None

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job; finished jobs are returned as they are."""
        with self._lock:
            job = self._active.get(job_id)
            if job is not None:
                job.cancel.set()
                if job.status == "queued":
                    self._finish(job, "cancelled", error="cancelled before it started")
        return job if job is not None else self.get(job_id)

    def counts(self) -> dict[str, int]:
        found = {status: 0 for status in ("queued", "running", "completed", "failed", "cancelled")}
        # Every change of status is written at once, so the table is current.
        for status, n in self.db.rows("SELECT status, count(*) FROM server_jobs GROUP BY status"):
            found[status] = int(n)
        return found

    def running(self) -> int:
        with self._lock:
            return sum(1 for job in self._active.values() if job.status == "running")

    # -- internals -------------------------------------------------------------
    def _estimate(self, job: Job) -> float:
        return max(1.0, job.size * self._rates.get(job.processing_type, 0.001))

    def _queue_seconds(self) -> float:
        with self._lock:
            waiting = [j for j in self._active.values() if j.status in ACTIVE]
        total = 0.0
        for job in waiting:
            total += self._estimate(job) * (1.0 - job.progress / 100.0)
        return total / max(1, self.workers)

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._stopping.is_set():
                return
            with self._lock:
                job = self._active.get(job_id)
            if job is None or job.status != "queued":
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        runner = self.runners[job.processing_type]
        with self._lock:  # cancel() takes it too: a job is cancelled or started, never both
            if job.cancel.is_set():
                return
            # Recorded before anyone can see it running: a crash from here
            # on leaves a "running" row, which the next start marks failed.
            started = replace(job, status="running", started_at=_now())
            self._persist(started)
            job.status, job.started_at = started.status, started.started_at
        self._publish(job, "job.progress", force=True)
        began = time.perf_counter()
        try:
            results = runner(JobContext(job, self))
        except JobCancelled:
            if self._stopping.is_set():
                self._finish(job, "failed", error=INTERRUPTED)
            else:
                self._finish(job, "cancelled", error="cancelled while running")
            return
        except PeToolkitError as exc:
            self._finish(job, "failed", error=str(exc))
            return
        except Exception as exc:  # a job must end visibly, whatever broke
            log.exception("job %s (%s) failed", job.job_id, job.processing_type)
            self._finish(job, "failed", error=f"internal error: {type(exc).__name__}")
            return
        elapsed = time.perf_counter() - began
        if job.size:
            old = self._rates.get(job.processing_type, elapsed / job.size)
            self._rates[job.processing_type] = 0.5 * old + 0.5 * elapsed / job.size
        job.progress = 100.0
        self._finish(job, "completed", results=results)

    def _progress(self, job: Job, percent: float) -> None:
        if percent <= job.progress:
            return
        job.progress = percent
        if job.started_at is not None and percent > 0:
            elapsed = (_now() - job.started_at).total_seconds()
            job.estimated_completion = _now() + timedelta(seconds=elapsed * (100.0 - percent) / percent)
        now = time.monotonic()
        if now - self._last_persist.get(job.job_id, 0.0) >= PERSIST_EVERY:
            self._last_persist[job.job_id] = now
            self._persist(job)
        self._publish(job, "job.progress")

    def _finish(self, job: Job, status: str, *, results: dict[str, Any] | None = None, error: str | None = None) -> None:
        job.status, job.completed_at = status, _now()
        job.estimated_completion = job.completed_at
        job.results, job.error = results, error
        self._persist(job)
        with self._lock:
            self._active.pop(job.job_id, None)
        self._last_persist.pop(job.job_id, None)
        self._publish(job, f"job.{status}", force=True)
        self._last_published.pop(job.job_id, None)

    def _persist(self, job: Job) -> None:
        row = job.row()
        try:
            with self.db.write() as con:
                con.execute(
                    "UPDATE server_jobs SET status = ?, progress = ?, started_at = ?, completed_at = ?, "
                    "estimated_completion = ?, results = ?, error = ? WHERE job_id = ?",
                    [*row[4:6], *row[7:], job.job_id],
                )
        except PeToolkitError:
            log.exception("could not record job %s", job.job_id)

    def _publish(self, job: Job, topic: str, *, force: bool = False) -> None:
        # By progress made, not by time: every subscriber sees the same,
        # bounded sequence (at most ~100 events per job).
        if not force and job.progress - self._last_published.get(job.job_id, -PUBLISH_STEP) < PUBLISH_STEP:
            return
        self._last_published[job.job_id] = job.progress
        payload = {
            "job_id": job.job_id,
            "processing_type": job.processing_type,
            "dataset_name": job.dataset_name,
            "status": job.status,
            "progress": round(job.progress, 1),
        }
        if job.status == "completed":
            payload["results"] = job.results
        if job.error:
            payload["error"] = job.error
        self.hub.publish(topic, payload)

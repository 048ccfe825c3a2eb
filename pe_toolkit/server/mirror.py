"""``Mirror``: the server's parts (store access, keys, budgets, snapshot,
search index, watcher, jobs, exports), created once per app and started
and stopped with its lifespan.

The routes reach it through ``app.state.mirror``; it lives apart from the
app factory (:mod:`.app`) so that the routes, which the factory imports,
depend on this type and not on the factory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from ..errors import PeToolkitError, StoreLockedError
from ..events import bus as default_bus
from ..store import ConversationFilter, Store
from . import quality, tasks
from .analysis_pool import AnalysisPool
from .config import ServerConfig
from .db import ServerDB
from .exports import Exports
from .gateway import KeyRing, Usage
from .hub import EventHub
from .jobs import JobManager
from .objects import ObjectSnapshot
from .ratelimit import RateLimiter
from .search import SearchIndex
from .watcher import StoreWatcher

log = logging.getLogger("pe_toolkit.server")

SWEEP_EVERY = 600.0


class Mirror:
    """Everything the routes use, created once per app."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.started = time.monotonic()
        assert config.state_dir is not None
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Opened now (applying migration 0003, the server's tables, if
        # needed): a locked or unreadable cache fails before anything listens.
        self.db = ServerDB(Store(config.db_path))
        self.keys = KeyRing(config.keys)
        self.limiter = RateLimiter(config.rate_limit, config.rate_window)
        self.usage = Usage()
        self.hub = EventHub()
        self.snapshot = ObjectSnapshot(config.objects_dir)
        self.search = SearchIndex(self.db, self.snapshot)
        self.watcher = StoreWatcher(
            self.db,
            self.snapshot,
            self.hub,
            poll_interval=config.poll_interval,
            bus=default_bus,
            after_change=self.search.refresh,
        )
        self.analysis = AnalysisPool(config.analysis_deadline, config.analysis_workers)
        self.jobs = JobManager(self.db, self.hub, {}, workers=config.job_workers)
        self.exports = Exports(self.db, self.jobs, self.hub, config)
        self.jobs.runners.update(
            {
                "export": self.exports.run,
                "quality_validation": tasks.run_quality_validation,
                "analysis": tasks.run_analysis,
            }
        )
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.recovered: dict[str, int] = {}
        self._closed = False

    @property
    def store(self) -> Store:
        """The open store (see ServerDB.store)."""
        return self.db.store

    def count(self, filter: ConversationFilter) -> int:
        where, params = filter.where("c")
        return int(self.db.scalar(f"SELECT count(*) FROM conversations c WHERE {where}", params) or 0)

    def require_analysis(self) -> None:
        quality.analysis()

    def health(self) -> dict[str, Any]:
        try:
            # Not waiting for a file another process holds, and not counted
            # as use: a monitor polling /health must not keep the file.
            with self.db.lease(wait=0, touch=False):
                self.db.scalar("SELECT 1")
            store = "ok"
        except StoreLockedError:
            # Another process (an import) holds the cache for a moment: the
            # server is well, queries wait for the file or answer 503.
            store = "busy"
        except PeToolkitError as exc:
            store = f"failed: {exc}"
        return {
            "store": store,
            "snapshot": "ready" if self.snapshot.ready else ("failed" if self.watcher.error else "building"),
            "search_index": "ready" if self.search.ready.is_set() else "building",
            "jobs_running": self.jobs.running(),
        }

    # -- lifecycle -------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.hub.attach(loop)
        self.recovered = self.jobs.recover()
        if self.recovered.get("failed"):
            log.warning("%d job(s) were interrupted by the last shutdown and are marked failed", self.recovered["failed"])
        self.exports.sweep()
        self.jobs.start()
        self.watcher.start()
        self._sweeper = threading.Thread(target=self._sweep, name="pe-server-sweeper", daemon=True)
        self._sweeper.start()

    def _sweep(self) -> None:
        while not self._stop.wait(SWEEP_EVERY):
            try:
                self.exports.sweep()
            except Exception:  # try again next time
                log.exception("sweeping expired exports failed")

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.hub.close()
        self.analysis.close()
        self.jobs.stop()
        self.watcher.stop()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        self.db.close()

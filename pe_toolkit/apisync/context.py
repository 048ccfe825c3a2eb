"""The types one sync run shares between its entry point (:mod:`.sync`)
and its two paths (:mod:`.bulk`, :mod:`.incremental`): the
report it returns and the context each path works on. Kept apart from
``sync`` so the paths depend on these types, not on the module that
calls them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..client import Client
from ..events import EventBus
from ..progress import progress_bar
from ..report_table import HtmlReport
from ..store import Store
from . import state as sync_state
from .writer import BatchWriter


@dataclass
class SyncReport(HtmlReport):
    """What one sync did. ``status``: ``completed``; ``partial`` (some
    fetches kept failing: they stay queued for the next sync); ``sample``
    (no API configured: the bundled sample was imported)."""

    source: str
    mode: str = ""
    reason: str = ""
    status: str = "running"
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    resolved: int = 0
    # Bulk: export lines holding an id an earlier line held (the id is stored
    # and counted once, from its last valid line). Like ``gaps``, the whole
    # export's, also in a resumed run (whose inserted/updated/unchanged
    # count what that run wrote).
    repeated: int = 0
    listed: int = 0
    planned: dict[str, int] = field(default_factory=dict)
    fetched: int = 0
    vanished: int = 0
    failed: int = 0
    gaps: int = 0
    drift: bool = False
    resumed: bool = False
    export_id: str | None = None
    seconds: float = 0.0
    failed_ids: list[str] = field(default_factory=list, repr=False)
    errors: list[str] = field(default_factory=list, repr=False)

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def as_event(self) -> dict[str, Any]:
        skip = {"failed_ids", "errors"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __str__(self) -> str:
        text = f"{self.source}: {self.mode}"
        if self.reason:
            text += f" ({self.reason})"
        text += f": {self.inserted:,} new, {self.updated:,} updated, {self.unchanged:,} unchanged"
        if self.invalid:
            text += f", {self.invalid:,} invalid (in dead_letters)"
        if self.resolved:
            text += f", {self.resolved:,} dead letters resolved"
        if self.repeated:
            text += f", {self.repeated:,} repeated lines in the export (the last valid copy kept)"
        if self.vanished:
            text += f", {self.vanished:,} gone upstream"
        if self.failed:
            text += f", {self.failed:,} still failing (queued for the next sync)"
        if self.gaps:
            text += f", {self.gaps:,} listed by the server but never seen (corpus changing during the pull)"
        if self.resumed:
            text += ", resumed"
        return text + f" in {self.seconds:.1f} s"


@dataclass
class SyncContext:
    """Everything the two paths share for one run."""

    store: Store
    client: Client
    source: str
    scope: str
    dataset: str | None
    tier: str | None
    min_quality: float | None
    ttl: timedelta
    concurrency: int | None
    batch_size: int
    page_size: int
    chunk_bytes: int | None
    progress: bool
    events: EventBus
    run_id: str
    report: SyncReport
    writer: BatchWriter
    work_dir: Path
    total: int | None = None

    def expected_total(self) -> int:
        """How many conversations the server lists for the filter (one request, cached)."""
        if self.total is None:
            from ..client import routes

            self.total = self.client.request(
                routes.list_conversations(dataset=self.dataset, tier=self.tier, min_quality=self.min_quality, limit=1, offset=0)
            ).total
        return self.total

    def local_filter(self) -> tuple[str, list[Any]]:
        """The sync's filter as a condition over the cache's ``conversations c``."""
        from ..store.filters import ConversationFilter

        return ConversationFilter(dataset=self.dataset, tier=self.tier, min_quality=self.min_quality).where("c")

    def checkpoint(self, mode: str, phase: str, state: dict[str, Any]) -> None:
        sync_state.save_checkpoint(self.store, self.source, self.scope, self.run_id, mode, phase, state)

    @contextlib.contextmanager
    def bar(self, total: float | None, phase: str, unit: str) -> Iterator[Any]:
        with progress_bar(total, f"sync {phase}", unit, enabled=self.progress) as bar:
            yield bar

"""Notice changes to the store and pass them on.

Changes come from inside the server's process (its jobs; an import or sync
in a notebook that also serves) or, when the server lets go of the file
between units of work (``ServerDB.release_when_idle``, on for
``pe-toolkit serve``), from another process: an import run beside it.

- In-process writers publish ``conversation.*`` on
  :data:`pe_toolkit.events.bus`, which wakes the watcher at once.
- While the server holds the file, a cheap poll of ``count(*)`` and
  ``max(fetched_at)`` every ``poll_interval`` seconds catches writes that
  announce nothing, and a full comparison every ``FULL_CHECK_EVERY`` polls
  the rest (e.g. two writers whose transactions committed out of order).
- While the file is let go, each poll compares only the size and time of
  the file and its log with what they were when the server closed it (no
  DuckDB, so the other process is never kept out); when they moved, the
  watcher opens the file (not waiting if it is still held) and makes the
  full comparison. The poll also lets go of the file once it is idle.

On a change the watcher compares the store's ``(id, content_hash)`` pairs
with what it last saw (one anti-join in DuckDB), then updates the object
snapshot, refreshes the search index and announces
``conversation.created/updated/deleted`` to live subscribers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa

from ..errors import StoreLockedError
from ..events import Event, EventBus
from .db import ServerDB, file_signature
from .hub import EventHub, id_payload
from .objects import ObjectSnapshot

log = logging.getLogger("pe_toolkit.server")

FULL_CHECK_EVERY = 60
REBUILD_SHARE = 0.25  # overlay larger than this share of the base: rebuild


class StoreWatcher:
    def __init__(
        self,
        db: ServerDB,
        snapshot: ObjectSnapshot,
        hub: EventHub,
        *,
        poll_interval: float,
        bus: EventBus | None = None,
        after_change: Callable[[], object] | None = None,
    ) -> None:
        self.db, self.snapshot, self.hub = db, snapshot, hub
        self.poll_interval = poll_interval
        self.after_change = after_change
        self._bus = bus
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._known: pa.Table | None = None
        self._marker: tuple[Any, ...] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.ready = threading.Event()
        self.error: str | None = None
        self.changes_seen = 0

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        if self._bus is not None:
            self._unsubscribe = self._bus.subscribe("conversation.*", self._on_bus)
        self._thread = threading.Thread(target=self._run, name="pe-server-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def poke(self) -> None:
        """Check the store now rather than at the next poll."""
        self._wake.set()

    def _on_bus(self, event: Event) -> None:
        self._wake.set()

    # -- the loop ------------------------------------------------------------
    def _run(self) -> None:
        try:
            with self.db.lease():
                self._known = self.snapshot.load_or_build(self.db.cursor())
                self._marker = self._read_marker()
        except Exception as exc:  # reported on /health, GETs fall back to the store
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("building the conversation snapshot failed")
        self.ready.set()
        if self.after_change is not None:
            self._safe(self.after_change)
        polls = 0
        pending = False  # a change seen while another process held the file
        while not self._stop.is_set():
            woke = self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            polls += 1
            try:
                self.db.release_if_idle()
                if self.db.is_open:
                    with self.db.lease(touch=False):
                        marker = self._read_marker()
                        if woke or pending or marker != self._marker or polls % FULL_CHECK_EVERY == 0 or self._known is None:
                            self._marker = marker
                            pending = False
                            self.check()
                elif woke or pending or file_signature(self.db.path) != self.db.released_signature:
                    pending = True
                    with self.db.lease(wait=0, touch=False):
                        self._marker = self._read_marker()
                        self.check()
                    pending = False
            except StoreLockedError:
                pending = True  # another process is writing: look again at the next poll
            except Exception:  # keep watching; the next poll retries
                log.exception("checking the store for changes failed")

    def _safe(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:  # logged: a failed refresh must not stop the watcher
            log.exception("refresh after a store change failed")

    def _read_marker(self) -> tuple[Any, ...]:
        return tuple(self.db.rows("SELECT count(*), max(fetched_at) FROM conversations")[0])

    def check(self) -> dict[str, list[str]]:
        """Compare the store with what was last seen and pass changes on."""
        with self.db.lease():
            return self._check()

    def _check(self) -> dict[str, list[str]]:
        con = self.db.cursor()
        if self._known is None:
            self._known = self.snapshot.load_or_build(con)
            return {"created": [], "updated": [], "deleted": []}
        con.register("_pe_known", self._known)
        try:
            changed = con.execute(
                "SELECT c.id, k.id IS NULL AS is_new FROM conversations c LEFT JOIN _pe_known k ON k.id = c.id "
                "WHERE k.id IS NULL OR k.content_hash <> c.content_hash ORDER BY c.id"
            ).fetchall()
            deleted = [r[0] for r in con.execute(
                "SELECT k.id FROM _pe_known k ANTI JOIN conversations c ON c.id = k.id ORDER BY k.id"
            ).fetchall()]
        finally:
            con.unregister("_pe_known")
        created = [cid for cid, is_new in changed if is_new]
        updated = [cid for cid, is_new in changed if not is_new]
        if not changed and not deleted:
            return {"created": [], "updated": [], "deleted": []}
        self.changes_seen += len(changed) + len(deleted)
        touched = created + updated
        if len(touched) + len(deleted) + self.snapshot.overlay_size > REBUILD_SHARE * max(self.snapshot.base_size, 1000):
            self._known = self.snapshot.load_or_build(con)
        else:
            fresh = self.snapshot.fetch(con, touched) if touched else {}
            self.snapshot.apply({cid: text for cid, (_, text) in fresh.items()}, deleted)
            self._known = self._merge_known(fresh, deleted)
        for topic, ids in (("conversation.created", created), ("conversation.updated", updated), ("conversation.deleted", deleted)):
            if ids:
                self.hub.publish(topic, id_payload(ids))
        if self.after_change is not None:
            self._safe(self.after_change)
        return {"created": created, "updated": updated, "deleted": deleted}

    def _merge_known(self, fresh: dict[str, tuple[str, bytes]], deleted: list[str]) -> pa.Table:
        assert self._known is not None
        gone = list(fresh) + deleted
        known = pl.from_arrow(self._known)
        assert isinstance(known, pl.DataFrame)
        kept = known.filter(~pl.col("id").is_in(gone))
        added = pl.DataFrame(
            {"id": list(fresh), "content_hash": [digest for digest, _ in fresh.values()]},
            schema={"id": pl.String, "content_hash": pl.String},
        )
        return pl.concat([kept, added]).to_arrow()

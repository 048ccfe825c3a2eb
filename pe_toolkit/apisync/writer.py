"""Write a batch of API conversation objects: validate, upsert, set aside.

Both sync paths end here, and so does the file importer's rule set: the
raw JSON lines go through :func:`pe_toolkit.store.normalize.normalize_lines`
(format ``api``), the valid ones into :meth:`Store.upsert` (one
transaction), the invalid ones into ``dead_letters`` keyed by conversation
id (so the next sync fetches them again), and the ids into ``sync_seen``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from ..events import EventBus
from ..store import Store, UpsertResult
from ..store.loaded import LoadedIds
from ..store.normalize import normalize_lines, parse_connection
from . import state as sync_state


@dataclass
class SyncCounts(UpsertResult):
    """An :class:`UpsertResult` plus what the sync set aside or resolved."""

    invalid: int = 0
    resolved: int = 0
    dead_letter_ids: list[str] = field(default_factory=list, repr=False)


def id_of(raw: str) -> str | None:
    """The ``id`` of a raw JSON record, when it has a usable one (error path only)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value.strip() else None


class BatchWriter:
    """Writes batches for one sync run (owns a DuckDB connection for parsing)."""

    def __init__(self, store: Store, source: str, *, dataset: str, events: EventBus, resolve: bool) -> None:
        self.store, self.source, self.dataset, self.events = store, source, dataset, events
        self.resolve = resolve  # open dead letters of this source exist: resolve the ids that now load
        self.counts = SyncCounts()
        self._con = parse_connection()

    def close(self) -> None:
        self._con.close()

    def normalize(self, lines: pa.Table) -> tuple[pa.Table, list[tuple[int, str, str]]]:
        """(valid conversations, [(line_no, reason, raw)]) of ``(line_no, raw)`` lines."""
        return normalize_lines(self._con, lines, "api", dataset=self.dataset, source=self.source)

    def write(
        self,
        good: pa.Table,
        errors: list[tuple[int, str, str]],
        locator: Callable[[int, str], str],
        *,
        extra_bad: Sequence[tuple[str, str, str | None]] = (),
        loaded: LoadedIds | None = None,
    ) -> UpsertResult:
        """Upsert ``good``; record ``errors`` (and ``extra_bad`` as
        ``(locator, reason, payload)``) as dead letters. ``loaded``: the ids
        written earlier in the same load, which are not counted again (a
        later copy that changes one is still announced as updated); the
        lines of ``errors`` are counted there as held by the export."""
        dead: list[tuple[str, str, str, str | None]] = [(self.source, locator(line, raw), reason, raw) for line, reason, raw in errors]
        dead += [(self.source, loc, reason, payload) for loc, reason, payload in extra_bad]
        if dead:
            self.store.add_dead_letters(dead)
            self.counts.invalid += len(dead)
            self.counts.dead_letter_ids += [d[1] for d in dead]
        if loaded is not None:
            # Held by the export, though not loaded: not a gap (error path only).
            loaded.add_rejected(errors)
        result = self.store.upsert(good) if good.num_rows else UpsertResult()
        column = good.column("id")
        ids = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if loaded is not None and good.num_rows:
            result = loaded.settle(ids, result)
        self.counts.add(result, keep_ids=False)
        if good.num_rows:
            sync_state.mark_seen(self.store, self.source, ids)
            if self.resolve:
                before = sync_state.open_dead_letters(self.store, self.source)
                self.store.resolve_dead_letters(self.source, ids.to_pylist())
                self.counts.resolved += before - sync_state.open_dead_letters(self.store, self.source)
        if result.created_ids:
            self.events.publish("conversation.created", ids=result.created_ids, source=self.source)
        if result.updated_ids:
            self.events.publish("conversation.updated", ids=result.updated_ids, source=self.source)
        return result

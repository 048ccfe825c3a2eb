"""Writing batches of conversations into the store, for every importer.

Each batch is written in one transaction; a bad record stops the import
with ``where:line: reason`` before its batch is written, or, with
``skip_invalid``, goes to ``dead_letters`` while the rest is imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from ..errors import PeToolkitError, RecordError, run_error
from ..events import EventBus
from ..report_table import HtmlReport
from ..store import Store, UpsertResult
from ..store.loaded import LoadedIds
from .prefetch import prefetch

Batch = tuple[pa.Table, list[tuple[int, str, str]]]


@dataclass
class ImportReport(UpsertResult, HtmlReport):
    """An :class:`UpsertResult` plus what was set aside and how columns were mapped."""

    path: str = ""
    format: str = ""
    invalid: int = 0
    mapping: list[str] = field(default_factory=list)  # one line per column/field: what went where

    def __str__(self) -> str:
        text = (
            f"{self.path} ({self.format}): {self.inserted:,} new, {self.updated:,} updated, "
            f"{self.unchanged:,} unchanged"
        )
        if self.invalid:
            text += f", {self.invalid:,} invalid (in dead_letters)"
        if self.repeated:
            text += (f"; {self.repeated:,} row(s) repeated another row's id in the import and were stored once (the last copy) "
                     "(without an id column the id is the content's hash: identical conversations are one)")  # fmt: skip
        return text


def write_batches(store: Store, batches: Iterable[Batch], *, where: str, source: str, report: ImportReport,
                  skip_invalid: bool, events: EventBus) -> None:  # fmt: skip
    """Write every batch as one run of ``store`` (see the module docstring)."""
    # One unit of work: a store opened with hold=False keeps its file from the
    # first batch to the last, then lets other processes in.
    with store.session():
        _write_batches(store, batches, where=where, source=source, report=report, skip_invalid=skip_invalid, events=events)


def _write_batches(store: Store, batches: Iterable[Batch], *, where: str, source: str, report: ImportReport,
                   skip_invalid: bool, events: EventBus) -> None:  # fmt: skip
    run_id = store.start_run("import", source)
    try:
        with (
            store.bulk_writes(),
            contextlib.closing(prefetch(iter(batches))) as prefetched,
            contextlib.closing(LoadedIds()) as loaded,
        ):
            try:
                for good, errors in prefetched:
                    if errors and not skip_invalid:
                        line, reason, _ = errors[0]
                        more = f" (and {len(errors) - 1} more in this batch)" if len(errors) > 1 else ""
                        raise RecordError(where, line, reason + more)
                    if errors:
                        store.add_dead_letters([(source, str(line), reason, raw) for line, reason, raw in errors])
                        report.invalid += len(errors)
                    result = store.upsert(good)
                    if good.num_rows:
                        # An id a batch before this one wrote is a repeat
                        # within the import, as one twice in a batch is
                        # (the store keeps the last copy either way), not a
                        # second update: the counts do not depend on where
                        # the batches happen to split the file.
                        result = loaded.settle(_ids(good), result)
                    report.add(result, keep_ids=False)
                    _announce(events, result, source)
            finally:
                # The whole import's (settle leaves repeats to this), the
                # batches before a failure too.
                report.repeated += loaded.repeated()
        _resolve_fixed(store, source, run_id)
    except BaseException as exc:
        error = run_error(exc)
        with contextlib.suppress(Exception):
            store.finish_run(run_id, report, invalid=report.invalid, error=error)
        if isinstance(exc, PeToolkitError):
            _note_committed(exc, report)
        raise
    store.finish_run(run_id, report, invalid=report.invalid)
    events.publish("import.completed", path=where, inserted=report.inserted, updated=report.updated, unchanged=report.unchanged, invalid=report.invalid)


def _ids(good: pa.Table) -> pa.Array:
    column = good.column("id")
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _note_committed(exc: PeToolkitError, report: ImportReport) -> None:
    """Say what the batches before the failure committed: they stay, and a
    re-run is safe because unchanged conversations (same content hash) are
    skipped. A note (``__notes__``), so the error keeps its type and the CLI
    shows it on the same line."""
    done = report.inserted + report.updated + report.unchanged
    if done:
        exc.add_note(
            f"{done:,} conversation(s) before it are already in the cache ({report.inserted:,} new, "
            f"{report.updated:,} updated); importing the file again after fixing it is safe (unchanged ones are skipped)"
        )


def _announce(events: EventBus, result: UpsertResult, source: str) -> None:
    if result.created_ids:
        events.publish("conversation.created", ids=result.created_ids, source=source)
    if result.updated_ids:
        events.publish("conversation.updated", ids=result.updated_ids, source=source)


def _resolve_fixed(store: Store, source: str, run_id: str) -> None:
    """Dead letters of this source that this complete run did not report again
    were fixed: mark them resolved."""
    with store.transaction() as con:
        con.execute(
            "UPDATE dead_letters SET resolved_at = now() WHERE source = ? AND resolved_at IS NULL "
            "AND last_seen < (SELECT started_at FROM ingest_runs WHERE run_id = ?)",
            [source, run_id],
        )


"""Bulk sync: one export job, one streamed download, loaded in batches.

The only practical path for large pulls (a research key's 1,000 requests
an hour against 2.59 M conversations). Phases, each checkpointed:

1. ``download``: ``POST /v1/export`` (jsonl: the API's conversation
   objects), then the file is streamed to the sync's work folder beside the
   cache (``.part`` until complete; a broken transfer resumes by Range, on
   condition (If-Range) that the export is still the file it began). An
   export the server no longer knows (expired, or the server lost it) or
   whose job failed there (``EXPORT_ERROR``) is requested again, and is
   never resumed by a later run. The file must be whole JSON lines (a body
   cut short with a matching Content-Length, or an error page in its
   place, is downloaded again) and hold as many lines as the server lists
   conversations for the filter (else one fresh download).
2. ``load``: the file is read in chunks of whole lines (bounded memory),
   each chunk validated by the importer's normalizer on a background thread
   while the previous one is merged by id and content hash
   (``Store.upsert``); invalid records go to ``dead_letters``. An id on
   several lines is stored from its last line and counted once, against
   the cache as it was before the load (:mod:`pe_toolkit.store.loaded`). The
   checkpoint records the last line merged, so a resumed load skips what
   was committed. The conversations the server lists beyond the distinct
   ids the file held are reported as gaps (an id repeated in place of
   another hides a gap from a count of lines), and the lines that repeated
   an id as ``repeated``; a resumed load reads the ids of the lines it
   skips as it skips them, so both count the whole export, as an
   uninterrupted load does.
3. ``fetching``: the ``unlisted`` conversations (synced from this source,
   filed under the filter in the cache, not in the export) are fetched one
   by one through the incremental path's queue (:func:`._plan_unlisted`);
   none after a short export, whose missing conversations the next incremental
   sync settles.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..client.models import ExportInfo
from ..errors import MalformedResponseError, NotFoundError, ServerError
from ..ingest.prefetch import prefetch
from ..ingest.reader import DEFAULT_CHUNK_BYTES, read_line_chunks
from ..store.loaded import LoadedIds
from . import incremental as sync_incremental, state as sync_state
from .writer import id_of

if TYPE_CHECKING:
    from .context import SyncContext

log = logging.getLogger("pe_toolkit.sync")

MAX_EXPORTS = 3  # new export requests (after an expired export or a short file)
MAX_DOWNLOADS = 5  # downloads of one export that arrive damaged


def run_bulk(ctx: SyncContext, checkpoint: sync_state.Checkpoint | None) -> None:
    state: dict[str, Any] = dict(checkpoint.state) if checkpoint and checkpoint.mode == "bulk" else {}
    phase = checkpoint.phase if checkpoint and state else "download"
    if state:
        ctx.report.resumed = True
    else:
        # Before anything is written: every conversation the export loads is
        # marked seen after this moment, which is how the unlisted ones are
        # told apart (state.plan_unlisted).
        state["since"] = str(ctx.store.scalar("SELECT now()::VARCHAR"))
    if phase != "fetching":
        path = _download_export(ctx, state, phase)
        held, state["repeated"] = _load(ctx, path, state)
        _record_gaps(ctx, state, held)
        _plan_unlisted(ctx, state)  # checkpointed as "fetching" before the file goes
        sync_state.discard(path)
    else:
        sync_state.discard(sync_state.export_file(ctx.work_dir, state["export_id"]))  # a crash may have left it
        ctx.report.planned = dict(state.get("planned", {}))
    # The whole export's, the lines merged before a resume too (kept in the
    # checkpoint for a run resumed in the fetching phase); the writer's
    # per-write counts leave repeats to this (LoadedIds.settle).
    ctx.writer.counts.repeated += int(state.get("repeated", 0))
    if ctx.report.planned:
        sync_incremental.fetch_pending(ctx)


def _download_export(ctx: SyncContext, state: dict[str, Any], phase: str) -> Path:
    """Phase 1: request the export (again when the server lost it), download
    and verify it; returns the file. ``state`` is updated in place."""
    short_retried = False
    path = sync_state.export_file(ctx.work_dir, "")
    for attempt in range(MAX_EXPORTS):
        if "export_id" not in state:
            expected = ctx.expected_total()
            info = ctx.client.start_export(dataset=ctx.dataset, format="jsonl", tier=ctx.tier, min_quality=ctx.min_quality)
            kept = {"since": state["since"]} if "since" in state else {}
            state.clear()
            state.update(kept, export_id=info.export_id, download_url=info.download_url, endpoint=info.endpoint, expected=expected)
            phase = "download"
            ctx.checkpoint("bulk", phase, state)
        ctx.report.export_id = state["export_id"]
        path = sync_state.export_file(ctx.work_dir, state["export_id"])
        if phase == "download" or not path.is_file():
            try:
                lines = _download_verified(ctx, state, path)
            except (NotFoundError, ServerError) as exc:
                if isinstance(exc, ServerError) and exc.code != "EXPORT_ERROR":
                    raise
                # Gone (expired, lost) or failed on the server: this export
                # will never download, so no run may resume it. Kept in the
                # checkpoint, every later run failed the same way until it
                # expired, even once the server was well again.
                what = "is gone from the server" if isinstance(exc, NotFoundError) else "failed on the server"
                sync_state.discard(path)
                del state["export_id"]
                # Saved at once: if asking for the next export fails too
                # (a quota, the network), the next run must not resume this one.
                ctx.checkpoint("bulk", "download", state)
                if attempt + 1 < MAX_EXPORTS:
                    log.warning("export %s %s; requesting a new one", ctx.report.export_id, what)
                    continue
                raise
            expected = int(state.get("expected") or 0)
            if lines < expected and not short_retried and attempt + 1 < MAX_EXPORTS:
                # Complete JSON lines, but fewer than the server lists: a cut
                # that landed on a line end, or the corpus grew meanwhile.
                # One fresh download tells the two apart; on the last
                # attempt there is none left, so the file is loaded with its
                # gaps, as a second short download is. Lines, not distinct
                # ids as the gaps count: a download of the same export can
                # only bring back lines the transfer lost (the client checks
                # a resumed range's start, so it adds none), never an id a
                # repeat displaced in the server's file; and counting ids
                # here parses every line once more before the load, on every
                # bulk sync (a 278 MB file of 100,000 conversations: 2.2-3.3 s
                # to count its ids, 0.5-0.6 s to count its lines; 2 shared
                # cores). An export whose repeats hide a cut as large as
                # themselves (two faults at once) is loaded with its gaps.
                short_retried = True
                log.warning("export %s has %d lines, the server lists %d conversations; downloading again", state["export_id"], lines, expected)
                sync_state.discard(path)
                continue
            # The gaps are counted after the load, by distinct id (_record_gaps).
            phase = "load"
            state["lines_done"] = 0
            ctx.checkpoint("bulk", phase, state)
        break
    return path


def _record_gaps(ctx: SyncContext, state: dict[str, Any], held: int) -> None:
    """The conversations the server lists beyond the ``held`` distinct ones
    the export held are gaps. Counted by id after the load, not by line at
    the download: an export repeating ids in place of others had as many
    lines as listed and passed as complete (gaps 0, and the cached ones it
    lacked planned as unlisted, one request each)."""
    expected = int(state.get("expected") or 0)
    ctx.report.gaps = state["gaps"] = max(0, expected - held)
    # As a listing's: a dead letter for doctor until a sync settles.
    sync_state.record_gaps(ctx.store, ctx.source, ctx.scope, ctx.report.gaps, "the export held fewer distinct conversations")


def _plan_unlisted(ctx: SyncContext, state: dict[str, Any]) -> None:
    """Phase 3 planned: the conversations cached from this source under the
    filter that the export did not hold (their tier, dataset or quality
    changed upstream, or they were deleted) are fetched one by one, as the
    incremental sync's ``unlisted`` are. The export cannot say where they
    went; without this, the cache kept their old values and counted them in
    a scope they had left."""
    since = state.get("since")
    if not since or state.get("gaps"):
        # A checkpoint written before bulk syncs kept the start time: what
        # the interrupted run loaded cannot be told apart. A short export:
        # the lines it lacks cannot be told from conversations that moved,
        # and each would cost a request (an export capped at 1 M of 2.6 M
        # conversations: 1.6 M requests, days of rate budget). The next
        # incremental sync plans these from its listing instead.
        return
    planned = sync_state.plan_unlisted(ctx.store, ctx.source, ctx.scope, since, ctx.local_filter())
    ctx.report.planned = planned
    state["planned"] = planned
    ctx.checkpoint("bulk", "fetching", state)


def _download_verified(ctx: SyncContext, state: dict[str, Any], path: Path) -> int:
    """Download the export until its file is whole JSON lines; returns the
    number of lines. A body cut short with a matching Content-Length, or an
    error page served in its place, passes HTTP's own checks: this is the
    check that catches them."""
    problem = ""
    export = _export_of(state)
    ctx.events.publish("sync.progress", source=ctx.source, phase="export", done=0, total=None, export_id=state["export_id"])
    ctx.client.wait_for_export(export, progress=ctx.progress)
    for _ in range(MAX_DOWNLOADS):
        ctx.events.publish("sync.progress", source=ctx.source, phase="download", done=0, total=None, export_id=state["export_id"])
        ctx.client.download_export(export, path, progress=ctx.progress)
        lines, problem = _inspect(path)
        if not problem:
            return lines
        log.warning("export %s arrived damaged (%s); downloading again", state["export_id"], problem)
        sync_state.discard(path)
    raise MalformedResponseError(f"export {state['export_id']} kept arriving damaged: {problem}")


def _inspect(path: Path) -> tuple[int, str]:
    """(line count, problem or ''): the file must be JSON objects, one per
    line, ending with a newline."""
    size = path.stat().st_size
    if size == 0:
        return 0, ""
    with path.open("rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        fh.seek(-1, 2)
        last = fh.read(1)
        if not head.startswith(b"{"):
            return 0, f"does not start with a JSON object: {head[:20]!r}"
        if last != b"\n":
            return 0, "ends in the middle of a line (truncated)"
        fh.seek(0)
        lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 22), b""))
    return lines, ""


def _export_of(state: dict[str, Any]) -> ExportInfo:
    return ExportInfo(
        export_id=state["export_id"],
        dataset=None,
        format="jsonl",
        filters={},
        status=None,
        estimated_size=None,
        download_url=state["download_url"],
        expires_at=None,
        raw={},
        endpoint=state.get("endpoint"),
    )


def _last_line(chunk: Any) -> int:
    lines = chunk.lines
    last = int(lines.column("line_no")[-1].as_py()) if lines.num_rows else 0
    return max([last, *(b[0] for b in chunk.bad_lines)])


class _Skipped(NamedTuple):
    """A chunk an earlier process merged (a resumed load), as the load's
    background thread hands it over: its lines only, not validated."""

    raw: Any  # pa.Array of the chunk's lines
    bad_lines: list[tuple[int, str, str]]  # not UTF-8 (error path only)
    position: int


def _load(ctx: SyncContext, path: Path, state: dict[str, Any]) -> tuple[int, int]:
    """Phase 2; returns how many distinct conversations the file held
    (:meth:`LoadedIds.distinct`) and how many of its lines repeated an id
    (:meth:`LoadedIds.repeated`), counting those merged before a resume."""
    writer = ctx.writer
    chunk_bytes = ctx.chunk_bytes or DEFAULT_CHUNK_BYTES
    export_id = state["export_id"]
    done = int(state.get("lines_done", 0))
    if done:
        ctx.report.resumed = True

    def normalized() -> Iterator[Any]:
        # On the background thread. Chunk boundaries are deterministic for a
        # file and chunk size, so a resumed load skips the whole chunks an
        # earlier process merged, without validating them. Their lines still
        # go to the consumer, whose LoadedIds (one DuckDB connection, used by
        # that thread only) counts their ids: without them a copy after the
        # resume point counted as a conversation of its own, and the ids
        # before it as none. The file is read once (the ids were counted in
        # a pass of their own over the skipped part, which read it twice).
        for chunk in read_line_chunks(path, chunk_bytes):
            last = _last_line(chunk)
            if last <= done:
                yield _Skipped(chunk.lines.column("raw").combine_chunks(), chunk.bad_lines, chunk.position)
                continue
            good, errors = writer.normalize(chunk.lines)
            yield good, sorted(chunk.bad_lines + errors), last, chunk.position

    def locator(line: int, raw: str) -> str:
        return id_of(raw) or f"{export_id}:line {line}"

    size = path.stat().st_size
    ctx.events.publish("sync.progress", source=ctx.source, phase="load", done=0, total=size)
    with (
        ctx.store.bulk_writes(),
        ctx.bar(size, "load", "B") as bar,
        contextlib.closing(prefetch(normalized())) as batches,
        contextlib.closing(LoadedIds()) as loaded,
    ):
        for item in batches:
            if isinstance(item, _Skipped):
                loaded.add_lines(item.raw)
                loaded.add_rejected(item.bad_lines)
                bar.update(item.position - bar.n)
                continue
            good, errors, last, position = item
            writer.write(good, errors, locator, loaded=loaded)
            state["lines_done"] = last
            ctx.checkpoint("bulk", "load", state)
            bar.update(position - bar.n)
            ctx.events.publish("sync.progress", source=ctx.source, phase="load", done=position, total=size)
        return loaded.distinct(), loaded.repeated()



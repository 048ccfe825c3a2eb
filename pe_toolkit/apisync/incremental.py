"""Incremental sync: list summaries, fetch only what is new, changed or stale.

Phases, each checkpointed:

1. ``listing``: every page of ``GET /v1/conversations`` for the filter goes
   into ``sync_listing`` (distinct ids; keyset pages where the server
   offers them, offset pages reconciled by id elsewhere, then a closing
   pass; see :mod:`pe_toolkit.client.pagination`). The pager's position is
   saved after each page; what the listing cannot account for is counted
   in ``gaps`` and left as a dead letter ``listing:<scope>``.
2. ``fetching``: ``sync_pending`` gets the ids whose summary differs from
   the stored row, that are missing, older than the cache TTL for this
   source, or open dead letters; they are fetched ``concurrency`` at a
   time in batches, each batch validated and merged in one transaction,
   then removed from the queue (a batch is also written after
   ``FLUSH_SECONDS``, and whatever was fetched is written when the run is
   interrupted or fails). A conversation synced from this source that the
   cache still files under the filter but the listing no longer shows is
   fetched too (``unlisted``: its tier, dataset or quality changed
   upstream, so its copy is out of date). A conversation that vanished
   (404) stays in the cache but is no longer counted as synced from this
   source, so it is not asked for again; one whose fetch kept failing stays queued for
   the next sync (the run is reported ``partial``). The run stops at once
   when the circuit breaker opens, the rate budget is exhausted or the key
   is refused: every further request would fail the same way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl
import pyarrow as pa

from ..client import routes
from ..client.models import SummaryFrame
from ..client.pagination import Paginator, listing_call
from ..errors import (
    ApiError,
    AuthenticationError,
    CircuitOpenError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from ..ingest.prefetch import Idle, prefetch
from . import state as sync_state

if TYPE_CHECKING:
    from .context import SyncContext

log = logging.getLogger("pe_toolkit.apisync")

FATAL = (CircuitOpenError, RateLimitError, AuthenticationError, PermissionDeniedError)


def list_all(ctx: SyncContext, state: dict[str, Any] | None) -> None:
    """Phase 1 (resumable from ``state['pager']``). Keyset pages where the
    server offers them, offsets reconciled by id elsewhere, and a closing
    pass over the listing (:mod:`pe_toolkit.client.pagination`); what it
    still cannot account for is reported in ``gaps`` and as a dead letter."""
    # The ids listed so far, to keep only new ones from each page.
    seen = set(sync_state.listed_ids(ctx.store, ctx.source, ctx.scope))
    if state and "pager" in state:
        pager = Paginator.restore(state["pager"], seen)
        ctx.report.resumed = True
    else:
        pager = Paginator(page_size=ctx.page_size, seen=seen)
    base = routes.list_conversations(dataset=ctx.dataset, tier=ctx.tier, min_quality=ctx.min_quality)
    summaries = base.decoded(SummaryFrame.from_api)
    with ctx.bar(None, "list", "conv") as bar, ctx.client.waits.shown_on(bar):
        while (req := pager.next_request()) is not None:
            listed = ctx.client.request(listing_call(summaries, req))
            fresh = pager.take(listed)
            if any(fresh):
                rows = listed.data.frame.filter(pl.Series(fresh, dtype=pl.Boolean))
                sync_state.add_listing(ctx.store, ctx.source, ctx.scope, rows.to_arrow())
            bar.total = listed.total
            bar.update(max(0, len(pager.seen) - bar.n))
            ctx.checkpoint("incremental", "listing", {"pager": pager.checkpoint()})
            ctx.events.publish("sync.progress", source=ctx.source, phase="list", done=len(pager.seen), total=listed.total)
    ctx.report.listed = len(pager.seen)
    ctx.report.gaps = pager.gaps
    ctx.report.drift = pager.drift_seen
    sync_state.record_gaps(ctx.store, ctx.source, ctx.scope, pager.gaps, "the corpus kept changing during the listing")


def plan(ctx: SyncContext) -> dict[str, int]:
    planned = sync_state.plan_fetches(ctx.store, ctx.source, ctx.scope, ctx.ttl, ctx.local_filter())
    ctx.report.planned = planned
    ctx.checkpoint("incremental", "fetching", {"planned": planned, "listed": ctx.report.listed, "gaps": ctx.report.gaps})
    return planned


def fetch_pending(ctx: SyncContext) -> None:
    """Phase 2. Returns normally when the queue is empty or only failures
    remain; raises the first fatal error after writing what was fetched."""
    ids = sync_state.pending_ids(ctx.store, ctx.source, ctx.scope)
    with ctx.bar(len(ids), "fetch", "conv") as bar, ctx.client.waits.shown_on(bar):
        failed = _fetch_round(ctx, ids, bar)
    if failed:
        # One more round for ids whose every retry failed: trouble that
        # lasted seconds may be over by now.
        failed = _fetch_round(ctx, failed, None)
    ctx.report.failed = len(failed)
    ctx.report.failed_ids = failed


def _results(ctx: SyncContext, ids: list[str], cancel: threading.Event) -> Iterator[tuple[str, Any]]:
    """One continuous stream of fetch results; a fatal error ends it, and
    so does setting ``cancel`` (the waits of the fetches end at once)."""
    results = ctx.client.fetch_each(ids, concurrency=ctx.concurrency, raw=True, cancel=cancel)
    try:
        for item in results:
            yield item
            if isinstance(item[1], FATAL):
                return
    finally:
        results.close()  # cancels what is still queued


# A partial batch is also written once it is this old (seconds): at a slow
# pace (a rate-limited key) a batch of 1,000 takes an hour to fill, and a
# kill would lose all of it.
FLUSH_SECONDS = 30.0


def _fetch_round(ctx: SyncContext, ids: list[str], bar: Any) -> list[str]:
    failed: list[str] = []
    done = 0
    batch: list[tuple[str, Any]] = []
    # The results the fetch thread has handed over and this loop has not
    # taken yet (the prefetch buffer, in the same order), so that on an
    # interrupt they are written too. Taken ones leave it at once: it never
    # holds more than the buffer. deque append/popleft are thread-safe.
    produced: deque[tuple[str, Any]] = deque()
    # Set when the stream below is closed (Ctrl-C, SIGTERM, an error here):
    # the fetch workers wake from a pacing or Retry-After wait at once, so
    # the fetch thread stops now, not when the longest such wait ends.
    stop = threading.Event()

    def recorded() -> Iterator[tuple[str, Any]]:
        for item in _results(ctx, ids, stop):
            produced.append(item)  # before it is queued: this runs on the prefetch thread
            yield item

    def flush() -> None:
        nonlocal done, failed, batch
        # Taken out first: if the write raises (a fatal error, after writing
        # the rest), the except path below must not write it twice.
        taken, batch = batch, []
        done += len(taken)
        if bar is not None:
            bar.update(len(taken))
        failed += _write_batch(ctx, taken)
        ctx.events.publish("sync.progress", source=ctx.source, phase="fetch", done=done, total=len(ids))

    # Fetches run on a background thread up to two batches ahead, so
    # requests stay in flight while a batch is validated and merged here
    # (DuckDB releases the GIL while it works). Results cross one by one,
    # so stopping (an error, Ctrl-C) waits for at most the requests on the
    # wire (their deadline bounds them); none that waits to be sent.
    flushed_at = time.monotonic()
    try:
        # The stream also ticks while nothing arrives (a fetch sleeping out a
        # long Retry-After), so a partial batch is written on time even then:
        # checked only on arrival, it waited for the next result, and a kill
        # meanwhile lost it.
        tick = max(0.05, min(1.0, FLUSH_SECONDS))
        with contextlib.closing(prefetch(recorded(), depth=2 * ctx.batch_size, stop=stop, idle=tick)) as stream:
            for item in stream:
                fatal = False
                if not isinstance(item, Idle):  # IDLE: nothing came; only the timer can be due
                    produced.popleft()  # this very item: the buffer is first in, first out
                    batch.append(item)
                    fatal = isinstance(item[1], FATAL)
                if batch and (fatal or len(batch) >= ctx.batch_size or time.monotonic() - flushed_at >= FLUSH_SECONDS):
                    flush()
                    flushed_at = time.monotonic()
        if batch:
            flush()
    except BaseException:
        # Ctrl-C, SIGTERM (the CLI turns it into KeyboardInterrupt) or any
        # error: the stream is closed, so the fetch thread has stopped; write
        # what was fetched, then let the exception go on. Each write is one
        # transaction, so a kill -9 meanwhile leaves the cache as the last
        # committed batch, with the rest still queued.
        leftover = batch + list(produced)
        batch = []
        _save_on_the_way_out(ctx, leftover)
        raise
    return failed


def _save_on_the_way_out(ctx: SyncContext, items: list[tuple[str, Any]]) -> None:
    """Write the fetched objects among ``items`` while an exception is on
    its way up; never raises an ``Exception`` of its own (the one already
    raised is the one to report)."""
    keep = [(cid, result) for cid, result in items if not isinstance(result, ApiError)]
    if not keep:
        return
    try:
        _write_batch(ctx, keep)
    except Exception as exc:  # noqa: BLE001 - the original exception is the one reported
        log.warning("could not write %d fetched conversation(s) before stopping: %s", len(keep), exc)


def _write_batch(ctx: SyncContext, batch: list[tuple[str, Any]]) -> list[str]:
    """Validate and write one batch of fetch results; returns the ids that
    failed, raises a fatal error once what came before it is written."""
    fetched: list[tuple[str, Any]] = []
    failed: list[str] = []
    vanished: list[str] = []
    unnameable: list[tuple[str, str, str | None]] = []
    fatal: ApiError | None = None
    for cid, result in batch:
        if isinstance(result, FATAL):
            fatal = result
        elif isinstance(result, NotFoundError):
            vanished.append(cid)
        elif isinstance(result, InputError):
            # an id from the listing that no URL can name ('..'): retrying
            # cannot help, so it is set aside as a dead letter
            unnameable.append((cid, f"the listing gave an id that cannot be fetched: {result}", None))
        elif isinstance(result, ApiError):
            failed.append(cid)
            ctx.report.errors.append(f"{cid}: {result}")
        else:
            fetched.append((cid, result))
    written = _write(ctx, fetched, unnameable)
    sync_state.drop_pending(ctx.store, ctx.source, ctx.scope, written + vanished)
    sync_state.forget_seen(ctx.store, ctx.source, vanished)
    ctx.report.fetched += len(fetched)
    ctx.report.vanished += len(vanished)
    if fatal is not None:
        raise fatal
    return failed


def _write(ctx: SyncContext, fetched: list[tuple[str, Any]], bad: list[tuple[str, str, str | None]]) -> list[str]:
    """Validate and merge fetched objects; returns the ids dealt with
    (merged, or set aside as dead letters with those of ``bad``)."""
    if not fetched and not bad:
        return []
    requested: list[str] = []
    raws: list[str] = []
    mismatched: list[tuple[str, str, str | None]] = list(bad)
    for cid, obj in fetched:
        # A Python loop over at most one batch of fetched objects: each one
        # came from its own HTTP response and must be serialized anyway.
        raw = orjson.dumps(obj).decode()
        if isinstance(obj, dict) and obj.get("id") not in (None, cid):
            mismatched.append((cid, f"asked for {cid!r}, the server sent id {obj.get('id')!r}", raw))
            continue
        requested.append(cid)
        raws.append(raw)
    lines = pa.table({"line_no": pa.array(range(len(raws)), pa.int64()), "raw": pa.array(raws, pa.string())})
    good, errors = ctx.writer.normalize(lines)
    ctx.writer.write(good, errors, lambda line, _raw: requested[line], extra_bad=mismatched)
    return requested + [m[0] for m in mismatched]

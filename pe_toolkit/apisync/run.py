"""Sync conversations from the Pixelated Empathy API into the store.

    >>> import pe_toolkit as pe
    >>> report = pe.sync(pe.open_store(), tier="research")     # PE_API_URL / PE_API_KEY
    >>> print(report)

Modes:

- ``bulk`` (:mod:`.bulk`): an export job, a streamed download, loaded
  in batches and merged by id and content hash;
- ``incremental`` (:mod:`.incremental`): list summaries, fetch only the
  ids that are new, changed, older than ``ttl`` for this source, or open
  dead letters, up to ``concurrency`` at a time;
- ``auto`` (default): resume an interrupted sync in its mode; otherwise
  estimate the work from one request (the filter's ``total``) and what this
  store already holds from the source: incremental when the listing pages
  plus the conversations to fetch come to at most ``incremental_max``
  requests and at most ``incremental_fraction`` of the total, else bulk.
  An incremental run whose listing finds a larger delta than that switches
  to bulk.

Guarantees: each batch is one transaction, so a killed sync loses at most
the batch in flight, and a re-run resumes from the checkpoint (same
source and filter) and ends with exactly the source's conversations, none
twice. Invalid payloads go to ``dead_letters`` keyed by conversation id and
are fetched again by the next sync; the rest goes on. Events on ``events``
(default: the process bus): ``conversation.created`` / ``.updated`` per
batch, ``sync.progress``, ``sync.completed`` (the report's fields) and
``sync.failed``.

Without an API configured (no ``PE_API_URL``, no ``client``), a plain
``sync(store)`` -- no API key, no filter, the default mode -- imports the
bundled sample instead (report status ``sample``), so the README's offline
commands keep working. A key, a filter or an explicit mode say a real API
was meant: then a missing or blank ``PE_API_URL`` is a
:class:`~pe_toolkit.errors.ConfigError`, never the sample quietly loaded
into the cache in the API's place.
"""

from __future__ import annotations

import contextlib
import math
import time
from datetime import timedelta
from typing import Any, Literal

from ..client import Client
from ..client.core import public_url
from ..config import load_settings
from ..errors import ConfigError, InputError, run_error
from ..events import EventBus, bus as default_bus
from ..store import ConversationFilter, Store
from . import bulk as sync_bulk, incremental as sync_incremental, state as sync_state
from .context import SyncContext, SyncReport
from .writer import BatchWriter

Mode = Literal["auto", "bulk", "incremental"]
MODES = ("auto", "bulk", "incremental")
DEFAULT_TTL = timedelta(days=7)
MAX_ERRORS_KEPT = 20


def source_of(client: Client) -> str:
    """The name a client's conversations are stored under (its first base
    URL, without credentials)."""
    return f"api:{public_url(client.urls[0])}"


def sync(
    store: Store,
    client: Client | None = None,
    *,
    filter: ConversationFilter | None = None,
    dataset: str | None = None,
    tier: str | None = None,
    min_quality: float | None = None,
    mode: Mode = "auto",
    ttl: timedelta | float = DEFAULT_TTL,
    concurrency: int | None = None,
    batch_size: int = 1000,
    page_size: int = 1000,
    incremental_max: int = 2000,
    incremental_fraction: float = 0.25,
    chunk_bytes: int | None = None,
    source: str | None = None,
    progress: bool = True,
    events: EventBus | None = None,
    **filters: Any,
) -> SyncReport:
    """Bring ``store`` up to date with the API for the filter; see the module docstring.

    ``client``: a :class:`~pe_toolkit.client.Client` (default: one from the
    settings, closed afterwards). ``ttl``: seconds or a timedelta after which
    a conversation is fetched again by the incremental path. ``source``:
    the name conversations, dead letters and checkpoints are kept under
    (default ``api:<first base URL>``; set it when the same API moves to
    another URL).

    Filters: the vocabulary of :class:`~pe_toolkit.store.ConversationFilter`
    (``filter=`` or keywords), limited to what the API applies server-side
    (``GET /v1/conversations``, ``POST /v1/export``): one ``dataset``, one
    ``tier`` and ``min_quality``. Any other filter is an
    :class:`~pe_toolkit.errors.InputError` rather than a silent full sync.
    """
    if mode not in MODES:
        raise InputError(f"unknown sync mode {mode!r}; expected one of {', '.join(MODES)}")
    dataset, tier, min_quality = server_side(
        ConversationFilter.build(filter, dataset=dataset, tier=tier, min_quality=min_quality, **filters)
    )
    if batch_size < 1 or not 2 <= page_size <= 1000:
        raise InputError("batch_size must be >= 1 and page_size between 2 and 1000")
    events = events or default_bus
    ttl = ttl if isinstance(ttl, timedelta) else timedelta(seconds=float(ttl))
    owned = None
    if client is None:
        settings = load_settings()
        if not settings.api_configured:
            asked = [
                what
                for what, given in (
                    ("an API key (PE_API_KEY)", settings.api_key is not None),
                    ("a filter", dataset is not None or tier is not None or min_quality is not None),
                    (f"mode {mode!r}", mode != "auto"),
                )
                if given
            ]
            if asked:
                raise ConfigError(
                    f"PE_API_URL is not set (nor [api] url in the config file), but {' and '.join(asked)} "
                    "says an API sync was meant: set PE_API_URL to the API's base URL. "
                    "(pe-toolkit sync with no key, filter or mode loads the bundled sample)"
                )
            return _sample(store, progress, events)
        client = owned = Client(settings=settings)
    try:
        return _run(
            store, client, dataset=dataset, tier=tier, min_quality=min_quality, mode=mode, ttl=ttl, concurrency=concurrency,
            batch_size=batch_size, page_size=page_size, incremental_max=incremental_max,
            incremental_fraction=incremental_fraction, chunk_bytes=chunk_bytes, source=source, progress=progress, events=events,
        )
    finally:
        if owned is not None:
            owned.close()


# What the API filters by (API_CONTRACT.md): one value each.
SERVER_FILTERS = ("dataset", "tier", "min_quality")


def server_side(selection: ConversationFilter) -> tuple[str | None, str | None, float | None]:
    """``dataset, tier, min_quality`` of a filter the API can apply, or an
    :class:`InputError` naming what it cannot."""
    active = selection.active()
    refused = [name for name in active if name not in SERVER_FILTERS]
    if refused:
        raise InputError(
            f"sync cannot apply {', '.join(refused)}: the API filters conversations by "
            f"{', '.join(SERVER_FILTERS)} only; sync, then select in the store "
            "(store.conversations(...), export(...))"
        )
    single: dict[str, str | None] = {}
    for name in ("dataset", "tier"):
        value = active.get(name)
        if value is not None and not isinstance(value, str):
            values = list(value)
            if len(values) != 1:
                raise InputError(f"sync applies one {name} (the API takes one), got {len(values)}: run one sync per {name}")
            value = values[0]
        single[name] = value
    return single["dataset"], single["tier"], selection.min_quality


def _sample(store: Store, progress: bool, events: EventBus) -> SyncReport:
    from ..ingest.importer import import_file

    started = time.perf_counter()
    path = load_settings().sample_path
    if not path.is_file():
        raise InputError(f"no API configured (PE_API_URL) and the bundled sample is missing: {path}")
    imported = import_file(store, path, progress=progress, events=events)
    report = SyncReport(source=f"file:{path.name}", mode="sample", reason="no API configured: the bundled sample", status="sample")
    report.inserted, report.updated, report.unchanged, report.invalid = (
        imported.inserted, imported.updated, imported.unchanged, imported.invalid,
    )
    report.seconds = time.perf_counter() - started
    events.publish("sync.completed", **report.as_event())
    return report


def _run(store: Store, client: Client, *, mode: Mode, events: EventBus, progress: bool, **opts: Any) -> SyncReport:
    started = time.perf_counter()
    source = opts["source"] or source_of(client)
    scope = sync_state.scope_key(opts["dataset"], opts["tier"], opts["min_quality"])
    report = SyncReport(source=source)
    sync_state.interrupt_stale_runs(store, source)
    checkpoint = sync_state.load_checkpoint(store, source, scope)
    if checkpoint is not None and mode != "auto" and checkpoint.mode != mode:
        sync_state.clear_checkpoint(store, source, scope)  # the caller asked for the other mode: start over
        checkpoint = None
    run_id = store.start_run("sync", source)
    work_dir = sync_state.work_dir(store.path)
    work_dir.mkdir(mode=0o700, exist_ok=True)
    writer = BatchWriter(
        store, source, dataset=opts["dataset"] or "api", events=events, resolve=sync_state.open_dead_letters(store, source) > 0
    )
    ctx = SyncContext(
        store=store, client=client, source=source, scope=scope, dataset=opts["dataset"], tier=opts["tier"],
        min_quality=opts["min_quality"], ttl=opts["ttl"], concurrency=opts["concurrency"], batch_size=opts["batch_size"],
        page_size=opts["page_size"], chunk_bytes=opts["chunk_bytes"], progress=progress, events=events, run_id=run_id,
        report=report, writer=writer, work_dir=work_dir,
    )
    try:
        if len(client.urls) > 1:
            client.check_endpoints()  # skip mirrors that are down from the first request on
        chosen, report.reason = _choose(ctx, mode, checkpoint, opts["incremental_max"], opts["incremental_fraction"])
        report.mode = chosen
        if chosen == "incremental":
            _incremental(ctx, checkpoint, switch_to_bulk_above=opts["incremental_max"] if mode == "auto" else None,
                         fraction=opts["incremental_fraction"])
        else:
            sync_bulk.run_bulk(ctx, checkpoint)
    except BaseException as exc:
        _finish(ctx, error=exc)
        report.seconds = time.perf_counter() - started
        events.publish("sync.failed", source=source, error=run_error(exc), report=report.as_event())
        raise
    finally:
        writer.close()
        # The download folder goes when nothing is left in it to resume (an
        # empty .NAME.sync stayed beside the cache after every sync).
        with contextlib.suppress(OSError):
            work_dir.rmdir()
    report.status = "partial" if report.failed else "completed"
    # The run got to its end: the next one starts afresh, even after a
    # partial run. Its listing plans the conversations that failed here
    # again (missing or stale locally) and finds new ones; resuming only the
    # failed ids, as before, never listed again while one id kept failing.
    sync_state.clear_checkpoint(store, source, scope)
    _finish(ctx)
    report.seconds = time.perf_counter() - started
    events.publish("sync.completed", **report.as_event())
    return report


def _incremental(ctx: SyncContext, checkpoint: sync_state.Checkpoint | None, *, switch_to_bulk_above: int | None, fraction: float) -> None:
    """List (or resume the listing), plan, fetch; in auto mode a delta
    larger than ``switch_to_bulk_above`` requests (or ``fraction`` of the
    listing) is pulled with one export instead."""
    report = ctx.report
    resume = checkpoint.state if checkpoint is not None and checkpoint.mode == "incremental" else None
    if resume is not None and checkpoint is not None and checkpoint.phase == "fetching":
        report.resumed = True
        report.planned = dict(resume.get("planned", {}))
        report.listed = int(resume.get("listed", 0))
    else:
        sync_incremental.list_all(ctx, resume)
        todo = sum(sync_incremental.plan(ctx).values())
        if switch_to_bulk_above is not None and report.listed and todo > min(switch_to_bulk_above, fraction * report.listed):
            sync_state.clear_checkpoint(ctx.store, ctx.source, ctx.scope)
            report.mode, report.reason = "bulk", f"listing found {todo:,} of {report.listed:,} to fetch"
            sync_bulk.run_bulk(ctx, None)
            return
    sync_incremental.fetch_pending(ctx)


def _finish(ctx: SyncContext, error: BaseException | None = None) -> None:
    counts, report = ctx.writer.counts, ctx.report
    report.inserted, report.updated, report.unchanged = counts.inserted, counts.updated, counts.unchanged
    report.invalid, report.resolved, report.repeated = counts.invalid, counts.resolved, counts.repeated
    report.errors = report.errors[:MAX_ERRORS_KEPT]
    message = None
    if error is not None:
        message = run_error(error)
    elif report.failed:
        message = f"{report.failed} conversation(s) could not be fetched; queued for the next sync"
    with contextlib.suppress(Exception):
        failed = error is not None
        ctx.store.finish_run(ctx.run_id, counts, invalid=counts.invalid, error=message if failed else None,
                             note=None if failed else message)  # fmt: skip


def _choose(
    ctx: SyncContext, mode: Mode, checkpoint: sync_state.Checkpoint | None, incremental_max: int, fraction: float
) -> tuple[str, str]:
    if mode != "auto":
        return mode, "requested"
    if checkpoint is not None:
        ctx.report.resumed = True
        return checkpoint.mode, f"resuming the interrupted {checkpoint.mode} sync"
    total = ctx.expected_total()
    where, params = ctx.local_filter()
    local, stale = sync_state.synced_locally(ctx.store, ctx.source, where, params, ctx.ttl)
    dead = sync_state.open_dead_letters(ctx.store, ctx.source)
    estimate = max(0, total - local) + stale + dead
    requests = math.ceil(total / ctx.page_size) + estimate
    if local == 0 and total > 0:
        return "bulk", f"nothing synced from this source yet ({total:,} conversations)"
    if requests > incremental_max or estimate > fraction * max(total, 1):
        return "bulk", f"about {estimate:,} of {total:,} to fetch: one export is cheaper"
    return "incremental", f"about {estimate:,} of {total:,} to fetch"

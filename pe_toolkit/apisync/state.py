"""The sync's bookkeeping tables (migration 0004): checkpoints, last-fetched
times, and the listing and work queue of an incremental run.

Every function is one short transaction. Nothing here needs to be atomic
with ``Store.upsert``: writing a conversation twice is a no-op (the merge
is keyed by id and content hash), so a crash between the upsert and the
bookkeeping only means a little work is repeated on resume.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from ..client.flows import discard_part, part_path
from ..store import Store, runs


@dataclass(frozen=True)
class Checkpoint:
    run_id: str
    mode: str
    phase: str
    state: dict[str, Any]
    started_at: datetime


def scope_key(dataset: str | None, tier: str | None, min_quality: float | None) -> str:
    """The filter as text: one checkpoint per (source, filter)."""
    mq = "*" if min_quality is None else repr(float(min_quality))
    return f"dataset={dataset or '*'};tier={tier or '*'};min_quality={mq}"


def load_checkpoint(store: Store, source: str, scope: str) -> Checkpoint | None:
    rows = store.connection.execute(
        "SELECT run_id, mode, phase, state::VARCHAR, started_at FROM sync_checkpoints WHERE source = ? AND scope = ?",
        [source, scope],
    ).fetchall()
    if not rows:
        return None
    run_id, mode, phase, state, started = rows[0]
    return Checkpoint(run_id, mode, phase, orjson.loads(state), started)


def save_checkpoint(store: Store, source: str, scope: str, run_id: str, mode: str, phase: str, state: dict[str, Any]) -> None:
    with store.transaction() as con:
        started = con.execute(
            "SELECT min(started_at) FROM sync_checkpoints WHERE source = ? AND scope = ? AND mode = ?", [source, scope, mode]
        ).fetchall()[0][0]
        con.execute("DELETE FROM sync_checkpoints WHERE source = ? AND scope = ?", [source, scope])
        con.execute(
            "INSERT INTO sync_checkpoints VALUES (?, ?, ?, ?, ?, ?, coalesce(?, now()), now())",
            [source, scope, run_id, mode, phase, orjson.dumps(state).decode(), started],
        )


def work_dir(cache: Path) -> Path:
    """Where a sync keeps its downloads beside the cache file ``cache`` (``.NAME.sync``)."""
    return cache.parent / f".{cache.name}.sync"


def export_file(folder: Path, export_id: str) -> Path:
    """Where a bulk sync downloads export ``export_id`` (in its work dir)."""
    return folder / f"{export_id}.jsonl"


def discard(path: Path) -> None:
    """An export file and its partial download (the client's ``part_path``,
    with the validator recorded beside it), if any."""
    with contextlib.suppress(OSError):
        path.unlink()
    with contextlib.suppress(OSError):
        discard_part(part_path(path))


def clear_checkpoint(store: Store, source: str, scope: str) -> None:
    """Forget the checkpoint of (``source``, ``scope``), and delete the
    export file of a bulk one: a copy of the conversations, which stayed on
    disk when another mode's run replaced the checkpoint."""
    found = load_checkpoint(store, source, scope)
    export_id = found.state.get("export_id") if found is not None else None
    if isinstance(export_id, str) and export_id and "/" not in export_id and not export_id.startswith("."):
        discard(export_file(work_dir(store.path), export_id))
    with store.transaction() as con:
        con.execute("DELETE FROM sync_checkpoints WHERE source = ? AND scope = ?", [source, scope])
        con.execute("DELETE FROM sync_listing WHERE source = ? AND scope = ?", [source, scope])
        con.execute("DELETE FROM sync_pending WHERE source = ? AND scope = ?", [source, scope])


def record_gaps(store: Store, source: str, scope: str, gaps: int, why: str) -> None:
    """A listing or a bulk export that did not account for every
    conversation the server lists leaves a dead letter for its scope
    (visible in ``doctor`` and ``dead_letters``); one that settles resolves it."""
    locator = f"listing:{scope}"
    if gaps:
        reason = f"{gaps:,} conversation(s) listed by the server were never seen: {why}; sync again to pick them up"
        store.add_dead_letters([(source, locator, reason, None)])
    else:
        store.resolve_dead_letters(source, [locator])


def mark_seen(store: Store, source: str, ids: pa.Array | list[str]) -> None:
    """Record that ``ids`` were fetched from ``source`` now."""
    if len(ids) == 0:
        return
    table = pa.table({"id": pa.array(ids, pa.string()) if isinstance(ids, list) else ids.cast(pa.string())})
    # Registered inside the transaction, which holds the store's write lock:
    # no other thread can use (or re-register) the name meanwhile.
    with store.transaction() as con:
        con.register("_seen_ids", table)
        try:
            con.execute("DELETE FROM sync_seen WHERE source = ? AND id IN (SELECT id FROM _seen_ids)", [source])
            con.execute("INSERT INTO sync_seen SELECT DISTINCT ?, id, now() FROM _seen_ids", [source])
        finally:
            con.unregister("_seen_ids")


def forget_seen(store: Store, source: str, ids: list[str]) -> None:
    """``ids`` are gone from ``source`` (404): their copies stay in the cache,
    no longer counted as synced from it, so no later listing plans them as
    unlisted again (one request per deleted conversation per run)."""
    if not ids:
        return
    with store.transaction() as con:
        con.execute("DELETE FROM sync_seen WHERE source = ? AND id IN (SELECT unnest(?::VARCHAR[]))", [source, ids])


def listed_ids(store: Store, source: str, scope: str) -> list[str]:
    rows = store.connection.execute("SELECT id FROM sync_listing WHERE source = ? AND scope = ?", [source, scope]).fetchall()
    return [r[0] for r in rows]


def add_listing(store: Store, source: str, scope: str, summaries: pa.Table) -> None:
    """Append summaries the caller has not listed before (it keeps the ids)."""
    with store.transaction() as con:
        con.register("_page", summaries)
        try:
            con.execute(
                "INSERT INTO sync_listing SELECT ?, ?, id, dataset, tier, quality_score, message_count, created_at FROM _page",
                [source, scope],
            )
        finally:
            con.unregister("_page")


# Half a hundredth, and a little for float error: a summary rounded to two decimals is the same.
QUALITY_TOLERANCE = 0.005 + 1e-9


def plan_fetches(store: Store, source: str, scope: str, ttl: timedelta, local: tuple[str, list[Any]]) -> dict[str, int]:
    """Fill ``sync_pending`` from the listing: ids that are new, changed
    (their summary differs from the stored row), stale (not fetched from
    this source within ``ttl``) or an open dead letter of this source; and
    ``unlisted`` ones: synced from this source, matching the filter in the
    cache (``local``: a condition over ``conversations c`` and its
    parameters) but absent from the listing. Such a copy is out of date
    (its tier or dataset changed upstream, say): filtered by the old value
    it would be counted in a scope it left. Returns the counts per reason."""
    differs = " OR ".join(
        [
            *(f"c.{a} IS DISTINCT FROM l.{b}" for a, b in (("dataset", "dataset"), ("tier", "tier"),
                                                           ("message_count", "message_count"), ("created_at", "created_at"))),
            # A summary's quality_score may be rounded (the contract gives no
            # precision; a server rounding to 0.01 made every conversation
            # "changed" on every run, a full download each time): within
            # QUALITY_TOLERANCE it is the same, and a smaller change is picked
            # up when the conversation goes stale (ttl).
            "(c.overall_quality IS NULL) <> (l.quality_score IS NULL)",
            f"abs(c.overall_quality - l.quality_score) > {QUALITY_TOLERANCE!r}",
        ]
    )  # fmt: skip
    with store.transaction() as con:
        con.execute("DELETE FROM sync_pending WHERE source = ? AND scope = ?", [source, scope])
        con.execute(
            "INSERT INTO sync_pending SELECT ?, ?, id, reason FROM ("
            "SELECT l.id, CASE WHEN c.id IS NULL THEN 'new' "
            f"WHEN {differs} THEN 'changed' "
            "WHEN d.locator IS NOT NULL THEN 'dead_letter' "
            "WHEN s.synced_at IS NULL OR s.synced_at < now() - ?::INTERVAL THEN 'stale' END AS reason "
            "FROM sync_listing l LEFT JOIN conversations c ON c.id = l.id "
            "LEFT JOIN sync_seen s ON s.source = l.source AND s.id = l.id "
            "LEFT JOIN (SELECT DISTINCT locator FROM dead_letters WHERE source = ? AND resolved_at IS NULL) d ON d.locator = l.id "
            "WHERE l.source = ? AND l.scope = ?) WHERE reason IS NOT NULL",
            [source, scope, f"{int(ttl.total_seconds())} seconds", source, source, scope],
        )
        _queue_unlisted(con, source, scope, local, "SELECT id FROM sync_listing WHERE source = ? AND scope = ?", [source, scope])
        rows = con.execute(
            "SELECT reason, count(*) FROM sync_pending WHERE source = ? AND scope = ? GROUP BY reason", [source, scope]
        ).fetchall()
    return {reason: int(n) for reason, n in rows}


def plan_unlisted(store: Store, source: str, scope: str, since: str, local: tuple[str, list[Any]]) -> dict[str, int]:
    """Fill ``sync_pending`` with the ``unlisted`` ids of a bulk sync that
    started at ``since``: synced from this source, matching the filter in
    the cache (``local``, as for :func:`plan_fetches`), but not written
    since then, so the export did not hold them. Every conversation an
    export loads is marked seen (``mark_seen``), unchanged ones too: no
    list of the export's ids is needed, and a resumed load, which skips
    what an earlier process wrote, plans the same ids. Ids the export held
    but could not load (dead letters since ``since``) are not unlisted:
    the next sync fetches them as dead letters."""
    with store.transaction() as con:
        con.execute("DELETE FROM sync_pending WHERE source = ? AND scope = ?", [source, scope])
        _queue_unlisted(
            con, source, scope, local,
            "SELECT locator FROM dead_letters WHERE source = ? AND resolved_at IS NULL AND last_seen >= ?::TIMESTAMPTZ",
            [source, since], seen_before=since,
        )  # fmt: skip
        n = int(con.execute("SELECT count(*) FROM sync_pending WHERE source = ? AND scope = ?", [source, scope]).fetchall()[0][0])
    return {"unlisted": n} if n else {}


def _queue_unlisted(
    con: Any, source: str, scope: str, local: tuple[str, list[Any]], but_not: str, but_not_params: list[Any], *, seen_before: str | None = None
) -> None:
    """Queue as ``unlisted`` the conversations synced from ``source`` (last
    synced before ``seen_before`` when given) that match the filter in the
    cache (``local``) and are not among the ids ``but_not`` selects."""
    where, params = local
    before = " AND seen.synced_at < ?::TIMESTAMPTZ" if seen_before is not None else ""
    con.execute(
        "INSERT INTO sync_pending SELECT ?, ?, c.id, 'unlisted' FROM conversations c "
        f"SEMI JOIN sync_seen seen ON seen.source = ? AND seen.id = c.id{before} "
        f"WHERE ({where}) AND c.id NOT IN ({but_not})",
        [source, scope, source, *([seen_before] if seen_before is not None else []), *params, *but_not_params],
    )


def pending_ids(store: Store, source: str, scope: str) -> list[str]:
    rows = store.connection.execute(
        "SELECT id FROM sync_pending WHERE source = ? AND scope = ? ORDER BY id", [source, scope]
    ).fetchall()
    return [r[0] for r in rows]


def drop_pending(store: Store, source: str, scope: str, ids: list[str]) -> None:
    if not ids:
        return
    with store.transaction() as con:
        con.execute(
            "DELETE FROM sync_pending WHERE source = ? AND scope = ? AND id IN (SELECT unnest(?::VARCHAR[]))",
            [source, scope, ids],
        )


def synced_locally(store: Store, source: str, where: str, params: list[Any], ttl: timedelta) -> tuple[int, int]:
    """(conversations matching the filter fetched from ``source``, how many
    of those are older than ``ttl``)."""
    row = store.connection.execute(
        "SELECT count(*), count(*) FILTER (WHERE s.synced_at < now() - ?::INTERVAL) FROM conversations c "
        f"JOIN sync_seen s ON s.id = c.id AND s.source = ? WHERE {where}",
        [f"{int(ttl.total_seconds())} seconds", source, *params],
    ).fetchall()[0]
    return int(row[0]), int(row[1])


def open_dead_letters(store: Store, source: str) -> int:
    return int(store.scalar("SELECT count(*) FROM dead_letters WHERE source = ? AND resolved_at IS NULL", [source]))


def interrupt_stale_runs(store: Store, source: str) -> int:
    """Runs of this source still marked running belong to a process that
    died (one writer per file: it cannot be running now)."""
    with store.transaction() as con:
        return runs.interrupt_stale(con, "sync", source)

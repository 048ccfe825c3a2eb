"""What the ``quality_validation`` and ``analysis`` jobs do.

Both score the store with :func:`pe_toolkit.analysis.analyze` (incremental:
only conversations that are new, changed, or scored by an older analyzer
version are scored again), then summarize the current scores (the store's
view ``current_conversation_scores``) for the job's selection (dataset,
``tier``, ``min_quality``) in SQL:

- quality_validation: the six locally computed metrics against the stored
  (API) ones, the computed tier distribution and its agreement with the
  stored tier, and the recommendations of the weakest conversations (from
  ``validate_conversation``, for those few only);
- analysis: risk scores and alerts as well as the quality summary.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from ..events import Event, EventBus, bus as default_bus
from ..schema import QUALITY_METRICS
from ..store import ConversationFilter, Store
from . import quality
from .db import ServerDB
from .jobs import JobContext

WEAKEST = 5
BATCH_MIN, BATCH_MAX = 100, 20_000


def selection(dataset: str, parameters: dict[str, Any]) -> ConversationFilter:
    return ConversationFilter(
        dataset=None if dataset == "*" else dataset,
        tier=parameters.get("tier"),
        min_quality=parameters.get("min_quality"),
    )


def _fraction(payload: dict[str, Any]) -> float | None:
    for done, total in (("done", "total"), ("scored", "total"), ("processed", "total"), ("n", "total")):
        if isinstance(payload.get(done), (int, float)) and isinstance(payload.get(total), (int, float)) and payload[total]:
            return float(payload[done]) / float(payload[total])
    for key in ("fraction", "progress"):
        value = payload.get(key)
        if isinstance(value, (int, float)):
            return float(value) / (100.0 if value > 1 else 1.0)
    return None


def _score_store(ctx: JobContext) -> dict[str, Any]:
    """Run the incremental analysis, mapping its progress events onto the
    job's progress (up to 90%; the summary is the rest)."""
    module = quality.analysis()
    private = EventBus()

    def relay(event: Event) -> None:
        default_bus.publish(event.topic, **event.payload)
        fraction = _fraction(event.payload)
        if fraction is not None:
            ctx.progress(0.9 * fraction)

    private.subscribe("*", relay)
    with Store(ctx.store_path) as store:
        # Batches of about a twentieth of the store, so progress moves in
        # steps a caller can see (analyze reports once per batch).
        total = int(store.scalar("SELECT count(*) FROM conversations") or 0)
        batch = min(BATCH_MAX, max(BATCH_MIN, -(-total // 20)))
        report = module.analyze(store, incremental=True, progress=False, events=private, batch_size=batch)
    ctx.progress(0.9)
    found = _plain(report)
    found.pop("alert_ids", None)  # the ids are in conversation_scores; a job record stays small
    return found


def _plain(report: Any) -> dict[str, Any]:
    if report is None:
        return {}
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        found = dataclasses.asdict(report)
    elif isinstance(report, dict):
        found = dict(report)
    else:
        found = {"summary": str(report)}
    # Keep what JSON can carry (the record is stored with the job).
    return orjson.loads(orjson.dumps(found, default=str, option=orjson.OPT_NON_STR_KEYS))


# The store's view of the current scores (migration 0009; see Store).
SCORES_JOIN = "JOIN current_conversation_scores s ON s.conversation_id = c.id"


def quality_summary(db: ServerDB, filter: ConversationFilter) -> dict[str, Any]:
    where, params = filter.where("c")
    join = SCORES_JOIN
    # Per metric, both means cover the conversations that have both values
    # (n), or their difference would compare different sets: a post the API
    # rated has no computed value (no reply to rate since quality v3), a
    # conversation imported without API metrics has no stored one. Those are
    # counted per metric as stored_only and computed_only.
    metric_sql = ", ".join(
        f"avg(s.{m}) FILTER (WHERE c.{m} IS NOT NULL), avg(c.{m}) FILTER (WHERE s.{m} IS NOT NULL), "
        f"avg(abs(s.{m} - c.{m})), count(s.{m} - c.{m}), count(s.{m}), count(c.{m})"
        for m in QUALITY_METRICS
    )
    # A scored conversation without a tier has no reply to rate (quality v3:
    # a post, a journal; or an analyzer the metrics need did not run): its
    # metrics are null, and it is counted apart as unrated, not as a tier.
    row = db.one(
        f"SELECT count(*), (SELECT count(*) FROM conversations c WHERE {where}), count(s.tier), "
        f"avg(CASE WHEN s.tier = c.tier THEN 1.0 ELSE 0.0 END) FILTER (WHERE c.tier IS NOT NULL AND s.tier IS NOT NULL), {metric_sql} "
        f"FROM conversations c {join} WHERE {where}",
        [*params, *params],
    )
    assert row is not None
    scored, selected, rated, agreement = int(row[0]), int(row[1]), int(row[2]), row[3]
    metrics = {}
    width = 6
    for n, name in enumerate(QUALITY_METRICS):
        local, stored, diff, both, computed, api = row[4 + width * n : 4 + width * (n + 1)]
        metrics[name] = {
            "computed_mean": _r(local),
            "stored_mean": _r(stored),
            "mean_absolute_difference": _r(diff),
            "n": int(both),
            "computed_only": int(computed) - int(both),
            "stored_only": int(api) - int(both),
        }
    tiers = dict(db.rows(
        f"SELECT s.tier, count(*) FROM conversations c {join} WHERE {where} AND s.tier IS NOT NULL GROUP BY s.tier ORDER BY 2 DESC, 1",
        params,
    ))
    # Not a conversation with nothing to rate: its recommendations would be
    # advice on replies it does not have.
    weakest = [r[0] for r in db.rows(
        f"SELECT c.id FROM conversations c {join} WHERE {where} AND s.overall_quality IS NOT NULL "
        f"ORDER BY s.overall_quality ASC, c.id LIMIT {WEAKEST}",
        params,
    )]
    return {
        "conversations_selected": selected,
        "conversations_scored": scored,
        "conversations_rated": rated,
        "conversations_unrated": scored - rated,
        "metrics": metrics,
        "tier_classification": {t: int(n) for t, n in tiers.items()},
        "tier_agreement": _r(agreement),
        "weakest": weakest,
    }


def _r(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def _recommendations(db: ServerDB, ids: list[str]) -> list[dict[str, Any]]:
    from ..store.api_objects import api_objects_sql

    if not ids:
        return []
    sql, params = api_objects_sql(ConversationFilter(ids=ids))
    texts = dict(db.rows(sql, params))
    found = []
    for cid in ids:  # at most WEAKEST conversations, weakest first
        if cid not in texts:
            continue
        result = quality.validate(orjson.loads(texts[cid]))
        found.append(
            {
                "conversation_id": result.get("conversation_id"),
                "overall_quality": (result.get("validation_results") or {}).get("overall_quality"),
                "tier_classification": result.get("tier_classification"),
                "recommendations": result.get("recommendations", []),
            }
        )
    return found


def run_quality_validation(ctx: JobContext) -> dict[str, Any]:
    filter = selection(ctx.dataset_name, ctx.parameters)
    analysis = _score_store(ctx)
    summary = quality_summary(ctx.db, filter)
    ctx.progress(0.95)
    summary["weakest"] = _recommendations(ctx.db, summary["weakest"])
    summary["analysis"] = analysis
    return summary


def run_analysis(ctx: JobContext) -> dict[str, Any]:
    filter = selection(ctx.dataset_name, ctx.parameters)
    analysis = _score_store(ctx)
    where, params = filter.where("c")
    join = SCORES_JOIN
    cols = {r[0] for r in ctx.db.rows("SELECT column_name FROM duckdb_columns() WHERE table_name = 'conversation_scores'")}
    risk: dict[str, Any] = {}
    if "risk_score" in cols:
        alert = "count(*) FILTER (WHERE s.alert)" if "alert" in cols else "NULL"
        row = ctx.db.one(
            f"SELECT avg(s.risk_score), max(s.risk_score), quantile_cont(s.risk_score, 0.9), {alert} "
            f"FROM conversations c {join} WHERE {where}",
            params,
        )
        assert row is not None
        risk = {"mean": _r(row[0]), "max": _r(row[1]), "p90": _r(row[2]), "alerts": None if row[3] is None else int(row[3])}
    summary = quality_summary(ctx.db, filter)
    summary.pop("weakest")
    return {**summary, "risk": risk, "analysis": analysis}

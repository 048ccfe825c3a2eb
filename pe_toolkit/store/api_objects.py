"""Rebuild the API's conversation objects from the stored rows, in SQL.

One definition serves ``Store.conversation``, the ``jsonl`` export and the
mirror server, so all three emit byte-identical objects.
"""

from __future__ import annotations

from typing import Any

from ..schema import QUALITY_METRICS
from .filters import ConversationFilter


def iso_sql(expr: str) -> str:
    """ISO-8601 UTC text of a TIMESTAMPTZ expression (the session zone is UTC);
    fractional seconds only when present, so ``...:00Z`` stays ``...:00Z``."""
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL "
        f"WHEN microsecond({expr}) % 1000000 = 0 THEN strftime({expr}, '%Y-%m-%dT%H:%M:%SZ') "
        f"ELSE strftime({expr}, '%Y-%m-%dT%H:%M:%S.%fZ') END"
    )


def quality_metrics_sql(alias: str = "c") -> str:
    fields = ", ".join(f"{m} := {alias}.{m}" for m in QUALITY_METRICS)
    all_null = " AND ".join(f"{alias}.{m} IS NULL" for m in QUALITY_METRICS)
    return f"CASE WHEN {all_null} THEN NULL ELSE struct_pack({fields}) END"


def metadata_sql(alias: str = "c") -> str:
    """Stored free-form metadata with the columns we own written over it."""
    return (
        f"json_merge_patch(coalesce({alias}.metadata, '{{}}')::JSON, json_object("
        f"'dataset', {alias}.dataset, 'tier', {alias}.tier, 'length', {alias}.message_count, "
        f"'created_at', {iso_sql(f'{alias}.created_at')}))"
    )


def api_objects_sql(filter: ConversationFilter | None = None, *, order: bool = True) -> tuple[str, list[Any]]:
    """SQL returning ``(id, json)`` rows: one API conversation object each."""
    where, params = (filter or ConversationFilter()).where("c")
    sql = (
        "WITH sel AS (SELECT * FROM conversations c WHERE " + where + "), "
        "msgs AS (SELECT m.conversation_id, list(struct_pack(role := m.role, content := m.content, "
        f"timestamp := {iso_sql('m.timestamp')}) ORDER BY m.idx) AS messages "
        "FROM messages m SEMI JOIN sel ON sel.id = m.conversation_id GROUP BY m.conversation_id) "
        "SELECT c.id, to_json(struct_pack(id := c.id, messages := coalesce(msgs.messages, []), "
        f"quality_metrics := {quality_metrics_sql('c')}, metadata := {metadata_sql('c')})) AS json "
        "FROM sel c LEFT JOIN msgs ON msgs.conversation_id = c.id"
        + (" ORDER BY c.id" if order else "")
    )
    return sql, params

"""Labels researchers give to conversations (the review widget's memory).

Rows live in the ``annotations`` table of migration 0001, one per
``(task, reviewer, conversation_id, message_idx)``: labelling the same thing
again replaces the label and note (``created_at`` is kept, ``updated_at``
moves). ``message_idx`` is None for a label about the whole conversation.

>>> annotate(store, "conv_1", "true_alert", reviewer="ana", task="alerts")
>>> labels(store, task="alerts")                  # a polars frame

How far reviewers agree is :func:`pe_toolkit.analysis.evaluation.agreement`,
next to the project's one implementation of agreement statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from ..errors import InputError
from .core import Store

LABEL_COLUMNS = ("task", "reviewer", "conversation_id", "message_idx", "label", "note", "created_at", "updated_at")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def annotate(
    store: Store,
    conversation_id: str,
    label: str,
    *,
    reviewer: str,
    task: str = "review",
    note: str | None = None,
    message_idx: int | None = None,
) -> None:
    """Give ``label`` (and an optional ``note``) to a conversation or one of
    its messages; replaces what this reviewer gave it before in this task.
    Committed before returning, so a crash right after loses nothing."""
    label, reviewer, task = _text("label", label), _text("reviewer", reviewer), _text("task", task)
    if note is not None and not isinstance(note, str):
        raise InputError(f"note must be a string, got {note!r}")
    note = note or None
    if message_idx is not None and (not isinstance(message_idx, int) or isinstance(message_idx, bool)):
        raise InputError(f"message_idx must be an integer or None, got {message_idx!r}")
    key = [task, reviewer, conversation_id, message_idx]
    with store.transaction() as con:
        # Checked inside the transaction so the label cannot outlive a
        # conversation deleted at the same moment.
        if message_idx is None:
            found = con.execute("SELECT count(*) FROM conversations WHERE id = ?", [conversation_id]).fetchall()
        else:
            found = con.execute(
                "SELECT count(*) FROM messages WHERE conversation_id = ? AND idx = ?", [conversation_id, message_idx]
            ).fetchall()
        if not found[0][0]:
            what = f"message {message_idx} of conversation" if message_idx is not None else "conversation"
            raise InputError(f"no {what} {conversation_id!r} in {store.path}")
        # The table has no unique key (see migration 0001), so the upsert is
        # an UPDATE of the keyed row, then an INSERT when there was none.
        con.execute(
            "UPDATE annotations SET label = ?, note = ?, updated_at = now() "
            "WHERE task = ? AND reviewer = ? AND conversation_id = ? AND message_idx IS NOT DISTINCT FROM ?",
            [label, note, *key],
        )
        con.execute(
            "INSERT INTO annotations (task, reviewer, conversation_id, message_idx, label, note, created_at, updated_at) "
            "SELECT ?, ?, ?, ?, ?, ?, now(), now() WHERE NOT EXISTS (SELECT 1 FROM annotations "
            "WHERE task = ? AND reviewer = ? AND conversation_id = ? AND message_idx IS NOT DISTINCT FROM ?)",
            [*key, label, note, *key],
        )


def remove_annotation(
    store: Store, conversation_id: str, *, reviewer: str, task: str = "review", message_idx: int | None = None
) -> bool:
    """Withdraw a label; returns whether there was one."""
    with store.transaction() as con:
        rows = con.execute(
            "DELETE FROM annotations WHERE task = ? AND reviewer = ? AND conversation_id = ? "
            "AND message_idx IS NOT DISTINCT FROM ? RETURNING 1",
            [task, reviewer, conversation_id, message_idx],
        ).fetchall()
    return bool(rows)


def labels(
    store: Store,
    task: str | None = "review",
    *,
    reviewer: str | Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Labels as a frame (:data:`LABEL_COLUMNS`), ordered by conversation,
    message, reviewer. ``task=None`` takes every task."""
    clauses: list[str] = ["TRUE"]
    params: list[Any] = []
    if task is not None:
        clauses.append("task = ?")
        params.append(task)
    if reviewer is not None:
        clauses.append("reviewer IN (SELECT unnest(?::VARCHAR[]))")
        params.append([reviewer] if isinstance(reviewer, str) else list(reviewer))
    if ids is not None:
        clauses.append("conversation_id IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(ids))
    return store.sql(
        f"SELECT {', '.join(LABEL_COLUMNS)} FROM annotations WHERE {' AND '.join(clauses)} "
        "ORDER BY conversation_id, message_idx NULLS FIRST, reviewer, task",
        params,
    )

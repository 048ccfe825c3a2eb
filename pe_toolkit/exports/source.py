"""The rows an export reads from the store, streamed in Arrow record batches.

Two shapes, both ordered by conversation id so the same store gives the
same file:

- *API objects* (``id``, ``json``): exactly the objects of
  :func:`pe_toolkit.store.api_objects.api_objects_sql`, with scores
  appended as a ``"scores"`` member when asked for;
- *nested conversations*: the conversation's columns plus ``messages`` as a
  list of ``{idx, role, content, timestamp[, message_score_*]}`` and, with
  scores, ``score_*`` columns. Every other format is shaped from this.

DuckDB builds each batch; the Python side holds one batch at a time. The
selection is read in chunks of conversations (one query each), so DuckDB's
grouping and sorting hold one chunk, not the whole export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from ..schema import STORED_CONVERSATION_COLUMNS
from ..store.api_objects import api_objects_sql
from ..store.filters import ConversationFilter
from .scores import ScoreColumns

CONVERSATION_COLUMNS = STORED_CONVERSATION_COLUMNS


def _select_columns(alias: str) -> str:
    return ", ".join(
        f"{alias}.metadata::VARCHAR AS metadata" if c == "metadata" else f"{alias}.{c}" for c in CONVERSATION_COLUMNS
    )


def nested_sql(selection: ConversationFilter, scores: ScoreColumns | None = None) -> tuple[str, list[Any]]:
    where, params = selection.where("c")
    scores = scores or ScoreColumns()
    msg_scores_join = (
        "LEFT JOIN current_message_scores ms ON ms.conversation_id = m.conversation_id AND ms.idx = m.idx"
        if scores.message
        else ""
    )
    conv_scores_join = (
        "LEFT JOIN current_conversation_scores s ON s.conversation_id = c.id" if scores.conversation else ""
    )
    sql = (
        f"WITH sel AS (SELECT * FROM conversations c WHERE {where}), "
        # idx leads the struct, so list_sort orders by it (2.5x faster here
        # than an ordered aggregate).
        "msgs AS (SELECT m.conversation_id, list_sort(list(struct_pack(idx := m.idx, role := m.role, content := m.content, "
        f"timestamp := m.timestamp{scores.message_fields('ms')}))) AS messages "
        f"FROM messages m SEMI JOIN sel ON sel.id = m.conversation_id {msg_scores_join} "
        "GROUP BY m.conversation_id) "
        f"SELECT {_select_columns('c')}, coalesce(msgs.messages, []) AS messages"
        f"{scores.conversation_select('s')} "
        f"FROM sel c LEFT JOIN msgs ON msgs.conversation_id = c.id {conv_scores_join} ORDER BY c.id"
    )
    return sql, params


def api_sql(selection: ConversationFilter, scores: ScoreColumns | None = None) -> tuple[str, list[Any]]:
    """``(id, json)``: the API objects, reused verbatim. With scores, a
    ``"scores"`` member is appended to each object's text (the object
    itself is not rebuilt); ``null`` where the conversation is not scored."""
    inner, params = api_objects_sql(selection, order=False)
    if not scores or not scores.conversation:
        return f"SELECT a.id, a.json::VARCHAR AS json FROM ({inner}) a ORDER BY a.id", params
    text = "a.json::VARCHAR"
    line = (
        f"substr({text}, 1, length({text}) - 1) || ',\"scores\":' || "
        f"coalesce(to_json({scores.conversation_struct('s')})::VARCHAR, 'null') || '}}'"
    )
    sql = (
        f"SELECT a.id, {line} AS json FROM ({inner}) a "
        "LEFT JOIN current_conversation_scores s ON s.conversation_id = a.id ORDER BY a.id"
    )
    return sql, params


# Conversations per query. Each chunk is one DuckDB query whose grouping
# and sorting hold only that chunk, so memory stays bounded whatever the
# size of the export (plus the selected ids themselves, ~30 bytes each).
CHUNK_CONVERSATIONS = 20_000


def selected_ids(con: duckdb.DuckDBPyConnection, selection: ConversationFilter) -> pa.Table:
    """``id, message_count`` of the selection, in id order."""
    where, params = selection.where("c")
    return con.sql(
        f"SELECT c.id, c.message_count FROM conversations c WHERE {where} ORDER BY c.id", params=params or None
    ).to_arrow_table()


def chunked(
    con: duckdb.DuckDBPyConnection,
    selected: pa.Table,
    query: Callable[[ConversationFilter, ScoreColumns | None], tuple[str, list[Any]]],
    scores: ScoreColumns | None,
    batch_rows: int,
    chunk: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Batches of ``query`` over the selected ids, chunk by chunk, in id order."""
    chunk = chunk or CHUNK_CONVERSATIONS
    ids = selected.column("id")
    for start in range(0, len(ids), chunk):
        part = ids.slice(start, chunk).to_pylist()
        sql, params = query(ConversationFilter(ids=part), scores)
        for batch in con.sql(sql, params=params or None).to_arrow_reader(batch_rows):
            if batch.num_rows:
                yield batch

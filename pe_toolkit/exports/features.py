"""The feature table of the ETL pattern, for analysis in polars or pandas.

``features(store)`` gives one row per conversation: message counts by role,
total and mean lengths in characters and words, the API's six quality
metrics, and the sentiment, empathy, safety and learned scores of the last
``pe-toolkit analyze`` (null where a conversation has no current scores, or
the store was never analyzed): ``suicide_risk_p_max`` (the risk model),
``max_abuse_severity``, disclosures and appropriate responses.
``level="message"`` gives one row per message with its length, word count
and message scores, among them the skills model's ``skill`` and
``skill_p_<code>``, ``suicide_risk_p`` and ``abuse_severity``.

``features(frame)`` computes the same text features from a messages frame
(``conversation_id``, ``role``, ``content``, and ``idx`` for message rows):
a frame carries no stored metrics or scores, so those columns are left out.

Definitions: ``chars`` counts characters (code points, like Python's
``len``); ``words`` counts runs of non-whitespace, whitespace being exactly
what Python's ``str.split()`` splits on. Means are over the messages of that
role; a role with no messages gives null means and totals.

One polars definition of the per-message statistics serves both inputs, so
a store and its own messages frame cannot disagree. A store's messages are
read in Arrow batches and reduced to per-conversation sums batch by batch
(polars' regex engine counts words about 3x faster than DuckDB's here), then
DuckDB joins the stored metrics and scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from ..analysis.learned import SKILL_CLASSES
from ..errors import ExportError, InputError
from ..schema import QUALITY_METRICS
from ..store import ConversationFilter, Store
from .scores import columns as table_columns, has_table

# Analysis columns carried into the feature table, with the type they have
# there whatever the analysis tables hold (NULL when absent): a stable
# schema lets the warehouse table be created before the first analysis.
CONVERSATION_SCORES: dict[str, str] = {
    "sentiment_start": "DOUBLE",
    "sentiment_end": "DOUBLE",
    "sentiment_change": "DOUBLE",
    "empathy_mean": "DOUBLE",
    "emotional_reactions_mean": "DOUBLE",
    "interpretations_mean": "DOUBLE",
    "explorations_mean": "DOUBLE",
    "reflection_question_ratio": "DOUBLE",
    "open_question_share": "DOUBLE",
    "risk_score": "DOUBLE",
    "alert": "BOOLEAN",
    "max_severity": "INTEGER",
    "crisis_categories": "VARCHAR[]",
    "disclosures": "INTEGER",
    "responses_appropriate": "DOUBLE",
    "suicide_risk_p_max": "DOUBLE",
    "max_abuse_severity": "INTEGER",
}
MESSAGE_SCORES: dict[str, str] = {
    "sentiment": "DOUBLE",
    "emotional_reactions": "INTEGER",
    "interpretations": "INTEGER",
    "explorations": "INTEGER",
    "empathy": "DOUBLE",
    "crisis_categories": "VARCHAR[]",
    "crisis_severity": "INTEGER",
    "harmful": "VARCHAR[]",
    "pii": "VARCHAR[]",
    "skills": "VARCHAR[]",
    "skill": "VARCHAR",
    **{f"skill_p_{code}": "DOUBLE" for code in SKILL_CLASSES},
    "suicide_risk_p": "DOUBLE",
    "abuse_severity": "INTEGER",
    "reply_appropriate": "BOOLEAN",
}
LEVELS = ("conversation", "message")
FEATURES_VERSION = "3"  # part of the warehouse's change hash: raise when a definition changes
BATCH_ROWS = 200_000  # messages per batch when reading a store

# Rust regex: \s is Unicode White_Space; Python's str.split() also splits on
# the information separators U+001C..U+001F.
WORD = r"[^\s\x1c-\x1f]+"
_ROLES = ("user", "assistant", "system")
_NO_MESSAGES = {"conversation_id": pl.String, "idx": pl.Int32, "role": pl.String, "content": pl.String}


def message_stats(messages: pl.DataFrame) -> pl.DataFrame:
    """``conversation_id, idx, role, chars, words`` of each message."""
    return messages.select(
        pl.col("conversation_id").cast(pl.String),
        pl.col("idx").cast(pl.Int32),
        pl.col("role").cast(pl.String),
        pl.col("content").str.len_chars().cast(pl.Int32).alias("chars"),
        pl.col("content").str.count_matches(WORD).cast(pl.Int32).alias("words"),
    )


def _partial_sums(stats: pl.DataFrame) -> pl.DataFrame:
    """Per-conversation sums that add up across batches."""
    parts: list[pl.Expr] = [pl.len().cast(pl.Int64).alias("n"), pl.col("chars").sum().alias("chars"), pl.col("words").sum().alias("words")]
    for role in _ROLES:
        is_role = pl.col("role") == role
        parts.append(is_role.sum().cast(pl.Int64).alias(f"n_{role}"))
        if role != "system":
            parts.append(pl.col("chars").filter(is_role).sum().cast(pl.Int64).alias(f"chars_{role}"))
            parts.append(pl.col("words").filter(is_role).sum().cast(pl.Int64).alias(f"words_{role}"))
    return stats.group_by("conversation_id").agg(parts)


def _finish(sums: pl.DataFrame) -> pl.DataFrame:
    def ratio(total: str, count: str) -> pl.Expr:
        return pl.when(pl.col(count) > 0).then(pl.col(total) / pl.col(count))

    def total(name: str, count: str) -> pl.Expr:
        return pl.when(pl.col(count) > 0).then(pl.col(name))

    return sums.select(
        "conversation_id",
        pl.col("n").cast(pl.Int32).alias("message_count"),
        *(pl.col(f"n_{r}").cast(pl.Int32).alias(f"{r}_messages") for r in _ROLES),
        pl.col("chars").cast(pl.Int64).alias("chars_total"),
        ratio("chars", "n").alias("chars_mean"),
        ratio("chars_user", "n_user").alias("user_chars_mean"),
        ratio("chars_assistant", "n_assistant").alias("assistant_chars_mean"),
        pl.col("words").cast(pl.Int64).alias("words_total"),
        ratio("words", "n").alias("words_mean"),
        total("words_user", "n_user").cast(pl.Int64).alias("user_words_total"),
        total("words_assistant", "n_assistant").cast(pl.Int64).alias("assistant_words_total"),
        ratio("words_user", "n_user").alias("user_words_mean"),
        ratio("words_assistant", "n_assistant").alias("assistant_words_mean"),
    )


def partial_sums(messages: pl.DataFrame) -> pl.DataFrame:
    """Per-conversation sums of one batch of messages (any order, a
    conversation may span batches); :func:`combine` finishes them."""
    return _partial_sums(message_stats(messages))


def combine(partials: list[pl.DataFrame]) -> pl.DataFrame:
    """Conversation text features from the partial sums of all batches."""
    if not partials:
        partials = [partial_sums(pl.DataFrame(schema=_NO_MESSAGES))]
    combined = pl.concat(partials)
    if len(partials) > 1:
        combined = combined.group_by("conversation_id").agg(pl.exclude("conversation_id").sum())
    return _finish(combined)


def text_features(batches: Iterator[pl.DataFrame]) -> pl.DataFrame:
    """Conversation text features from message batches in any order, unsorted."""
    return combine([partial_sums(b) for b in batches if b.height])


def _score_select(con: duckdb.DuckDBPyConnection, table: str, wanted: dict[str, str], alias: str) -> str:
    present = {n for n, _ in table_columns(con, table)} if has_table(con, table) else set()
    return ", ".join(
        f'CAST({alias}."{n}" AS {t}) AS "{n}"' if n in present else f'NULL::{t} AS "{n}"' for n, t in wanted.items()
    )


def _store_messages(
    con: duckdb.DuckDBPyConnection, where: str, params: list[Any], batch_rows: int
) -> Iterator[pl.DataFrame]:
    reader = con.sql(
        "SELECT m.conversation_id, m.idx, m.role, m.content FROM messages m "
        f"SEMI JOIN (SELECT c.id FROM conversations c WHERE {where}) s ON s.id = m.conversation_id",
        params=params or None,
    ).to_arrow_reader(batch_rows)
    for batch in reader:
        yield pl.from_arrow(pa.Table.from_batches([batch]))  # type: ignore[misc]  # typed DataFrame | Series; a Table always gives a DataFrame


def conversation_features(
    con: duckdb.DuckDBPyConnection,
    where: str,
    params: list[Any] | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
    text: pl.DataFrame | None = None,
) -> pa.Table:
    """Conversation features of the store's conversations matching ``where``
    (over ``conversations c``), ordered by id, as Arrow. ``text``: their
    text features when already computed (e.g. while the messages were being
    read for something else); conversations missing from it are left out."""
    params = list(params or [])
    if text is None:
        text = text_features(_store_messages(con, where, params, batch_rows))
    scored = has_table(con, "conversation_scores")
    scores_join = "LEFT JOIN current_conversation_scores s ON s.conversation_id = c.id" if scored else ""
    sql = (
        "SELECT c.id AS conversation_id, c.dataset, c.tier, c.created_at, t.* EXCLUDE (conversation_id), "
        + ", ".join(f"c.{m}" for m in QUALITY_METRICS)
        + ", "
        + _score_select(con, "conversation_scores", CONVERSATION_SCORES, "s")
        + f" FROM conversations c JOIN _pe_text_features t ON t.conversation_id = c.id {scores_join} "
        f"WHERE {where} ORDER BY c.id"
    )
    con.register("_pe_text_features", text)
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    finally:
        con.unregister("_pe_text_features")


def message_features(con: duckdb.DuckDBPyConnection, where: str, params: list[Any] | None = None) -> pa.Table:
    params = list(params or [])
    batches = [message_stats(b) for b in _store_messages(con, where, params, BATCH_ROWS)]
    stats = pl.concat(batches) if batches else message_stats(pl.DataFrame(schema=_NO_MESSAGES))
    scored = has_table(con, "message_scores")
    scores_join = (
        "LEFT JOIN current_message_scores ms ON ms.conversation_id = m.conversation_id AND ms.idx = m.idx"
        if scored
        else ""
    )
    con.register("_pe_message_stats", stats)
    try:
        return con.sql(
            "SELECT m.*, " + _score_select(con, "message_scores", MESSAGE_SCORES, "ms")
            + f" FROM _pe_message_stats m {scores_join} ORDER BY m.conversation_id, m.idx"
        ).to_arrow_table()
    finally:
        con.unregister("_pe_message_stats")


def _as_frame(frame: Any) -> pl.DataFrame:
    if isinstance(frame, pa.Table):
        frame = pl.from_arrow(frame)
    elif type(frame).__module__.startswith("pandas"):
        frame = pl.from_pandas(frame)
    if not isinstance(frame, pl.DataFrame):
        raise InputError(f"features() takes a Store or a messages frame (polars, pandas, Arrow), got {type(frame).__name__}")
    return frame


def _frame_features(frame: Any, level: str) -> pl.DataFrame:
    frame = _as_frame(frame)
    needed = ["conversation_id", "role", "content"] + (["idx"] if level == "message" else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(f"the messages frame lacks column(s) {', '.join(missing)} (has {', '.join(frame.columns)})")
    if "idx" not in frame.columns:
        frame = frame.with_columns(pl.int_range(pl.len()).over("conversation_id").alias("idx"))
    if level == "message":
        return message_stats(frame).sort("conversation_id", "idx", maintain_order=True)
    return text_features(iter([frame])).sort("conversation_id")


def features(
    store_or_messages: Store | duckdb.DuckDBPyConnection | pl.DataFrame | Any,
    *,
    level: str = "conversation",
    filter: ConversationFilter | None = None,
    **filters: Any,
) -> pl.DataFrame:
    """The feature table (see the module docstring); ``filter`` and keyword
    filters (the vocabulary of :mod:`pe_toolkit.store.filters`) select
    conversations of a store."""
    if level not in LEVELS:
        raise InputError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    if not isinstance(store_or_messages, (Store, duckdb.DuckDBPyConnection)):
        if filter is not None or filters:
            ConversationFilter.build(filter, **filters)  # an unknown name fails as everywhere
            raise InputError("filters apply to a store; filter the frame before passing it")
        return _frame_features(store_or_messages, level)
    from .core import reading

    selection = ConversationFilter.build(filter, **filters)
    with reading(store_or_messages) as con:
        selection.check(con, ExportError)
        where, params = selection.where("c")
        table = conversation_features(con, where, params) if level == "conversation" else message_features(con, where, params)
        return pl.from_arrow(table)  # type: ignore[return-value]  # typed DataFrame | Series; a Table always gives a DataFrame

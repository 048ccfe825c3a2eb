"""``validate_conversation``: score one conversation the way the API's
``POST /v1/quality/validate`` answers.

The input is checked by the importer's own normalizer
(:func:`pe_toolkit.store.normalize.normalize_lines`, format ``api``), so
what is valid here is exactly what ``pe-toolkit import`` accepts; a bad
conversation raises :class:`~pe_toolkit.errors.InputError` with the same
reason the importer would give.

The answer::

    {"conversation_id": str,
     "validation_results": {the six metrics, floats in [0, 1]; null without an assistant message},
     "recommendations": [str, ...],        # most urgent first; [] when none apply
     "tier_classification": str | null,    # local tier (see pe_toolkit.analysis.metrics); null without a reply to rate
     "validation_timestamp": ISO-8601 UTC,
     # with include_messages=True:
     "message_scores": [{idx, role, <every message score>}, ...],
     "evidence": [{idx, analyzer, category, start, end, text}, ...]}
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson
import polars as pl
import pyarrow as pa

from ..errors import InputError
from ..schema import QUALITY_METRICS
from ..store.normalize import normalize_lines
from .frames import FrameScores, analyze_frame
from .recommendations import recommendations
from .registry import shipped

_local = threading.local()
# Message columns that are internal keys, not scores (and not JSON-safe integers).
_INTERNAL = ("text_hash", "minhash_bands")


def _connection() -> duckdb.DuckDBPyConnection:
    # One in-memory DuckDB per thread: the mirror server validates from
    # several worker threads, and a connection is not thread-safe.
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        _local.con = con
    return con


def _normalized_messages(conversation: Any) -> tuple[str, pl.DataFrame]:
    if not isinstance(conversation, dict):
        raise InputError(f"a conversation must be a JSON object, got {type(conversation).__name__}")
    try:
        raw = orjson.dumps(conversation)
    except TypeError as exc:
        raise InputError(f"the conversation is not JSON-serializable: {exc}") from None
    lines = pa.table({"line_no": pa.array([1], pa.int64()), "raw": pa.array([raw.decode()], pa.string())})
    good, errors = normalize_lines(_connection(), lines, "api", dataset="validation", source="validate_conversation")
    if errors:
        raise InputError(f"invalid conversation: {errors[0][1]}")
    row = good.to_pylist()[0]
    frame = pl.DataFrame(
        {
            "conversation_id": [row["id"]] * len(row["messages"]),
            "idx": list(range(len(row["messages"]))),
            "role": [m["role"] for m in row["messages"]],
            "content": [m["content"] for m in row["messages"]],
        },
        schema={"conversation_id": pl.String, "idx": pl.Int32, "role": pl.String, "content": pl.String},
    )
    return row["id"], frame


def _plain_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return orjson.loads(orjson.dumps(frame.to_dicts()))


def validate_conversation(conversation: dict[str, Any], *, include_messages: bool = False) -> dict[str, Any]:
    """Score one API conversation object in memory (see the module docstring)."""
    conversation_id, frame = _normalized_messages(conversation)
    # The API's answer: the shipped analyzers only, not a project's configured
    # models or this process's registrations (a server would fail or expose
    # paths on a researcher's missing model file, and pay for every model).
    scores: FrameScores = analyze_frame(frame, corpus=False, analyzers=shipped())
    conv = scores.conversations.row(0, named=True)
    result: dict[str, Any] = {
        "conversation_id": conversation_id,
        "validation_results": {m: None if conv[m] is None else round(float(conv[m]), 4) for m in QUALITY_METRICS},
        "recommendations": recommendations(conv, scores.messages),
        "tier_classification": conv["tier"],
        "validation_timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if include_messages:
        keep = [c for c in scores.messages.columns if c not in ("conversation_id", *_INTERNAL)]
        result["message_scores"] = _plain_rows(scores.messages.select(keep))
        result["evidence"] = _plain_rows(scores.evidence.drop("conversation_id"))
    return result

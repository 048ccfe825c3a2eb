"""Reshape a batch of nested conversations (see ``source.nested_sql``) into
what each file format holds: one row per message, one row per conversation,
or chat-format JSON lines. Arrow, polars and DuckDB work on whole batches;
nothing here loops over rows in Python.
"""

from __future__ import annotations

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import QUALITY_METRICS, STORED_CONVERSATION_COLUMNS
from .scores import CONVERSATION_PREFIX

# The conversation columns repeated on every message row of flat layouts.
# Free-form metadata (JSON text) follows them on the conversation's first
# row only: repeated, it would grow with the square of the conversation's
# length (it holds metadata.message_metadata, one entry per message). The
# importers read it back from whichever row has it.
FLAT_CONVERSATION_COLUMNS = ("dataset", "tier", "created_at", *QUALITY_METRICS)
NESTED_COLUMNS = ("id", "dataset", "tier", "created_at", "message_count", *QUALITY_METRICS, "metadata")
TABLE_COLUMNS = STORED_CONVERSATION_COLUMNS

_ROLE_TO_SHAREGPT = "CASE m.role WHEN 'user' THEN 'human' WHEN 'assistant' THEN 'gpt' ELSE m.role END"


def _score_columns(schema: pa.Schema) -> list[str]:
    return [n for n in schema.names if n.startswith(CONVERSATION_PREFIX)]


def _message_fields(batch: pa.RecordBatch | pa.Table) -> list[str]:
    return [f.name for f in batch.schema.field("messages").type.value_type]


def rebuild_messages(messages: pa.ListArray, keep: list[str]) -> pa.ListArray:
    """The list of message structs with only the fields in ``keep``, in that
    order; the list child is named ``item`` (what pyarrow, polars and
    ``datasets`` write), whatever DuckDB called it."""
    structs = messages.flatten()
    offsets = pc.subtract(messages.offsets, messages.offsets[0])
    children = dict(zip((f.name for f in structs.type), structs.flatten()))
    fields = [structs.type.field(name) for name in keep]
    rebuilt = pa.StructArray.from_arrays([children[name] for name in keep], fields=fields)
    return pa.ListArray.from_arrays(offsets, rebuilt, type=pa.list_(pa.field("item", rebuilt.type)))


def flat_messages(batch: pa.RecordBatch) -> pl.DataFrame:
    """One row per message: ``conversation_id, idx, role, content, timestamp,
    message_score_*``, then the conversation's dataset, tier, created_at,
    quality metrics, metadata (first row only) and ``score_*`` columns."""
    frame = pl.from_arrow(pa.Table.from_batches([batch]))
    assert isinstance(frame, pl.DataFrame)
    message_fields = _message_fields(batch)
    conv = [*FLAT_CONVERSATION_COLUMNS, "metadata", *_score_columns(batch.schema)]
    # A conversation's rows are consecutive after the explode.
    first = pl.col("conversation_id").ne_missing(pl.col("conversation_id").shift(1))
    return (
        frame.select(pl.col("id").alias("conversation_id"), "messages", *conv)
        .explode("messages")
        .unnest("messages")
        .select("conversation_id", *message_fields, *conv)
        .with_columns(pl.when(first).then(pl.col("metadata")).alias("metadata"))
    )


def conversation_rows(batch: pa.RecordBatch, columns: tuple[str, ...], message_fields: list[str] | None) -> pa.Table:
    """One row per conversation with ``columns`` + ``score_*`` and, when
    ``message_fields`` is given, the messages holding those fields."""
    table = pa.Table.from_batches([batch])
    names = [*columns, *_score_columns(batch.schema)]
    out = table.select(names)
    if message_fields is not None:
        messages = rebuild_messages(table.column("messages").combine_chunks(), message_fields)
        out = out.add_column(names.index("metadata") + 1 if "metadata" in names else len(names), "messages", messages)
    return out


def nested_message_fields(batch: pa.RecordBatch) -> list[str]:
    """Message fields kept in nested layouts: the position is the index."""
    return [n for n in _message_fields(batch) if n != "idx"]


def message_table(batch: pa.RecordBatch) -> pa.Table:
    """The messages as their own table (``conversation_id``, ``idx``, ...)."""
    flat = flat_messages(batch)
    keep = ["conversation_id", *(n for n in _message_fields(batch))]
    return flat.select(keep).to_arrow()


def json_lines(con: duckdb.DuckDBPyConnection, batch: pa.RecordBatch, fmt: str, *, with_scores: bool) -> pa.Array:
    """Chat-format JSON lines of a nested batch (``openai`` or ``sharegpt``),
    serialized by DuckDB like the API objects are."""
    if fmt == "openai":
        obj = "struct_pack(messages := list_transform(b.messages, lambda m: struct_pack(role := m.role, content := m.content)))"
    elif fmt == "sharegpt":
        obj = (
            "struct_pack(id := b.id, conversations := list_transform(b.messages, "
            f'lambda m: struct_pack("from" := {_ROLE_TO_SHAREGPT}, value := m.content)))'
        )
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(fmt)
    scores = _score_columns(batch.schema)
    if with_scores and scores:
        fields = ", ".join(f'"{n[len(CONVERSATION_PREFIX):]}" := b."{n}"' for n in scores)
        obj = obj[:-1] + f", scores := struct_pack({fields}))"
    text = f"to_json({obj})::VARCHAR"
    con.register("_batch", batch)
    try:
        return con.sql(f"SELECT {text} AS line FROM _batch b").to_arrow_table().column(0).combine_chunks()
    finally:
        con.unregister("_batch")


def join_lines(lines: pa.Array) -> bytes:
    """All lines, each ending in a newline, as one buffer (no Python string per line)."""
    if len(lines) == 0:
        return b""
    one = pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines.cast(pa.string()))
    return pc.binary_join(one, "\n")[0].as_buffer().to_pybytes() + b"\n"


def json_text_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists and structs as JSON text (for CSV, which has neither)."""
    nested = [n for n, t in frame.schema.items() if isinstance(t, (pl.List, pl.Struct, pl.Array))]
    if not nested:
        return frame
    # polars encodes structs, not lists, as JSON: wrap each value as {"v": x},
    # encode, and keep the x part.
    return frame.with_columns(
        pl.when(pl.col(n).is_not_null())
        .then(pl.struct(pl.col(n).alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}"))
        .alias(n)
        for n in nested
    )

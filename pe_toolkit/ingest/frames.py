"""Tables already in memory or read by DuckDB: polars/pandas/Arrow frames,
Parquet and JSON-rows files, Hugging Face shards.

:func:`relation_batches` decides how a table holds its conversations:

- a ``messages`` column of ``{role, content}`` lists (OpenAI chat shape) or
  a ``conversations`` column of ``{from, value}`` lists (ShareGPT shape):
  each row is one conversation, checked by the same normalizer as the JSON
  files; the other columns go into its metadata;
- otherwise a table of messages or of pairs, mapped by a
  :class:`~.columns.ColumnMap` (see :mod:`.tabular`).

:func:`import_frame` imports a polars or pandas DataFrame (or an Arrow
table) with the same mappings as a CSV file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from ..errors import InputError
from ..events import EventBus, bus as default_bus
from ..progress import progress_bar
from ..schema import QUALITY_METRICS
from ..store import Store
from ..store.normalize import normalize_lines, parse_connection, sql_str
from .columns import METADATA_COLUMN, ColumnMap, is_score_column, scores_left
from .csvlines import CsvLines
from .loading import Batch, ImportReport, write_batches
from .tabular import duckdb_reason, is_object_column, is_text_type, json_objects_sql, read_table, sql_ident

# (column, message keys, format the normalizer knows it as)
_CHAT_SHAPES = (("messages", ("role", "content"), "openai"), ("conversations", ("from", "value"), "sharegpt"))


def table_of(frame: Any) -> pa.Table:
    """An Arrow table from a polars or pandas DataFrame (or an Arrow table)."""
    if isinstance(frame, pa.Table):
        return frame
    if type(frame).__module__.startswith("polars"):
        return frame.to_arrow()
    if type(frame).__module__.startswith("pandas"):
        return pa.Table.from_pandas(frame, preserve_index=False)
    raise InputError(f"expected a polars or pandas DataFrame, got {type(frame).__name__}")


def chat_shape(con: duckdb.DuckDBPyConnection, relation: str, params: dict[str, Any]) -> tuple[str, str] | None:
    """(column, format) when the table holds whole chats in one list column."""
    rel = con.sql(f"SELECT * FROM {relation} LIMIT 0", params=params)
    types = {c.lower(): (c, str(t)) for c, t in zip(rel.columns, rel.types)}
    for column, keys, fmt in _CHAT_SHAPES:
        if column in types:
            name, kind = types[column]
            if kind.endswith("[]") and all(f'"{k}"' in kind or f"{k} " in kind for k in keys):
                return name, fmt
    return None


def _chat_batches(con: duckdb.DuckDBPyConnection, relation: str, params: dict[str, Any], column: str, fmt: str,
                  cmap: ColumnMap, *, dataset: str, source: str, batch_rows: int) -> tuple[list[str], int, Iterator[Batch]]:  # fmt: skip
    """Rows as the JSON records the normalizer checks, other columns as metadata.

    Our own nested exports (parquet ``nested``, huggingface) come back whole:
    a ``metadata`` column of JSON objects (or a struct) is the metadata the
    other columns are added to; ``dataset``, ``tier`` and ``created_at`` are
    read as the conversation's own (the normalizer takes them from the
    metadata); and when every row has an id and the messages hold nothing
    but role, content and timestamp, the rows are read as API objects, so
    columns named as quality metrics are the metrics and ``message_count``
    (derived) is not kept.
    """
    rel = con.sql(f"SELECT * FROM {relation} LIMIT 0", params=params)
    columns = list(rel.columns)
    types = {c: str(t) for c, t in zip(rel.columns, rel.types)}
    where = "the table"
    for c in (*cmap.drop, *(c for _, c in cmap.metadata), *([cmap.id] if cmap.id else [])):
        if c not in columns:
            raise InputError(f"{where}: no column {c!r} (columns: {', '.join(columns)})")
    id_col = cmap.id or next((c for c in columns if c.lower() == "id"), None)
    renamed = {c: k for k, c in cmap.metadata}
    kept = [(renamed.get(c, c), c) for c in columns if c not in (column, id_col) and c not in cmap.drop and c not in renamed]
    scores = [c for _, c in kept if is_score_column(c)]
    kept = [(k, c) for k, c in kept if c not in scores]
    obj_col = METADATA_COLUMN if (METADATA_COLUMN, METADATA_COLUMN) in kept else None
    message_fields = [f.name for f in rel.to_arrow_table().schema.field(column).type.value_type]
    # Message scores (nested exports with scores) are left out of each message.
    scores += [f"{column}.{f}" for f in message_fields if is_score_column(f)]
    chats = sql_ident(column)
    if any(is_score_column(f) for f in message_fields):
        message_fields = [f for f in message_fields if not is_score_column(f)]
        chats = f"list_transform({chats}, lambda m: struct_pack({', '.join(f'{sql_ident(f)} := m.{sql_ident(f)}' for f in message_fields)}))"

    checks = ["count(*) AS n", f"count({sql_ident(id_col)}) AS ids" if id_col else "0 AS ids"]
    text_obj = obj_col is not None and is_text_type(types[obj_col])
    if obj_col is not None and text_obj:
        checks.append(f"coalesce({json_objects_sql(sql_ident(obj_col))}, true) AS objects")
    cur = con.execute(f"SELECT {', '.join(checks)} FROM {relation}", params)
    row = dict(zip((d[0] for d in cur.description), cur.fetchall()[0]))
    total = row["n"]
    if obj_col is not None and not is_object_column(types[obj_col], row.get("objects")):
        obj_col = None  # an ordinary column, kept as metadata.metadata
    as_api = fmt == "openai" and id_col is not None and row["ids"] == total and set(message_fields) <= {"role", "content", "timestamp"}
    quality = [c for k, c in kept if as_api and k == c and c in QUALITY_METRICS]
    derived = ["message_count"] if as_api and ("message_count", "message_count") in kept else []
    kept = [(k, c) for k, c in kept if c not in quality and c not in derived and c != obj_col]
    kept += [(k, c) for k, c in cmap.metadata]

    # JSON members, left out where null; the metadata object keeps its own nulls.
    def member(key: str, value: str) -> str:
        return f"CASE WHEN {value} IS NOT NULL THEN {sql_str(orjson.dumps(key).decode() + ':')} || {value} END"

    columns_json = f"json_merge_patch('{{}}', json_object({', '.join(f'{sql_str(k)}, {sql_ident(c)}' for k, c in kept)}))" if kept else None
    obj = None
    if obj_col is not None:
        o = sql_ident(obj_col)
        obj = f"CASE WHEN nullif(trim({o}::VARCHAR), '') IS NOT NULL THEN {o}::JSON END" if text_obj else f"to_json({o})"
    if obj and columns_json:
        meta = f"json_merge_patch(coalesce({obj}, '{{}}'), {columns_json})"
    else:
        meta = obj or columns_json or "NULL::JSON"
    metrics = f"json_merge_patch('{{}}', json_object({', '.join(f'{sql_str(c)}, {sql_ident(c)}' for c in quality)}))"
    members = [member("messages" if fmt == "openai" else "conversations", f"to_json({chats})::VARCHAR"),
               member("metadata", f"({meta})::VARCHAR")]  # fmt: skip
    if id_col:
        members.append(member("id", f"to_json({sql_ident(id_col)}::VARCHAR)::VARCHAR"))
    if quality:
        members.append(member("quality_metrics", f"nullif({metrics}::VARCHAR, '{{}}')"))
    sql = f"SELECT row_number() OVER () AS line_no, '{{' || concat_ws(',', {', '.join(members)}) || '}}' AS raw FROM {relation}"
    norm_fmt = "api" if as_api else fmt
    lines = [f"{column} -> messages ({fmt} shape)"]
    if id_col:
        lines.append(f"{id_col} -> conversation id")
    if obj_col:
        lines.append(f"{obj_col} -> metadata (JSON objects: the other columns are added to them)")
    lines += [f"{c} -> {c} (quality metric)" for c in quality]
    lines += [f"{c} -> metadata.{k}" + (" (the conversation's own)" if k in ("dataset", "tier", "created_at") else "") for k, c in kept]
    left = [f"{c} (dropped)" for c in cmap.drop] + [f"{c} (derived)" for c in derived] + scores_left(scores)
    if left:
        lines.append("not kept: " + ", ".join(left))

    def batches() -> Iterator[Batch]:
        reader = con.sql(sql, params=params).to_arrow_reader(batch_rows)
        norm = parse_connection()
        try:
            for batch in reader:
                yield normalize_lines(norm, pa.Table.from_batches([batch]), norm_fmt, dataset=dataset, source=source)
        finally:
            norm.close()

    return lines, total, batches()


def relation_batches(con: duckdb.DuckDBPyConnection, relation: str, params: dict[str, Any], cmap: ColumnMap, *,
                     where: str, what: str, label: str, dataset: str, source: str, text: bool = False, header: int = 0,
                     batch_rows: int = 10_000, line_of: CsvLines | None = None) -> tuple[list[str], int, Iterator[Batch]]:  # fmt: skip
    """(what was mapped to what, number of conversations, batches) of a table
    (``line_of``: see :func:`~.tabular.read_table`)."""
    try:
        shape = None if text else chat_shape(con, relation, params)
    except duckdb.Error as exc:
        raise InputError(f"{where}: cannot read as {what}: {duckdb_reason(exc)}") from None
    if shape is not None:
        lines, total, batches = _chat_batches(con, relation, params, *shape, cmap, dataset=dataset, source=source, batch_rows=batch_rows)
        return lines, total, batches
    plan, total, batches = read_table(con, relation, params, cmap, where=where, what=what, label=label, dataset=dataset,
                                      source=source, text=text, header=header, batch_rows=batch_rows, line_of=line_of)  # fmt: skip
    return plan.describe(), total, batches


def import_table(store: Store, table: pa.Table, *, name: str, dataset: str, columns: ColumnMap | None, skip_invalid: bool,
                 progress: bool, batch_rows: int, events: EventBus | None, source: str | None = None,
                 keep: Callable[[pa.Table], pa.Table] | None = None) -> ImportReport:  # fmt: skip
    """Import an Arrow table (a frame, a dataset split) as conversations.
    ``keep``: applied to each batch of conversations before it is written
    (the splits of a dataset leave out the ids a later split has)."""
    source = source or f"frame:{name}"
    report = ImportReport(path=name, format="table")
    if table.num_columns == 0:  # DuckDB refuses to register it with an error of its own
        raise InputError(f"{name}: the table has no columns; nothing to import")
    con = parse_connection()
    con.register("_pe_frame", table)
    try:
        lines, total, batches = relation_batches(con, "_pe_frame", {}, columns or ColumnMap(), where=name, what="a table",
                                                 label="frame", dataset=dataset, source=source, batch_rows=batch_rows)  # fmt: skip
        report.mapping = lines

        def counted() -> Iterator[Batch]:
            with progress_bar(total, name, "conv", enabled=progress) as bar:
                for good, errors in batches:
                    read = good.num_rows + len(errors)
                    yield (good if keep is None else keep(good)), errors
                    bar.update(read)

        write_batches(store, counted(), where=name, source=source, report=report, skip_invalid=skip_invalid, events=events or default_bus)
    finally:
        con.close()
    return report


def import_frame(
    store: Store,
    frame: Any,
    *,
    dataset: str = "frame",
    columns: ColumnMap | None = None,
    skip_invalid: bool = False,
    progress: bool = False,
    batch_rows: int = 10_000,
    events: EventBus | None = None,
) -> ImportReport:
    """Import a polars or pandas DataFrame: one row per message or per pair,
    mapped as a CSV file is (``columns``), or whole chats in a ``messages``
    / ``conversations`` column. Errors name the row (1-based)."""
    if isinstance(frame, (str, os.PathLike)):
        raise InputError("import_frame takes a DataFrame; use import_file for a file")
    return import_table(store, table_of(frame), name=f"frame {dataset!r}", dataset=dataset, columns=columns,
                        skip_invalid=skip_invalid, progress=progress, batch_rows=batch_rows, events=events)  # fmt: skip

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
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import InputError
from ..events import EventBus, bus as default_bus
from ..progress import progress_bar
from ..store import Store
from ..store.normalize import normalize_lines, parse_connection, sql_str
from .columns import ColumnMap
from .loading import Batch, ImportReport, write_batches
from .tabular import read_table, sql_ident

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
    """Rows as the JSON records the normalizer checks, other columns as metadata."""
    columns = list(con.sql(f"SELECT * FROM {relation} LIMIT 0", params=params).columns)
    where = "the table"
    for c in (*cmap.drop, *(c for _, c in cmap.metadata), *([cmap.id] if cmap.id else [])):
        if c not in columns:
            raise InputError(f"{where}: no column {c!r} (columns: {', '.join(columns)})")
    id_col = cmap.id or next((c for c in columns if c.lower() == "id"), None)
    renamed = {c: k for k, c in cmap.metadata}
    kept = [(renamed.get(c, c), c) for c in columns if c not in (column, id_col) and c not in cmap.drop and c not in renamed]
    kept += [(k, c) for k, c in cmap.metadata]

    meta = f"json_object({', '.join(f'{sql_str(k)}, {sql_ident(c)}' for k, c in kept)})" if kept else "NULL::JSON"
    record = f"json_object('{'messages' if fmt == 'openai' else 'conversations'}', {sql_ident(column)}, 'metadata', {meta}"
    record += f", 'id', {sql_ident(id_col)}::VARCHAR)" if id_col else ")"
    # merge_patch onto {} leaves out null fields (an id or metadata value missing).
    sql = f"SELECT row_number() OVER () AS line_no, json_merge_patch('{{}}', {record})::VARCHAR AS raw FROM {relation}"
    total = con.execute(f"SELECT count(*) FROM {relation}", params).fetchall()[0][0]
    lines = [f"{column} -> messages ({fmt} shape)"]
    if id_col:
        lines.append(f"{id_col} -> conversation id")
    lines += [f"{c} -> metadata.{k}" for k, c in kept]
    if cmap.drop:
        lines.append("not kept: " + ", ".join(f"{c} (dropped)" for c in cmap.drop))

    def batches() -> Iterator[Batch]:
        reader = con.sql(sql, params=params).to_arrow_reader(batch_rows)
        norm = parse_connection()
        try:
            for batch in reader:
                yield normalize_lines(norm, pa.Table.from_batches([batch]), fmt, dataset=dataset, source=source)
        finally:
            norm.close()

    return lines, total, batches()


def relation_batches(con: duckdb.DuckDBPyConnection, relation: str, params: dict[str, Any], cmap: ColumnMap, *,
                     where: str, what: str, label: str, dataset: str, source: str, text: bool = False, header: int = 0,
                     batch_rows: int = 10_000) -> tuple[list[str], int, Iterator[Batch]]:  # fmt: skip
    """(what was mapped to what, number of conversations, batches) of a table."""
    try:
        shape = None if text else chat_shape(con, relation, params)
    except duckdb.Error as exc:
        raise InputError(f"{where}: cannot read as {what}: {str(exc).splitlines()[0]}") from None
    if shape is not None:
        lines, total, batches = _chat_batches(con, relation, params, *shape, cmap, dataset=dataset, source=source, batch_rows=batch_rows)
        return lines, total, batches
    plan, total, batches = read_table(con, relation, params, cmap, where=where, what=what, label=label, dataset=dataset,
                                      source=source, text=text, header=header, batch_rows=batch_rows)  # fmt: skip
    return plan.describe(), total, batches


def import_table(store: Store, table: pa.Table, *, name: str, dataset: str, columns: ColumnMap | None, skip_invalid: bool,
                 progress: bool, batch_rows: int, events: EventBus | None, source: str | None = None) -> ImportReport:  # fmt: skip
    """Import an Arrow table (a frame, a dataset split) as conversations."""
    source = source or f"frame:{name}"
    report = ImportReport(path=name, format="table")
    con = parse_connection()
    con.register("_pe_frame", table)
    try:
        lines, total, batches = relation_batches(con, "_pe_frame", {}, columns or ColumnMap(), where=name, what="a table",
                                                 label="frame", dataset=dataset, source=source, batch_rows=batch_rows)  # fmt: skip
        report.mapping = lines

        def counted() -> Iterator[Batch]:
            with progress_bar(total, name, "conv", enabled=progress) as bar:
                for good, errors in batches:
                    yield good, errors
                    bar.update(good.num_rows + len(errors))

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

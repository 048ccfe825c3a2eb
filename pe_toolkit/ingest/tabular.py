"""Tables of conversations: one row per message, or one row per user/assistant pair.

Any table-shaped input comes here: CSV, Parquet, JSON rows (``Context``/
``Response``, ``prompt``/``response``...), Hugging Face datasets and
in-memory frames. A :class:`~.columns.ColumnMap` says which column holds
what. DuckDB reads the table and groups rows into conversations in SQL,
spilling to disk when the input is larger than memory, so a conversation
whose rows are scattered through the file is still assembled whole.

Columns that are not part of the conversation's structure are kept as
metadata, typed: a CSV column whose every value is an integer (a number,
``true``/``false``) is stored as such, anything else as text. When rows are
grouped into conversations, a column that varies within a conversation
belongs to each message and is kept in ``metadata.message_metadata`` (one
entry per message); a constant one belongs to the conversation.

Our own exports' columns are read back as what they were: a column named
as a quality metric is that metric, and a ``metadata`` column of JSON
objects is the metadata the other columns are added to (see
:class:`~.columns.Extra`).

Errors name the first bad row of a conversation and its column: CSV, by
the line of the file the row starts on (:mod:`.csvlines`, counted on the
error path only); other inputs, by the row's number, 1-based.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import InputError
from ..schema import QUALITY_METRICS, TIERS
from ..store.normalize import _STRIP_OWNED, ROLE_MAP_SQL, TIER_LIST_SQL, split_errors, sql_str
from .columns import MESSAGE_METADATA_KEY, ColumnMap, Extra
from .csvlines import CsvLines

__all__ = ["TABULAR_FORMATS", "ColumnMap", "Plan", "columns_of", "is_object_column", "json_objects_sql", "read_table",
           "relation_of", "sql_ident"]  # fmt: skip

TABULAR_FORMATS = ("csv", "parquet", "rows")
_INTEGER = r"^\s*[+-]?(0|[1-9][0-9]{0,17})\s*$"
_NUMBER = r"^\s*[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\s*$"


def sql_ident(name: str) -> str:
    """``name`` as a quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def relation_of(fmt: str) -> str:
    """The DuckDB table function reading a file (or list of files) ``$path`` of ``fmt``."""
    if fmt == "csv":
        # Text throughout: a quoted empty cell ("") is an empty message, not a
        # missing one, and metadata types are inferred over the whole column
        # below rather than from a sample.
        return "read_csv($path, all_varchar = true, header = true, allow_quoted_nulls = false)"
    if fmt == "parquet":
        return "read_parquet($path, union_by_name = true)"
    if fmt == "rows":
        return "read_json($path, format = 'auto', sample_size = -1, union_by_name = true)"
    raise ValueError(fmt)


@dataclass
class Plan:
    """What the import will do with each column (printed by ``pe-toolkit import``)."""

    cmap: ColumnMap
    extras: list[Extra]
    left: list[str]

    def describe(self) -> list[str]:
        c = self.cmap
        lines: list[str] = []
        if c.layout == "messages":
            lines.append(f"layout: messages (one row per message), conversations by {c.id!r}")
        elif c.group_by:
            unit = "user/assistant pair" if c.assistant else "user message (no assistant column)"
            lines.append(f"layout: pairs (one row per {unit}), threaded by {c.group_by!r}")
        else:
            lines.append("layout: pairs (one conversation per row" + ("" if c.assistant else ": a user message alone; "
                         "--map assistant=COL if the rows hold answers") + ")")  # fmt: skip
        what = {
            "id": "conversation id" + (" (a row number added where repeated)" if c.layout == "pairs" and not c.group_by else ""),
            "role": "message role", "content": "message text", "user": "user message", "assistant": "assistant message",
            "system": "system message", "turn": "message order", "timestamp": "message time", "created_at": "created_at",
            "dataset": "dataset", "tier": "tier",
        }  # fmt: skip
        for field, column in c.mapped.items():
            if field == "id" and c.layout == "pairs" and c.group_by:
                continue
            lines.append(f"{column} -> {what[field]}")
        for e in self.extras:
            if e.level == "object":
                lines.append(f"{e.column} -> metadata (JSON objects: the other columns are added to them)")
                continue
            if e.level == "quality":
                lines.append(f"{e.column} -> {e.key} (quality metric)")
                continue
            where = f"message metadata.{e.key}" if e.level == "message" else f"metadata.{e.key}"
            kind = "" if e.kind == "native" else f" ({e.kind})"
            lines.append(f"{e.column} -> {where}{kind}")
        if self.left:
            lines.append("not kept: " + ", ".join(self.left))
        return lines


def is_text_type(t: str) -> bool:
    return t in ("VARCHAR", "JSON")


def json_objects_sql(column: str) -> str:
    """SQL aggregate: every non-empty value of the text column ``column`` (SQL) is a JSON object."""
    v = f"nullif(trim({column}::VARCHAR), '')"
    return f"bool_and({v} IS NULL OR (starts_with({v}, '{{') AND json_valid({v})))"


def is_object_column(t: str, all_objects: bool | None) -> bool:
    """A column of DuckDB type ``t`` holds metadata objects: text whose every
    value is a JSON object (``all_objects``, from :func:`json_objects_sql`),
    or a struct or map."""
    return bool(all_objects) if is_text_type(t) else t.startswith(("STRUCT", "MAP"))


def _profile(con: duckdb.DuckDBPyConnection, relation: str, params: dict[str, Any], extras: list[Extra], text: bool,
             key: str | None, types: dict[str, str]) -> list[Extra]:  # fmt: skip
    """Each kept column's JSON kind (text columns: over the whole column) and,
    when rows are grouped by ``key``, whether it varies within a conversation
    (then it belongs to each message); whether a ``metadata`` column holds
    JSON objects only, at most one distinct one per conversation (else it is
    an ordinary column). One scan of the input."""
    inner: list[str] = []
    outer: list[str] = []
    for i, e in enumerate(extras):
        if e.level == "quality":
            continue
        col = sql_ident(e.column)
        if e.level == "object" and is_text_type(types[e.column]):
            inner.append(f"{json_objects_sql(col)} AS o{i}")
            outer.append(f"bool_and(o{i}) AS o{i}")
        if e.level == "object" and key is not None:
            # Our flat exports write the object on a conversation's first
            # row; one on every row, differing, belongs to each message.
            v = f"nullif(trim({col}::VARCHAR), '')" if is_text_type(types[e.column]) else f"to_json({col})::VARCHAR"
            inner.append(f"count(DISTINCT {v}) <= 1 AS s{i}")
            outer.append(f"bool_and(s{i}) AS s{i}")
        if text:
            v = f"nullif(trim({col}), '')"
            inner += [
                f"bool_and({v} IS NULL OR (regexp_full_match({v}, '{_INTEGER}') AND try_cast({v} AS BIGINT) IS NOT NULL)) AS i{i}",
                f"bool_and({v} IS NULL OR regexp_full_match({v}, '{_NUMBER}')) AS f{i}",
                f"bool_and({v} IS NULL OR lower({v}) IN ('true', 'false')) AS b{i}",
                f"count({v}) AS c{i}",
            ]
            outer += [f"bool_and(i{i}) AS i{i}", f"bool_and(f{i}) AS f{i}", f"bool_and(b{i}) AS b{i}", f"sum(c{i}) AS c{i}"]
        if key is not None:
            # Distinct values, a missing value counting as one more (count(DISTINCT) skips nulls).
            inner.append(f"count(DISTINCT {col}) + (count({col}) BETWEEN 1 AND count(*) - 1)::INTEGER AS n{i}")
            outer.append(f"max(n{i}) AS n{i}")
    if not inner:
        return [_object_or_plain(e, types, None, True) for e in extras]
    grouped = f" GROUP BY {sql_ident(key)}" if key is not None else ""
    cur = con.execute(f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {relation}{grouped})", params)
    row = dict(zip((d[0] for d in cur.description), cur.fetchall()[0]))
    out = []
    for i, e in enumerate(extras):
        if e.level == "quality":
            out.append(e)
            continue
        e = _object_or_plain(e, types, row.get(f"o{i}"), row.get(f"s{i}", True) is not False)
        if e.level == "object":
            out.append(e)
            continue
        if text:
            integer, number, boolean, n = (row[f"{c}{i}"] for c in "ifbc")
            kind = "string" if not n else "integer" if integer else "number" if number else "boolean" if boolean else "string"
            e = replace(e, kind=kind)
        if key is not None:
            e = replace(e, level="message" if (row[f"n{i}"] or 0) > 1 else "conversation")
        out.append(e)
    return out


def _object_or_plain(e: Extra, types: dict[str, str], all_objects: bool | None, one_per_conversation: bool) -> Extra:
    """A ``metadata`` column stays the metadata object when it holds JSON
    objects only (text) or is a struct or map, and each conversation has at
    most one; otherwise it is kept as ``metadata.metadata`` like any other
    column."""
    if e.level != "object":
        return e
    t = types[e.column]
    if not (one_per_conversation and is_object_column(t, all_objects)):
        return replace(e, level="conversation")
    return replace(e, kind="json") if is_text_type(t) else e


def _value(i: int, e: Extra) -> str:
    x = f"_pe_x{i}"
    if e.kind == "native":
        return x
    v = f"nullif(trim({x}), '')"
    return {
        "integer": f"CAST({v} AS BIGINT)",
        "number": f"CAST({v} AS DOUBLE)",
        "boolean": f"(lower({v}) = 'true')",
        "string": f"nullif({x}, '')",
    }[e.kind]


def _object(pairs: list[tuple[int, Extra]]) -> str:
    if not pairs:
        return "NULL::JSON"
    args = ", ".join(f"{sql_str(e.key)}, {_value(i, e)}" for i, e in pairs)
    # merge_patch onto {} leaves out the keys whose value is null.
    return f"json_merge_patch('{{}}', json_object({args}))"


def _grouped_sql(relation: str, cmap: ColumnMap, extras: list[Extra], header: int, text: bool, label: str,
                 row_in_error: bool) -> str:  # fmt: skip
    """One row per conversation: line_no (of its first bad row, else of its
    first row), error, canonical columns. ``row_in_error``: the error text
    starts with ``row N:`` (when line_no is not a line of a file).

    The mapped columns are first copied under ``_pe_*`` names, so that no
    column of the input can shadow a derived value in the checks below.
    """
    # A text table has no nulls: an empty cell is an empty message, not a missing one.
    as_text = (lambda e: f"coalesce({e}, '')") if text else (lambda e: e)
    null_is_error = "false" if text else "true"
    names = ("id", "role", "content", "turn", "timestamp", "created_at", "user", "assistant", "system", "dataset", "tier")
    picked = [f"{sql_ident(getattr(cmap, n))}::VARCHAR AS _pe_{n}" if getattr(cmap, n) else f"NULL::VARCHAR AS _pe_{n}" for n in names]
    picked.append(f"{sql_ident(cmap.group_by)}::VARCHAR AS _pe_group" if cmap.group_by else "NULL::VARCHAR AS _pe_group")
    picked += [f"{sql_ident(e.column)} AS _pe_x{i}" for i, e in enumerate(extras)]
    turn = "try_cast(_pe_turn AS BIGINT)"
    ts = "try_cast(_pe_timestamp AS TIMESTAMPTZ)"
    created = "try_cast(_pe_created_at AS TIMESTAMPTZ)"
    def bad(column: str | None, what: str, value: str) -> str:
        """SQL for ``column C: WHAT 'value'``."""
        return f"{sql_str(f'column {column}: {what} {chr(39)}')} || {value}::VARCHAR || {sql_str(chr(39))}"

    quality = [(i, e) for i, e in enumerate(extras) if e.level == "quality"]
    qvalue = {i: f"nullif(trim(_pe_x{i}::VARCHAR), '')" if text else f"_pe_x{i}" for i, _ in quality}
    common_checks = f"""WHEN _pe_turn IS NOT NULL AND {turn} IS NULL THEN {bad(cmap.turn, 'not an integer:', '_pe_turn')}
                     WHEN _pe_timestamp IS NOT NULL AND {ts} IS NULL THEN {bad(cmap.timestamp, 'not an ISO-8601 time:', '_pe_timestamp')}
                     WHEN _pe_created_at IS NOT NULL AND trim(_pe_created_at) <> '' AND {created} IS NULL
                          THEN {bad(cmap.created_at, 'not an ISO-8601 time:', '_pe_created_at')}
                     WHEN _pe_tier IS NOT NULL AND NOT list_contains({TIER_LIST_SQL}, lower(_pe_tier))
                          THEN {bad(cmap.tier, 'unknown tier', '_pe_tier')} || {sql_str(f" (expected one of {', '.join(TIERS)})")}"""
    for i, e in quality:
        common_checks += f"""
                     WHEN {qvalue[i]} IS NOT NULL AND try_cast({qvalue[i]} AS DOUBLE) IS NULL
                          THEN {bad(e.column, 'not a number:', qvalue[i])}
                     WHEN {qvalue[i]} IS NOT NULL AND NOT try_cast({qvalue[i]} AS DOUBLE) BETWEEN 0 AND 1
                          THEN {bad(e.column, 'not a number between 0 and 1:', qvalue[i])}"""
    conv_extras = [(i, e) for i, e in enumerate(extras) if e.level == "conversation"]
    msg_extras = [(i, e) for i, e in enumerate(extras) if e.level == "message"]
    objects = [(i, e) for i, e in enumerate(extras) if e.level == "object"]
    # The metadata object as JSON text (the first non-empty one of a conversation).
    if objects:
        x = f"_pe_x{objects[0][0]}"
        obj = f"nullif(trim({x}::VARCHAR), '')" if objects[0][1].kind == "json" else f"to_json({x})::VARCHAR"
    else:
        obj = "NULL::VARCHAR"
    mmeta = f"nullif({_object(msg_extras)}::VARCHAR, '{{}}')::JSON"
    if cmap.layout == "messages":
        role = "lower(trim(_pe_role))"
        checks = f"""WHEN _pe_id IS NULL OR trim(_pe_id) = '' THEN {sql_str(f'empty conversation id in column {cmap.id}')}
                     WHEN _pe_role IS NULL THEN {sql_str(f'empty role in column {cmap.role}')}
                     WHEN NOT map_contains({ROLE_MAP_SQL}, {role}) THEN {bad(cmap.role, 'unknown role', '_pe_role')} || ' (expected user, assistant or system)'
                     WHEN {null_is_error} AND _pe_content IS NULL THEN {sql_str(f'empty content in column {cmap.content}')}"""
        msgs = f"[struct_pack(role := {ROLE_MAP_SQL}[{role}], content := {as_text('_pe_content')}, timestamp := {ts})]"
        mm = f"[{mmeta}]"
        cid, gkey = "_pe_id", "_pe_id"
    else:
        checks = f"""WHEN {null_is_error} AND _pe_user IS NULL THEN {sql_str(f'empty user text in column {cmap.user}')}"""
        has_system = "coalesce(trim(_pe_system), '') <> ''"
        user = f"struct_pack(role := 'user', content := {as_text('_pe_user')}, timestamp := {ts})"
        if cmap.assistant:
            checks += f"""
                     WHEN {null_is_error} AND _pe_assistant IS NULL THEN {sql_str(f'empty assistant text in column {cmap.assistant}')}"""
            turn_msgs = f"[{user}, struct_pack(role := 'assistant', content := {as_text('_pe_assistant')}, timestamp := {ts})]"
            # A pair's own columns describe its answer.
            turn_mm = f"[NULL::JSON, {mmeta}]"
        else:  # user messages alone (posts): a row's own columns describe it
            turn_msgs, turn_mm = f"[{user}]", f"[{mmeta}]"
        msgs = f"""list_concat(
                    CASE WHEN {has_system} THEN [struct_pack(role := 'system', content := _pe_system, timestamp := {ts})] ELSE [] END,
                    {turn_msgs})"""
        mm = f"list_concat(CASE WHEN {has_system} THEN [NULL::JSON] ELSE [] END, {turn_mm})"
        if cmap.group_by:
            cid, gkey = "_pe_group", "coalesce(_pe_group, '')"
        else:
            # One conversation per row. An id shared by several rows (many
            # answers to one question) gets the row's number among them; no
            # id: the content names the conversation, so re-importing the
            # input changes nothing.
            cid = ("CASE WHEN nullif(trim(_pe_id), '') IS NULL THEN NULL "
                   "WHEN count(*) OVER (PARTITION BY _pe_id) > 1 "
                   "THEN _pe_id || '-' || row_number() OVER (PARTITION BY _pe_id ORDER BY _pe_row) ELSE _pe_id END")  # fmt: skip
            gkey = "_pe_row"
    # The metadata object first (without the keys the conversation's columns
    # own, as every importer does), the other columns over it.
    if objects and msg_extras:
        # The object's message_metadata and the per-message columns, merged
        # message by message (a merge patch would replace the whole list).
        mm_path = f"'$.{MESSAGE_METADATA_KEY}'"
        own = f"CASE WHEN json_type(obj, {mm_path}) = 'ARRAY' THEN json_extract(obj, {mm_path} || '[*]') END"
        mml = f"""list_transform(range(1, greatest(len({own}), len(mml)) + 1), lambda i:
                CASE WHEN nullif(({own})[i]::VARCHAR, 'null') IS NULL THEN mml[i]
                     WHEN mml[i] IS NULL THEN ({own})[i]
                     ELSE json_merge_patch(({own})[i], mml[i]) END)"""
    else:
        mml = "mml"
    metadata = f"""json_merge_patch(coalesce(cmeta, '{{}}'),
            CASE WHEN list_bool_or(list_transform({mml}, lambda x: x IS NOT NULL))
                 THEN json_object('{MESSAGE_METADATA_KEY}', to_json({mml})) ELSE '{{}}' END)"""
    if objects:
        metadata = f"json_merge_patch(json_merge_patch(coalesce(obj, '{{}}'), {sql_str(_STRIP_OWNED)}), {metadata})"
    row_prefix = f"'row ' || (_row + {header})::VARCHAR || ': ' || " if row_in_error else ""
    derived = f"'{label}_' || substr(md5(coalesce(any_value(ds), $dataset) || to_json(flatten(list(msgs ORDER BY turn NULLS LAST, _row)))), 1, 20)"
    order = "ORDER BY turn NULLS LAST, _row"
    return f"""
    WITH src AS (SELECT {", ".join(picked)}, row_number() OVER () AS _pe_row FROM {relation}),
    rows AS (
        SELECT _pe_row AS _row, {cid} AS cid, {gkey} AS gkey, {turn} AS turn, _pe_dataset AS ds, lower(_pe_tier) AS tier,
            {created} AS created,
            CASE {checks}
                 {common_checks}
            END AS row_error,
            {msgs} AS msgs,
            {mm} AS mm,
            {_object(conv_extras)} AS cmeta,
            {obj} AS obj{"".join(f", try_cast({qvalue[i]} AS DOUBLE) AS q{i}" for i, _ in quality)}
        FROM src),
    grouped AS (
        SELECT coalesce(min(_row) FILTER (WHERE row_error IS NOT NULL), min(_row)) + {header} AS line_no,
            arg_min({row_prefix}row_error, _row) FILTER (WHERE row_error IS NOT NULL) AS error,
            coalesce(any_value(cid), {derived}) AS id,
            coalesce(any_value(ds), $dataset) AS dataset,
            any_value(tier) AS tier,
            min(created) AS created_at,
            first(cmeta ORDER BY _row) AS cmeta,
            arg_min(obj, _row) FILTER (WHERE obj IS NOT NULL) AS obj,{"".join(f'''
            arg_min(q{i}, _row) FILTER (WHERE q{i} IS NOT NULL) AS {e.key},''' for i, e in quality)}
            flatten(list(mm {order})) AS mml,
            flatten(list(msgs {order})) AS all_msgs
        FROM rows GROUP BY gkey)
    SELECT line_no, error, id, $source AS source, dataset, tier, created_at,
        {", ".join(m if m in {e.key for _, e in quality} else f"NULL::DOUBLE AS {m}" for m in QUALITY_METRICS)},
        nullif({metadata}::VARCHAR, '{{}}') AS metadata,
        CASE WHEN error IS NULL THEN all_msgs END AS messages,
        CASE WHEN error IS NOT NULL THEN to_json(list_transform(all_msgs, lambda m: struct_pack(role := m.role, content := m.content))) END AS bad_raw
    FROM grouped
    ORDER BY line_no
    """


REASON_CHARS = 300


def duckdb_reason(exc: BaseException) -> str:
    """DuckDB's error as one line that keeps its reason: its first line is
    often only "CSV Error on Line: 2", the cause ("not utf-8 encoded") is on
    the next. Stops at the blank line before the hints and reader settings,
    and leaves out "Original Line:", which quotes the file's (private) text."""
    kept: list[str] = []
    for line in str(exc).splitlines():
        if not line.strip():
            if kept:
                break
            continue
        if not line.startswith("Original Line:"):
            kept.append(line.strip())
    reason = " ".join(kept) or type(exc).__name__
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"


def columns_of(con: duckdb.DuckDBPyConnection, relation: str, params: dict[str, Any], where: str, what: str) -> list[str]:
    try:
        return list(con.sql(f"SELECT * FROM {relation} LIMIT 0", params=params).columns)
    except duckdb.Error as exc:
        raise InputError(f"{where}: cannot read as {what}: {duckdb_reason(exc)}") from None


Batches = Iterator[tuple[pa.Table, list[tuple[int, str, str]]]]


def table_memory_limit() -> str:
    """How much memory grouping a table into conversations may take.

    The grouping is one query over the whole table, with list aggregates
    DuckDB cannot spill to disk, so it needs memory in proportion to the
    file (about 3.5x a CSV's size: a 300 MB export takes about 1 GB). The
    parser's own cap (``PARSE_MEMORY_LIMIT``, sized for JSON lines read a
    chunk at a time) would refuse any table of more than about 70 MB, so a
    table gets half the memory this process may have (the machine's, or a
    container's cgroup limit when lower: past it the kernel would kill the
    import instead of DuckDB refusing it), or ``$PE_IMPORT_MEMORY``."""
    chosen = os.environ.get("PE_IMPORT_MEMORY", "").strip()
    if chosen:
        return chosen
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return "2GB"
    limits = [total, *(n for n in map(_cgroup_bytes, CGROUP_LIMIT_FILES) if n)]
    return f"{max(min(limits) // 2 // 2**20, 256)}MB"


# cgroup v2, then v1 ("max" or a huge number when unlimited).
CGROUP_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _cgroup_bytes(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _allow_table_memory(con: duckdb.DuckDBPyConnection) -> str:
    limit = table_memory_limit()
    try:
        con.execute(f"SET memory_limit = {sql_str(limit)}")
    except duckdb.Error as exc:
        raise InputError(f"PE_IMPORT_MEMORY={limit!r} is not a memory size (e.g. 4GB): {str(exc).splitlines()[0]}") from None
    return limit


def read_table(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    params: dict[str, Any],
    cmap: ColumnMap,
    *,
    where: str,
    what: str,
    label: str,
    dataset: str,
    source: str,
    text: bool = False,
    header: int = 0,
    batch_rows: int = 10_000,
    line_of: CsvLines | None = None,
) -> tuple[Plan, int, Batches]:
    """(plan, number of conversations, iterator of (good batch, errors)) for
    the rows of ``relation`` (a DuckDB table expression with ``params``).

    ``where``/``what`` name the input in errors; ``label`` prefixes ids
    derived from content; ``text``: every column is text (CSV), so empty
    cells are empty strings and metadata types are inferred. Errors carry
    the bad row's number (1-based, plus ``header``), or ``line_of(row)``, the
    line of the file it starts on, when given (asked on errors only).
    """
    columns = columns_of(con, relation, params, where, what)
    cmap = cmap.resolve(columns, where)
    extras, left = cmap.extras(columns)
    limit = _allow_table_memory(con)
    try:
        rel = con.sql(f"SELECT * FROM {relation} LIMIT 0", params=params)
        types = {c: str(t) for c, t in zip(rel.columns, rel.types)}
        extras = _profile(con, relation, params, extras, text, cmap.id if cmap.layout == "messages" else cmap.group_by, types)
        sql = _grouped_sql(relation, cmap, extras, header, text, label, row_in_error=line_of is None)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _tabular AS {sql}", {**params, "dataset": dataset, "source": source})
    except duckdb.OutOfMemoryException:
        raise InputError(
            f"{where}: grouping the {what} rows into conversations needs more memory than the import may use ({limit}); "
            "set PE_IMPORT_MEMORY higher (e.g. 8GB) or import the file in parts"
        ) from None
    except duckdb.Error as exc:
        raise InputError(f"{where}: cannot read as {what}: {duckdb_reason(exc)}") from None
    total = con.execute("SELECT count(*) FROM _tabular").fetchall()[0][0]

    def batches() -> Batches:
        reader = con.sql("SELECT * FROM _tabular ORDER BY line_no").to_arrow_reader(batch_rows)
        try:
            for batch in reader:
                good, errors = split_errors(pa.Table.from_batches([batch]))
                if errors and line_of is not None:
                    errors = [(line_of(row - header), reason, raw) for row, reason, raw in errors]
                yield good, errors
        finally:
            if line_of is not None:
                line_of.close()
        con.execute("DROP TABLE IF EXISTS _tabular")

    return Plan(cmap, extras, left), total, batches()


"""Normalize JSON records (API, OpenAI chat, ShareGPT) into the conversation schema.

Records arrive as a table of raw JSON texts with their line numbers and are
parsed, validated and reshaped in DuckDB queries: no Python loop over
records. Each output row carries either the canonical conversation columns
or an ``error`` naming what is wrong, so the caller can stop with
``file:line: reason`` or send the record to ``dead_letters``.

Types are strict: a number where a string belongs is an error, not a silent
cast. Two passes keep that cheap:

1. the *typed* pass lets the JSON parser decode message strings directly
   (fast, but it would quietly turn ``"content": 7`` into ``"7"``), and
   marks for re-checking every line that fails any check or that a cheap
   regular expression finds suspicious (a role/content key followed by
   something other than a string);
2. the *strict* pass parses only those lines again, with every leaf kept as
   JSON and its type checked before decoding, and names the exact problem.

Both passes are built from the same SQL pieces below, so they cannot
disagree on what a valid record is; the tests check that they agree.

It lives in the store layer, below everything that writes conversations
(the file importers, sync, the mirror's validation, the scale runner): it
defines what a batch for :meth:`Store.upsert` is made from, as
:mod:`.api_objects` defines the way back from stored rows to API records.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import CONVERSATION_SCHEMA, MESSAGE_METADATA_KEY, QUALITY_METRICS, ROLE_ALIASES, TIERS
from .access import for_threads

JSON_FORMATS = ("api", "openai", "sharegpt")

_RECHECK = "recheck"
_META_SHAPE = '{"dataset":"JSON","tier":"JSON","created_at":"JSON"}'
_METRICS_SHAPE = "{" + ",".join(f'"{m}":"JSON"' for m in QUALITY_METRICS) + "}"


def _keys(fmt: str) -> tuple[str, str, str]:
    """(list key, role key, content key) of a format."""
    return ("conversations", "from", "value") if fmt == "sharegpt" else ("messages", "role", "content")


def _shape(fmt: str, typed: bool) -> str:
    item, role, content = _keys(fmt)
    leaf = "VARCHAR" if typed else "JSON"
    timestamp = f',"timestamp":"{leaf}"' if fmt != "sharegpt" else ""
    messages = f'"{item}":[{{"{role}":"{leaf}","{content}":"{leaf}"{timestamp}}}]'
    top = ',"quality_metrics":"JSON","quality_score":"JSON","tier":"JSON","dataset":"JSON","created_at":"JSON"' if fmt == "api" else ""
    return '{"id":"JSON",' + messages + ',"metadata":"JSON"' + top + "}"


def _suspicious(fmt: str) -> str:
    # A role or content key followed by anything but a string: the typed
    # pass would coerce it, so such lines go to the strict pass. False
    # alarms (the pattern inside some text) only cost a second parse.
    _, role, content = _keys(fmt)
    return f"""regexp_matches(raw, '"(?:{role}|{content})"\\s*:\\s*[^"\\s]')"""


def sql_str(text: str) -> str:
    """``text`` as a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def _sql_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(sql_str(t) for t in items) + "]"


def _json_nulls(keys: tuple[str, ...]) -> str:
    """A JSON object of ``keys`` set to null: as a merge patch, it removes them."""
    return "{" + ",".join(f'"{k}":null' for k in keys) + "}"


ROLE_MAP_SQL = "MAP {" + ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in ROLE_ALIASES.items()) + "}"
TIER_LIST_SQL = _sql_list(TIERS)


def _kind(expr: str) -> str:
    """JSON type of a JSON value, in JSON's own words (for error messages)."""
    return (
        f"CASE json_type({expr}) WHEN 'VARCHAR' THEN 'string' WHEN 'OBJECT' THEN 'object' "
        f"WHEN 'ARRAY' THEN 'array' WHEN 'BOOLEAN' THEN 'boolean' WHEN 'NULL' THEN 'null' "
        f"ELSE 'number' END"
    )


def _is_string(expr: str) -> str:
    # A JSON leaf's text starts with '"' exactly when it is a string: cheaper
    # than json_type, which parses the leaf again.
    return f"starts_with({expr}::VARCHAR, '\"')"


def _number(expr: str) -> str:
    """The value of a JSON number leaf, NULL for anything else."""
    return f"CASE WHEN json_type({expr}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN ({expr})::DOUBLE END"


def _role(text: str) -> str:
    # The three canonical spellings first: a CASE avoids the map lookup for
    # nearly every message.
    return (
        f"CASE {text} WHEN 'user' THEN 'user' WHEN 'assistant' THEN 'assistant' "
        f"WHEN 'system' THEN 'system' ELSE {ROLE_MAP_SQL}[lower(trim({text}))] END"
    )


def _decoded_messages(fmt: str, typed: bool) -> str:
    """The messages as a list of structs. Typed: already in the final shape
    (role, content, timestamp). Strict: plus the raw JSON leaves (r, c, t)
    that error messages quote."""
    item, role, content = _keys(fmt)
    r, c = f'm."{role}"', f'm."{content}"'
    t = "m.timestamp" if fmt != "sharegpt" else "NULL::VARCHAR"
    if typed:
        fields = f"role := {_role(r)}, content := {c}, timestamp := try_cast({t} AS TIMESTAMPTZ)"
    else:
        fields = (
            f"r := {r}, c := {c}, t := {t}, "
            f"role := CASE WHEN {_is_string(r)} THEN {_role(f'({r} ->> {sql_str(chr(36))})')} END, "
            f"content := CASE WHEN {_is_string(c)} THEN {c} ->> '$' END, "
            f"timestamp := try_cast({t} ->> '$' AS TIMESTAMPTZ)"
        )
    return f"list_transform(j.{item}, lambda m: struct_pack({fields}))"


def _messages_ok(fmt: str, typed: bool) -> str:
    if typed:
        timestamps = " AND given_timestamps = len(list_filter(dm, lambda m: m.timestamp IS NOT NULL))" if fmt != "sharegpt" else ""
        return f"list_bool_and(list_transform(dm, lambda m: m.role IS NOT NULL AND m.content IS NOT NULL)){timestamps}"
    return "list_bool_and(oks)"


def _message_error(fmt: str, typed: bool) -> str:
    """First problem among the decoded messages ``dm``, as text, or NULL."""
    if typed:
        return f"CASE WHEN NOT msgs_ok THEN '{_RECHECK}' END"
    item, role_key, content_key = _keys(fmt)
    return f"""CASE WHEN NOT msgs_ok THEN
        list_filter(list_transform(dm, lambda m, i: CASE
        WHEN oks[i] THEN NULL
        WHEN m.r IS NULL THEN format('{item}[{{}}] has no "{role_key}" (each message needs "{role_key}" and "{content_key}")', i - 1)
        WHEN NOT {_is_string('m.r')} THEN format('{item}[{{}}].{role_key} must be a string, got {{}}', i - 1, {_kind('m.r')})
        WHEN m.role IS NULL THEN format('{item}[{{}}]: unknown role {{}} (expected user, assistant or system)', i - 1, m.r::VARCHAR)
        WHEN m.c IS NULL THEN format('{item}[{{}}] has no "{content_key}"', i - 1)
        WHEN m.content IS NULL THEN format('{item}[{{}}].{content_key} must be a string, got {{}}', i - 1, {_kind('m.c')})
        ELSE format('{item}[{{}}].timestamp is not an ISO-8601 time: {{}}', i - 1, m.t::VARCHAR)
        END), lambda e: e IS NOT NULL)[1] END"""


# DuckDB's JSON reader accepts NaN, Infinity and numbers beyond a double
# (1e400 reads as inf); none of them is JSON, and one in a stored document
# breaks every reader downstream (the mirror's answers, Store.conversation,
# exports). A cheap pattern over the metadata text finds the documents that
# may hold one: such a word where a value starts, or a number with a
# three-digit exponent or 300 digits (a false alarm, a string holding
# ": info" say, costs one walk of the document); only those are walked
# leaf by leaf.
_MAYBE_NON_FINITE = r"(?i)[:\[,]\s*[-+]?(?:nan|inf)|[0-9][eE][+]?[0-9]{3}|[0-9]{300}"


def _non_finite_leaf(expr: str) -> str:
    """The text of the first number in the JSON document ``expr`` that is
    not a finite double, or NULL."""
    return (
        f"CASE WHEN regexp_matches({expr}::VARCHAR, '{_MAYBE_NON_FINITE}') THEN "
        f"list_filter(json_extract({expr}, '$..*'), lambda x: CASE WHEN json_type(x) = 'DOUBLE' "
        f"THEN NOT isfinite(x::DOUBLE) ELSE false END)[1]::VARCHAR END"
    )


def _metric_check(metric: str) -> str:
    value = f"qmx.{metric}"
    return (
        f"WHEN {value} IS NOT NULL AND ({metric} IS NULL OR NOT {metric} BETWEEN 0 AND 1) "
        f"THEN 'quality_metrics.{metric} must be a number between 0 and 1, got ' || {value}::VARCHAR"
    )


def _record_error(fmt: str, typed: bool) -> str:
    item = _keys(fmt)[0]
    # The typed pass does not carry the raw line (copying it through every
    # step was a measurable share of the time); its rows are re-judged with
    # the raw text by the strict pass anyway.
    shape_error = f"'{_RECHECK}'" if typed else f"""CASE
            WHEN json_type(raw) <> 'OBJECT' THEN 'expected a JSON object, got ' || {_kind('raw')}
            WHEN json_extract(raw, '$.{item}') IS NULL THEN 'missing "{item}"'
            ELSE '"{item}" must be an array, got ' || {_kind(f"json_extract(raw, '$.{item}')")} END"""
    id_check = "WHEN id_leaf IS NULL THEN 'missing \"id\"'" if fmt == "api" else ""
    metric_checks = "\n        ".join(_metric_check(m) for m in QUALITY_METRICS)
    return f"""CASE
        WHEN no_json THEN 'invalid JSON'
        WHEN dm IS NULL THEN {shape_error}
        WHEN len(dm) = 0 THEN '"{item}" is empty'
        {id_check}
        WHEN id_leaf IS NOT NULL AND NOT {_is_string('id_leaf')} THEN '"id" must be a string, got ' || {_kind('id_leaf')}
        WHEN id_leaf IS NOT NULL AND trim(id_leaf ->> '$') = '' THEN '"id" is empty'
        WHEN meta IS NOT NULL AND NOT starts_with(meta::VARCHAR, '{{') THEN '"metadata" must be an object, got ' || {_kind('meta')}
        WHEN tier_raw IS NOT NULL AND tier IS NULL
            THEN 'unknown tier ' || tier_raw::VARCHAR || ' (expected one of {", ".join(TIERS)})'
        WHEN created_raw IS NOT NULL AND created_at IS NULL
            THEN 'created_at is not an ISO-8601 time: ' || created_raw::VARCHAR
        WHEN qm IS NOT NULL AND NOT starts_with(qm::VARCHAR, '{{') THEN '"quality_metrics" must be an object, got ' || {_kind('qm')}
        {metric_checks}
        WHEN qs IS NOT NULL AND NOT coalesce({_number('qs')} BETWEEN 0 AND 1, false)
            THEN '"quality_score" must be a number between 0 and 1, got ' || qs::VARCHAR
        WHEN meta_bad IS NOT NULL THEN '"metadata" holds a number JSON cannot represent: ' || meta_bad
        ELSE msg_error END"""


def _top_level(fmt: str) -> str:
    """Fields only the API format has at the top level (NULL elsewhere)."""
    if fmt == "api":
        return "j.tier AS top_tier, j.created_at AS top_created, j.dataset AS top_dataset, j.quality_metrics AS qm, j.quality_score AS qs"
    return "NULL::JSON AS top_tier, NULL::JSON AS top_created, NULL::JSON AS top_dataset, NULL::JSON AS qm, NULL::JSON AS qs"


# OpenAI and ShareGPT records often carry more than the messages: a
# top-level "source", "model" or "category", a per-message "name" or
# "weight". Those fields are kept: the top-level ones in the conversation's
# metadata (its own "metadata" object wins on a clash), the per-message ones
# in metadata.message_metadata (one entry per message, null for a message
# without any), as the tabular and ESConv importers do. json_structure finds
# the records that have any; only those are taken apart. Measured on a 125k
# record OpenAI file: the typed pass 0.69 -> 0.74 s, the whole import 3.79 ->
# 3.99 s (medians of 3); the API format does not pay it.


def _extras(fmt: str) -> tuple[str, str]:
    """(the shape column for the inner pass, the ``extra`` struct over it):
    NULL for the API format, whose record is the contract's."""
    if fmt == "api":
        return "", "NULL::STRUCT(top VARCHAR, msgs VARCHAR[])"
    item, role, content = _keys(fmt)
    top_known = ("id", item, "metadata")
    msg_known = (role, content) + (("timestamp",) if fmt != "sharegpt" else ())
    found = (
        f"len(list_filter(coalesce(json_keys(shape_of), []), lambda k: NOT list_contains({_sql_list(top_known)}, k))) > 0 "
        f"OR len(list_filter(coalesce(json_keys(shape_of, '$.{item}[0]'), []), lambda k: NOT list_contains({_sql_list(msg_known)}, k))) > 0"
    )
    taken = (
        f"struct_pack(top := nullif(json_merge_patch(raw, '{_json_nulls(top_known)}')::VARCHAR, '{{}}'), "
        f"msgs := list_transform(json_extract(raw, '$.{item}[*]'), lambda m: CASE WHEN starts_with(m::VARCHAR, '{{') "
        f"THEN nullif(json_merge_patch(m, '{_json_nulls(msg_known)}')::VARCHAR, '{{}}') END))"
    )
    return ", json_structure(raw) AS shape_of", f"CASE WHEN {found} THEN {taken} END"


def _extras_json(extra: str) -> str:
    """The record's extra fields as one metadata object (JSON), or NULL."""
    return (
        f"CASE WHEN {extra} IS NOT NULL THEN json_merge_patch(coalesce({extra}.top, '{{}}'), "
        f"CASE WHEN list_bool_or(list_transform({extra}.msgs, lambda x: x IS NOT NULL)) "
        f"THEN json_object('{MESSAGE_METADATA_KEY}', list_transform({extra}.msgs, lambda x: x::JSON)) ELSE '{{}}' END) END"
    )


def normalize_sql(fmt: str, *, typed: bool, guarded: bool) -> str:
    """The query over ``_lines(line_no BIGINT, raw VARCHAR)``.

    ``typed``: the fast first pass (see the module docstring); its errors are
    only ``'recheck'`` marks. ``guarded``: lines that are not JSON at all are
    marked ``invalid JSON`` instead of aborting the whole query (the
    unguarded query saves one validation parse per line).
    Parameters: ``$dataset`` (default dataset), ``$source``.
    """
    if fmt not in JSON_FORMATS:
        raise ValueError(f"not a JSON format: {fmt}")
    parse = f"json_transform(raw, '{_shape(fmt, typed)}')"
    if guarded:
        parse = f"CASE WHEN json_valid(raw) THEN {parse} END"
    metrics = ",\n            ".join(
        f"{_number(f'qmx.{m}')} AS {m}" if m != "overall_quality" else f"coalesce({_number(f'qmx.{m}')}, {_number('qs')}) AS {m}"
        for m in QUALITY_METRICS
    )
    suspicious = _suspicious(fmt) if typed else "false"
    raw = "" if typed else "raw, "
    given_timestamps = (
        f"len(list_filter(j.{_keys(fmt)[0]}, lambda m: m.timestamp IS NOT NULL))" if fmt != "sharegpt" else "NULL::BIGINT"
    )
    oks = "NULL::BOOLEAN[]" if typed else (
        "list_transform(dm, lambda m: m.role IS NOT NULL AND m.content IS NOT NULL AND (m.t IS NULL OR m.timestamp IS NOT NULL))"
    )
    final_messages = "dm" if typed else (
        "list_transform(dm, lambda m: struct_pack(role := m.role, content := m.content, timestamp := m.timestamp))"
    )
    derived_id = f"'{fmt}_' || substr(md5(coalesce(dataset, $dataset) || to_json(messages)), 1, 20)"
    # MATERIALIZED: otherwise DuckDB inlines the CTE and re-parses the JSON
    # once per field extracted from it (measured: 3x slower).
    shape_of, extra = _extras(fmt)
    if shape_of and guarded:
        shape_of = ", CASE WHEN json_valid(raw) THEN json_structure(raw) END AS shape_of"
    return f"""
    WITH parsed AS MATERIALIZED (
        SELECT line_no, {raw}j, suspicious, {extra} AS extra FROM (
            SELECT line_no, raw, {parse} AS j, {suspicious} AS suspicious{shape_of}
            FROM _lines WHERE raw NOT IN ('', chr(10), chr(13), chr(13) || chr(10))
        )
    ), decoded AS MATERIALIZED (
        SELECT line_no, {raw}j IS NULL AS no_json, j.id AS id_leaf, suspicious, j.metadata AS meta, {_top_level(fmt)},
            {given_timestamps} AS given_timestamps,
            CASE WHEN starts_with(j.metadata::VARCHAR, '{{') THEN json_transform(j.metadata, '{_META_SHAPE}') END AS mx,
            coalesce(CASE WHEN starts_with(j.metadata::VARCHAR, '{{') THEN {_non_finite_leaf('j.metadata')} END,
                     {_non_finite_leaf('extra_json')}) AS meta_bad,
            {_decoded_messages(fmt, typed)} AS dm, extra_json
        FROM (SELECT *, {_extras_json('extra')} AS extra_json FROM parsed)
    ), valued AS (
        SELECT *,
            coalesce(top_tier, mx.tier) AS tier_raw,
            coalesce(mx.created_at, top_created) AS created_raw,
            coalesce(mx.dataset, top_dataset) AS dataset_raw,
            CASE WHEN starts_with(qm::VARCHAR, '{{') THEN json_transform(qm, '{_METRICS_SHAPE}') END AS qmx,
            {oks} AS oks
        FROM decoded
    ), typed_values AS (
        SELECT *,
            {_messages_ok(fmt, typed)} AS msgs_ok,
            CASE WHEN {_is_string('tier_raw')} AND list_contains({TIER_LIST_SQL}, lower(tier_raw ->> '$'))
                THEN lower(tier_raw ->> '$') END AS tier,
            try_cast(created_raw ->> '$' AS TIMESTAMPTZ) AS created_at,
            CASE WHEN dataset_raw IS NOT NULL THEN dataset_raw ->> '$' END AS dataset,
            {metrics}
        FROM valued
    ), judged AS (
        SELECT *, {_message_error(fmt, typed)} AS msg_error FROM typed_values
    ), shaped AS (
        SELECT *, coalesce({_record_error(fmt, typed)}, CASE WHEN suspicious THEN '{_RECHECK}' END) AS error FROM judged
    ), final AS (
        SELECT line_no, error, {"NULL::VARCHAR" if typed else "CASE WHEN error IS NOT NULL THEN raw END"} AS bad_raw,
            id_leaf ->> '$' AS given_id, dataset, tier, created_at,
            {", ".join(QUALITY_METRICS)},
            -- json_merge_patch(NULL, patch) is the patch itself: the owned
            -- keys as nulls, which the API objects would repeat.
            CASE WHEN extra_json IS NOT NULL
                THEN json_merge_patch(json_merge_patch(extra_json, coalesce(meta, '{{}}')), '{_STRIP_OWNED}')::VARCHAR
                WHEN meta IS NOT NULL THEN json_merge_patch(meta, '{_STRIP_OWNED}')::VARCHAR END AS metadata,
            CASE WHEN error IS NULL THEN {final_messages} END AS messages
        FROM shaped
    )
    SELECT line_no, error, bad_raw,
        coalesce(given_id, CASE WHEN error IS NULL THEN {derived_id} END) AS id,
        $source AS source,
        coalesce(dataset, $dataset) AS dataset,
        tier, created_at,
        {", ".join(QUALITY_METRICS)},
        metadata, messages
    FROM final
    """


# The metadata keys the conversation's columns own. They are stored in the
# columns only, so the stored metadata (and the content hash over it) is the
# same whether a conversation arrived from a file, from the API (which
# rebuilds metadata with these keys last) or back from an export.
OWNED_METADATA_KEYS = ("dataset", "tier", "length", "created_at")
_STRIP_OWNED = _json_nulls(OWNED_METADATA_KEYS)


# Parsing connections hold one chunk at a time; capped so DuckDB's cache
# cannot grow with the file (part of keeping a 1 M-conversation import
# under 1 GB).
PARSE_MEMORY_LIMIT = "256MB"


def parse_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection set up for normalizing records."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{PARSE_MEMORY_LIMIT}'")
    return con


def _run(con: duckdb.DuckDBPyConnection, lines: pa.Table, fmt: str, typed: bool, params: dict[str, Any]) -> pa.Table:
    con.register("_lines", for_threads(lines))
    try:
        try:
            return con.sql(normalize_sql(fmt, typed=typed, guarded=False), params=params).to_arrow_table()
        except duckdb.InvalidInputException:
            # Some line is not JSON at all: re-run with a json_valid guard so
            # every other line is still judged on its own.
            return con.sql(normalize_sql(fmt, typed=typed, guarded=True), params=params).to_arrow_table()
    finally:
        con.unregister("_lines")


def normalize_lines(
    con: duckdb.DuckDBPyConnection,
    lines: pa.Table,
    fmt: str,
    *,
    dataset: str,
    source: str,
) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """Parse a table ``(line_no, raw)``; return (good conversations, errors).

    Errors are ``(line_no, reason, raw)``, in line order. The good table
    follows :data:`CONVERSATION_SCHEMA`, in line order.

    A chunk the parser cannot hold in its memory limit (one record of tens
    of MB) is halved until the culprit stands alone; a record too large on
    its own is an error ``record too large to parse`` (its raw text cut to
    :data:`TOO_LARGE_PAYLOAD` characters), and the rest of the chunk is
    judged as usual.
    """
    try:
        return _normalize_lines(con, lines, fmt, dataset=dataset, source=source)
    except duckdb.OutOfMemoryException:
        if lines.num_rows <= 1:
            return CONVERSATION_SCHEMA.empty_table(), _too_large(con, lines)
    half = lines.num_rows // 2
    first_good, first_errors = normalize_lines(con, lines.slice(0, half), fmt, dataset=dataset, source=source)
    rest_good, rest_errors = normalize_lines(con, lines.slice(half), fmt, dataset=dataset, source=source)
    return pa.concat_tables([first_good, rest_good]), first_errors + rest_errors


# How much of a record too large to parse is kept as its dead letter's payload.
TOO_LARGE_PAYLOAD = 64 * 1024


def _too_large(con: duckdb.DuckDBPyConnection, lines: pa.Table) -> list[tuple[int, str, str]]:
    limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    errors = []
    for row in lines.to_pylist():  # one row: the record that did not fit
        raw = row["raw"] or ""
        size = len(raw.encode("utf-8", "replace")) / 2**20
        reason = f"record too large to parse ({size:,.1f} MB; the parser's memory limit is {limit})"
        errors.append((row["line_no"], reason, raw[:TOO_LARGE_PAYLOAD]))
    return errors


def _normalize_lines(
    con: duckdb.DuckDBPyConnection, lines: pa.Table, fmt: str, *, dataset: str, source: str
) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    params: dict[str, Any] = {"dataset": dataset, "source": source}
    first = _run(con, lines, fmt, True, params)
    flagged = pc.is_valid(first["error"])
    if not pc.any(flagged).as_py():
        return first.select(CONVERSATION_SCHEMA.names).cast(CONVERSATION_SCHEMA), []
    recheck = lines.filter(pc.is_in(lines["line_no"], value_set=first.filter(flagged)["line_no"]))
    second = _run(con, recheck, fmt, False, params)
    merged = pa.concat_tables([first.filter(pc.invert(flagged)), second.select(first.column_names)])
    merged = merged.take(pc.sort_indices(merged["line_no"]))
    return split_errors(merged)


def split_errors(out: pa.Table) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """Separate rows with an ``error`` from good ones (schema-cast).

    Rows built elsewhere (CSV/Parquet) are also held to the numbers rule
    here: a quality value outside 0-1 (or NaN) and metadata JSON cannot
    represent (a NaN or infinite float cell) make the row an error.
    """
    out = _number_errors(out)
    error_mask = pc.is_valid(out["error"])
    errors: list[tuple[int, str, str]] = []
    if pc.any(error_mask).as_py():
        bad = out.filter(error_mask).select(["line_no", "error", "bad_raw"]).to_pylist()
        # The raw text as the file had it, without its line ending.
        errors = [(r["line_no"], _explain(r["error"], raw), raw) for r in bad for raw in [(r["bad_raw"] or "").rstrip("\r\n")]]
        out = out.filter(pc.invert(error_mask))
    return out.select(CONVERSATION_SCHEMA.names).cast(CONVERSATION_SCHEMA), errors


def _number_errors(out: pa.Table) -> pa.Table:
    """``out`` with an ``error`` set on rows whose numbers are not valid
    (see :func:`split_errors`); rows already in error keep theirs."""
    reasons = pa.nulls(out.num_rows, pa.string())
    for metric in reversed(QUALITY_METRICS):  # the first bad metric names the row
        values = out[metric]
        in_range = pc.and_(pc.greater_equal(values, 0), pc.less_equal(values, 1))  # NaN compares false
        bad = pc.fill_null(pc.invert(in_range), False)
        if pc.any(bad).as_py():
            text = pc.binary_join_element_wise(
                f"{metric} must be a number between 0 and 1, got ", pc.cast(values, pa.string()), ""
            )
            reasons = pc.if_else(bad, text, reasons)
    metadata = out["metadata"]
    maybe = pc.fill_null(pc.match_substring_regex(metadata, _MAYBE_NON_FINITE), False)
    if pc.any(maybe).as_py():
        import orjson

        # Only documents the pattern flags are parsed (a handful at most):
        # orjson refuses exactly what JSON cannot represent.
        flagged = pc.indices_nonzero(maybe).to_pylist()
        texts = metadata.take(pa.array(flagged)).to_pylist()
        bad_rows = {}
        for index, text in zip(flagged, texts, strict=True):
            try:
                orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                bad_rows[index] = f'"metadata" holds a number JSON cannot represent ({exc})'
        if bad_rows:
            reasons = pc.coalesce(reasons, pa.array([bad_rows.get(i) for i in range(out.num_rows)], pa.string()))
    if reasons.null_count == out.num_rows:
        return out
    error = pc.coalesce(out["error"], reasons)
    bad_raw = pc.coalesce(out["bad_raw"], pc.if_else(pc.is_valid(reasons), metadata, pa.nulls(out.num_rows, pa.string())))
    out = out.set_column(out.schema.get_field_index("error"), "error", error)
    return out.set_column(out.schema.get_field_index("bad_raw"), "bad_raw", bad_raw)


def _explain(reason: str, raw: str) -> str:
    """Add the parser's own words to 'invalid JSON' (error path only)."""
    if reason != "invalid JSON":
        return reason
    import orjson

    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON ({exc})"
    return reason

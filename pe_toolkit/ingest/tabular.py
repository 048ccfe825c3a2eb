"""CSV and Parquet files: one row per message, or one row per user/assistant pair.

A :class:`ColumnMap` says which column holds what; unset names are guessed
from common spellings (``conversation_id``, ``speaker``, ``text``,
``Context``/``Response``...). DuckDB reads the file and groups rows into
conversations in SQL, spilling to disk when the file is larger than memory,
so a conversation whose rows are scattered through the file is still
assembled whole. Errors carry the file's line number of the first bad row
(header = line 1; exact unless a quoted field spans several lines).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

import duckdb
import pyarrow as pa

from ..errors import InputError
from ..schema import QUALITY_METRICS, ROLE_ALIASES, TIERS
from .normalize import split_errors

_GUESSES: dict[str, tuple[str, ...]] = {
    "id": ("conversation_id", "conv_id", "dialog_id", "dialogue_id", "session_id", "thread_id", "chat_id", "id"),
    "role": ("role", "speaker", "from", "author", "sender"),
    "content": ("content", "text", "message", "utterance", "value", "body"),
    "turn": ("turn", "turn_id", "idx", "message_index", "position", "seq", "index"),
    "timestamp": ("timestamp", "time", "sent_at"),
    "user": ("user", "prompt", "input", "question", "context", "human", "client", "seeker", "query"),
    "assistant": ("assistant", "response", "output", "answer", "completion", "gpt", "counselor", "therapist", "reply"),
    "system": ("system", "system_prompt", "instruction"),
    "dataset": ("dataset",),
    "tier": ("tier",),
}


@dataclass(frozen=True)
class ColumnMap:
    """Which column holds what. ``layout`` is ``messages`` (role + content per
    row), ``pairs`` (user + assistant per row) or None to decide from the
    columns present."""

    layout: str | None = None
    id: str | None = None
    role: str | None = None
    content: str | None = None
    turn: str | None = None
    timestamp: str | None = None
    user: str | None = None
    assistant: str | None = None
    system: str | None = None
    dataset: str | None = None
    tier: str | None = None

    @classmethod
    def parse(cls, items: list[str] | tuple[str, ...], layout: str | None = None) -> ColumnMap:
        """From CLI ``--map field=column`` items."""
        known = {f.name for f in fields(cls)} - {"layout"}
        values: dict[str, str] = {}
        for item in items:
            key, sep, column = item.partition("=")
            if not sep or key not in known or not column:
                raise InputError(f"--map expects FIELD=COLUMN with FIELD one of {', '.join(sorted(known))}; got {item!r}")
            values[key] = column
        return cls(layout=layout, **values)

    def resolve(self, columns: list[str], where: str) -> ColumnMap:
        """Fill unset fields from the file's columns; check every named column exists."""
        lower = {c.lower(): c for c in columns}
        chosen: dict[str, str | None] = {}
        for name, spellings in _GUESSES.items():
            given = getattr(self, name)
            if given is not None:
                if given not in columns:
                    raise InputError(f"{where}: no column {given!r} (columns: {', '.join(columns)})")
                chosen[name] = given
            else:
                chosen[name] = next((lower[s] for s in spellings if s in lower), None)
        layout = self.layout
        if layout is None:
            if chosen["role"] and chosen["content"]:
                layout = "messages"
            elif chosen["user"] and chosen["assistant"]:
                layout = "pairs"
            else:
                raise InputError(
                    f"{where}: cannot tell which columns hold the conversation (columns: {', '.join(columns)}); "
                    "pass --map role=COL --map content=COL (one row per message) or "
                    "--map user=COL --map assistant=COL (one row per pair)"
                )
        if layout not in ("messages", "pairs"):
            raise InputError(f"layout must be 'messages' or 'pairs', got {layout!r}")
        needed = ("role", "content", "id") if layout == "messages" else ("user", "assistant")
        for name in needed:
            if chosen[name] is None:
                raise InputError(f"{where}: no column for {name!r} in a {layout} layout; pass --map {name}=COLUMN")
        if layout == "pairs":
            # A 'role'/'content' guess means nothing in a pairs layout.
            chosen["role"] = chosen["content"] = None
        return replace(self, layout=layout, **chosen)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_ROLE_MAP = "MAP {" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in ROLE_ALIASES.items()) + "}"
_TIER_LIST = "[" + ", ".join(_sql_str(t) for t in TIERS) + "]"


def _reader(fmt: str) -> str:
    if fmt == "csv":
        # A quoted empty cell ("") is an empty message, not a missing one.
        return "read_csv($path, all_varchar = true, header = true, allow_quoted_nulls = false)"
    if fmt == "parquet":
        return "read_parquet($path)"
    raise ValueError(fmt)


def _col(cmap: ColumnMap, name: str, default: str = "NULL") -> str:
    column = getattr(cmap, name)
    return f"{_ident(column)}::VARCHAR" if column else default


def _grouped_sql(fmt: str, cmap: ColumnMap) -> str:
    """One row per conversation: line_no of its first row, error, canonical columns.

    The mapped columns are first copied under ``_pe_*`` names, so that no
    column of the file can shadow a derived value in the checks below.
    """
    header = 1 if fmt == "csv" else 0
    # CSV has no nulls: an empty cell is an empty message, not a missing one.
    text = (lambda e: f"coalesce({e}, '')") if fmt == "csv" else (lambda e: e)
    null_is_error = "false" if fmt == "csv" else "true"
    picked = ", ".join(
        f"{_col(cmap, name)} AS _pe_{name}"
        for name in ("id", "role", "content", "turn", "timestamp", "user", "assistant", "system", "dataset", "tier")
    )
    turn = "try_cast(_pe_turn AS BIGINT)"
    ts = "try_cast(_pe_timestamp AS TIMESTAMPTZ)"
    common_checks = f"""WHEN _pe_turn IS NOT NULL AND {turn} IS NULL THEN 'turn is not an integer: ' || _pe_turn
                     WHEN _pe_timestamp IS NOT NULL AND {ts} IS NULL THEN 'timestamp is not an ISO-8601 time: ' || _pe_timestamp
                     WHEN _pe_tier IS NOT NULL AND NOT list_contains({_TIER_LIST}, lower(_pe_tier)) THEN 'unknown tier ' || _pe_tier"""
    if cmap.layout == "messages":
        role = "lower(trim(_pe_role))"
        checks = f"""WHEN _pe_id IS NULL OR trim(_pe_id) = '' THEN {_sql_str(f'empty conversation id in column {cmap.id}')}
                     WHEN _pe_role IS NULL THEN {_sql_str(f'empty role in column {cmap.role}')}
                     WHEN NOT map_contains({_ROLE_MAP}, {role}) THEN 'unknown role ' || _pe_role || ' (expected user, assistant or system)'
                     WHEN {null_is_error} AND _pe_content IS NULL THEN {_sql_str(f'empty content in column {cmap.content}')}"""
        msgs = f"[struct_pack(role := {_ROLE_MAP}[{role}], content := {text('_pe_content')}, timestamp := {ts})]"
    else:
        checks = f"""WHEN {null_is_error} AND _pe_user IS NULL THEN {_sql_str(f'empty user text in column {cmap.user}')}
                     WHEN {null_is_error} AND _pe_assistant IS NULL THEN {_sql_str(f'empty assistant text in column {cmap.assistant}')}"""
        msgs = f"""list_concat(
                    CASE WHEN trim(_pe_system) <> '' THEN [struct_pack(role := 'system', content := _pe_system, timestamp := {ts})] ELSE [] END,
                    [struct_pack(role := 'user', content := {text('_pe_user')}, timestamp := {ts}),
                     struct_pack(role := 'assistant', content := {text('_pe_assistant')}, timestamp := {ts})])"""
    # Pairs without an id column: each row is a conversation of its own,
    # identified by its content so re-importing the file changes nothing.
    group_key = "coalesce(cid, 'row' || _row::VARCHAR)"
    derived = f"'{fmt}_' || substr(md5(coalesce(any_value(ds), $dataset) || to_json(flatten(list(msgs ORDER BY turn NULLS LAST, _row)))), 1, 20)"
    return f"""
    WITH src AS (SELECT {picked}, row_number() OVER () AS _pe_row FROM {_reader(fmt)}),
    rows AS (
        SELECT _pe_row AS _row, _pe_id AS cid, {turn} AS turn, _pe_dataset AS ds, lower(_pe_tier) AS tier,
            CASE {checks}
                 {common_checks}
            END AS row_error,
            {msgs} AS msgs
        FROM src)
    SELECT min(_row) + {header} AS line_no,
        first('row ' || (_row + {header})::VARCHAR || ': ' || row_error ORDER BY _row) FILTER (WHERE row_error IS NOT NULL) AS error,
        coalesce(any_value(cid), {derived}) AS id,
        $source AS source,
        coalesce(any_value(ds), $dataset) AS dataset,
        any_value(tier) AS tier,
        NULL::TIMESTAMPTZ AS created_at,
        {", ".join(f"NULL::DOUBLE AS {m}" for m in QUALITY_METRICS)},
        NULL::VARCHAR AS metadata,
        CASE WHEN error IS NULL THEN flatten(list(msgs ORDER BY turn NULLS LAST, _row)) END AS messages,
        CASE WHEN error IS NOT NULL THEN to_json(list(struct_pack(role := msgs[1].role, content := msgs[1].content) ORDER BY _row)) END AS bad_raw
    FROM rows GROUP BY {group_key}
    ORDER BY line_no
    """


def columns_of(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> list[str]:
    try:
        return list(con.sql(f"SELECT * FROM {_reader(fmt)} LIMIT 0", params={"path": str(path)}).columns)
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from None


def read_tabular(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str,
    cmap: ColumnMap,
    *,
    dataset: str,
    source: str,
    batch_rows: int = 10_000,
) -> tuple[int, Iterator[tuple[pa.Table, list[tuple[int, str, str]]]]]:
    """(number of conversations, iterator of (good batch, errors))."""
    cmap = cmap.resolve(columns_of(con, path, fmt), str(path))
    sql = _grouped_sql(fmt, cmap)
    params = {"dataset": dataset, "source": source, "path": str(path)}
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _tabular AS {sql}", params)
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from None
    total = con.execute("SELECT count(*) FROM _tabular").fetchall()[0][0]

    def batches() -> Iterator[tuple[pa.Table, list[tuple[int, str, str]]]]:
        reader = con.sql("SELECT * FROM _tabular ORDER BY line_no").to_arrow_reader(batch_rows)
        for batch in reader:
            yield split_errors(pa.Table.from_batches([batch]))
        con.execute("DROP TABLE IF EXISTS _tabular")

    return total, batches()

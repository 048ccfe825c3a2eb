"""Our own ``parquet --layout tables`` export folder read back whole: its
``conversations.parquet`` and ``messages.parquet`` joined into the nested
layout (one row per conversation, messages as a list) that the table reader
already imports. Read as Hugging Face shards instead, the two files were
concatenated and every message row failed ("empty conversation id")."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson

from ..errors import InputError
from ..schema import STORED_CONVERSATION_COLUMNS
from ..store.normalize import sql_str
from .tabular import sql_ident


def is_tables_export(folder: Path) -> bool:
    from ..exports.writers import MANIFEST

    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        fields = orjson.loads(manifest.read_bytes())
    except orjson.JSONDecodeError:
        return False
    return isinstance(fields, dict) and fields.get("format") == "parquet" and fields.get("layout") == "tables"


def nested_copy(folder: Path, scratch: Path) -> Path:
    """``folder``'s two tables as one nested Parquet file in ``scratch``
    (DuckDB joins and writes it, streaming: no table is held in Python)."""
    conversations, messages = folder / "conversations.parquet", folder / "messages.parquet"
    for part in (conversations, messages):
        if not part.is_file():
            raise InputError(f"{folder}: a parquet tables export without {part.name}")
    target = scratch / "conversations.parquet"
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        fields = [name for name, *_ in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(messages)]).fetchall()]
        kept = [f for f in fields if f not in ("conversation_id", "idx")]
        struct = ", ".join(f"{sql_str(f)}: m.{sql_ident(f)}" for f in kept)
        have = [name for name, *_ in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(conversations)]).fetchall()]
        # The store's own bookkeeping (source, content_hash, fetched_at) is not
        # in the nested layout; anything else (score columns) goes on to the
        # reader, which says what it does not keep.
        from ..exports.shape import NESTED_COLUMNS

        internal = set(STORED_CONVERSATION_COLUMNS) - set(NESTED_COLUMNS)
        columns = ", ".join(f"c.{sql_ident(c)}" for c in have if c not in internal) or "c.id"
        query = (
            f"SELECT {columns}, coalesce(m.messages, []) AS messages FROM read_parquet({sql_str(str(conversations))}) c "
            f"LEFT JOIN (SELECT conversation_id, list({{{struct}}} ORDER BY idx) AS messages "
            f"FROM read_parquet({sql_str(str(messages))}) m GROUP BY conversation_id) m ON m.conversation_id = c.id"
        )
        con.execute(f"COPY ({query}) TO {sql_str(str(target))} (FORMAT parquet)")
    except duckdb.Error as exc:
        raise InputError(f"{folder}: cannot read the parquet tables export: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    return target


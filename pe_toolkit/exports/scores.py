"""The analysis tables as exports see them.

``conversation_scores`` (migration 0002, written by ``pe-toolkit analyze``)
carries the ``content_hash`` of the content it was computed on, and
``message_scores`` belong to that row. Exports use only *current* scores,
read from the store's views ``current_conversation_scores`` and
``current_message_scores`` (migration 0009: the conversation unchanged since
it was scored, by the analysis version in force; see
:class:`pe_toolkit.store.Store`). A store that was never analyzed has empty
(or, before 0002, no) score tables; exports then carry no scores, and
filters on scores fail with a message saying to run the analysis.

Score columns are discovered from the tables rather than listed here, so a
new analyzer column reaches exports and the warehouse without a change in
this package.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ..store.filters import analyzed

# Columns that identify a score row rather than score anything, and the
# analysis' own bookkeeping (near-duplicate hashing), left out of exports and
# the warehouse.
CONVERSATION_KEYS = ("conversation_id", "content_hash")
MESSAGE_KEYS = ("conversation_id", "idx", "role", "text_hash", "minhash_bands")

CONVERSATION_PREFIX = "score_"
MESSAGE_PREFIX = "message_score_"


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main' AND NOT temporary",
        [name],
    ).fetchall()
    return bool(rows[0][0])


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of a table's columns, in table order."""
    return [
        (name, dtype)
        for name, dtype in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
            "ORDER BY column_index",
            [table],
        ).fetchall()
    ]


@dataclass(frozen=True)
class ScoreColumns:
    """The score columns a store has (empty when never analyzed)."""

    conversation: tuple[tuple[str, str], ...] = ()  # (name, DuckDB type)
    message: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection) -> ScoreColumns:
        if not analyzed(con):
            return cls()
        conv = tuple(c for c in columns(con, "conversation_scores") if c[0] not in CONVERSATION_KEYS)
        msg: tuple[tuple[str, str], ...] = ()
        if has_table(con, "message_scores"):
            msg = tuple(c for c in columns(con, "message_scores") if c[0] not in MESSAGE_KEYS)
        return cls(conv, msg)

    def __bool__(self) -> bool:
        return bool(self.conversation or self.message)

    def conversation_select(self, alias: str = "s") -> str:
        """``alias.col AS score_col, ...`` (leading comma; empty when none)."""
        return "".join(f', {alias}."{n}" AS "{CONVERSATION_PREFIX}{n}"' for n, _ in self.conversation)

    def message_fields(self, alias: str = "ms") -> str:
        """``message_score_col := alias.col, ...`` for a struct_pack (leading comma)."""
        return "".join(f', "{MESSAGE_PREFIX}{n}" := {alias}."{n}"' for n, _ in self.message)

    def conversation_struct(self, alias: str = "s") -> str:
        """The conversation scores as one struct (NULL when not scored)."""
        if not self.conversation:
            return "NULL"
        fields = ", ".join(f'"{n}" := {alias}."{n}"' for n, _ in self.conversation)
        return f"CASE WHEN {alias}.conversation_id IS NULL THEN NULL ELSE struct_pack({fields}) END"

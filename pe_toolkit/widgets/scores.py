"""Which analysis results a store holds, and SQL over the current ones.

``pe.analyze(store)`` writes ``conversation_scores``, ``message_scores`` and
``evidence`` (migration 0002). A store that was never analyzed has none of
them; the views then show what the conversations alone allow and say that
the analysis is missing. Score rows carry the ``content_hash`` of the
content they were computed on: only rows matching the conversation's
current hash count, so an edited conversation never shows a stale score.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..store import Store

TABLES = ("conversation_scores", "message_scores", "evidence")


def _columns(store: Store, table: str) -> tuple[str, ...]:
    frame = store.sql(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
        "AND NOT internal ORDER BY column_index",
        [table],
    )
    return tuple(frame["column_name"].to_list())


@dataclass(frozen=True)
class ScoreInfo:
    """The analysis columns present in a store (empty tuples when absent)."""

    conversation: tuple[str, ...] = ()
    message: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    scored: bool = False  # at least one conversation has scores

    @classmethod
    def of(cls, store: Store) -> ScoreInfo:
        columns = [_columns(store, table) for table in TABLES]
        # The tables exist from migration 0002 on; only rows mean an analysis ran.
        scored = bool(columns[0]) and bool(store.scalar("SELECT EXISTS (SELECT 1 FROM conversation_scores)"))
        return cls(*columns, scored=scored)

    @property
    def analyzed(self) -> bool:
        return self.scored

    def has(self, column: str) -> bool:
        return column in self.conversation

    def current_sql(self, table: str) -> str:
        """SELECT of the rows of ``table`` computed on current content."""
        columns = dict(zip(TABLES, (self.conversation, self.message, self.evidence)))[table]
        if "content_hash" not in columns and table != "conversation_scores" and "content_hash" in self.conversation:
            # Message scores and evidence belong to their conversation's
            # score row (replaced together): current when that row is.
            return f"SELECT x.* FROM {table} x SEMI JOIN {self.conversation_scores()} cs ON cs.conversation_id = x.conversation_id"
        cond = "cur.id = x.conversation_id"
        if "content_hash" in columns:
            cond += " AND cur.content_hash = x.content_hash"
        return f"SELECT x.* FROM {table} x SEMI JOIN conversations cur ON {cond}"

    def conversation_scores(self) -> str:
        """A subquery of the current ``conversation_scores`` rows."""
        return f"({self.current_sql('conversation_scores')})"

    def message_scores(self) -> str:
        return f"({self.current_sql('message_scores')})"

    def evidence_rows(self) -> str:
        return f"({self.current_sql('evidence')})"


NOT_ANALYZED = "This store has not been analyzed yet: run pe.analyze(store) (or `pe-toolkit analyze`) for scores."


def create_views(store: Store) -> list[str]:
    """Temporary views ``current_conversation_scores``,
    ``current_message_scores`` and ``current_evidence`` over the score rows
    computed on each conversation's current content, so notebook SQL can
    name them plainly. They live on this connection only (read-only stores
    allow them) and are returned by name; none when never analyzed."""
    info = ScoreInfo.of(store)
    created = []
    for table, columns in zip(TABLES, (info.conversation, info.message, info.evidence)):
        if columns:
            name = f"current_{table}"
            store.connection.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {info.current_sql(table)}")
            created.append(name)
    return created

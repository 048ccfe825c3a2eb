"""Which analysis results a store holds, and where the current ones are.

``pe.analyze(store)`` writes ``conversation_scores``, ``message_scores`` and
``evidence`` (migration 0002). A store that was never analyzed has no rows
in them; the views then show what the conversations alone allow and say
that the analysis is missing. Which rows are current (computed on the
conversation's current content, by the analysis version in force) is the
store's rule: the widgets read its views ``current_conversation_scores``,
``current_message_scores`` and ``current_evidence`` (migration 0009, see
:class:`pe_toolkit.store.Store`), so an edited conversation never shows a
stale score.
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
    # Message columns a researcher's analyzer added (score_columns, migration
    # 0012): the viewer shows them beside the shipped ones it knows.
    custom_message: tuple[str, ...] = ()

    @classmethod
    def of(cls, store: Store) -> ScoreInfo:
        conversation, message, evidence = (_columns(store, table) for table in TABLES)
        # The tables exist from migration 0002 on; only rows mean an analysis ran.
        scored = bool(conversation) and bool(store.scalar("SELECT EXISTS (SELECT 1 FROM conversation_scores)"))
        # score_columns is there: a store opens only at the latest schema.
        found = store.sql("SELECT column_name FROM score_columns WHERE table_name = 'message_scores' ORDER BY added_at, column_name")
        custom = tuple(c for c in found["column_name"].to_list() if c in message)
        return cls(conversation, message, evidence, scored=scored, custom_message=custom)

    @property
    def analyzed(self) -> bool:
        return self.scored

    def has(self, column: str) -> bool:
        return column in self.conversation

    def conversation_scores(self) -> str:
        """The view of the current ``conversation_scores`` rows (for FROM)."""
        return "current_conversation_scores"

    def message_scores(self) -> str:
        return "current_message_scores"

    def evidence_rows(self) -> str:
        return "current_evidence"


NOT_ANALYZED = "This store has not been analyzed yet: run pe.analyze(store) (or `pe-toolkit analyze`) for scores."


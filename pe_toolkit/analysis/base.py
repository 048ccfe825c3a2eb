"""The shape every analyzer shares (ConvoKit's fit/transform idea, columnar).

An analyzer is a pure function over a messages frame: no store, no network,
no per-message Python loop. It returns a :class:`Scores` with message-level
columns, conversation-level columns and the evidence (matched spans) behind
them, so a researcher can see why a score was given.

Input frame (:data:`MESSAGES_SCHEMA`): one row per message, sorted by
``conversation_id, idx``; it may hold many conversations.

Evidence offsets ``start``/``end`` are character offsets (code points, as
Python's ``str`` slicing) into the message's ``content``:
``content[start:end] == text``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

MESSAGES_SCHEMA: dict[str, pl.DataType] = {
    "conversation_id": pl.String(),
    "idx": pl.Int32(),
    "role": pl.String(),
    "content": pl.String(),
}

EVIDENCE_SCHEMA: dict[str, pl.DataType] = {
    "conversation_id": pl.String(),
    "idx": pl.Int32(),
    "analyzer": pl.String(),
    "category": pl.String(),
    "start": pl.Int32(),
    "end": pl.Int32(),
    "text": pl.String(),
}


def empty_evidence() -> pl.DataFrame:
    return pl.DataFrame(schema=EVIDENCE_SCHEMA)


@dataclass
class Scores:
    """What one analyzer returns for a batch of messages.

    ``messages``: ``conversation_id, idx`` + the analyzer's message-level
    columns, one row per input message (null where a column does not apply,
    e.g. empathy on a user message). ``conversations``: ``conversation_id`` +
    conversation-level columns, one row per input conversation.
    """

    messages: pl.DataFrame
    conversations: pl.DataFrame
    evidence: pl.DataFrame = field(default_factory=empty_evidence)
    # Message-level columns for the analyzers that run later in the same
    # pass, never stored (the empathy rules' own levels, which quality's
    # replicas of the API metrics were calibrated on).
    internal: pl.DataFrame | None = None


class Analyzer(Protocol):
    """``name`` and ``version`` are stored with every score: raising the
    version makes ``analyze(store)`` re-score what an older version scored."""

    name: str
    version: str

    def score(self, messages: pl.DataFrame, context: dict[str, Scores] | None = None) -> Scores:
        """Score ``messages``; ``context`` holds the results of analyzers that
        ran before this one in the same pass, by name."""
        ...

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

In a pass (``analyze``, ``analyze_frame``) every analyzer receives one
:class:`Batch`: the checked messages, their tokens and conversation
segments (computed once, on first use, for all the analyzers of the pass)
and the earlier analyzers' results. Called by hand with a polars frame
(``SENTIMENT.score(frame)``), an analyzer wraps it with :meth:`Batch.of`,
which checks its columns first (:func:`check_messages`, the one input
check, raising :class:`~pe_toolkit.errors.InputError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from ..errors import InputError
from ..schema import ROLES

if TYPE_CHECKING:
    from .segments import Segments
    from .text import Tokens

MESSAGES_SCHEMA: dict[str, pl.DataType] = {
    "conversation_id": pl.String(),
    "idx": pl.Int32(),
    "role": pl.String(),
    "content": pl.String(),
}

# a polars Schema (an ordered dict) so frames can .cast() to it as typed
EVIDENCE_SCHEMA = pl.Schema({
    "conversation_id": pl.String(),
    "idx": pl.Int32(),
    "analyzer": pl.String(),
    "category": pl.String(),
    "start": pl.Int32(),
    "end": pl.Int32(),
    "text": pl.String(),
})


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


def check_messages(messages: Any, *, complete: bool = True) -> pl.DataFrame:
    """The input as a frame of :data:`MESSAGES_SCHEMA`, sorted by
    conversation_id, idx; :class:`InputError` (the caller's input is
    unusable) naming what is wrong. ``complete=False`` checks the columns
    and their types only, leaving nulls, roles and row order as given (an
    analyzer called by hand answers row for row)."""
    if isinstance(messages, pl.LazyFrame):
        messages = messages.collect()
    if not isinstance(messages, pl.DataFrame):
        try:
            messages = pl.DataFrame(messages)
        except Exception as exc:  # noqa: BLE001 - any unreadable input is the caller's
            raise InputError(f"messages must be a polars DataFrame (or convertible): {exc}") from None
    missing = [c for c in MESSAGES_SCHEMA if c not in messages.columns]
    if missing:
        raise InputError(f"messages frame lacks column(s) {', '.join(missing)}; needs {', '.join(MESSAGES_SCHEMA)}")
    try:
        frame = messages.select([pl.col(c).cast(t) for c, t in MESSAGES_SCHEMA.items()])
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"messages frame has a column of the wrong type: {str(exc).splitlines()[0]}") from None
    if not complete:
        return frame
    nulls = {c: n for c, n in zip(frame.columns, frame.null_count().row(0), strict=True) if n}
    if nulls:
        # Name the first such row: in a frame of many conversations a count alone sends the user searching.
        first = frame.filter(pl.any_horizontal(pl.all().is_null())).row(0, named=True)
        raise InputError("messages frame has nulls: " + ", ".join(f"{c} ({n})" for c, n in nulls.items())
                         + f"; the first at {_where(first)}")  # fmt: skip
    bad_roles = frame.filter(~pl.col("role").is_in(list(ROLES)))["role"].unique().to_list()
    if bad_roles:
        # "User" or "ASSISTANT" (as exports often spell them) are refused, not guessed: say how to fix them.
        hint = " (roles are lower-case)" if any(r.strip().lower() in ROLES for r in bad_roles) else ""
        raise InputError(f"unknown role(s) {', '.join(map(repr, sorted(bad_roles)[:5]))}; expected one of {', '.join(ROLES)}{hint}")
    conv, idx = pl.col("conversation_id"), pl.col("idx")
    in_order = frame.select(
        ((conv > conv.shift(1)) | ((conv == conv.shift(1)) & (idx > idx.shift(1)))).fill_null(True).all()
    ).item()
    if not in_order:
        frame = frame.sort("conversation_id", "idx")
        dup = frame.filter(((conv == conv.shift(1)) & (idx == idx.shift(1))).fill_null(False))
        if dup.height:
            raise InputError(f"messages frame has the same (conversation_id, idx) more than once: {_where(dup.row(0, named=True))}")
    return frame


def _where(row: dict[str, Any]) -> str:
    return f"conversation_id {row['conversation_id']!r}, idx {row['idx']}"


class Batch:
    """What every analyzer of a pass receives: ``messages`` (checked, see
    :func:`check_messages`), their whitespace ``tokens`` and conversation
    ``segments`` (each computed once, when an analyzer first asks), and
    ``results``, the :class:`Scores` of the analyzers that ran before, by
    name. One batch belongs to one thread."""

    def __init__(self, messages: pl.DataFrame, results: dict[str, Scores] | None = None) -> None:
        self.messages = messages  # trusted: checked by the caller
        self.results: dict[str, Scores] = results if results is not None else {}

    @classmethod
    def of(cls, messages: Batch | pl.DataFrame | Any, context: dict[str, Scores] | None = None) -> Batch:
        """``messages`` as a batch: a batch as it is, a frame after the
        column check (``check_messages(complete=False)``: row for row, as
        analyzers called by hand always answered); ``context`` (results of
        earlier analyzers) for a frame."""
        if isinstance(messages, Batch):
            return messages
        return cls(check_messages(messages, complete=False), dict(context) if context else None)

    @cached_property
    def tokens(self) -> Tokens:
        from .text import tokenize

        return tokenize(self.messages["content"])

    @cached_property
    def segments(self) -> Segments:
        from .segments import Segments

        return Segments.of(self.messages)


class Analyzer(Protocol):
    """``name`` and ``version`` are stored with every score: any change of
    the version makes ``analyze(store)`` re-score what another version scored."""

    name: str
    version: str

    def score(self, messages: Batch | pl.DataFrame, context: dict[str, Scores] | None = None) -> Scores:
        """Score a :class:`Batch` (in a pass) or a messages frame (by hand,
        with ``context``: results of earlier analyzers by name)."""
        ...

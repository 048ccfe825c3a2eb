"""Which column of a table holds what: :class:`ColumnMap`.

Used by every table-shaped input (CSV, Parquet, JSON rows, Hugging Face
datasets, in-memory frames). Unset fields are guessed from common
spellings (``conversation_id``, ``speaker``, ``text``, ``Context``/
``Response``...). Every column that is not part of the conversation's
structure is kept: in the conversation's ``metadata`` under its own name
(``metadata.KEY=COLUMN`` renames it), unless dropped with ``drop``. The
columns our own exports write are read as what they were: a column named
as a quality metric is that metric, a ``metadata`` column of JSON objects
the metadata itself (see :class:`Extra`); score columns (``score_*``,
``message_score_*``, written with ``--include-scores``) are not kept, as
``analyze`` computes scores again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import InputError
from ..exports.scores import CONVERSATION_PREFIX, MESSAGE_PREFIX
from ..schema import MESSAGE_METADATA_KEY, QUALITY_METRICS

_GUESSES: dict[str, tuple[str, ...]] = {
    "id": ("conversation_id", "conv_id", "dialog_id", "dialogue_id", "session_id", "thread_id", "chat_id", "id"),
    "role": ("role", "speaker", "from", "author", "sender"),
    "content": ("content", "text", "message", "utterance", "value", "body"),
    "turn": ("turn", "turn_id", "idx", "message_index", "position", "seq", "index"),
    "timestamp": ("timestamp", "time", "sent_at"),
    "created_at": ("created_at",),
    "user": ("user", "prompt", "input", "question", "context", "human", "client", "seeker", "query"),
    "assistant": ("assistant", "response", "output", "answer", "completion", "gpt", "counselor", "therapist", "reply"),
    "system": ("system", "system_prompt", "instruction"),
    "dataset": ("dataset",),
    "tier": ("tier",),
}

# The fields each layout reads; a guess for any other field means nothing there.
_USED: dict[str, tuple[str, ...]] = {
    "messages": ("id", "role", "content", "turn", "timestamp", "created_at", "dataset", "tier"),
    "pairs": ("id", "user", "assistant", "system", "turn", "timestamp", "created_at", "dataset", "tier"),
}

# Metadata keys the conversation's own columns own (see normalize.OWNED_METADATA_KEYS):
# a column of that name is not copied into metadata unless renamed.
_OWNED = ("dataset", "tier", "length", "created_at")

# The column our own flat exports carry the conversation's metadata in (JSON
# text): when every value is a JSON object it is merged into the metadata,
# otherwise it is an ordinary column kept as metadata.metadata.
METADATA_COLUMN = "metadata"



def is_score_column(column: str) -> bool:
    """Named as the score columns our exports write (``score_*``, ``message_score_*``)."""
    return column.startswith((CONVERSATION_PREFIX, MESSAGE_PREFIX))


def scores_left(columns: list[str]) -> list[str]:
    """The "not kept" entry for score columns of our exports (``--include-scores``):
    scores belong to an analysis of the content, not to the content."""
    if not columns:
        return []
    more = f" and {len(columns) - 3} more" if len(columns) > 3 else ""
    return [f"{', '.join(columns[:3])}{more} (scores: analyze computes them again)"]


@dataclass(frozen=True)
class Extra:
    """A column kept: its key, its column, the JSON kind of its values and
    where it goes: the conversation's metadata, each message's metadata, the
    quality metric of its name (``quality``, a column named as one) or, for
    a column of JSON objects (``object``, see :data:`METADATA_COLUMN`), the
    whole metadata it is merged into."""

    key: str
    column: str
    kind: str = "native"  # integer | number | boolean | string (inferred from text), native (typed source)
    level: str = "conversation"  # conversation | message | quality | object


def shown_columns(columns: Sequence[str], *, most: int = 12, chars: int = 24, total: int = 120) -> str:
    """Column names for an error line, cut short: a file read in the wrong
    format (JSON lines as CSV) has its first record, private text, as its
    "column names", which must not land on stderr or in logs."""
    if columns and columns[0].lstrip().startswith(("{", "[")):
        return "the first line looks like JSON, not a header: for JSON lines use --format api, openai, sharegpt or rows"
    names = [" ".join(c.split()) for c in columns[:most]]
    shown = ", ".join(n if len(n) <= chars else n[: chars - 1] + "…" for n in names)
    if len(shown) > total:
        shown = shown[: total - 1] + "…"
    return shown + (f", and {len(columns) - most} more" if len(columns) > most else "")


@dataclass(frozen=True)
class ColumnMap:
    """Which column holds what. ``layout`` is ``messages`` (role + content per
    row), ``pairs`` (user + assistant per row) or None to decide from the
    columns present.

    ``metadata``: ``(key, column)`` renames; ``drop``: columns not kept;
    ``group_by``: in the pairs layout, thread the rows sharing this column's
    value into one conversation (by default each row is one conversation).
    """

    layout: str | None = None
    id: str | None = None
    role: str | None = None
    content: str | None = None
    turn: str | None = None
    timestamp: str | None = None
    created_at: str | None = None
    user: str | None = None
    assistant: str | None = None
    system: str | None = None
    dataset: str | None = None
    tier: str | None = None
    group_by: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    drop: tuple[str, ...] = ()

    @classmethod
    def parse(cls, items: list[str] | tuple[str, ...], layout: str | None = None, *,
              drop: list[str] | tuple[str, ...] = (), group_by: str | None = None) -> ColumnMap:  # fmt: skip
        """From CLI ``--map FIELD=COLUMN`` / ``--map metadata.KEY=COLUMN`` items."""
        known = set(_GUESSES)
        values: dict[str, str] = {}
        renames: list[tuple[str, str]] = []
        for item in items:
            key, sep, column = item.partition("=")
            if key.startswith("metadata.") and sep and column and key[len("metadata."):]:
                renames.append((key[len("metadata."):], column))
                continue
            if not sep or key not in known or not column:
                raise InputError(
                    f"--map expects FIELD=COLUMN with FIELD one of {', '.join(sorted(known))} "
                    f"or metadata.KEY; got {item!r}"
                )
            values[key] = column
        return cls(layout=layout, group_by=group_by, metadata=tuple(renames), drop=tuple(drop), **values)

    @property
    def mapped(self) -> dict[str, str]:
        """field -> column, for the fields set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in _GUESSES and getattr(self, f.name)}

    def resolve(self, columns: list[str], where: str) -> ColumnMap:
        """Fill unset fields from the table's columns; check every named column exists."""
        lower = {c.lower(): c for c in columns}

        def check(column: str, what: str) -> str:
            if column not in columns:
                raise InputError(f"{where}: no column {column!r} for {what} (columns: {', '.join(columns)})")
            return column

        chosen: dict[str, Any] = {}  # column names or None, passed on as keyword arguments
        for name, spellings in _GUESSES.items():
            given = getattr(self, name)
            chosen[name] = check(given, name) if given is not None else next((lower[s] for s in spellings if s in lower), None)
        for column in self.drop:
            check(column, "--drop")
        for key, column in self.metadata:
            check(column, f"metadata.{key}")
        if self.group_by is not None:
            check(self.group_by, "--group-by")
        layout = self.layout
        if layout is None:
            if chosen["role"] and chosen["content"]:
                layout = "messages"
            elif chosen["user"] and (chosen["assistant"] or self.user is not None):
                layout = "pairs"  # --map user=COL alone: posts without replies
            else:
                raise InputError(
                    f"{where}: cannot tell which columns hold the conversation (columns: {shown_columns(columns)}); "
                    "pass --map role=COL --map content=COL (one row per message) or "
                    "--map user=COL --map assistant=COL (one row per pair; --map user=COL alone for posts without replies)"
                )
        if layout not in ("messages", "pairs"):
            raise InputError(f"layout must be 'messages' or 'pairs', got {layout!r}")
        if layout == "messages" and self.group_by is not None and self.id is None:
            chosen["id"] = self.group_by  # in the messages layout the conversation id is the grouping
        # Pairs need a user column; without an assistant column each row is
        # one user message (posts, questions without answers).
        needed = ("role", "content", "id") if layout == "messages" else ("user",)
        for name in needed:
            if chosen[name] is None:
                raise InputError(f"{where}: no column for {name!r} in a {layout} layout; pass --map {name}=COLUMN")
        for name in _GUESSES:
            if name not in _USED[layout] and getattr(self, name) is None:
                chosen[name] = None
        return replace(self, layout=layout, **chosen)

    def extras(self, columns: list[str]) -> tuple[list[Extra], list[str]]:
        """(columns kept as metadata, columns left out with the reason) of a resolved map."""
        consumed = set(self.mapped.values()) | set(self.drop) | {c for _, c in self.metadata}
        if self.group_by:
            consumed.add(self.group_by)
        if self.layout == "pairs" and self.id and not self.group_by:
            # Several rows may share it (many answers to one question), so
            # the conversation ids get a row number and the value is kept.
            consumed.discard(self.id)
        kept = [Extra(key, column) for key, column in self.metadata]
        left = [f"{c} (dropped)" for c in self.drop]
        scores: list[str] = []
        for column in columns:
            if column in consumed:
                continue
            if column in _OWNED or column == MESSAGE_METADATA_KEY:
                left.append(f"{column} (a reserved name; keep it with --map metadata.KEY={column})")
                continue
            if is_score_column(column):
                scores.append(column)
                continue
            if column in QUALITY_METRICS:
                kept.append(Extra(column, column, level="quality"))
                continue
            kept.append(Extra(column, column, level="object" if column == METADATA_COLUMN else "conversation"))
        return kept, left + scores_left(scores)

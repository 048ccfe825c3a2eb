"""Labels a researcher gave in the review widget, as training data.

:func:`from_store` turns the store's ``annotations`` of one task into the
frame :func:`~pe_toolkit.learn.fit` takes: one row per labelled message
(``text``, ``label``, ``context`` = the message before it, ``group`` =
its conversation), or per labelled conversation (``text`` = the
conversation's messages of ``role`` joined by newlines; without ``role``,
all but the system prompt). Where reviewers
disagree on an item, the most frequent label wins, so one call gives one
label per item, with how much the reviewers agreed: ``votes`` (the
winning label's), ``reviewers`` (who labelled the item) and ``agreement``
(the winning label's share of its votes). An item whose reviewers tie is
not a label: it is left out (``ties="keep"`` keeps it, with the first of
the tied labels in alphabetical order and ``tied`` true). The review
widget (ReviewQueue) labels whole conversations; ``level="auto"`` (the
default) reads whichever level the task's labels are at.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from ..errors import InputError
from ..schema import ROLES
from ..store import Store
from ..store.annotations import labels as stored_labels


def rename_labels(frame: pl.DataFrame, label: str, mapping: Mapping[str, str]) -> pl.DataFrame:
    """``frame`` with the labels in ``label`` (a string column, or a list
    column of a multi-label task) renamed by ``mapping``; others unchanged."""
    if not mapping or label not in frame.columns:
        return frame
    column = pl.col(label)
    if isinstance(frame.schema[label], pl.List):
        renamed = column.list.eval(pl.element().cast(pl.String).replace(dict(mapping))).list.unique(maintain_order=True)
    else:
        renamed = column.cast(pl.String).replace(dict(mapping))
    return frame.with_columns(renamed.alias(label))


def _check_role(role: str | None) -> None:
    """A misspelt role ("assitant") matched no message: from_store gave an
    empty frame (fit then said every text was missing) and from_metadata
    said no conversation carried the label."""
    if role is not None and role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)} (or None), got {role!r}")


def from_store(store: Store, task: str = "review", *, level: str = "auto", role: str | None = None,
               ties: str = "drop") -> pl.DataFrame:  # fmt: skip
    """Training rows from the labels of ``task`` (see the module docstring).
    ``level``: "message" (labels given to one message), "conversation"
    (labels given to a whole conversation, as the review widget gives them),
    or "auto": the level that has labels; a task with labels at both levels
    must name one. ``ties``: "drop" leaves out the items whose reviewers
    tie, "keep" keeps them (``tied`` true)."""
    if level not in LEVELS:
        raise InputError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    _check_role(role)
    if ties not in ("drop", "keep"):
        raise InputError(f"ties must be 'drop' or 'keep', got {ties!r}")
    raw = stored_labels(store, task)
    level = resolve_level(raw, task, level)
    raw = raw.filter(pl.col("message_idx").is_not_null() if level == "message" else pl.col("message_idx").is_null())
    keys = ["conversation_id", "message_idx"]
    # Majority label per item across reviewers; a tie is flagged, not decided.
    per_label = raw.group_by([*keys, "label"]).agg(pl.len().alias("votes"))
    votes = (
        per_label.sort([*keys, "votes", "label"], descending=[False, False, True, False], nulls_last=False)
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("label").first(),
            pl.col("votes").first(),
            (pl.col("votes") == pl.col("votes").first()).sum().gt(1).alias("tied"),
            pl.col("votes").sum().alias("total"),
        )
        .join(raw.group_by(keys).agg(pl.col("reviewer").n_unique().cast(pl.Int64).alias("reviewers")), on=keys,
              nulls_equal=True)  # fmt: skip
        .with_columns(agreement=pl.col("votes") / pl.col("total"))
        .drop("total")
    )
    if ties == "drop":
        votes = votes.filter(~pl.col("tied"))
        if votes.is_empty():
            raise InputError(f"every labelled item of task {task!r} is a tie between its reviewers; "
                             "from_store(..., ties='keep') shows them")  # fmt: skip
    with store.session():  # the registered frame lives on this connection
        return _texts_of(store, votes, keys, level, role)


LEVELS = ("auto", "message", "conversation")


def level_of(frame: pl.DataFrame) -> str | None:
    """The level of a frame in the shape of :func:`from_store` or
    :func:`from_metadata` (``message_idx`` is null on a conversation's
    label), or None for a frame of another shape."""
    if "message_idx" not in frame.columns or frame.is_empty():
        return None
    return "conversation" if frame["message_idx"].is_null().all() else "message"


def resolve_level(raw: pl.DataFrame, task: str, level: str) -> str:
    """The level to read ``raw`` (a task's stored labels) at: ``level``, or
    for "auto" the one level that has labels. Fails, naming the level that
    does have labels, when the one asked for has none."""
    n_message = raw["message_idx"].count()
    counts = {"message": n_message, "conversation": raw.height - n_message}
    if raw.is_empty():
        raise InputError(f"no labels in task {task!r}; label some in the review widget (ReviewQueue) first")
    if level == "auto":
        if counts["message"] and counts["conversation"]:
            raise InputError(f"task {task!r} has labels of both levels ({counts['message']:,} of messages, "
                             f"{counts['conversation']:,} of conversations): choose one with level='message' or "
                             "level='conversation' (on the command line: --level message|conversation)")  # fmt: skip
        return "message" if counts["message"] else "conversation"
    if not counts[level]:
        other = "conversation" if level == "message" else "message"
        raise InputError(f"no {level} labels in task {task!r}, but {counts[other]:,} {other} label(s): use "
                         f"level='{other}' (on the command line: --level {other})")  # fmt: skip
    return level


def _texts_of(store: Store, votes: pl.DataFrame, keys: list[str], level: str, role: str | None) -> pl.DataFrame:
    con = store.connection
    con.register("_labelled", votes.select(keys).to_arrow())
    try:
        if level == "message":
            texts = store.sql(
                "SELECT l.conversation_id, l.message_idx, m.role, m.content AS text, "
                "(SELECT p.content FROM messages p WHERE p.conversation_id = m.conversation_id AND p.idx < m.idx "
                " ORDER BY p.idx DESC LIMIT 1) AS context "
                "FROM _labelled l JOIN messages m ON m.conversation_id = l.conversation_id AND m.idx = l.message_idx"
            )
        else:
            # A system prompt is left out unless asked for: it names the
            # dataset or template, which a model would learn instead of the talk.
            where = "AND m.role <> 'system'" if role is None else "AND m.role = ?"
            texts = store.sql(
                "SELECT l.conversation_id, NULL::INTEGER AS message_idx, NULL::VARCHAR AS role, "
                "string_agg(m.content, '\n' ORDER BY m.idx) AS text, NULL::VARCHAR AS context "
                f"FROM _labelled l JOIN messages m ON m.conversation_id = l.conversation_id {where} "
                "GROUP BY l.conversation_id",
                [] if role is None else [role],
            )
    finally:
        con.unregister("_labelled")
    if level == "message" and role is not None:
        texts = texts.filter(pl.col("role") == role)
    out = votes.join(texts, on=keys, how="inner", nulls_equal=True)
    return out.select(
        pl.col("conversation_id").alias("group"), "message_idx", "role", "text", "context", "label", "votes", "reviewers",
        "agreement", "tied",
    ).sort("group", "message_idx")


def from_metadata(store: Store, key: str, *, level: str = "message", role: str | None = None,
                  dataset: str | None = None) -> pl.DataFrame:  # fmt: skip
    """Training rows from a label an import carried in, in the shape of
    :func:`from_store`: ``group``, ``message_idx``, ``role``, ``text``,
    ``context``, ``label`` (as text; rows without the label are left out).

    ``level="message"``: the label is ``key`` in each message's metadata
    (``metadata.message_metadata[i]``: an ESConv strategy, a per-turn column
    of a CSV); ``context`` is the message before. ``level="conversation"``:
    ``key`` in the conversation's metadata (a topic, a rating); ``text`` is
    the conversation's messages of ``role`` (default: all but the system prompt) joined by newlines.
    ``dataset`` keeps one dataset's conversations.

    >>> frame = from_metadata(store, "strategy", role="assistant", dataset="esconv")
    >>> model = fit(frame, text="text", label="label", context="context")
    """
    if level not in ("message", "conversation"):
        raise InputError(f"level must be 'message' or 'conversation', got {level!r}")
    _check_role(role)
    where = "c.dataset = $dataset" if dataset is not None else "true"
    params: dict[str, object] = {"key": key, "role": role}
    if dataset is not None:
        params["dataset"] = dataset
    if level == "message":
        sql = f"""
        WITH m AS (
            SELECT m.conversation_id, m.idx, m.role, m.content,
                lag(m.content) OVER (PARTITION BY m.conversation_id ORDER BY m.idx) AS context,
                ((c.metadata -> 'message_metadata') -> m.idx) ->> $key AS label
            FROM messages m JOIN conversations c ON c.id = m.conversation_id
            WHERE {where} AND json_exists(c.metadata, '$.message_metadata'))
        SELECT conversation_id AS "group", idx AS message_idx, role, content AS text, context, label
        FROM m WHERE label IS NOT NULL AND ($role IS NULL OR role = $role)
        ORDER BY "group", message_idx"""
    else:
        sql = f"""
        SELECT c.id AS "group", NULL::INTEGER AS message_idx, $role::VARCHAR AS role,
            string_agg(m.content, chr(10) ORDER BY m.idx) AS text, NULL::VARCHAR AS context,
            any_value(c.metadata ->> $key) AS label
        FROM conversations c JOIN messages m ON m.conversation_id = c.id
            AND ($role IS NULL AND m.role <> 'system' OR m.role = $role)
        WHERE {where} AND c.metadata ->> $key IS NOT NULL
        GROUP BY c.id ORDER BY "group" """
    out = store.sql(sql, params)
    if out.is_empty():
        scope = f" of dataset {dataset!r}" if dataset is not None else ""
        raise InputError(f"no {level} carries a {key!r} label{scope} (role: {role or 'any'})")
    return out

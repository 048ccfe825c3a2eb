"""Analysis without a store: every analyzer over a messages frame, merged.

:func:`analyze_frame` is what ``analyze(store)`` runs per batch and what a
script or ``validate_conversation`` calls directly. It checks the input,
runs the analyzers in order (each sees the earlier ones' scores), and
merges their columns into one message frame, one conversation frame and
one evidence frame. With ``corpus=True`` it adds the corpus-level
duplicate shares, treating the frame as the corpus.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ..errors import AnalysisError, InputError
from ..schema import ROLES
from . import duplicates
from .base import EVIDENCE_SCHEMA, MESSAGES_SCHEMA, Analyzer, Scores
from .registry import load
from .segments import Segments
from .text import release_shared_tokens

PARALLEL_MIN_ROWS = 50_000


@dataclass(frozen=True)
class FrameScores:
    """Scores of a messages frame; the frames match the store's tables
    (``message_scores``, ``conversation_scores``, ``evidence``)."""

    messages: pl.DataFrame
    conversations: pl.DataFrame
    evidence: pl.DataFrame
    analysis_version: str
    missing: tuple[str, ...] = ()

    def __getitem__(self, table: str) -> pl.DataFrame:
        return {"message_scores": self.messages, "conversation_scores": self.conversations, "evidence": self.evidence}[table]


def check_messages(messages: Any) -> pl.DataFrame:
    """The input as a frame of :data:`MESSAGES_SCHEMA`, sorted by
    conversation_id, idx; :class:`InputError` naming what is wrong."""
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
    nulls = {c: n for c, n in zip(frame.columns, frame.null_count().row(0), strict=True) if n}
    if nulls:
        raise InputError("messages frame has nulls: " + ", ".join(f"{c} ({n})" for c, n in nulls.items()))
    bad_roles = frame.filter(~pl.col("role").is_in(list(ROLES)))["role"].unique().to_list()
    if bad_roles:
        raise InputError(f"unknown role(s) {', '.join(map(repr, sorted(bad_roles)[:5]))}; expected one of {', '.join(ROLES)}")
    conv, idx = pl.col("conversation_id"), pl.col("idx")
    in_order = frame.select(
        ((conv > conv.shift(1)) | ((conv == conv.shift(1)) & (idx > idx.shift(1)))).fill_null(True).all()
    ).item()
    if not in_order:
        frame = frame.sort("conversation_id", "idx")
        dup = frame.select(((conv == conv.shift(1)) & (idx == idx.shift(1))).fill_null(False).any()).item()
        if dup:
            raise InputError("messages frame has the same (conversation_id, idx) more than once")
    return frame


def _merge(frame: pl.DataFrame, results: list[Scores], names: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    messages = frame.select("conversation_id", "idx", "role")
    segments = Segments.of(frame)
    conversations = pl.DataFrame(
        {"conversation_id": segments.ids, "message_count": np.diff(np.append(segments.starts, frame.height)).astype(np.int32)}
    )
    for name, scores in zip(names, results, strict=True):
        for level, base, part in (("message", messages, scores.messages), ("conversation", conversations, scores.conversations)):
            keys = ["conversation_id", "idx"] if level == "message" else ["conversation_id"]
            extra = [c for c in part.columns if c not in keys]
            clash = [c for c in extra if c in base.columns]
            if clash:
                raise AnalysisError(f"analyzer {name!r} returns {level} column(s) another analyzer set: {', '.join(clash)}")
            expected = base.height
            if part.height != expected:
                raise AnalysisError(f"analyzer {name!r} returned {part.height} {level} rows for {expected}")
            aligned = part.select(keys).equals(base.select(keys))
            if aligned:
                merged = pl.concat([base, part.select(extra)], how="horizontal")
            else:
                merged = base.join(part, on=keys, how="left", maintain_order="left")
            if level == "message":
                messages = merged
            else:
                conversations = merged
    evidence = pl.concat([r.evidence.cast(EVIDENCE_SCHEMA) for r in results]) if results else pl.DataFrame(schema=EVIDENCE_SCHEMA)  # type: ignore[arg-type]
    return messages, conversations, evidence


def run_analyzers(frame: pl.DataFrame, analyzers: tuple[Analyzer, ...]) -> dict[str, Scores]:
    context: dict[str, Scores] = {}
    try:
        for analyzer in analyzers:
            context[analyzer.name] = analyzer.score(frame, dict(context))
    finally:
        release_shared_tokens()
    return context


def _score(frame: pl.DataFrame, analyzers: tuple[Analyzer, ...]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    context = run_analyzers(frame, analyzers)
    names = list(context)
    return _merge(frame, [context[n] for n in names], names)


def _chunks(frame: pl.DataFrame, parts: int) -> list[pl.DataFrame]:
    """Split at conversation boundaries into about equal row counts."""
    starts = Segments.of(frame).starts
    targets = [frame.height * k // parts for k in range(1, parts)]
    cuts = np.unique(starts[np.minimum(np.searchsorted(starts, targets), len(starts) - 1)])
    bounds = [0, *(int(c) for c in cuts if c > 0), frame.height]
    return [frame.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]


def analyze_frame(
    messages: Any,
    *,
    corpus: bool = True,
    analyzers: tuple[Analyzer, ...] | None = None,
    workers: int | None = None,
) -> FrameScores:
    """Score a messages frame (conversation_id, idx, role, content) with
    every available analyzer. ``corpus``: also compute the corpus-level
    duplicate shares with the frame as the corpus. ``workers``: threads
    scoring separate conversations at once (default: the CPU count, at most
    4; frames under ``PARALLEL_MIN_ROWS`` rows use one)."""
    frame = check_messages(messages)
    registry = load()
    chosen = analyzers if analyzers is not None else registry.analyzers
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if workers > 1 and frame.height >= PARALLEL_MIN_ROWS:
        # Conversations are independent, and polars and numpy release the GIL
        # in their kernels: threads over conversation chunks use every core.
        with ThreadPoolExecutor(workers, thread_name_prefix="pe-analyze") as pool:
            parts = list(pool.map(lambda chunk: _score(chunk, chosen), _chunks(frame, workers)))
        messages_out, conversations, evidence = (pl.concat([p[i] for p in parts]) for i in range(3))
    else:
        messages_out, conversations, evidence = _score(frame, chosen)
    if corpus and "text_hash" in messages_out.columns:
        shares = duplicates.corpus_shares(messages_out)
        conversations = conversations.join(shares, on="conversation_id", how="left", maintain_order="left")
    version = ";".join(f"{a.name}={a.version}" for a in chosen)
    missing = registry.missing if analyzers is None else ()
    return FrameScores(messages_out, conversations, evidence, version, missing)

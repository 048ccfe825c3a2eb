"""Analysis without a store: every analyzer over a messages frame, merged.

:func:`analyze_frame` is what ``analyze(store)`` runs per batch and what a
script or ``validate_conversation`` calls directly. It checks the input
(:func:`~.base.check_messages`), runs the analyzers in order over one
:class:`~.base.Batch` (each sees the earlier ones' scores), and
merges their columns into one message frame, one conversation frame and
one evidence frame. With ``corpus=True`` it adds the corpus-level
duplicate shares, treating the frame as the corpus.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ..errors import AnalysisError, PeToolkitError
from . import duplicates
from .base import EVIDENCE_SCHEMA, Analyzer, Batch, Scores, check_messages
from .registry import load, version_of
from .segments import Segments

PARALLEL_MIN_ROWS = 50_000

# Conversation columns the pipeline writes itself (the store's keys and the
# corpus-level shares): no analyzer may return them.
RESERVED_CONVERSATION_COLUMNS = frozenset(
    {"content_hash", "analysis_version", "analyzed_at", "boilerplate_share", "near_duplicate_share"}
)


@dataclass(frozen=True)
class FrameScores:
    """Scores of a messages frame; the frames match the store's tables
    (``message_scores``, ``conversation_scores``, ``evidence``)."""

    messages: pl.DataFrame
    conversations: pl.DataFrame
    evidence: pl.DataFrame
    analysis_version: str

    def __getitem__(self, table: str) -> pl.DataFrame:
        return {"message_scores": self.messages, "conversation_scores": self.conversations, "evidence": self.evidence}[table]


def _merge(batch: Batch, results: list[Scores], names: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    frame, segments = batch.messages, batch.segments
    messages = frame.select("conversation_id", "idx", "role")
    conversations = pl.DataFrame(
        {"conversation_id": segments.ids, "message_count": np.diff(np.append(segments.starts, frame.height)).astype(np.int32)}
    )
    # Who set each column, for the error that names both sides of a clash.
    owner = {("message", "role"): "the messages themselves", ("conversation", "message_count"): "the pass itself",
             **{("conversation", c): "the store (a reserved column)" for c in RESERVED_CONVERSATION_COLUMNS}}  # fmt: skip
    for name, scores in zip(names, results, strict=True):
        for level, base, part in (("message", messages, scores.messages), ("conversation", conversations, scores.conversations)):
            keys = ["conversation_id", "idx"] if level == "message" else ["conversation_id"]
            extra = [c for c in part.columns if c not in keys]
            clash = [c for c in extra if c in base.columns or (level == "conversation" and c in RESERVED_CONVERSATION_COLUMNS)]
            if clash:
                by = ", ".join(f"{c} (set by {owner.get((level, c), 'another analyzer')!s})" for c in clash)
                raise AnalysisError(f"analyzer {name!r} returns {level} column(s) already set: {by}; rename its columns "
                                    "(a model's prefix=, a function's output names)")  # fmt: skip
            owner.update({(level, c): f"analyzer {name!r}" for c in extra})
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
    evidence = pl.concat([r.evidence.cast(EVIDENCE_SCHEMA) for r in results]) if results else pl.DataFrame(schema=EVIDENCE_SCHEMA)
    return messages, conversations, evidence


def run_analyzers(frame: pl.DataFrame, analyzers: Sequence[Analyzer]) -> Batch:
    """Run ``analyzers`` in order over one batch of a checked frame; the
    batch's ``results`` hold their scores by name."""
    batch = Batch(frame)
    for analyzer in analyzers:
        if analyzer.name in batch.results:
            raise AnalysisError(f"two analyzers are named {analyzer.name!r}")
        try:
            batch.results[analyzer.name] = analyzer.score(batch)
        except PeToolkitError:
            raise
        except Exception as exc:  # a researcher's code may raise anything: say whose it was
            raise AnalysisError(f"analyzer {analyzer.name!r} failed: {type(exc).__name__}: {exc}") from exc
    return batch


def score_part(frame: pl.DataFrame, analyzers: Sequence[Analyzer]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(message, conversation, evidence) scores of one part of a checked
    frame (see :func:`parts_of`)."""
    batch = run_analyzers(frame, analyzers)
    names = list(batch.results)
    return _merge(batch, [batch.results[n] for n in names], names)


def _chunks(frame: pl.DataFrame, parts: int) -> list[pl.DataFrame]:
    """Split at conversation boundaries into about equal row counts."""
    starts = Segments.of(frame).starts
    targets = [frame.height * k // parts for k in range(1, parts)]
    cuts = np.unique(starts[np.minimum(np.searchsorted(starts, targets), len(starts) - 1)])
    bounds = [0, *(int(c) for c in cuts if c > 0), frame.height]
    return [frame.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


def default_workers() -> int:
    """Threads scoring at once: the CPU count, at most 4."""
    return min(4, os.cpu_count() or 1)


def parts_of(frame: pl.DataFrame, workers: int) -> list[pl.DataFrame]:
    """A checked frame as the parts scored at once: one per worker at
    conversation boundaries, or the whole frame under ``PARALLEL_MIN_ROWS``
    rows (splitting costs more than it gains there)."""
    if workers > 1 and frame.height >= PARALLEL_MIN_ROWS:
        return _chunks(frame, workers)
    return [frame]


def join_parts(parts: Sequence[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The scores of a frame's parts, in order, as the frame's."""
    if len(parts) == 1:
        return parts[0]
    messages, conversations, evidence = (pl.concat([p[i] for p in parts]) for i in range(3))
    return messages, conversations, evidence


def analyze_frame(
    messages: Any,
    *,
    corpus: bool = True,
    analyzers: Sequence[Analyzer] | None = None,
    workers: int | None = None,
) -> FrameScores:
    """Score a messages frame (conversation_id, idx, role, content) with
    ``analyzers`` (default: the registered ones, :func:`.registry.analyzers`),
    in order. ``corpus``: also compute the corpus-level
    duplicate shares with the frame as the corpus. ``workers``: threads
    scoring separate conversations at once (default: the CPU count, at most
    4; frames under ``PARALLEL_MIN_ROWS`` rows use one)."""
    frame = check_messages(messages)
    chosen = tuple(analyzers) if analyzers is not None else load().analyzers
    parts = parts_of(frame, workers if workers is not None else default_workers())
    if len(parts) > 1:
        # Conversations are independent, and polars and numpy release the GIL
        # in their kernels: threads over conversation chunks use every core.
        with ThreadPoolExecutor(len(parts), thread_name_prefix="pe-analyze") as pool:
            scored = list(pool.map(lambda part: score_part(part, chosen), parts))
    else:
        scored = [score_part(parts[0], chosen)]
    messages_out, conversations, evidence = join_parts(scored)
    if corpus and "text_hash" in messages_out.columns:
        shares = duplicates.corpus_shares(messages_out)
        conversations = conversations.join(shares, on="conversation_id", how="left", maintain_order="left")
    return FrameScores(messages_out, conversations, evidence, version_of(chosen))

"""Conversations as row ranges (analysis.segments): the reply rule's helper."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pe_toolkit.analysis.segments import Segments


def _walk_next(conversations: list[str], mask: list[bool]) -> list[int]:
    """The first True after each row in its conversation, one row at a time."""
    out = []
    for i, conv in enumerate(conversations):
        found = -1
        for j in range(i + 1, len(conversations)):
            if conversations[j] != conv:
                break
            if mask[j]:
                found = j
                break
        out.append(found)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_next_where_equals_a_plain_walk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 7, size=40)
    conversations = [f"c{k:03d}" for k, n in enumerate(lengths) for _ in range(n)]
    mask = (rng.random(len(conversations)) < 0.4).tolist()
    segments = Segments.of(pl.DataFrame({"conversation_id": conversations}))
    got = segments.next_where(np.array(mask))
    assert got.tolist() == _walk_next(conversations, mask)


def test_next_where_never_crosses_into_the_next_conversation_and_handles_no_rows() -> None:
    segments = Segments.of(pl.DataFrame({"conversation_id": ["a", "a", "b", "b"]}))
    # a's user message has no reply in a; b's assistant message is not its reply.
    assert segments.next_where(np.array([False, False, True, True])).tolist() == [-1, -1, 3, -1]
    empty = Segments.of(pl.DataFrame({"conversation_id": pl.Series([], dtype=pl.String)}))
    assert empty.next_where(np.zeros(0, dtype=bool)).tolist() == []

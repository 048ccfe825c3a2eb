"""Conversations as contiguous row ranges of a messages frame.

Analyzer input is sorted by conversation_id, idx (the contract in
:mod:`.base`), so every conversation is a run of rows. Per-conversation
sums, counts, firsts and lasts are then numpy ``reduceat`` calls over the
run starts: no hashing of string keys, no group_by, no per-row Python.
Shared by the analyzers; the public names are stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Segments:
    """``starts[k]`` is the first row of conversation k; ``ids[k]`` its id."""

    starts: np.ndarray
    n_rows: int
    ids: pl.Series

    @classmethod
    def of(cls, messages: pl.DataFrame) -> Segments:
        conv = messages["conversation_id"]
        changed = (conv != conv.shift(1)).fill_null(True).to_numpy() if len(conv) else np.zeros(0, dtype=bool)
        starts = np.flatnonzero(changed)
        return cls(starts=starts, n_rows=len(conv), ids=conv.gather(pl.Series(starts, dtype=pl.UInt32)) if len(starts) else conv.clear())

    @property
    def n(self) -> int:
        return len(self.starts)

    @cached_property
    def of_row(self) -> np.ndarray:
        """The conversation number of each row."""
        lengths = np.diff(np.append(self.starts, self.n_rows))
        return np.repeat(np.arange(self.n, dtype=np.int64), lengths)

    def sum(self, values: np.ndarray) -> np.ndarray:
        if not self.n:
            return np.zeros(0, dtype=values.dtype if values.dtype.kind == "f" else np.int64)
        kind = np.float64 if values.dtype.kind == "f" else np.int64
        return np.add.reduceat(values, self.starts, dtype=kind)

    def first_where(self, mask: np.ndarray) -> np.ndarray:
        """Row of the first True per conversation, -1 where none."""
        if not self.n:
            return np.zeros(0, dtype=np.int64)
        big = self.n_rows
        first = np.minimum.reduceat(np.where(mask, np.arange(self.n_rows), big), self.starts)
        return np.where(first == big, -1, first)

    def last_where(self, mask: np.ndarray) -> np.ndarray:
        """Row of the last True per conversation, -1 where none."""
        if not self.n:
            return np.zeros(0, dtype=np.int64)
        return np.maximum.reduceat(np.where(mask, np.arange(self.n_rows), -1), self.starts)

    def next_where(self, mask: np.ndarray) -> np.ndarray:
        """Per row: the row of the first True after it in its conversation,
        -1 where none (a suffix minimum, then cut at the conversation's end).
        With ``mask`` the assistant messages, this is the reply rule shared
        by safety and quality: the first assistant message after a
        disclosure, whoever spoke in between."""
        n = self.n_rows
        if not n:
            return np.zeros(0, dtype=np.int64)
        at = np.where(mask, np.arange(n), n)
        after = np.full(n, n, dtype=np.int64)
        after[:-1] = np.minimum.accumulate(at[::-1])[::-1][1:]
        ends = np.append(self.starts[1:], n)[self.of_row]
        return np.where(after < ends, after, -1)

    def same_as_previous(self) -> np.ndarray:
        """Per row: the previous row belongs to the same conversation."""
        out = np.ones(self.n_rows, dtype=bool)
        out[self.starts] = False
        return out


def gather_or_null(values: np.ndarray, rows: np.ndarray, dtype: pl.DataType | type[pl.DataType] = pl.Float64) -> pl.Series:
    """``values[rows]`` with null where ``rows`` is -1."""
    ok = rows >= 0
    out = pl.Series(np.where(ok, values[np.maximum(rows, 0)], 0), dtype=dtype)
    return pl.select(pl.when(pl.Series(ok)).then(out).otherwise(None)).to_series()

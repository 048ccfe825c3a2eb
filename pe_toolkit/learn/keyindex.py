"""A hash table of int64 keys in numpy: lookups of millions of keys at once.

``np.searchsorted`` costs about 15 dependent random reads per key into a
table of ten thousand features; an open-addressing table with a load of
at most 1/4 costs one or two. Lookups run in rounds (one gather per
round, for the keys still probing); building runs in rounds too, once per
model. Keys are non-negative int64 (-1 marks an empty slot).
"""

from __future__ import annotations

import numpy as np

_EMPTY = np.int64(-1)
# Fibonacci hashing (spreads nearby keys), as a wrapping int64 product.
_MULTIPLIER = np.int64(0x9E3779B97F4A7C15 - (1 << 64))


class KeyIndex:
    """``values[i]`` for ``keys[i]``; :meth:`get` answers -1 for a key not in it."""

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        values = np.asarray(values, dtype=np.int64)
        if len(keys) and keys.min() < 0:
            raise ValueError("KeyIndex keys must be non-negative")
        self.bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 4))))
        size = 1 << self.bits
        self.keys = np.full(size, _EMPTY, dtype=np.int64)
        self.values = np.full(size, -1, dtype=np.int64)
        pending = np.arange(len(keys))
        home = self._hash(keys)
        self.probes = 0
        while len(pending):  # a few rounds: each places the first key wanting a free slot
            slot = (home[pending] + self.probes) & (size - 1)
            free = self.keys[slot] == _EMPTY
            candidates = np.flatnonzero(free)
            _, first = np.unique(slot[candidates], return_index=True)
            placed = candidates[first]
            self.keys[slot[placed]] = keys[pending[placed]]
            self.values[slot[placed]] = values[pending[placed]]
            done = np.zeros(len(pending), dtype=bool)
            done[placed] = True
            pending = pending[~done]
            if len(pending):
                self.probes += 1
        self.probes += 1  # rounds a lookup may need

    def _hash(self, keys: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            mixed = keys * _MULTIPLIER
        return (mixed >> np.int64(64 - self.bits)) & np.int64((1 << self.bits) - 1)

    def get(self, query: np.ndarray) -> np.ndarray:
        """The value of each query key, -1 where the key is absent."""
        query = np.asarray(query, dtype=np.int64)
        out = np.full(len(query), -1, dtype=np.int64)
        if not len(query):
            return out
        home = self._hash(query)
        # The first round over every key (most end there: a hit or an empty
        # slot), then only the keys that met another key.
        found = self.keys[home]
        hit = found == query
        out[hit] = self.values[home[hit]]
        pending = np.flatnonzero(~hit & (found != _EMPTY))
        mask = (1 << self.bits) - 1
        for r in range(1, self.probes):
            if not len(pending):
                break
            slot = (home[pending] + r) & mask
            found = self.keys[slot]
            hit = found == query[pending]
            out[pending[hit]] = self.values[slot[hit]]
            pending = pending[~hit & (found != _EMPTY)]
        return out

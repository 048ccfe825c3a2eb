"""The entries of one or more lexicons as one regex, and the way back from a
matched text to the entry that produced it."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from ...errors import AnalysisError
from .lexicon import Entry, check_patterns
from .translate import ASCII_BOUNDARY, lower_pattern, rust_pattern, spaces_to_runs

_CACHE_LIMIT = 200_000


class Matcher:
    """Entries of one or more lexicons as one regex, plus the way back from a
    matched text to its entry.

    ``entries`` are tried in the given order (callers sort by priority, see
    :func:`sorted_entries`); ``boundaries`` wraps each in ASCII word
    boundaries; ``ignore_case`` matches lower-cased text (:meth:`prepare`)
    with lower-cased patterns.
    """

    def __init__(self, entries: Sequence[Entry], *, boundaries: bool = True, ignore_case: bool = True) -> None:
        if not entries:
            raise AnalysisError("a matcher needs at least one entry")
        self.entries = tuple(entries)
        self.ignore_case = ignore_case
        parts = [spaces_to_runs(lower_pattern(e.pattern) if ignore_case else e.pattern) for e in self.entries]

        def wrap(entry: Entry, p: str) -> str:
            # An entry can supply its own boundaries (when it ends in punctuation).
            p = rust_pattern(p)
            if boundaries and entry.get("boundary", True):
                return f"{ASCII_BOUNDARY}(?:{p}){ASCII_BOUNDARY}"
            return f"(?:{p})"

        self._wrapped = [wrap(e, p) for e, p in zip(self.entries, parts, strict=True)]
        self.regex = "|".join(self._wrapped)
        try:
            self._py = re.compile("|".join(f"(?P<e{i}>{p})" for i, p in enumerate(parts)))
        except re.error as exc:
            check_patterns(self.entries)  # names the entry at fault
            raise AnalysisError(f"the lexicon patterns do not compile together: {exc}") from None
        self._parts = parts
        self._boundaries = boundaries
        self._cache: dict[str, int] = {}
        self.table = pl.DataFrame(
            {
                "entry": pl.Series(range(len(self.entries)), dtype=pl.UInt32),
                "lexicon": [e.lexicon for e in self.entries],
                "category": [e.category for e in self.entries],
            }
        )

    @functools.cached_property
    def whole(self) -> re.Pattern[str]:
        """The whole alternation for Python's re, as the regex engine reads
        it: :func:`.spans.find_spans_in_parts` scans with it the few rows
        where the parts' matches overlap."""
        parts = [rust_pattern(p, python=True) for p in self._parts]
        return re.compile(
            "|".join(
                rf"\b(?:{p})\b" if self._boundaries and e.get("boundary", True) else f"(?:{p})"
                for e, p in zip(self.entries, parts, strict=True)
            ),
            re.ASCII,
        )

    def regexes(self, most: int) -> list[str]:
        """The entries as consecutive alternations of at most ``most`` entries
        each, in order (for :func:`.spans.find_spans_in_parts`): the regex
        engine builds its automaton lazily in a cache of fixed size, and one
        alternation of a large lexicon outgrows it, after which the scan runs
        several times slower (crisis.toml at 204 entries: 0.06 s a batch in
        two parts, 0.15-0.32 s in one)."""
        return ["|".join(self._wrapped[i : i + most]) for i in range(0, len(self._wrapped), most)]

    def prepare(self, folded: pl.Series) -> pl.Series:
        """The text this matcher runs on: the folded text, lower-cased when the
        matcher ignores case (ASCII, so offsets do not move)."""
        return folded.str.to_lowercase() if self.ignore_case else folded

    def field(self, key: str, default: Any = None, dtype: pl.DataType | type[pl.DataType] | None = None) -> pl.Series:
        return pl.Series(key, [e.get(key, default) for e in self.entries], dtype=dtype)

    def classify(self, texts: pl.Series) -> pl.Series:
        """Entry number (UInt32) of each matched text; null if none fits."""
        if not len(texts):
            return pl.Series("entry", [], dtype=pl.UInt32)
        unique = texts.unique()
        if len(self._cache) > _CACHE_LIMIT:
            # Families with open-ended matches (PII values) would grow it forever.
            self._cache.clear()
        # A Python loop over the *distinct* matched texts not seen before (the
        # lexicon's phrasings: thousands at most, then cached).
        # Local mapping, shared cache: safe when batches are scored on threads.
        mapping: dict[str, int] = {}
        for text in unique.to_list():
            entry = self._cache.get(text)
            if entry is None:
                m = self._py.fullmatch(text)
                entry = int(m.lastgroup[1:]) if m and m.lastgroup else -1
                self._cache[text] = entry
            mapping[text] = entry
        out = texts.replace_strict(mapping, return_dtype=pl.Int64)
        return pl.select(pl.when(out >= 0).then(out).cast(pl.UInt32).alias("entry")).to_series()

    def frame(self, fields: Iterable[tuple[str, Any, pl.DataType | type[pl.DataType] | None]]) -> pl.DataFrame:
        """``table`` plus the named entry fields as columns."""
        return self.table.with_columns(self.field(k, d, t) for k, d, t in fields)


def sorted_entries(*groups: tuple[Iterable[Entry], int]) -> list[Entry]:
    """Entries of several lexicons ordered by ``priority`` (their own, else the
    group's default), then by file order."""
    keyed = []
    for n, (entries, default) in enumerate(groups):
        for e in entries:
            keyed.append((int(e.get("priority", default)), n, e.index, e))
    return [k[3] for k in sorted(keyed, key=lambda k: k[:3])]

"""Every match of a regex in a column of folded (ASCII) texts, with its
offsets, in one regex pass; the original text of a span and the text around
it."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from ...errors import AnalysisError
from .folding import END_MARK, MARK

SPANS_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),
    "start": pl.Int32(),
    "end": pl.Int32(),
    "text": pl.String(),
}


def empty_spans() -> pl.DataFrame:
    return pl.DataFrame(schema=SPANS_SCHEMA)


_POOL: Any = None
_POOL_LOCK = threading.Lock()


def _pool() -> Any:
    """One long-lived thread pool for :func:`_split_map`. Polars caches a
    compiled regex per thread: fresh threads on every call would compile each
    family's alternation again (tens of milliseconds for the crisis lexicon),
    twice per pass."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max(2, pl.thread_pool_size()), thread_name_prefix="pe-spans")
        return _POOL


def _forget_pool() -> None:  # pragma: no cover - runs in a forked child
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _split_map(texts: pl.Series, fn: Any, min_rows: int = 50_000) -> pl.DataFrame:
    """``fn(part)`` (a frame with a ``row`` column) over two halves of
    ``texts`` on two threads, rows renumbered: polars releases the GIL in its
    kernels, and a string kernel on one Series runs on one core."""
    n = len(texts)
    if n < min_rows or pl.thread_pool_size() < 2:
        return fn(texts)
    cut = n // 2
    pool = _pool()
    first = pool.submit(fn, texts.slice(0, cut))
    second = pool.submit(fn, texts.slice(cut))
    a, b = first.result(), second.result()
    return pl.concat([a, b.with_columns(pl.col("row") + cut)])


def _spans_of(texts: pl.Series, regex: str) -> pl.DataFrame:
    marked = texts.str.replace_all(regex, MARK + "$0" + END_MARK)
    positions = marked.str.find_many([MARK, END_MARK])
    per_row = (positions.list.len() // 2).cast(pl.Int64).to_numpy()
    flat = positions.explode().drop_nulls().to_numpy().astype(np.int64)
    if not len(flat):
        return empty_spans()
    rows = np.repeat(np.arange(len(texts), dtype=np.uint32), per_row)
    # The k-th match of a row (from 0) sits after 2k markers.
    k = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    start = flat[0::2] - 2 * k
    end = flat[1::2] - 2 * k - 1
    row_series = pl.Series("row", rows, dtype=pl.UInt32)
    start_series = pl.Series("start", start, dtype=pl.Int32)
    end_series = pl.Series("end", end, dtype=pl.Int32)
    # The texts are ASCII: byte slices are character slices, and a byte slice
    # does not walk the text from its start (str.slice on the k-th match of a
    # 2 MB message would, making the pass quadratic).
    text = (
        texts.cast(pl.Binary).gather(row_series).bin.slice(start_series, end_series - start_series)  # type: ignore[arg-type]  # per-row offsets: polars runs them, its stub types scalars only
        .cast(pl.String).alias("text")
    )
    return pl.DataFrame([row_series, start_series, end_series, text])


def find_spans(texts: pl.Series, regex: str, where: str = "lexicon") -> pl.DataFrame:
    """Every non-overlapping match of ``regex`` in the (ASCII) texts:
    ``row`` (position in ``texts``), ``start``, ``end`` (character offsets),
    ``text`` (as matched: folded, maybe lower-cased)."""
    try:
        return _split_map(texts, lambda part: _spans_of(part, regex))
    except pl.exceptions.ComputeError as exc:
        raise AnalysisError(f"{where}: the regex does not compile: {exc}") from None


_MERGE_ROUNDS = 8


def find_spans_in_parts(texts: pl.Series, regexes: list[str], whole: Callable[[], re.Pattern[str]], where: str = "lexicon") -> pl.DataFrame:
    """:func:`find_spans` of the alternation ``"|".join(regexes)``, scanned
    one part at a time (see :meth:`.Matcher.regexes`); ``whole()`` gives that
    alternation compiled by Python's ``re`` (the same leftmost-first
    semantics), asked for only when a row needs it (compiling the crisis
    lexicon's takes 0.35 s of CPU). The parts' spans are merged as the one
    regex would have matched them: at one start the earlier part wins, and a span overlapping
    one kept before it is dropped. Where a dropped span reaches past the kept
    one, its part's own scan skipped text the one regex would have scanned,
    so those rows (a few in a thousand) are scanned again with ``whole``."""
    if len(regexes) == 1:
        return find_spans(texts, regexes[0], where)
    found = [find_spans(texts, r, where).with_columns(part=pl.lit(i, pl.UInt32)) for i, r in enumerate(regexes)]
    spans = pl.concat(found).sort("row", "start", "part")
    if not len(spans):
        return empty_spans()
    row = spans["row"].to_numpy()
    start = spans["start"].to_numpy().astype(np.int64)
    end = spans["end"].to_numpy().astype(np.int64)
    first = np.r_[True, row[1:] != row[:-1]]
    # Greedy in order: keep a span when it starts at or after the end of
    # every span kept before it in its row. Solved by iteration from "keep
    # all": each round settles at least the next undecided span of every
    # row; overlaps between parts are short (nested in the crisis lexicon),
    # so two or three rounds do, and a row still unsettled after
    # _MERGE_ROUNDS (a long chain of overlaps, as in crafted text) is
    # scanned again whole, so the merge never goes quadratic. Rows apart:
    # each row's ends lifted above every earlier row's, so one running
    # maximum serves all rows.
    lift = (np.cumsum(first) - 1) * (int(end.max()) + 2)
    keep = np.ones(len(spans), dtype=bool)
    before = np.full(len(spans), -1, dtype=np.int64)
    unsettled = np.zeros(len(spans), dtype=bool)
    for _ in range(_MERGE_ROUNDS):
        latest = np.maximum.accumulate(np.where(keep, end, -1) + lift) - lift
        before = np.where(first, -1, np.r_[-1, latest[:-1]])
        new = start >= before
        unsettled = new != keep
        keep = new
        if not unsettled.any():
            break
    merged = spans.filter(pl.Series(keep)).drop("part")
    redo = np.unique(row[(~keep & (end > before)) | unsettled])
    if not len(redo):
        return merged
    # A Python loop over those few rows only, with the whole alternation.
    redo_texts = texts.gather(pl.Series(redo, dtype=pl.UInt32)).to_list()
    pattern = whole()
    again = [(int(r), m.start(), m.end(), m.group()) for r, t in zip(redo, redo_texts, strict=True) for m in pattern.finditer(t)]
    fixed = pl.DataFrame(again, schema=SPANS_SCHEMA, orient="row")
    return pl.concat([merged.filter(~pl.col("row").is_in(redo.tolist())), fixed]).sort("row", "start")


# Above this many bytes a non-ASCII text is sliced in Python (char_slices).
LONG_TEXT_BYTES = 20_000


def ascii_slices(texts: pl.Series, rows: pl.Series, start: pl.Series, length: pl.Series) -> pl.Series:
    """``texts[rows][start:start + length]`` for ASCII texts (the folded ones),
    as byte slices: ``str.slice`` walks each text from its start, which is
    quadratic over the many spans of one long message."""
    return texts.cast(pl.Binary).gather(rows).bin.slice(start, length).cast(pl.String)  # type: ignore[arg-type]  # per-row offsets: polars runs them, its stub types scalars only


def char_slices(texts: pl.Series, rows: pl.Series, start: pl.Series, length: pl.Series) -> pl.Series:
    """``texts[rows][start:start + length]`` in characters, for any texts:
    byte slices on ASCII rows; on the others ``str.slice``, except in long
    messages, sliced in Python (see below)."""
    if not len(rows):
        return pl.Series([], dtype=pl.String)
    nbytes = texts.str.len_bytes()
    ascii_row = nbytes == texts.str.len_chars()
    long_row = nbytes > LONG_TEXT_BYTES
    flags = pl.DataFrame({"a": ascii_row.gather(rows), "l": long_row.gather(rows)})
    out = pl.Series([None] * len(rows), dtype=pl.String)
    plain = flags["a"].arg_true()
    if len(plain):
        out = out.scatter(plain, ascii_slices(texts, rows.gather(plain), start.gather(plain), length.gather(plain)))
    other = (~flags["a"]).arg_true()
    if len(other):
        short = other.filter(~flags["l"].gather(other))
        if len(short):
            out = out.scatter(short, texts.gather(rows.gather(short)).str.slice(start.gather(short), length.gather(short)))
        slow = other.filter(flags["l"].gather(other))
        if len(slow):
            # A Python loop over the spans of long non-ASCII messages only:
            # Python strings index in constant time, polars' str.slice in
            # time proportional to the offset. Only those messages become
            # Python strings, each once (not the whole column).
            slow_rows = rows.gather(slow)
            long_rows = slow_rows.unique()
            values = dict(zip(long_rows.to_list(), texts.gather(long_rows).to_list(), strict=True))
            cut = [values[r][a : a + n] for r, a, n in zip(slow_rows.to_list(), start.gather(slow).to_list(),
                                                          length.gather(slow).to_list())]  # fmt: skip
            out = out.scatter(slow, pl.Series(cut, dtype=pl.String))
    return out


def original_text(spans: pl.DataFrame, texts: pl.Series) -> pl.Series:
    """Each span's text in the original messages ``texts`` (indexed by
    ``row``), in characters (:func:`char_slices`: str.slice walks a text from
    its start, quadratic over the many spans of one long message)."""
    if not len(spans):
        return pl.Series("text", [], dtype=pl.String)
    return char_slices(texts, spans["row"], spans["start"], spans["end"] - spans["start"]).alias("text")


def windows(spans: pl.DataFrame, folded: pl.Series, *, before: int = 160, after: int = 160) -> pl.DataFrame:
    """``spans`` plus ``pre`` (up to ``before`` characters before the match) and
    ``post`` (up to ``after`` characters after it) from the folded texts."""
    if not len(spans):
        return spans.with_columns(pre=pl.lit("", pl.String), post=pl.lit("", pl.String))
    lo = (spans["start"] - before).clip(lower_bound=0)
    return spans.with_columns(
        pre=ascii_slices(folded, spans["row"], lo, spans["start"] - lo),
        post=ascii_slices(folded, spans["row"], spans["end"], pl.repeat(after, len(spans), dtype=pl.Int32, eager=True)),
    )

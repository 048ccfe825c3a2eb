"""Lexicons (``lexicons/*.toml``) compiled to one regex per family, and their
matches found in a column of texts, columnar.

Private helper of the empathy, skills, safety and PII analyzers. The pattern
syntax is described in ``lexicons/README.md``.

How a family is matched (one regex pass, whatever the number of entries):

1. :func:`fold_ascii` maps typographic quotes, dashes and exotic spaces to
   ASCII, other letters to "x" and anything else to a space, one character
   for one.
   The folded text is pure ASCII, so byte offsets are character offsets, and
   offsets into it are offsets into the original message.
   Case-insensitive families match the folded text lower-cased (ASCII, so
   still one character for one) with lower-cased patterns: the regex engine
   runs a Unicode case-insensitive alternation about 30 times slower.
2. :func:`find_spans` runs the family's alternation once, with
   ``str.replace_all`` wrapping every match in two one-byte markers; the
   markers' byte positions (``str.find_many``, a memchr scan) give each
   match's start and end, which numpy turns into offsets into the unmarked
   text. Polars has no "find all with positions" for regexes; this is one
   regex pass where extract-then-locate would be two. Large inputs are cut in
   two halves matched on two threads (polars releases the GIL).
3. :meth:`Matcher.classify` maps each matched text back to the entry that
   produced it: the first entry, in priority order, whose pattern matches the
   whole text. That is a Python ``re.fullmatch`` per *distinct* matched text
   (a few thousand phrasings, cached across calls), then a hash lookup per
   match, never a loop over messages.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import polars as pl

from ..errors import AnalysisError

# Word boundaries in ASCII mode: the folded text is ASCII, and Unicode \b would
# keep the regex engine off its fast DFA path.
_B = r"(?-u:\b)"
_MACRO = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
MARK = "\x01"
END_MARK = "\x02"
_CACHE_LIMIT = 200_000

SPANS_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),
    "start": pl.Int32(),
    "end": pl.Int32(),
    "text": pl.String(),
}

# One code point for one, so offsets survive folding.
_FOLD_FROM = [
    "\u2018", "\u2019", "\u201a", "\u201b", "\u2032", "\u00b4", "\u0060",
    "\u201c", "\u201d", "\u201e", "\u201f", "\u2033", "\u00ab", "\u00bb",
    "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212",
    "\u2026", "\u00a0", "\u2007", "\u202f", "\u2009", "\u200a", "\u3000",
    "\u2028", "\u2029", "\x00", MARK, END_MARK,
]  # fmt: skip
_FOLD_TO = [
    "'", "'", "'", "'", "'", "'", "'",
    '"', '"', '"', '"', '"', '"', '"',
    "-", "-", "-", "-", "-", "-", "-",
    ".", " ", " ", " ", " ", " ", " ",
    "\n", "\n", " ", " ", " ",
]  # fmt: skip


def fold_ascii(texts: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(folded texts, which rows changed). Nulls become empty strings.

    Only rows holding a non-ASCII character or a NUL/marker byte are rewritten;
    finding them is a length comparison and two memchr scans.
    """
    texts = texts.cast(pl.String).fill_null("")
    flags = pl.DataFrame({"t": texts}).select(
        (pl.col("t").str.len_bytes() != pl.col("t").str.len_chars())
        | pl.col("t").str.contains(MARK, literal=True)
        | pl.col("t").str.contains(END_MARK, literal=True)
        | pl.col("t").str.contains("\x00", literal=True)
    ).to_series()
    rows = flags.arg_true()
    if not len(rows):
        return texts, flags
    fixed = (
        texts.gather(rows)
        .str.replace_many(_FOLD_FROM, _FOLD_TO)
        # Other letters (and their combining marks) stay word characters, so
        # "zoë" is one word, not "zo" plus a boundary; anything else is a space.
        .str.replace_all(r"[\p{L}\p{M}\p{N}&&[^\x00-\x7f]]", "x")
        .str.replace_all(r"[^\x00-\x7f]", " ")
    )
    return texts.clone().scatter(rows, fixed), flags


def lower_pattern(pattern: str) -> str:
    """A pattern for lower-cased text: letters lower-cased, escapes (``\\S``,
    ``\\B``...) left alone."""
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        else:
            out.append(ch.lower())
    return "".join(out)


_RUST_CLASS = {"s": " \\t\\r\\n", "d": "0-9", "w": "A-Za-z0-9_"}


def rust_pattern(pattern: str) -> str:
    """The pattern as polars runs it: the same language, with every class
    limited to ASCII (the texts are folded to ASCII). Unicode ``\\w``, ``\\s``,
    ``\\b``, ``(?i:...)`` and negated classes make the regex automaton tens of
    times larger and the lazy DFA thrash; Python's ``re`` (classification)
    keeps the original spelling, which means the same on ASCII text."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
        if ch == "\\" and nxt:
            if nxt in _RUST_CLASS:
                out.append(_RUST_CLASS[nxt] if in_class else f"[{_RUST_CLASS[nxt]}]")
            elif nxt == "b" and not in_class:
                out.append("(?-u:\\b)")
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            out.append(ch)
        elif ch == "[":
            in_class = True
            if nxt == "^":
                # A negated class stays inside ASCII.
                out.append("[^\\x{80}-\\x{10FFFF}")
                i += 2
                continue
            out.append(ch)
        elif pattern.startswith("(?i:", i):
            out.append("(?i-u:")
            i += 4
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _spaces_to_runs(pattern: str) -> str:
    """A space outside a character class matches any run of whitespace."""
    out: list[str] = []
    in_class = escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif in_class:
            out.append(ch)
            in_class = ch != "]"
        elif ch == "[":
            out.append(ch)
            in_class = True
        elif ch == " ":
            out.append("[ \\t\\r\\n]+")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Entry:
    """One lexicon entry. ``fields`` holds everything besides the pattern
    (level, severity, body, skill, scope, ...)."""

    lexicon: str
    index: int
    category: str
    pattern: str  # macros expanded, spaces still literal
    example: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


@dataclass(frozen=True)
class Lexicon:
    name: str
    version: int
    categories: Mapping[str, str]  # category -> definition
    entries: tuple[Entry, ...]
    tables: Mapping[str, Any]  # every other top-level table (generic_words, cues, subjects...)
    digest: str


_RESERVED = {"category", "pattern", "example"}


def _expand(pattern: str, macros: Mapping[str, str], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in macros:
            raise AnalysisError(f"{where}: unknown macro {{{name}}}")
        return macros[name]

    # Macros may use macros; three rounds are plenty for our files.
    for _ in range(3):
        pattern = _MACRO.sub(sub, pattern)
    return pattern


def _entries(name: str, raw: list[dict[str, Any]], macros: Mapping[str, str], categories: Mapping[str, str],
             defaults: Mapping[str, Any]) -> tuple[Entry, ...]:  # fmt: skip
    out = []
    for i, item in enumerate(raw):
        where = f"lexicons/{name}.toml entry {i + 1}"
        missing = {"category", "pattern", "example"} - set(item)
        if missing:
            raise AnalysisError(f"{where}: missing {sorted(missing)}")
        if item["category"] not in categories:
            raise AnalysisError(f"{where}: category {item['category']!r} has no definition in [categories]")
        pattern = _expand(item["pattern"], macros, where)
        try:
            re.compile(_spaces_to_runs(pattern))
        except re.error as exc:
            raise AnalysisError(f"{where}: bad pattern: {exc}") from None
        fields = {**defaults, **{k: v for k, v in item.items() if k not in _RESERVED}}
        out.append(Entry(name, i, item["category"], pattern, item["example"], fields))
    return tuple(out)


@functools.cache
def load_lexicon(name: str) -> Lexicon:
    """``lexicons/<name>.toml`` from the installed package, validated."""
    import hashlib

    ref = resources.files("pe_toolkit.analysis").joinpath("lexicons", f"{name}.toml")
    try:
        data = ref.read_bytes()
    except OSError as exc:
        raise AnalysisError(f"lexicon {name!r} is missing from the package: {exc}") from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"lexicons/{name}.toml: {exc}") from None
    categories = {k: v["definition"] for k, v in doc.get("categories", {}).items()}
    macros = doc.get("macros", {})
    defaults = doc.get("defaults", {})
    entries = _entries(name, doc.get("entries", []), macros, categories, defaults)
    tables = {k: v for k, v in doc.items() if k not in {"entries", "categories", "macros", "defaults", "name", "version"}}
    for key, value in list(tables.items()):
        if isinstance(value, list) and value and isinstance(value[0], dict) and "pattern" in value[0]:
            # Secondary pattern lists (cues' [[subjects]]) get the same macro expansion.
            tables[key] = [{**v, "pattern": _expand(v["pattern"], macros, f"lexicons/{name}.toml {key}")} for v in value]
    return Lexicon(name, int(doc.get("version", 1)), categories, entries, tables, hashlib.sha256(data).hexdigest()[:12])


class Matcher:
    """Entries of one or more lexicons as one regex, plus the way back from a
    matched text to its entry.

    ``entries`` are tried in the given order (callers sort by priority);
    ``boundaries`` wraps each in ASCII word boundaries; ``ignore_case``
    matches lower-cased text (:meth:`prepare`) with lower-cased patterns.
    """

    def __init__(self, entries: Sequence[Entry], *, boundaries: bool = True, ignore_case: bool = True) -> None:
        if not entries:
            raise AnalysisError("a matcher needs at least one entry")
        self.entries = tuple(entries)
        self.ignore_case = ignore_case
        parts = [_spaces_to_runs(lower_pattern(e.pattern) if ignore_case else e.pattern) for e in self.entries]

        def wrap(entry: Entry, p: str) -> str:
            # An entry can supply its own boundaries (when it ends in punctuation).
            p = rust_pattern(p)
            return f"{_B}(?:{p}){_B}" if boundaries and entry.get("boundary", True) else f"(?:{p})"

        self.regex = "|".join(wrap(e, p) for e, p in zip(self.entries, parts, strict=True))
        self._py = re.compile("|".join(f"(?P<e{i}>{p})" for i, p in enumerate(parts)))
        self._cache: dict[str, int] = {}
        self.table = pl.DataFrame(
            {
                "entry": pl.Series(range(len(self.entries)), dtype=pl.UInt32),
                "lexicon": [e.lexicon for e in self.entries],
                "category": [e.category for e in self.entries],
            }
        )

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


def original_text(spans: pl.DataFrame, texts: pl.Series) -> pl.Series:
    """Each span's text in the original messages ``texts`` (indexed by
    ``row``). Gathering string views is cheap; only the slices are new."""
    if not len(spans):
        return pl.Series("text", [], dtype=pl.String)
    return texts.gather(spans["row"]).str.slice(spans["start"], spans["end"] - spans["start"]).alias("text")


def windows(spans: pl.DataFrame, folded: pl.Series, *, before: int = 160, after: int = 160) -> pl.DataFrame:
    """``spans`` plus ``pre`` (up to ``before`` characters before the match) and
    ``post`` (up to ``after`` characters after it) from the folded texts."""
    if not len(spans):
        return spans.with_columns(pre=pl.lit("", pl.String), post=pl.lit("", pl.String))
    text = folded.gather(spans["row"])
    lo = (spans["start"] - before).clip(lower_bound=0)
    return spans.with_columns(
        pre=text.str.slice(lo, spans["start"] - lo),
        post=text.str.slice(spans["end"], after),
    )


# Clause boundaries: punctuation, and the conjunctions that start a new claim.
CLAUSE_BOUNDARY = (
    r"[.!?;:,\n]|" + _B + r"(?:but|and|so|because|cos|although|though|yet|however|whereas|except|then)" + _B
)


def clause_prefix(pre: pl.Expr, tokens: int = 8) -> pl.Expr:
    """The last ``tokens`` tokens of the clause that ends where the match starts."""
    clause = pre.str.extract(r"(?is)^(?:.*(?:" + CLAUSE_BOUNDARY + r"))?(.*)$", 1)
    return clause.str.extract(r"((?:\S+\s*){0," + str(tokens) + r"})$", 1).fill_null("")


def sentence_prefix(pre: pl.Expr) -> pl.Expr:
    return pre.str.extract(r"([^.!?\n]*)$", 1).fill_null("")


def sentence_rest(post: pl.Expr) -> pl.Expr:
    return post.str.extract(r"^([^.!?\n]*)", 1).fill_null("")


def content_words(texts: pl.Series, generic: frozenset[str], min_length: int = 3) -> pl.Series:
    """Number of words in each text that are not generic (and have at least
    ``min_length`` letters): how specific a question or reflection is."""
    if not len(texts):
        return pl.Series("content", [], dtype=pl.UInt32)
    words = texts.str.to_lowercase().str.extract_all(r"[a-z][a-z'\-]{" + str(min_length - 1) + r",}")
    return (
        pl.DataFrame({"w": words})
        .select(pl.col("w").list.eval((~pl.element().is_in(sorted(generic))).sum()).list.first().fill_null(0).cast(pl.UInt32))
        .to_series()
        .alias("content")
    )


def code_bits(n: int, rows: pl.Series, values: pl.Series, codes: Sequence[str]) -> np.ndarray:
    """One int64 bit mask per row (``n`` rows): bit i set when ``codes[i]``
    is among the ``values`` given for that row. Values not in ``codes`` are
    ignored. (Scatter-OR in numpy: far cheaper than a group-by at millions of
    rows.)"""
    bits = np.zeros(n, dtype=np.int64)
    rank = pl.Series(values).replace_strict(list(codes), list(range(len(codes))), default=None, return_dtype=pl.Int64)
    keep = rank.is_not_null()
    if bool(keep.any()):
        np.bitwise_or.at(bits, rows.filter(keep).to_numpy(), np.left_shift(1, rank.filter(keep).to_numpy()))
    return bits


def bits_to_lists(bits: np.ndarray, codes: Sequence[str], name: str) -> pl.Series:
    """The code lists (in ``codes`` order) of bit masks from :func:`code_bits`:
    one list per distinct mask (a few hundred at most), then a join."""
    distinct = np.unique(bits)
    table = pl.DataFrame(
        {
            "bits": pl.Series(distinct, dtype=pl.Int64),
            name: pl.Series([[c for i, c in enumerate(codes) if int(b) >> i & 1] for b in distinct], dtype=pl.List(pl.String)),
        }
    )
    return pl.DataFrame({"bits": pl.Series(bits, dtype=pl.Int64)}).join(table, on="bits", how="left", maintain_order="left")[name]

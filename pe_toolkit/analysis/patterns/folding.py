"""Texts folded to ASCII, one character for one, so that offsets into the
folded text are offsets into the original and byte offsets are character
offsets."""

from __future__ import annotations

import polars as pl

# The markers :mod:`.spans` wraps matches in; folding removes them from the
# texts so every marker found afterwards is one it placed.
MARK = "\x01"
END_MARK = "\x02"

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

"""What surrounds a match (the clause or sentence it sits in, from the
``pre``/``post`` windows of :func:`.spans.windows`), and how specific a
text is (its content words)."""

from __future__ import annotations

import polars as pl

from .translate import ASCII_BOUNDARY

# Clause boundaries: punctuation, and the conjunctions that start a new claim.
CLAUSE_BOUNDARY = (
    r"[.!?;:,\n]|"
    + ASCII_BOUNDARY
    + r"(?:but|and|so|because|cos|although|though|yet|however|whereas|except|then)"
    + ASCII_BOUNDARY
)
# The same without "and", which also joins verb phrases that share the subject
# before them ("she would scream and cry and self mutilate").
COORDINATION_BOUNDARY = (
    r"[.!?;:,\n]|" + ASCII_BOUNDARY + r"(?:but|so|because|cos|although|though|yet|however|whereas|except|then)" + ASCII_BOUNDARY
)


def clause_prefix(pre: pl.Expr, tokens: int = 8) -> pl.Expr:
    """The last ``tokens`` tokens of the clause that ends where the match starts."""
    clause = pre.str.extract(r"(?is)^(?:.*(?:" + CLAUSE_BOUNDARY + r"))?(.*)$", 1)
    return clause.str.extract(r"((?:\S+\s*){0," + str(tokens) + r"})$", 1).fill_null("")


def coordinated_prefix(pre: pl.Expr, tokens: int = 16) -> pl.Expr:
    """The last ``tokens`` tokens before the match up to a clause boundary
    other than "and": where a clause without a subject takes it from."""
    clause = pre.str.extract(r"(?is)^(?:.*(?:" + COORDINATION_BOUNDARY + r"))?(.*)$", 1)
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

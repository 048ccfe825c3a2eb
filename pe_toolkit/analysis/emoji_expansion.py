"""VADER's emoji replacement over vocabulary entries, as array operations.

VADER replaces each emoji character of a text by its description, with a
space before it unless it starts the token and nothing after it, then
splits on whitespace. Per token the result is a list of parts
``{text, start, end}``, each spanning the characters it came from
(:data:`~pe_toolkit.analysis.text.EXPANSION_TYPE`).

This was a Python loop over every character of every such token: one
token of 320,000 emoji (4.5 million description characters) took 2-3.7 s.
Here a part is one of two things, found with numpy over the code points:

- a word of an emoji's description (spanning the emoji), the last one
  followed by the run of plain characters right after the emoji, if any
  (no space is put after a description);
- a run of plain characters (neither whitespace nor an emoji) that does not
  follow an emoji directly.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .text import EXPANSION_TYPE, ranges

# Every character str.isspace() takes (none is above U+3000); VADER splits on them.
_WHITESPACE = np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.int64)


def _utf8_lengths(cps: np.ndarray) -> np.ndarray:
    return 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)


def expand_emoji(vocab: pl.Series, emojis: dict[str, str]) -> pl.Series:
    """Per entry of ``vocab``: null when it holds none of the single-character
    ``emojis`` (emoji -> description), else its parts after replacement."""
    keys = sorted(emojis)
    has_emoji = ((vocab.str.len_bytes() != vocab.str.len_chars()) & vocab.str.contains_any(keys)).fill_null(False)
    rows = np.flatnonzero(has_emoji.to_numpy())
    if not len(rows):
        return pl.Series([None] * len(vocab), dtype=EXPANSION_TYPE)
    tokens = vocab.gather(rows)
    # The description tables, per emoji in code point order.
    key_cp = np.array([ord(k) for k in keys], dtype=np.int64)
    words_of = [emojis[k].split() for k in keys]
    n_words = np.array([len(w) for w in words_of], dtype=np.int64)
    first_word = np.cumsum(n_words) - n_words
    word_text = pl.Series([w for ws in words_of for w in ws], dtype=pl.String)
    glues = np.array([bool(ws) and not emojis[k][-1].isspace() for k, ws in zip(keys, words_of, strict=True)])

    # The characters of the tokens, end to end (one Python string per token, not per character).
    lengths = tokens.str.len_chars().to_numpy().astype(np.int64)
    cps = np.frombuffer("".join(tokens.to_list()).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    n = len(cps)
    tok = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    pos = np.arange(n, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    at = np.searchsorted(key_cp, cps).clip(max=len(key_cp) - 1)
    emoji = key_cp[at] == cps
    plain = ~emoji & ~np.isin(cps, _WHITESPACE)

    # Runs of plain characters, within a token: [run_a, run_b).
    starts_token = pos == 0
    prev_plain = np.concatenate([[False], plain[:-1]]) & ~starts_token
    next_plain = np.concatenate([plain[1:], [False]]) & ~np.concatenate([starts_token[1:], [True]])
    run_a = np.flatnonzero(plain & ~prev_plain)
    run_b = np.flatnonzero(plain & ~next_plain) + 1
    # Each run's text: a byte slice of its token (str.slice would walk the token from its start for each run).
    width = _utf8_lengths(cps)
    byte_start = np.cumsum(width) - width
    offset = byte_start[run_a] - byte_start[run_a - pos[run_a]]
    run_text = (
        tokens.cast(pl.Binary).gather(pl.Series(tok[run_a], dtype=pl.UInt32))
        .bin.slice(pl.Series(offset), pl.Series(byte_start[run_b - 1] + width[run_b - 1] - byte_start[run_a]))  # type: ignore[arg-type]  # per-row offsets: polars runs them, its stub types scalars only
        .cast(pl.String)
    )  # fmt: skip
    # A run right after an emoji whose description glues is the end of that description's last word.
    after = np.flatnonzero(pos[run_a] > 0)
    glued = np.zeros(len(run_a), dtype=bool)
    glued[after] = emoji[run_a[after] - 1] & glues[at[run_a[after] - 1]]
    glued_from = np.full(n + 1, -1, dtype=np.int64)
    glued_from[run_a[glued]] = np.flatnonzero(glued)

    # The description words of every emoji occurrence.
    occ = np.flatnonzero(emoji)
    k = n_words[at[occ]]
    word = ranges(first_word[at[occ]], k)
    w_occ = np.repeat(occ, k)
    nth = word - np.repeat(first_word[at[occ]], k)
    suffix = np.where(nth == np.repeat(k, k) - 1, glued_from[w_occ + 1], -1)
    has_suffix = suffix >= 0
    w_end = pos[w_occ] + 1
    w_end[has_suffix] = pos[run_b[suffix[has_suffix]] - 1] + 1
    suffix_text = pl.Series([""] * len(suffix), dtype=pl.String).scatter(
        np.flatnonzero(has_suffix), run_text.gather(pl.Series(suffix[has_suffix], dtype=pl.UInt32))
    )
    lone = ~glued
    parts = pl.concat([
        pl.DataFrame({"token": tok[w_occ], "nth": nth, "start": pos[w_occ], "end": w_end,
                      "text": word_text.gather(pl.Series(word, dtype=pl.UInt32)) + suffix_text}),
        pl.DataFrame({"token": tok[run_a[lone]], "nth": np.zeros(int(lone.sum()), dtype=np.int64), "start": pos[run_a[lone]],
                      "end": pos[run_b[lone] - 1] + 1, "text": run_text.filter(pl.Series(lone))}),
    ])  # fmt: skip
    per_token = (
        parts.sort("token", "start", "nth")
        .group_by("token", maintain_order=True)
        .agg(pl.struct(pl.col("text"), pl.col("start").cast(pl.Int32), pl.col("end").cast(pl.Int32)).alias("parts"))
    )
    # Per vocabulary entry, the index of its parts in ``lists``: its token's
    # list; an empty one for a token whose emoji all have empty descriptions;
    # null for an entry with no emoji (list[struct] cannot be scattered).
    lists = pl.concat([per_token["parts"].cast(EXPANSION_TYPE), pl.Series([[], None], dtype=EXPANSION_TYPE)])
    of_token = np.full(len(rows), per_token.height, dtype=np.int64)
    of_token[per_token["token"].to_numpy()] = np.arange(per_token.height)
    index = np.full(len(vocab), per_token.height + 1, dtype=np.int64)
    index[rows] = of_token
    return lists.gather(pl.Series(index, dtype=pl.UInt32))

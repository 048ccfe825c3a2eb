"""Readability and lexical diversity, from the shared tokens.

Counts per message (words, sentences, syllables) come from per-vocabulary
values summed over each message's tokens; nothing is done per token in
Python. The Flesch Reading Ease of a conversation is computed over its
assistant messages pooled (Flesch 1948)::

    reading_ease = 206.835 - 1.015 * words / sentences - 84.6 * syllables / words

Higher is easier (90-100 very easy, 60-70 plain English, below 30 very hard);
it is not clipped, as is usual, so very short or very long sentences can go
outside 0-100.

Definitions (heuristics, documented in docs/metrics.md with their failure modes):
- word: a whitespace token with at least one letter or digit;
- sentence: a word ending in '.', '!' or '?' (closing quotes and brackets
  ignored), or a token of symbols so ending ("\U0001f642.") after a word since
  the previous end, plus one for a message whose last word does not end one;
- syllables of a word: groups of vowels (a e i o u y), minus a silent ending
  ('-e' but not '-le', '-ed' but not '-ted'/'-ded', '-ely'), plus vowel
  pairs usually spoken as two ('ia' but not 'cia'/'tia', 'ua', 'iet', final
  'ea', 'eate'); at least one (words without letters: one per digit group).
  80-90% exact on common words (tests/test_quality.py).
- lexical diversity: distinct / total words (lower-cased, surrounding
  punctuation stripped) over the conversation's assistant messages; a
  type-token ratio, so it falls as texts get longer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .text import Tokens, segment_sum

# Punctuation and symbols around a word (Unicode classes P and S).
_EDGE = r"^[\p{P}\p{S}]+|[\p{P}\p{S}]+$"
_FIELD = 21  # bits per packed count; a message would need 2 million words to overflow one


def normalized_words(tok: pl.Expr) -> pl.Expr:
    """The comparable form of a token: lower-case, surrounding punctuation and
    symbols removed ("" for tokens that are only punctuation)."""
    return tok.str.to_lowercase().str.replace_all(_EDGE, "")


def syllables_expr(word: pl.Expr) -> pl.Expr:
    """Heuristic syllable count of a normalized word (see module docstring)."""
    letters = word.str.replace_all(r"[^a-z]", "")
    groups = letters.str.count_matches(r"[aeiouy]+")
    # Silent endings: "-e" (not "-le"), "-ed" (not "-ted"/"-ded"), "-ely" ("lonely").
    silent = (
        (letters.str.ends_with("e") & ~letters.str.ends_with("le"))
        | (letters.str.contains(r"[^aeiouytd]ed$"))
        | letters.str.contains(r"[^aeiouy]ely$")
    ) & (groups > 1)
    # Vowel pairs spoken as two syllables: "ia" (not "cia"/"tia"), "ua", "iet", final "ea", "eate".
    split = letters.str.count_matches(r"[^ct]ia|ua|iet|ea$|eate")
    counted = groups - silent.cast(pl.UInt32) + split
    digits = word.str.count_matches(r"[0-9]+")
    return (
        pl.when(letters.str.len_chars() > 0)
        .then(pl.max_horizontal(counted, pl.lit(1, pl.UInt32)))
        .otherwise(digits)
        .cast(pl.Int64)
    )


@dataclass(frozen=True)
class TextCounts:
    """Per-message counts, aligned with the tokenized texts."""

    words: np.ndarray
    sentences: np.ndarray
    syllables: np.ndarray


def vocab_frame(tokens: Tokens) -> pl.DataFrame:
    """Per-code word features (one row per vocabulary entry)."""
    frame = pl.DataFrame({"token": tokens.vocab})
    norm = normalized_words(pl.col("token"))
    return frame.with_columns(norm.alias("norm")).with_columns(
        # The form texts are compared by (text_hash, repeated turns): the
        # normalized word, or for a token of symbols only (emoji, "<3") the
        # token without its punctuation, so "😊" and "😢" stay different
        # texts instead of both normalizing to "".
        key=pl.when(pl.col("norm") != "")
        .then(pl.col("norm"))
        .otherwise(pl.col("token").str.to_lowercase().str.replace_all(r"\p{P}+", "")),
        is_word=pl.col("norm").str.contains(r"[\p{L}\p{N}]"),
        ends_sentence=pl.col("token").str.contains(r"[.!?][\"'”’)\]]*$"),
        syllables=syllables_expr(pl.col("norm")),
    ).with_columns(
        # A token of symbols that ends a sentence ("🙂.", ":)."); punctuation
        # alone (" ... ", " ? ") is a pause, not an end: it needs a symbol of its own.
        symbol_end=pl.col("ends_sentence") & ~pl.col("is_word") & pl.col("token").str.contains(r"[^.!?\"'”’)\]]"),
    )


def text_counts(tokens: Tokens, vocab: pl.DataFrame) -> TextCounts:
    """Words, sentences and syllables of every text, in one gather and one
    running sum over the tokens (the three counts are packed in one int64)."""
    is_word = vocab["is_word"].to_numpy().astype(np.int64)
    ends = (vocab["ends_sentence"].to_numpy() & vocab["is_word"].to_numpy()).astype(np.int64)
    syl = np.where(is_word > 0, vocab["syllables"].to_numpy(), 0).astype(np.int64)
    packed = is_word | (ends << _FIELD) | (syl << (2 * _FIELD))
    bound = int(tokens.lengths.max(initial=0)) * max(int(syl.max(initial=0)), 1)
    if bound >= 2**_FIELD:
        # A message long enough to overflow a packed field: count separately.
        words = segment_sum(is_word[tokens.codes], tokens.offsets)
        sentence_ends = segment_sum(ends[tokens.codes], tokens.offsets)
        syllables = segment_sum(syl[tokens.codes], tokens.offsets)
    else:
        total = segment_sum(packed[tokens.codes], tokens.offsets)
        mask = (1 << _FIELD) - 1
        words, sentence_ends, syllables = total & mask, (total >> _FIELD) & mask, total >> (2 * _FIELD)
    # The last sentence of a message often has no final punctuation: one more
    # sentence when the message's last *word* does not end one.
    has_tokens = np.flatnonzero(tokens.lengths > 0)
    last_code = tokens.codes[tokens.offsets[1:][has_tokens] - 1]
    last_ends = np.zeros(tokens.n_texts, dtype=bool)
    last_ends[has_tokens] = ends[last_code] > 0
    # A message ending in tokens that are not words ("I hear you 💙", "sad :(",
    # "..."): look back to its last word, over these messages' tokens only
    # (few; a pass over every token costs ~0.1 s per million messages).
    trailing = has_tokens[is_word[last_code] == 0]
    trailing = trailing[words[trailing] > 0]
    if len(trailing):
        idx = tokens.texts_of(trailing)
        word = is_word[tokens.codes[idx]] > 0
        word_idx = idx[word]
        text_of = np.repeat(trailing, tokens.lengths[trailing])[word]
        last_word = np.flatnonzero(np.append(text_of[1:] != text_of[:-1], True))
        last_ends[text_of[last_word]] = ends[tokens.codes[word_idx[last_word]]] > 0
    sentences = sentence_ends + ((words > 0) & ~last_ends).astype(np.int64)
    _symbol_ends(tokens, vocab, is_word, words, sentences)
    return TextCounts(words=words, sentences=sentences, syllables=syllables)


def _symbol_ends(tokens: Tokens, vocab: pl.DataFrame, is_word: np.ndarray, words: np.ndarray, sentences: np.ndarray) -> None:
    """Recount, in place, the sentences of the texts where a token that is
    not a word ends one ("I hear you \U0001f642. You are not alone \U0001f642.":
    before, only a word's own '.' ended a sentence, so this counted one):
    such a token ends a sentence when a word came since the previous end."""
    symbol_end = vocab["symbol_end"].to_numpy()
    if not symbol_end.any():
        return
    # One boolean gather over the tokens finds the texts (few: emoji or ":)."
    # after a sentence); the recount runs over their tokens only.
    at = np.flatnonzero(symbol_end[tokens.codes])
    if not len(at):
        return
    texts = np.searchsorted(tokens.offsets, at, side="right") - 1
    texts = np.unique(texts)
    texts = texts[words[texts] > 0]
    if not len(texts):
        return
    idx = tokens.texts_of(texts)
    codes = tokens.codes[idx]
    word = is_word[codes]
    ends = ((vocab["ends_sentence"].to_numpy() & (is_word == 1)) | symbol_end)[codes]
    lengths = tokens.lengths[texts]
    first = np.cumsum(lengths) - lengths  # each text's first token, in idx
    seen = np.cumsum(word)  # words up to and including each token
    text_of = np.repeat(np.arange(len(texts)), lengths)
    end_at = np.flatnonzero(ends)
    start_words = seen[first] - word[first]  # words before each text
    # Words since the previous end of the same text (or its start).
    same = np.r_[False, text_of[end_at[1:]] == text_of[end_at[:-1]]]
    base = np.where(same, seen[np.r_[end_at[:1], end_at[:-1]]], start_words[text_of[end_at]])
    counted = (seen[end_at] - base) > 0
    per_text = np.bincount(text_of[end_at], weights=counted, minlength=len(texts)).astype(np.int64)
    # Words after the text's last end: an unpunctuated last sentence.
    last_end = np.full(len(texts), -1, dtype=np.int64)
    last_end[text_of[end_at]] = end_at  # end_at ascends: the last write is the last end
    total = seen[first + lengths - 1]
    after = total - np.where(last_end >= 0, seen[np.maximum(last_end, 0)], start_words)
    sentences[texts] = per_text + (after > 0)


def reading_ease(words: pl.Expr, sentences: pl.Expr, syllables: pl.Expr) -> pl.Expr:
    """Flesch Reading Ease; null where there are no words."""
    return (
        pl.when(words > 0)
        .then(206.835 - 1.015 * words / pl.max_horizontal(sentences, pl.lit(1)) - 84.6 * syllables / words)
        .otherwise(None)
    )


def lexical_diversity(tokens: Tokens, vocab: pl.DataFrame, rows: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Type-token ratio of the words of ``rows`` (texts), pooled by ``groups``
    (a group number per row, rows of a group contiguous and in order); NaN
    for a group without words."""
    out = np.full(n_groups, np.nan)
    if not len(rows):
        return out
    idx = tokens.texts_of(rows)
    norm_id = vocab.select(pl.col("norm").rank("dense").cast(pl.Int64)).to_series().to_numpy()
    is_word = vocab["is_word"].to_numpy()
    codes = tokens.codes[idx]
    keep = is_word[codes]
    group_of_token = np.repeat(groups, tokens.lengths[rows])[keep]
    word = norm_id[codes[keep]]
    totals = np.bincount(group_of_token, minlength=n_groups)
    base = int(norm_id.max(initial=0)) + 1
    # Distinct (group, word) keys by hashing (polars), then counted per group:
    # a third of the time of sorting them (1.2 M keys: 20-45 ms against 65 ms).
    keys = pl.Series(group_of_token * base + word).unique().to_numpy()
    distinct = np.bincount(keys // base, minlength=n_groups)
    has = totals > 0
    out[has] = distinct[has] / totals[has]
    return out

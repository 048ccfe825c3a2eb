"""Text features for the learned analyzers, columnar from end to end.

A :class:`Featurizer` turns texts into a sparse matrix (one row per text)
with numpy and polars only: no Python call per message, no Python
tokenizer. It starts from the shared whitespace tokens of
:mod:`pe_toolkit.analysis.text` (the tokens the sentiment and quality
analyzers already split), so inside ``analyze()`` the text is split once.

Words: each distinct whitespace token is lower-cased, typographic
apostrophes folded, and cut into its words (``[a-z0-9]+`` with inner
apostrophes: "hurt/kill" is two words, "don't" one). That string work runs
once per distinct token; the rest is numpy over word ids.

Feature blocks (each l2-normalised on its own, then weighted):

- ``words``: word n-grams up to ``spec.word_ngrams`` (within a text), plus
  the sentence features when ``spec.sentences``: the first word and the
  first two words of every sentence, the first three words of every
  question (a sentence ending in "?"), whether the text ends with a
  question, and counts of "?" and "!". Sublinear tf times smoothed idf,
  as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``.
- ``chars``: character n-grams (``spec.char_ngrams``) of each word with a
  space on both sides, summed over the text's words (what
  ``analyzer="char_wb"`` would see word by word). Computed per distinct
  word, then one sparse product: robust to misspellings and inflections.
- ``lexicon``: per construct of a phrase lexicon (for the risk model: the
  Suicide Risk Lexicon), log(1 + matches); phrases of up to four words.
- ``context``: word unigrams of the preceding turn.
- ``rules``: dense 0/1 columns handed in by the caller (rule detections).

Why a fitted vocabulary and not feature hashing: a hashed model is only
valid for one hash function, and polars' hash is not stable across
releases; a vocabulary keeps a model file valid and lets evidence name
the n-gram it used.

N-gram keys: a word with id ``i`` is the digit ``i + 1`` (never 0, so
keys of different lengths never collide); with ``K`` a power of two above
every digit, a bigram is ``a * K + b`` and so on, so every n-gram is one
int64 and membership is a ``searchsorted`` into sorted keys. Sentence
features carry a tag in bits 58 and up.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from ..analysis.text import Tokens, ranges, segment_sum, tokenize
from ..errors import InputError
from .keyindex import KeyIndex

WORD_PATTERN = r"[a-z0-9]+(?:'[a-z]+)*|[?!]"
# Sentence features live in their own key spaces: a negative tag in the top bits.
_SENTENCE_FIRST, _SENTENCE_FIRST2, _QUESTION_WORD, _QUESTION_FIRST2, _QUESTION, _ENDS_WITH_QUESTION = 1, 2, 3, 4, 5, 6
_TAG_NAMES = {0: "", _SENTENCE_FIRST: "s1:", _SENTENCE_FIRST2: "s2:", _QUESTION_WORD: "q:", _QUESTION_FIRST2: "q2:",
              _QUESTION: "<question>", _ENDS_WITH_QUESTION: "<ends with question>"}  # fmt: skip
_MAX_LEXICON_WORDS = 4


@dataclass(frozen=True)
class FeatureSpec:
    """What a :class:`Featurizer` extracts; stored in every model file."""

    word_ngrams: int = 2
    sentences: bool = True
    char_ngrams: tuple[int, int] | None = None
    context: bool = False
    min_df: int = 2
    max_features: int | None = None
    weights: dict[str, float] = field(default_factory=dict)  # block weight, default 1.0
    # How a text's character n-grams are pooled over its words: "l2" (sum,
    # then l2-normalised), "sqrt" or "mean" (sum divided by the square root
    # of, or by, the number of words: linear in the words, so a model can
    # score them per distinct word).
    char_pooling: str = "l2"

    def __post_init__(self) -> None:
        if not 1 <= self.word_ngrams <= 3:
            raise InputError(f"word_ngrams must be 1, 2 or 3, got {self.word_ngrams}")
        if self.char_ngrams is not None:
            lo, hi = self.char_ngrams
            if not 1 <= lo <= hi <= 6:
                raise InputError(f"char_ngrams must be (lo, hi) with 1 <= lo <= hi <= 6, got {self.char_ngrams}")
        if self.min_df < 1:
            raise InputError(f"min_df must be at least 1, got {self.min_df}")
        if self.char_pooling not in ("l2", "sqrt", "mean"):
            raise InputError(f"char_pooling must be l2, sqrt or mean, got {self.char_pooling!r}")

    def weight(self, block: str) -> float:
        return float(self.weights.get(block, 1.0))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["char_ngrams"] = list(self.char_ngrams) if self.char_ngrams else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        data = dict(data)
        if data.get("char_ngrams"):
            data["char_ngrams"] = tuple(data["char_ngrams"])
        return cls(**data)


@dataclass
class Words:
    """The words of a batch of texts: ``ids`` into a token table (-1 when
    the word is not in it), the text each belongs to, the whitespace token
    it came from, and per word whether its token ends a sentence or a
    question."""

    ids: np.ndarray  # int64
    text: np.ndarray  # int64, non-decreasing
    token: np.ndarray  # int64, index into the Tokens' codes
    ends_sentence: np.ndarray  # bool
    ends_question: np.ndarray  # bool
    n_texts: int
    words_of_batch: pl.Series  # the distinct words of this batch (for char n-grams)
    batch_ids: np.ndarray  # per word, index into words_of_batch
    per_text: np.ndarray  # int64, the number of words of each text


def _vocab_words(vocab: pl.Series) -> pl.DataFrame:
    """Per whitespace-token vocabulary entry: its words (list, "?" and "!"
    count as words) and whether it ends a sentence / a question."""
    low = vocab.str.to_lowercase().str.replace_all("[\u2018\u2019\u02bc`\u00b4]", "'")
    frame = pl.DataFrame({"low": low})
    return frame.select(
        pl.col("low").str.extract_all(WORD_PATTERN).alias("words"),
        pl.col("low").str.contains(r"[.!?]['\")\]]*$").alias("ends"),
        pl.col("low").str.contains(r"\?['\")\]]*$").alias("question"),
    )


_per_vocab: weakref.WeakKeyDictionary[Tokens, pl.DataFrame] = weakref.WeakKeyDictionary()
_per_vocab_lock = threading.Lock()


def _vocab_words_of(tokens: Tokens) -> pl.DataFrame:
    """:func:`_vocab_words` of the tokens' vocabulary, once per Tokens (the
    learned analyzers of one pass share the tokens)."""
    with _per_vocab_lock:
        found = _per_vocab.get(tokens)
    if found is None:
        found = _vocab_words(tokens.vocab)
        with _per_vocab_lock:
            _per_vocab[tokens] = found
    return found


@dataclass(frozen=True)
class _VocabFlat:
    """The words of a Tokens' vocabulary laid flat, entry by entry, with what
    every model reads the same way: the batch's distinct words (sorted), each
    flat word's index among them, and whether it is its token's last word
    and that token ends a sentence or a question."""

    n_words: np.ndarray  # int64, per vocabulary entry
    word_ptr: np.ndarray  # int64, entry i's words are flat words word_ptr[i]:word_ptr[i + 1]
    distinct: pl.Series
    flat_batch: np.ndarray  # int64, per flat word: index into distinct
    flat_ends: np.ndarray  # bool
    flat_question: np.ndarray  # bool


_flat_per_vocab: weakref.WeakKeyDictionary[Tokens, _VocabFlat] = weakref.WeakKeyDictionary()


def _vocab_flat_of(tokens: Tokens) -> _VocabFlat:
    """:class:`_VocabFlat` of the tokens' vocabulary, once per Tokens: the
    two learned analyzers of a pass read the same tokens (each with its own
    word ids), so the second reads the first's."""
    with _per_vocab_lock:
        found = _flat_per_vocab.get(tokens)
    if found is not None:
        return found
    per_vocab = _vocab_words_of(tokens)
    n_words = per_vocab["words"].list.len().to_numpy().astype(np.int64)
    flat = per_vocab.select(pl.col("words").explode(keep_nulls=False, empty_as_null=False))["words"]
    # Sorted, so a text's words are summed in the same order whatever else
    # is in the batch: scores do not depend on how messages are batched.
    distinct = flat.unique().sort()
    flat_batch = flat.to_frame("word").join(
        distinct.to_frame("word").with_row_index("bid"), on="word", how="left", maintain_order="left"
    )["bid"].to_numpy().astype(np.int64)
    word_ptr = np.zeros(len(n_words) + 1, dtype=np.int64)
    np.cumsum(n_words, out=word_ptr[1:])
    entry = np.repeat(np.arange(len(n_words), dtype=np.int64), n_words)
    last_word = np.zeros(len(flat_batch), dtype=bool)
    last_word[word_ptr[1:][n_words > 0] - 1] = True
    found = _VocabFlat(
        n_words=n_words,
        word_ptr=word_ptr,
        distinct=distinct,
        flat_batch=flat_batch,
        flat_ends=per_vocab["ends"].to_numpy()[entry] & last_word,
        flat_question=per_vocab["question"].to_numpy()[entry] & last_word,
    )
    with _per_vocab_lock:
        _flat_per_vocab[tokens] = found
    return found


def words_of(tokens: Tokens, rows: np.ndarray, table: pl.DataFrame | None) -> Words:
    """The words of texts ``rows`` of ``tokens``, with ids from ``table``
    (a frame ``word``, ``id``); without a table every word gets -1."""
    rows = np.asarray(rows, dtype=np.int64)
    vocab = _vocab_flat_of(tokens)
    n_words, word_ptr, distinct, flat_batch = vocab.n_words, vocab.word_ptr, vocab.distinct, vocab.flat_batch
    if table is not None and len(distinct):
        ids_by_batch = (
            distinct.to_frame("word")
            .join(table, on="word", how="left", maintain_order="left")["id"]
            .fill_null(-1)
            .to_numpy()
            .astype(np.int64)
        )
    else:
        ids_by_batch = np.full(len(distinct), -1, dtype=np.int64)
    # Per flat word (the vocabulary's words, entry by entry): its id. The
    # batch's words are gathers from these small tables.
    flat_ids = ids_by_batch[flat_batch]
    flat_ends, flat_question = vocab.flat_ends, vocab.flat_question

    tok_idx = tokens.texts_of(rows)  # every token of the chosen texts, in order
    tok_lens = tokens.lengths[rows]
    codes = tokens.codes[tok_idx].astype(np.int64)
    nw = n_words[codes]
    # Each token expands to its words: the j-th word of token t is flat word word_ptr[code] + j.
    at = ranges(word_ptr[codes], nw)
    token_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(tok_lens, out=token_ptr[1:])
    words_per_text = segment_sum(nw, token_ptr)
    n = len(rows)
    return Words(
        ids=flat_ids[at],
        text=np.repeat(np.arange(n, dtype=np.int64), words_per_text),
        token=np.repeat(tok_idx, nw),
        ends_sentence=flat_ends[at],
        ends_question=flat_question[at],
        n_texts=n,
        words_of_batch=distinct,
        batch_ids=flat_batch[at],
        per_text=words_per_text,
    )


def _key_base(n_tokens: int) -> int:
    return 1 << max(1, int(n_tokens).bit_length())


@dataclass
class _Grams:
    """Candidate n-gram keys: ``key`` per occurrence, the ``text`` it is in,
    and its first and last whitespace token (for evidence spans)."""

    key: np.ndarray
    text: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def empty(cls) -> _Grams:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z)

    def take(self, mask: np.ndarray) -> _Grams:
        return _Grams(self.key[mask], self.text[mask], self.first[mask], self.last[mask])

    @classmethod
    def concat(cls, parts: Sequence[_Grams]) -> _Grams:
        parts = [p for p in parts if len(p.key)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("key", "text", "first", "last")))


@dataclass
class Occurrences:
    """Where a batch's features occur, compactly: the ``col`` of each hit,
    the position ``pos`` of its first word in ``words`` and its ``width`` in
    words. The text and the tokens are derived on demand (for the CSR rows,
    and for evidence spans of the few hits that need one)."""

    col: np.ndarray
    pos: np.ndarray
    width: np.ndarray
    words: Words

    @functools.cached_property
    def text(self) -> np.ndarray:
        """The text of each hit (read by the count matrix and by evidence:
        gathered once)."""
        return self.words.text[self.pos]

    def tokens(self, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first token, last token) of the hits ``sel``."""
        pos = self.pos[sel]
        return self.words.token[pos], self.words.token[pos + self.width[sel].astype(np.int64) - 1]

    @classmethod
    def concat(cls, parts: Sequence[tuple[np.ndarray, np.ndarray, int]], words: Words) -> Occurrences:
        """From (cols, positions, width) parts."""
        parts = [p for p in parts if len(p[0])]
        if not parts:
            z = np.zeros(0, dtype=np.int32)
            return cls(z, z.astype(np.int64), np.zeros(0, dtype=np.int8), words)
        return cls(
            # Straight into int32 (a part of int64 columns, such as a hash
            # lookup's, would widen the whole concatenation first).
            np.concatenate([p[0] for p in parts], dtype=np.int32),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([np.full(len(p[0]), p[2], dtype=np.int8) for p in parts]),
            words,
        )

    def with_cols_offset(self, offset: int) -> Occurrences:
        return Occurrences((self.col.astype(np.int64) + offset).astype(np.int32), self.pos, self.width, self.words)

    @classmethod
    def join(cls, a: Occurrences, b: Occurrences) -> Occurrences:
        return cls(np.concatenate([a.col, b.col]), np.concatenate([a.pos, b.pos]), np.concatenate([a.width, b.width]), a.words)


def word_grams(w: Words, order: int, base: int, sentences: bool) -> dict[str, _Grams]:
    """Every candidate key of the word block, by kind: ``1``, ``2``, ``3``
    (n-grams within a text), ``s1``/``s2`` (sentence starts), ``q`` (the
    first words of questions). Words without an id break n-grams."""
    ids, text, tok = w.ids + 1, w.text, w.token  # digits: 0 = unknown word
    known = ids > 0
    out: dict[str, _Grams] = {"1": _Grams(ids[known], text[known], tok[known], tok[known])}
    for n in range(2, order + 1):
        if len(ids) < n:
            out[str(n)] = _Grams.empty()
            continue
        ok = known[: len(ids) - n + 1].copy()
        key = ids[: len(ids) - n + 1].copy()
        for j in range(1, n):
            part = ids[j : len(ids) - n + 1 + j]
            ok &= (part > 0) & (text[j : len(ids) - n + 1 + j] == text[: len(ids) - n + 1])
            key = key * base + part
        sl = slice(0, len(ids) - n + 1)
        out[str(n)] = _Grams(key[ok], text[sl][ok], tok[sl][ok], tok[n - 1 :][ok])
    if sentences and len(ids):
        # A sentence starts a text or follows a word whose token ends one.
        first = np.ones(len(ids), dtype=bool)
        first[1:] = (text[1:] != text[:-1]) | w.ends_sentence[:-1]
        sentence = np.cumsum(first) - 1
        # A question: its last word's token ends in "?".
        last = np.ones(len(ids), dtype=bool)
        last[:-1] = first[1:]
        is_q = np.zeros(int(sentence[-1]) + 1, dtype=bool)
        is_q[sentence[last]] = w.ends_question[last]
        pos = np.arange(len(ids)) - np.flatnonzero(first)[sentence]
        tag = lambda t: np.int64(t) << np.int64(58)  # noqa: E731 - a key space per sentence feature
        s1 = first & known
        out["s1"] = _Grams(ids[s1] + tag(_SENTENCE_FIRST), text[s1], tok[s1], tok[s1])
        nxt = np.zeros(len(ids), dtype=bool)
        nxt[:-1] = first[:-1] & ~first[1:] & known[:-1] & known[1:]
        idx = np.flatnonzero(nxt)
        out["s2"] = _Grams(ids[idx] * base + ids[idx + 1] + tag(_SENTENCE_FIRST2), text[idx], tok[idx], tok[idx + 1])
        q = (pos < 3) & is_q[sentence] & known
        out["q"] = _Grams(ids[q] + tag(_QUESTION_WORD), text[q], tok[q], tok[q])
        q2 = nxt & is_q[sentence]
        idx = np.flatnonzero(q2)
        out["q2"] = _Grams(ids[idx] * base + ids[idx + 1] + tag(_QUESTION_FIRST2), text[idx], tok[idx], tok[idx + 1])
        # One "<question>" per question (at its last word), and whether the text ends with one.
        lq = last & is_q[sentence]
        out["hq"] = _Grams(np.full(int(lq.sum()), tag(_QUESTION)), text[lq], tok[lq], tok[lq])
        text_last = np.ones(len(ids), dtype=bool)
        text_last[:-1] = text[1:] != text[:-1]
        el = text_last & is_q[sentence]
        out["lq"] = _Grams(np.full(int(el.sum()), tag(_ENDS_WITH_QUESTION)), text[el], tok[el], tok[el])
    return out


def lexicon_order(base: int) -> int:
    """The longest phrase whose key fits in an int64 for this base (at most 4)."""
    return max(1, min(_MAX_LEXICON_WORDS, 62 // max(1, base.bit_length() - 1)))


def lexicon_slots(phrases: np.ndarray, base: int) -> dict[int, np.ndarray]:
    """Per phrase length n, an (n, base) Boolean table: whether some phrase
    of n words has the word (digit) at place j. A window whose every word
    fits its place is a candidate (on the risk model's texts about one in
    ten of the windows of known words), and only candidates are keyed and
    looked up."""
    digits = []  # least significant (last word) first
    rest = np.asarray(phrases, dtype=np.int64).copy()
    while rest.any():
        digits.append(rest % base)
        rest //= base
    if not digits:
        return {}
    by_place = np.array(digits)
    length = (by_place > 0).sum(axis=0)
    out = {}
    for n in np.unique(length).tolist():
        sel = length == n
        table = np.zeros((n, base), dtype=bool)
        for j in range(n):
            table[j, by_place[n - 1 - j, sel]] = True
        table[:, 0] = False  # digit 0: a word not in the vocabulary
        out[n] = table
    return out


def lexicon_grams(w: Words, phrases: np.ndarray, base: int, slots: dict[int, np.ndarray] | None = None,
                  index: KeyIndex | None = None) -> list[tuple[np.ndarray, np.ndarray, int]]:  # fmt: skip
    """Occurrences of the lexicon's phrase keys (sorted; 1 to 4 words) in
    the words, as (keys, positions of the first word, width) per length.
    ``slots``: :func:`lexicon_slots` of the phrases (only windows whose
    words fit their places are looked up; default: computed here);
    ``index``: the phrases in a :class:`KeyIndex` (else a search in the
    sorted keys)."""
    parts = []
    ids, text = w.ids + 1, w.text
    slots = lexicon_slots(phrases, base) if slots is None else slots
    for n in range(1, lexicon_order(base) + 1):
        if len(ids) < n:
            break
        m = len(ids) - n + 1
        table = slots.get(n)
        if table is None:  # no phrase of n words
            parts.append((ids[:0], np.zeros(0, dtype=np.int64), n))
            continue
        ok = table[0][ids[:m]]
        for j in range(1, n):
            ok &= table[j][ids[j : j + m]] & (text[j : j + m] == text[:m])
        cand = np.flatnonzero(ok)
        key = ids[cand]
        for j in range(1, n):
            key = key * base + ids[cand + j]
        if index is not None:
            found = index.get(key) >= 0
        else:
            pos = np.minimum(np.searchsorted(phrases, key), max(len(phrases) - 1, 0))
            found = phrases[pos] == key if len(phrases) else np.zeros(len(key), dtype=bool)
        parts.append((key[found], cand[found], n))
    return parts


# Words longer than this many characters (with their padding) are cut into
# pieces of _CHAR_STRIDE starting positions before their n-grams are taken:
# str.slice finds a character offset by scanning from the start, so slicing
# every position of one long "word" (a megabyte of digits in a request) was
# quadratic (400 KB: 16 s in the risk model). Same n-grams, in another order.
_CHAR_STRIDE = 64


def char_grams_of(words: pl.Series, lo: int, hi: int) -> pl.DataFrame:
    """(word index, char n-gram) for every n-gram of " word " of length lo..hi
    (as a multiset: the rows' order is not meaningful)."""
    padded = (" " + words + " ").to_frame("w").with_row_index("i").with_columns(limit=pl.col("w").str.len_chars())
    long = padded.filter(pl.col("limit") > _CHAR_STRIDE)
    if long.height:
        # Python over the long words only (rare in text): each becomes pieces
        # holding _CHAR_STRIDE starting positions plus the n-grams' overhang.
        ids: list[int] = []
        pieces: list[str] = []
        starts: list[int] = []
        for i, word, length in long.iter_rows():
            for start in range(0, length, _CHAR_STRIDE):
                ids.append(i)
                pieces.append(word[start : start + _CHAR_STRIDE + hi - 1])
                starts.append(min(_CHAR_STRIDE, length - start))
        cut = pl.DataFrame({"i": pl.Series(ids, dtype=pl.UInt32), "w": pieces, "limit": pl.Series(starts, dtype=pl.UInt32)})
        padded = pl.concat([padded.filter(pl.col("limit") <= _CHAR_STRIDE), cut])
    # limit: how many starting positions of the (piece of the) word are its own.
    frames = []
    for n in range(lo, hi + 1):
        frames.append(
            padded.filter(pl.col("w").str.len_chars() >= n)
            .with_columns(start=pl.int_ranges(0, pl.min_horizontal(pl.col("w").str.len_chars() - n + 1, pl.col("limit"))))
            .explode("start")
            .select("i", pl.col("w").str.slice(pl.col("start"), n).alias("gram"))
        )
    return pl.concat(frames) if frames else pl.DataFrame(schema={"i": pl.UInt32, "gram": pl.String})


# The most cells (int32 each) of a dense word-pair table per tag; above it
# (a researcher's model with a large vocabulary) pairs go through the hash.
_PAIR_TABLE_MAX = 1 << 23


def _idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    return (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(np.float64)


def _csr(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """Counts of the (row, col) pairs as a canonical CSR matrix (columns
    sorted in each row, repeats summed): the same matrix as
    ``csr_matrix((ones, (rows, cols))).sum_duplicates()``.

    Two counting passes instead of scipy's COO -> CSR and its per-row
    sort (a third of a batch's featurizing, ~50 ms per 2.8 M hits): the
    pairs go to CSC unsummed (bucketed by column), and CSC -> CSR buckets
    them by row in column order, so each row comes out sorted with its
    repeats next to each other, and only the summing is left. The values
    are ones, so the order repeats are summed in cannot change a bit; they
    are counted as int32 (exact, and half the bytes through both passes),
    then made float64."""
    coo = sp.coo_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(n_rows, n_cols))
    coo.has_canonical_format = True  # not true (repeats): tells tocsc not to sort and sum them in CSC
    m = coo.tocsc().tocsr()  # scipy marks the result sorted (the transpose sorts)
    m.sum_duplicates()  # a linear check for repeats, then their sums: no sort
    m.data = m.data.astype(np.float64)
    return m


def _l2_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` (float, no repeated column in a row, owned by the caller) with
    each row scaled to unit length, in place: summed and scaled on the
    nonzeros themselves, without the two intermediate matrices of
    ``m.multiply(m).sum(axis=1)`` and ``diags(1 / norms) @ m`` (a tenth of a
    learned model's time per batch). The same values as those, up to the
    order of summation in a row whose columns are not sorted (a pooled
    character block: differences near 1e-16)."""
    lengths = np.diff(m.indptr)
    sums = np.zeros(m.shape[0])
    filled = lengths > 0
    if m.nnz:
        sums[filled] = np.add.reduceat(m.data * m.data, m.indptr[:-1][filled])
    norms = np.sqrt(sums)
    norms[norms == 0] = 1.0
    m.data *= np.repeat(1.0 / norms, lengths)
    return m


def _sublinear_tfidf(m: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear tf-idf of the counts ``m`` (float64, owned by the caller:
    changed in place, with no temporary array of the nonzeros' size but the
    idf gather; the same values as ``(1 + log(tf)) * idf``)."""
    data = m.data
    np.log(data, out=data)
    data += 1.0
    data *= idf[m.indices]
    return _l2_rows(m)


@dataclass
class Batch:
    """What :meth:`Featurizer.transform` saw, kept for evidence: where the
    features with a place in the text occur."""

    tokens: Tokens
    rows: np.ndarray
    occurrences: Occurrences  # the word block's and the lexicon's hits
    matrix: sp.csr_matrix
    # Scores of blocks folded into the model instead of materialised (texts x
    # classes), to add to matrix @ coef; see Featurizer.transform(fold=...).
    offset: np.ndarray | None = None


class Featurizer:
    """Fitted feature extraction; see the module docstring."""

    def __init__(
        self,
        spec: FeatureSpec,
        words: np.ndarray,
        keys: np.ndarray,
        idf: np.ndarray,
        char_grams: np.ndarray | None = None,
        char_idf: np.ndarray | None = None,
        context_keys: np.ndarray | None = None,
        context_idf: np.ndarray | None = None,
        lexicon_keys: np.ndarray | None = None,
        lexicon_construct: np.ndarray | None = None,
        constructs: Sequence[str] = (),
        rule_names: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self.words = np.asarray(words, dtype=object)
        self.base = _key_base(len(self.words))
        order = np.argsort(keys, kind="stable")
        self.keys = np.asarray(keys, dtype=np.int64)[order]  # sorted word-block keys
        self.columns = order.astype(np.int64)  # column of each sorted key
        self.idf = np.asarray(idf, dtype=np.float64)
        self.char_grams = None if char_grams is None else np.asarray(char_grams, dtype=object)
        self.char_idf = None if char_idf is None else np.asarray(char_idf, dtype=np.float64)
        self.context_keys = None if context_keys is None else np.asarray(context_keys, dtype=np.int64)
        self.context_idf = None if context_idf is None else np.asarray(context_idf, dtype=np.float64)
        self.lexicon_keys = None if lexicon_keys is None else np.asarray(lexicon_keys, dtype=np.int64)
        self.lexicon_construct = None if lexicon_construct is None else np.asarray(lexicon_construct, dtype=np.int64)
        self.constructs = tuple(constructs)
        self.rule_names = tuple(rule_names)
        self._table = pl.DataFrame({"word": pl.Series(self.words.tolist(), dtype=pl.String), "id": np.arange(len(self.words))})
        self._char_table = (
            None
            if self.char_grams is None
            else pl.DataFrame({"gram": pl.Series(self.char_grams.tolist(), dtype=pl.String), "col": np.arange(len(self.char_grams))})
        )
        # Single-word features (and the constant ones, digit 0) are looked up
        # in a dense table per tag; only n-grams need a search.
        mask = (np.int64(1) << np.int64(58)) - 1
        tags, body = self.keys >> 58, self.keys & mask
        single = body < self.base
        # int32: the occurrences keep their columns as int32.
        self._dense = np.full((8, self.base), -1, dtype=np.int32)
        self._dense[tags[single], body[single]] = self.columns[single]
        self._multi_keys, self._multi_cols = self.keys[~single], self.columns[~single]
        # Bigram keys by tag, and which digits start or end one (most word
        # pairs are ruled out by two gathers before any search).
        self._pairs: dict[int, KeyIndex] = {}
        self._pair_first = np.zeros((8, self.base), dtype=bool)
        self._pair_second = np.zeros((8, self.base), dtype=bool)
        pair = (~single) & (body < self.base * self.base)
        # Where the words that start and end a tag's pairs are few enough,
        # a dense table by their ranks answers with one gather, no probing
        # (the shipped models: 4.6 and 15 MB; a third less time than the hash).
        # A digit that starts (ends) no pair has the rank of an extra row
        # (column) of -1, so every pair is looked up with no test of its
        # ranks first (half the passes: 19.6 -> 9.2 ms for the skills model's
        # 1.7 M words).
        self._pair_tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for t in np.unique(tags[pair]).tolist():
            sel = pair & (tags == t)
            self._pairs[t] = KeyIndex(self.keys[sel], self.columns[sel])
            first, second = body[sel] // self.base, body[sel] % self.base
            self._pair_first[t, first] = True
            self._pair_second[t, second] = True
            firsts, seconds = np.unique(first), np.unique(second)
            if len(firsts) * len(seconds) <= _PAIR_TABLE_MAX:
                # int32 (a table holds about _PAIR_TABLE_MAX cells at most): half the memory traffic.
                width = len(seconds) + 1
                second_rank = np.full(self.base, len(seconds), dtype=np.int32)
                second_rank[seconds] = np.arange(len(seconds))
                first_rank = np.full(self.base, len(firsts), dtype=np.int32)
                first_rank[firsts] = np.arange(len(firsts))
                cells = np.full((len(firsts) + 1) * width, -1, dtype=np.int32)
                cells[first_rank[first] * width + second_rank[second]] = self.columns[sel]
                # The first digit's row start, so that a cell is one add away.
                self._pair_tables[t] = (first_rank * np.int32(width), second_rank, cells)
        self._lexicon_index = (
            None if self.lexicon_keys is None else KeyIndex(self.lexicon_keys, np.arange(len(self.lexicon_keys)))
        )
        self._lexicon_slots = {} if self.lexicon_keys is None else lexicon_slots(self.lexicon_keys, self.base)

    # ------------------------------------------------------------------ names
    @property
    def n_word_features(self) -> int:
        return len(self.idf)

    @property
    def block_sizes(self) -> dict[str, int]:
        sizes = {"words": len(self.idf)}
        if self.char_grams is not None:
            sizes["chars"] = len(self.char_grams)
        if self.lexicon_keys is not None:
            sizes["lexicon"] = len(self.constructs)
        if self.context_keys is not None:
            sizes["context"] = len(self.context_keys)
        if self.rule_names:
            sizes["rules"] = len(self.rule_names)
        return sizes

    @property
    def n_features(self) -> int:
        return sum(self.block_sizes.values())

    @functools.cached_property
    def has_span(self) -> np.ndarray:
        """Per column, whether it makes good evidence: it has a place in the
        text and is not a repeat of another feature's span (plain word
        n-grams and lexicon phrases)."""
        out = np.zeros(self.n_features, dtype=bool)
        # Plain word n-grams only: a sentence feature ("q:how") shares its
        # span with the n-gram it starts with, so it would only repeat it.
        tags = self.keys >> 58
        out[self.columns[tags == 0]] = True
        if self.lexicon_keys is not None:
            start = self.n_word_features + (len(self.char_grams) if self.char_grams is not None else 0)
            out[start : start + len(self.constructs)] = True
        out.setflags(write=False)  # evidence caches a table made with it (TextModel._evidence_weights)
        return out

    @functools.cached_property
    def names_series(self) -> pl.Series:
        """:meth:`feature_names` as a polars Series, computed once."""
        return pl.Series("feature", self.feature_names(), dtype=pl.String)

    @functools.cached_property
    def names_array(self) -> np.ndarray:
        """:meth:`feature_names` as an object array, computed once."""
        return np.asarray(self.feature_names(), dtype=object)

    def feature_names(self) -> list[str]:
        """A readable name per column ("i went", "q:how", "s1:maybe", "#hopelessness"...)."""
        names = [""] * len(self.idf)
        words = self.words
        mask = (np.int64(1) << np.int64(58)) - 1
        for key, col in zip(self.keys.tolist(), self.columns.tolist(), strict=True):
            tag = key >> 58
            body = key & int(mask)
            prefix = _TAG_NAMES[tag]
            parts = []
            while body:
                parts.append(words[body % self.base - 1])
                body //= self.base
            names[col] = prefix + " ".join(reversed(parts))
        if self.char_grams is not None:
            names += [f"c:{g}" for g in self.char_grams]
        if self.lexicon_keys is not None:
            names += [f"#{c}" for c in self.constructs]
        if self.context_keys is not None:
            names += [f"ctx:{words[k - 1]}" for k in self.context_keys]
        names += [f"rule:{r}" for r in self.rule_names]
        return names

    # -------------------------------------------------------------- transform
    def _columns_of(self, keys: np.ndarray) -> np.ndarray:
        """The word-block column of each key (-1: not a feature)."""
        mask = (np.int64(1) << np.int64(58)) - 1
        body = keys & mask
        single = body < self.base
        cols = np.full(len(keys), -1, dtype=np.int64)
        cols[single] = self._dense[keys[single] >> 58, body[single]]
        multi = np.flatnonzero(~single)
        if len(multi) and len(self._multi_keys):
            pos = np.minimum(np.searchsorted(self._multi_keys, keys[multi]), len(self._multi_keys) - 1)
            found = self._multi_keys[pos] == keys[multi]
            cols[multi[found]] = self._multi_cols[pos[found]]
        return cols

    def _pair_hits(self, d: np.ndarray, idx: np.ndarray, tag: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, columns) of the word pairs starting at ``idx`` that are
        features with this tag."""
        found = self._pairs.get(tag)
        if found is None or not len(idx):
            return idx[:0], idx[:0]
        table = self._pair_tables.get(tag)
        if table is not None:
            row, second_rank, cells = table
            cols = cells[row[d[idx]] + second_rank[d[idx + 1]]]
            hit = cols >= 0
            return idx[hit], cols[hit]
        # One row of each table, then 1-D gathers (a scalar and an array
        # as a 2-D index cost a third more here).
        idx = idx[self._pair_first[tag][d[idx]] & self._pair_second[tag][d[idx + 1]]]
        cols = found.get(d[idx] * self.base + d[idx + 1] + (np.int64(tag) << np.int64(58)))
        hit = cols >= 0
        return idx[hit], cols[hit]

    def _adjacent_pair_hits(self, d: np.ndarray, same_text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, columns) of the plain word pairs (tag 0) of ``d``: with
        a dense table, every adjacent pair looked up at once (no gather of
        the positions first: nearly every position starts a pair); else
        :meth:`_pair_hits`."""
        table = self._pair_tables.get(0)
        if table is None or 0 not in self._pairs:
            return self._pair_hits(d, np.flatnonzero(same_text), 0)
        row, second_rank, cells = table
        cols = cells[row[d[:-1]] + second_rank[d[1:]]]
        at = np.flatnonzero((cols >= 0) & same_text)
        return at, cols[at]

    def _word_hits(self, w: Words) -> Occurrences:
        """The word block's features in the words, looked up kind by kind
        (dense tables for single words, a hash lookup only for the pairs
        that can be features): the fast path of :func:`word_grams` +
        :meth:`_columns_of`, tested equal to it."""
        d = w.ids + 1
        text = w.text
        n = len(d)
        parts: list[tuple[np.ndarray, np.ndarray, int]] = []

        def singles(idx: np.ndarray, tag: int) -> None:
            cols = self._dense[tag][d[idx]]
            keep = cols >= 0
            parts.append((cols[keep], idx[keep], 1))

        # Every word at once (an unknown word, digit 0, has no column: -1).
        plain = self._dense[0][d]
        at = np.flatnonzero(plain >= 0)
        parts.append((plain[at], at, 1))
        same_text = text[1:] == text[:-1]  # word i and i + 1 are in one text
        if n > 1 and self.spec.word_ngrams >= 2:
            idx, cols = self._adjacent_pair_hits(d, same_text)
            parts.append((cols, idx, 2))
        if n > 2 and self.spec.word_ngrams >= 3:
            starts = np.flatnonzero((text[2:] == text[:-2]) & (d[:-2] > 0) & (d[1:-1] > 0) & (d[2:] > 0))
            key = (d[starts] * self.base + d[starts + 1]) * self.base + d[starts + 2]
            cols = self._columns_of(key)  # trigrams: rare in models, a search
            keep = cols >= 0
            parts.append((cols[keep], starts[keep], 3))
        if self.spec.sentences and n:
            # Sentence features from per-sentence arrays (starts, ends, a
            # question or not: a tenth of the words' length), not from
            # per-word masks and each word's sentence number.
            first = np.ones(n, dtype=bool)
            first[1:] = ~same_text | w.ends_sentence[:-1]
            starts = np.flatnonzero(first)
            ends = np.empty_like(starts)
            ends[:-1] = starts[1:] - 1
            ends[-1] = n - 1
            length = ends - starts + 1
            is_q = w.ends_question[ends]  # a question: its last word's token ends in "?"
            singles(starts[d[starts] > 0], _SENTENCE_FIRST)
            two = length >= 2
            idx, cols = self._pair_hits(d, starts[two], _SENTENCE_FIRST2)
            parts.append((cols, idx, 2))
            idx, cols = self._pair_hits(d, starts[two & is_q], _QUESTION_FIRST2)
            parts.append((cols, idx, 2))
            # The first three words of each question, in word order.
            q_starts, q_length = starts[is_q], length[is_q]
            first3 = (q_starts[:, None] + np.arange(3)).ravel()[(np.arange(3) < q_length[:, None]).ravel()]
            singles(first3[d[first3] > 0], _QUESTION_WORD)
            # One "<question>" per question (at its last word), and whether
            # the text ends with one (its last word ends a sentence).
            text_end = np.ones(len(ends), dtype=bool)
            text_end[:-1] = ~same_text[ends[:-1]]
            for tag, at in ((_QUESTION, ends[is_q]), (_ENDS_WITH_QUESTION, ends[is_q & text_end])):
                col = self._dense[tag, 0]
                if col >= 0:
                    parts.append((np.full(len(at), col, dtype=np.int64), at, 1))
        return Occurrences.concat(parts, w)

    def _word_block(self, w: Words) -> tuple[sp.csr_matrix, Occurrences]:
        occ = self._word_hits(w)
        counts = _csr(occ.text, occ.col, w.n_texts, len(self.idf))
        return _sublinear_tfidf(counts, self.idf), occ

    def _word_block_reference(self, w: Words) -> tuple[sp.csr_matrix, _Grams]:
        """The word block the plain way (every candidate key, then a lookup):
        what :meth:`_word_block` must equal."""
        grams = _Grams.concat(list(word_grams(w, self.spec.word_ngrams, self.base, self.spec.sentences).values()))
        cols = self._columns_of(grams.key)
        hit = cols >= 0
        occ = grams.take(hit)
        occ.key = cols[hit]
        counts = _csr(occ.text, occ.key, w.n_texts, len(self.idf))
        return _sublinear_tfidf(counts, self.idf), occ

    def _char_per_word(self, w: Words) -> sp.csr_matrix:
        """Each distinct word of the batch as its character n-grams, weighted
        by idf and l2-normalised (as ``char_wb`` on that word)."""
        assert self.char_grams is not None and self._char_table is not None and self.char_idf is not None
        lo, hi = self.spec.char_ngrams or (3, 5)
        grams = char_grams_of(w.words_of_batch, lo, hi).join(self._char_table, on="gram", how="inner")
        per_word = _csr(grams["i"].to_numpy().astype(np.int64), grams["col"].to_numpy().astype(np.int64),
                        len(w.words_of_batch), len(self.char_grams))  # fmt: skip
        per_word.data = per_word.data * self.char_idf[per_word.indices]
        return _l2_rows(per_word)

    def _char_block(self, w: Words) -> sp.csr_matrix:
        """The character n-grams of each text, pooled over its words."""
        per_word = self._char_per_word(w)
        words_in_texts = _csr(w.text, w.batch_ids, w.n_texts, len(w.words_of_batch))
        summed = sp.csr_matrix(words_in_texts @ per_word)
        if self.spec.char_pooling == "l2":
            return _l2_rows(summed)
        return sp.csr_matrix(sp.diags(self._pool_scale(w)) @ summed)

    def _char_scores(self, w: Words, weights: np.ndarray) -> np.ndarray:
        """``_char_block(w) @ weights`` for a linear pooling, without the
        block: each distinct word's n-grams are scored once (words x
        classes), then summed per text."""
        per_word = self._char_per_word(w)
        word_scores = np.asarray(per_word @ weights, dtype=np.float64)
        words_in_texts = _csr(w.text, w.batch_ids, w.n_texts, len(w.words_of_batch))
        return self._pool_scale(w)[:, None] * np.asarray(words_in_texts @ word_scores)

    def _pool_scale(self, w: Words) -> np.ndarray:
        """Per text, what its summed character n-grams are multiplied by."""
        n = w.per_text.astype(np.float64)  # the words of each text, counted when they were expanded
        n[n == 0] = 1.0
        return 1.0 / (np.sqrt(n) if self.spec.char_pooling == "sqrt" else n)

    def _lexicon_block(self, w: Words) -> tuple[sp.csr_matrix, Occurrences]:
        assert self.lexicon_keys is not None and self.lexicon_construct is not None
        parts = lexicon_grams(w, self.lexicon_keys, self.base, self._lexicon_slots, self._lexicon_index)
        # The hits are few: a search maps each phrase to its construct.
        parts = [(self.lexicon_construct[np.searchsorted(self.lexicon_keys, keys)], pos, width) for keys, pos, width in parts]
        hits = Occurrences.concat(parts, w)
        counts = _csr(hits.text, hits.col, w.n_texts, len(self.constructs))
        counts.data = np.log1p(counts.data)
        return counts, hits

    def _context_block(self, tokens: Tokens, context_rows: np.ndarray) -> sp.csr_matrix:
        assert self.context_keys is not None and self.context_idf is not None
        valid = context_rows >= 0
        w = words_of(tokens, np.where(valid, context_rows, 0), self._table)
        keep = valid[w.text] & (w.ids >= 0)
        digits = w.ids[keep] + 1
        pos = np.searchsorted(self.context_keys, digits)
        pos = np.minimum(pos, max(len(self.context_keys) - 1, 0))
        hit = self.context_keys[pos] == digits if len(self.context_keys) else np.zeros(int(keep.sum()), dtype=bool)
        counts = _csr(w.text[keep][hit], pos[hit], len(context_rows), len(self.context_keys))
        return _sublinear_tfidf(counts, self.context_idf)

    def transform(
        self,
        tokens: Tokens,
        rows: np.ndarray,
        *,
        context_rows: np.ndarray | None = None,
        rules: np.ndarray | None = None,
        fold: np.ndarray | None = None,
    ) -> Batch:
        """Features of texts ``rows`` of ``tokens``. ``context_rows``: per
        text, the row of its preceding turn (-1: none); ``rules``: the rule
        columns, one row per text (see ``rule_names``). ``fold``: a model's
        weights (features x classes); with a linear character pooling, the
        character block is then scored per distinct word and summed into
        ``offset`` instead of being materialised (its columns stay, empty):
        the same scores for a fraction of the work."""
        rows = np.asarray(rows, dtype=np.int64)
        w = words_of(tokens, rows, self._table)
        block, occ = self._word_block(w)
        blocks = [self._weighted(block, "words")]
        offset = None
        if self.char_grams is not None:
            if fold is not None and self.spec.char_pooling != "l2":
                start = self.n_word_features
                weights = fold[start : start + len(self.char_grams)]
                offset = self._char_scores(w, weights) * self.spec.weight("chars")
                blocks.append(sp.csr_matrix((len(rows), len(self.char_grams))))
            else:
                blocks.append(self._weighted(self._char_block(w), "chars"))
        if self.lexicon_keys is not None:
            lex, hits = self._lexicon_block(w)
            blocks.append(self._weighted(lex, "lexicon"))
            occ = Occurrences.join(occ, hits.with_cols_offset(self.n_word_features + (len(self.char_grams) if self.char_grams is not None else 0)))
        if self.context_keys is not None:
            ctx = np.full(len(rows), -1, dtype=np.int64) if context_rows is None else np.asarray(context_rows, dtype=np.int64)
            blocks.append(self._weighted(self._context_block(tokens, ctx), "context"))
        if self.rule_names:
            if rules is None or rules.shape != (len(rows), len(self.rule_names)):
                raise InputError(f"this featurizer needs {len(self.rule_names)} rule column(s) per text: {', '.join(self.rule_names)}")
            blocks.append(self._weighted(sp.csr_matrix(np.asarray(rules, dtype=np.float64)), "rules"))
        # One block (the skills model's words) is the matrix: hstack would copy it.
        matrix = blocks[0] if len(blocks) == 1 else sp.hstack(blocks, format="csr")
        return Batch(tokens, rows, occ, matrix, offset)

    def _weighted(self, block: sp.csr_matrix, name: str) -> sp.csr_matrix:
        """``block * weight`` in place (the block is a fresh one of this
        call's): the same values, without a copy when the weight is 1."""
        weight = self.spec.weight(name)
        if weight != 1.0:
            block.data *= weight
        return block

    def transform_texts(self, texts: Sequence[str] | pl.Series, **kwargs: Any) -> sp.csr_matrix:
        """Features of plain texts (tokenized here)."""
        series = texts if isinstance(texts, pl.Series) else pl.Series("text", list(texts), dtype=pl.String)
        tokens = tokenize(series)
        return self.transform(tokens, np.arange(len(series)), **kwargs).matrix

    # ------------------------------------------------------------------- fit
    @classmethod
    def fit(
        cls,
        spec: FeatureSpec,
        tokens: Tokens,
        rows: np.ndarray,
        *,
        context_rows: np.ndarray | None = None,
        lexicon: pl.DataFrame | None = None,
        rule_names: Sequence[str] = (),
    ) -> Featurizer:
        """Learn the vocabulary from texts ``rows`` of ``tokens``: every
        n-gram in at least ``spec.min_df`` texts (the ``max_features`` most
        frequent when set). ``lexicon``: a frame ``construct``, ``phrase``."""
        rows = np.asarray(rows, dtype=np.int64)
        n_docs = len(rows)
        # A provisional table: every word of the training texts.
        w0 = words_of(tokens, rows, None)
        provisional = w0.words_of_batch
        w0.ids = w0.batch_ids
        base0 = _key_base(len(provisional))
        kinds = word_grams(w0, spec.word_ngrams, base0, spec.sentences)
        grams = _Grams.concat(list(kinds.values()))
        pairs = np.unique(np.stack([grams.key, grams.text]), axis=1) if len(grams.key) else np.zeros((2, 0), dtype=np.int64)
        keys, df = np.unique(pairs[0], return_counts=True)
        keep = df >= spec.min_df
        keys, df = keys[keep], df[keep]
        if spec.max_features is not None and len(keys) > spec.max_features:
            top = np.argsort(-df, kind="stable")[: spec.max_features]
            top.sort()
            keys, df = keys[top], df[top]
        # Words the kept features (and the lexicon's phrases) use, then re-key.
        mask = (np.int64(1) << np.int64(58)) - 1
        tags = keys >> 58
        body = keys & mask
        used: set[int] = set()
        parts_by_key: list[list[int]] = []
        for b in body.tolist():  # loop over the vocabulary (thousands), not over messages
            parts = []
            while b:
                parts.append(b % base0 - 1)
                b //= base0
            parts.reverse()
            parts_by_key.append(parts)
            used.update(parts)
        lex_phrases: list[tuple[str, list[str]]] = []
        if lexicon is not None:
            for construct, phrase in lexicon.select("construct", "phrase").iter_rows():  # a few thousand phrases
                words = pl.Series([phrase.lower().replace("\u2019", "'")]).str.extract_all(WORD_PATTERN).item().to_list()
                if 1 <= len(words) <= _MAX_LEXICON_WORDS:
                    lex_phrases.append((construct, words))
        provisional_words = provisional.to_list()
        vocab_words = sorted({provisional_words[i] for i in used} | {x for _, ws in lex_phrases for x in ws})
        if spec.context:
            ctx_rows = np.asarray(context_rows if context_rows is not None else np.full(n_docs, -1), dtype=np.int64)
        index = {word: i for i, word in enumerate(vocab_words)}
        base = _key_base(len(vocab_words))
        new_keys = np.empty(len(keys), dtype=np.int64)
        for i, (tag, parts) in enumerate(zip(tags.tolist(), parts_by_key, strict=True)):
            k = 0
            for p in parts:
                k = k * base + index[provisional_words[p]] + 1
            new_keys[i] = k + (tag << 58)
        idf = _idf(df.astype(np.float64), n_docs)
        char_grams = char_idf = None
        if spec.char_ngrams is not None:
            lo, hi = spec.char_ngrams
            cg = char_grams_of(provisional, lo, hi)
            # Document frequency of a char n-gram: texts holding a word that holds it.
            word_doc = pl.DataFrame({"i": w0.batch_ids, "doc": w0.text}).unique()
            dfc = (
                cg.unique().with_columns(pl.col("i").cast(pl.Int64)).join(word_doc, on="i")
                .group_by("gram").agg(pl.col("doc").n_unique().alias("df"))
                .filter(pl.col("df") >= spec.min_df)
                .sort("gram")
            )
            if spec.max_features is not None and dfc.height > spec.max_features:
                dfc = dfc.sort("df", "gram", descending=[True, False]).head(spec.max_features).sort("gram")
            char_grams = np.array(dfc["gram"].to_list(), dtype=object)
            char_idf = _idf(dfc["df"].to_numpy().astype(np.float64), n_docs)
        lexicon_keys = lexicon_construct = None
        constructs: list[str] = []
        if lex_phrases:
            constructs = sorted({c for c, _ in lex_phrases})
            cidx = {c: i for i, c in enumerate(constructs)}
            pairs_lex: dict[int, int] = {}
            longest = lexicon_order(base)
            for construct, ws in lex_phrases:
                if len(ws) > longest:
                    continue
                k = 0
                for x in ws:
                    k = k * base + index[x] + 1
                pairs_lex.setdefault(k, cidx[construct])  # a phrase in two constructs counts for the first
            lk = np.array(sorted(pairs_lex), dtype=np.int64)
            lexicon_keys = lk
            lexicon_construct = np.array([pairs_lex[k] for k in lk.tolist()], dtype=np.int64)
        context_keys = context_idf = None
        if spec.context:
            table = pl.DataFrame({"word": pl.Series(vocab_words, dtype=pl.String), "id": np.arange(len(vocab_words))})
            valid = ctx_rows >= 0
            wc = words_of(tokens, np.where(valid, ctx_rows, 0), None)
            ctx_words = wc.words_of_batch.to_frame("word").join(table, on="word", how="left", maintain_order="left")["id"]
            ids = ctx_words.fill_null(-1).to_numpy()[wc.batch_ids] if len(wc.batch_ids) else np.zeros(0, dtype=np.int64)
            keep_c = valid[wc.text] & (ids >= 0)
            pc = np.unique(np.stack([ids[keep_c] + 1, wc.text[keep_c]]), axis=1) if keep_c.any() else np.zeros((2, 0), dtype=np.int64)
            ck, cdf = np.unique(pc[0], return_counts=True)
            sel = cdf >= spec.min_df
            context_keys, context_idf = ck[sel], _idf(cdf[sel].astype(np.float64), n_docs)
        return cls(
            spec,
            np.array(vocab_words, dtype=object),
            new_keys,
            idf,
            char_grams,
            char_idf,
            context_keys,
            context_idf,
            lexicon_keys,
            lexicon_construct,
            constructs,
            rule_names,
        )

    # ----------------------------------------------------------------- state
    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save (see :mod:`pe_toolkit.learn.io`)."""
        keys_by_col = np.empty(len(self.keys), dtype=np.int64)
        keys_by_col[self.columns] = self.keys
        out: dict[str, np.ndarray] = {
            "words": np.array(self.words.tolist(), dtype=np.str_),
            "keys": keys_by_col,
            "idf": self.idf.astype(np.float64),
        }
        if self.char_grams is not None and self.char_idf is not None:
            out["char_grams"] = np.array(self.char_grams.tolist(), dtype=np.str_)
            out["char_idf"] = self.char_idf
        if self.context_keys is not None and self.context_idf is not None:
            out["context_keys"] = self.context_keys
            out["context_idf"] = self.context_idf
        if self.lexicon_keys is not None and self.lexicon_construct is not None:
            out["lexicon_keys"] = self.lexicon_keys
            out["lexicon_construct"] = self.lexicon_construct
        return out

    @classmethod
    def from_state(cls, spec: FeatureSpec, arrays: dict[str, np.ndarray], constructs: Sequence[str], rule_names: Sequence[str]) -> Featurizer:
        return cls(
            spec,
            arrays["words"].astype(object),
            arrays["keys"],
            arrays["idf"],
            arrays["char_grams"].astype(object) if "char_grams" in arrays else None,
            arrays.get("char_idf"),
            arrays.get("context_keys"),
            arrays.get("context_idf"),
            arrays.get("lexicon_keys"),
            arrays.get("lexicon_construct"),
            constructs,
            rule_names,
        )

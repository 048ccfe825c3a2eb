"""Whitespace tokens, dictionary-encoded: the shared first step of the text analyzers.

:func:`tokenize` splits texts exactly as Python's ``str.split()`` does (runs of
the characters for which ``str.isspace()`` is true). :meth:`Tokens.spans`
gives any token's character span in its text, so evidence can point back
into ``content``.

Why dictionary-encoded: a million messages hold about 26 million tokens, and
any string operation per token (strip, lower-case, lexicon lookup) costs
seconds. Here each token is hashed once (a polars Categorical), every string
operation runs on the vocabulary (thousands to a few hundred thousand
distinct tokens), and its result is gathered back per token with numpy
(``table[tokens.codes]``). Even numpy passes over all tokens cost about
0.1 s per million messages each on the reference machine, so the class
avoids them: spans and per-token text indices are computed on request, for
the tokens asked about.

Public and stable (other analyzers build on it): :class:`Tokens`,
:func:`tokenize`, :func:`segment_sum`, :data:`OTHER_WHITESPACE`,
:data:`EXPANSION_TYPE`. In a pass the analyzers share one tokenization of
the batch (:attr:`pe_toolkit.analysis.base.Batch.tokens`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

# Every character Python's str.split() splits on, besides the space itself.
OTHER_WHITESPACE: tuple[str, ...] = tuple(ch for ch in map(chr, range(0x110000)) if ch.isspace() and ch != " ")
_OTHER_WS_CLASS = "[" + "".join(f"\\x{{{ord(ch):x}}}" for ch in OTHER_WHITESPACE) + "]"

# A vocabulary entry's replacement: a list of {text, start, end} with the span
# relative to the entry (an empty list deletes it); null keeps the entry.
EXPANSION_TYPE = pl.List(pl.Struct({"text": pl.String(), "start": pl.Int32(), "end": pl.Int32()}))


def segment_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of ``values[offsets[i]:offsets[i+1]]`` for every i (0 for empty
    segments), in one pass (``reduceat`` over the non-empty segments, whose
    starts already bound each one)."""
    kind = np.int64 if values.dtype.kind in "biu" else np.float64
    lengths = np.diff(offsets)
    out = np.zeros(len(lengths), dtype=kind)
    nonempty = lengths > 0
    if nonempty.any():
        out[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty], dtype=kind)
    return out


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``starts[i], starts[i] + 1, ..., starts[i] + lengths[i] - 1`` for
    every i, concatenated: element k of the output is ``k`` plus its run's
    start minus the elements before the run (one repeat). Runs of four or
    more on average (a text's tokens): ones, each run's first element the
    step from the previous run's last, and one cumulative sum in place (two
    passes over the output instead of four: 2.7 -> 1.4 ms for 1.7 M)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if len(lengths) * 4 <= total:
        nonempty = lengths > 0
        first, length = np.asarray(starts, dtype=np.int64)[nonempty], lengths[nonempty]
        step = first.copy()
        step[1:] -= first[:-1] + length[:-1] - 1
        out = np.ones(total, dtype=np.int64)
        out[np.cumsum(length) - length] = step
        return np.cumsum(out, out=out)
    shift = np.asarray(starts, dtype=np.int64) - (np.cumsum(lengths) - lengths)
    return np.repeat(shift, lengths) + np.arange(total, dtype=np.int64)


@dataclass(frozen=True)
class _Splice:
    """How one :meth:`Tokens.expand` changed the token sequence: enough to map
    an output token back to the input token it came from."""

    in_pos: np.ndarray  # sorted input indices of the replaced tokens
    out_first: np.ndarray  # output index of each one's first part
    n_parts: np.ndarray
    part_first: np.ndarray  # index of each one's first part in rel_start/rel_end
    rel_start: np.ndarray  # part spans relative to the replaced token's start
    rel_end: np.ndarray

    @cached_property
    def _after_and_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """Indexed by the last replaced token at or before an output token
        (+1; 0: none): the output index after its parts, and how far the
        output indices from there on are ahead of the input's."""
        after = self.out_first + self.n_parts
        return np.concatenate([[-1], after]), np.concatenate([[0], after - self.in_pos - 1])

    def to_input(self, out_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(input index, relative start, relative end); -1 = the whole input
        token, and None for both when no token asked about is a part (most
        calls: a shift per token, no per-part passes)."""
        k = np.searchsorted(self.out_first, out_idx, side="right")  # the last splice at or before, + 1
        after, shift = self._after_and_shift
        in_idx = out_idx - shift[k]
        parts = np.flatnonzero(out_idx < after[k])
        if not len(parts):
            return in_idx, None, None
        kk = k[parts] - 1
        in_idx[parts] = self.in_pos[kk]
        part = self.part_first[kk] + out_idx[parts] - self.out_first[kk]
        rs = np.full(len(out_idx), -1, dtype=np.int64)
        re_ = np.full(len(out_idx), -1, dtype=np.int64)
        rs[parts], re_[parts] = self.rel_start[part], self.rel_end[part]
        return in_idx, rs, re_


@dataclass(eq=False)
class Tokens:
    """The tokens of ``n_texts`` texts.

    ``vocab[code]`` is a token's text; the tokens of text ``i`` are
    ``codes[offsets[i]:offsets[i + 1]]``.
    """

    vocab: pl.Series
    codes: np.ndarray  # uint32
    offsets: np.ndarray  # int64, n_texts + 1
    encoded_vocab: pl.Series  # the vocabulary as a Categorical: keeps the code mapping alive
    _pieces: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False)  # space-split codes, offsets, widths by code
    _splices: tuple[_Splice, ...] = field(default=(), repr=False)

    @property
    def categories(self) -> pl.Categories:
        return self.encoded_vocab.dtype.categories  # type: ignore[attr-defined]  # encoded_vocab is Categorical; Series.dtype is typed as any DataType

    @property
    def n_texts(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return len(self.codes)

    @cached_property
    def lengths(self) -> np.ndarray:
        """Tokens per text."""
        return np.diff(self.offsets)

    def text_of(self, token_idx: np.ndarray) -> np.ndarray:
        """The text each of the given tokens belongs to."""
        return np.searchsorted(self.offsets, token_idx, side="right") - 1

    def vocab_values(self, expr: pl.Expr) -> np.ndarray:
        """``expr`` evaluated over the vocabulary (one column, ``token``), as a
        numpy array indexed by code."""
        return pl.DataFrame({"token": self.vocab}).select(expr.alias("v")).to_series().to_numpy()

    def texts_of(self, rows: np.ndarray) -> np.ndarray:
        """Indices (into ``codes``) of every token of the given texts, in order."""
        rows = np.asarray(rows, dtype=np.int64)
        return ranges(self.offsets[:-1][rows], self.lengths[rows])

    @cached_property
    def _piece_starts(self) -> np.ndarray:
        """Exclusive running total of piece widths + separators (computed on
        first use: one gather and one cumulative sum over all pieces)."""
        codes, _offsets, widths = self._pieces
        # int32 halves the memory traffic whenever the total cannot overflow it.
        bound = len(codes) * (int(widths.max(initial=0)) + 1)
        dtype = np.int32 if bound < 2**31 else np.int64
        cs = np.empty(len(codes) + 1, dtype=dtype)
        cs[0] = 0
        np.cumsum((widths + 1).astype(dtype)[codes], out=cs[1:])
        return cs

    def spans(self, token_idx: np.ndarray, texts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Character (start, end) of the given tokens in their texts. A token
        made by :meth:`expand` gets the span of the characters it came from.
        ``texts``: the text of each token, when the caller knows it (saves a
        binary search per token over every token of the batch)."""
        idx = np.asarray(token_idx, dtype=np.int64)
        rels = []
        for splice in reversed(self._splices):
            idx, rs, re_ = splice.to_input(idx)
            rels.append((rs, re_))
        codes, offsets, widths = self._pieces
        cs = self._piece_starts
        piece_text = np.searchsorted(offsets, idx, side="right") - 1 if texts is None else np.asarray(texts, dtype=np.int64)
        start = cs[idx].astype(np.int64) - cs[offsets[piece_text]]
        end = start + widths[codes[idx]]
        for rs, re_ in reversed(rels):
            if rs is not None and re_ is not None:  # some tokens asked about are parts of a replaced one
                start, end = np.where(rs >= 0, start + rs, start), np.where(re_ >= 0, start + re_, end)
        return start, end

    def _delete_code(self, code: int) -> Tokens:
        """Drop every token with this code (one compare and one compress pass)."""
        hit = self.codes == code
        deleted = np.flatnonzero(hit)
        codes = self.codes[~hit]
        k = np.searchsorted(deleted, self.offsets, side="left")
        none = np.zeros(0, dtype=np.int64)
        splice = _Splice(
            in_pos=deleted,
            out_first=deleted - np.arange(len(deleted)),
            n_parts=np.zeros(len(deleted), dtype=np.int64),
            part_first=np.zeros(len(deleted), dtype=np.int64),
            rel_start=none,
            rel_end=none,
        )
        return Tokens(self.vocab, codes, self.offsets - k, self.encoded_vocab, self._pieces, (*self._splices, splice))

    def expand(self, replacement: Callable[[pl.Series], pl.Series]) -> Tokens:
        """Replace vocabulary entries by zero or more tokens.

        ``replacement(vocab)`` returns, per entry, null (keep it) or a list of
        ``{text, start, end}`` (:data:`EXPANSION_TYPE`, spans relative to the
        entry). The work is per vocabulary entry, plus two passes over the
        tokens when some entry actually occurs.
        """
        plan = replacement(self.vocab)
        changed = plan.is_not_null().to_numpy()
        if not changed.any():
            return self
        vocab_size = len(self.vocab)
        parts = (
            pl.DataFrame({"code": np.arange(vocab_size, dtype=np.int64), "parts": plan})
            .filter(pl.col("parts").is_not_null())
            .with_columns(pl.col("parts").list.len().alias("n"))
        )
        n_by_code = np.zeros(vocab_size, dtype=np.int64)
        n_by_code[parts["code"].to_numpy()] = parts["n"].to_numpy()
        first_by_code = np.zeros(vocab_size, dtype=np.int64)
        first_by_code[parts["code"].to_numpy()] = np.cumsum(parts["n"].to_numpy()) - parts["n"].to_numpy()
        flat = parts.select(pl.col("parts").explode(keep_nulls=False, empty_as_null=False)).unnest("parts")
        # A Categorical of the parts, kept while we read the codes back out.
        encoded_parts = flat["text"].cast(pl.Categorical(self.categories))
        part_codes = encoded_parts.to_physical().to_numpy().astype(np.uint32)
        part_start = flat["start"].to_numpy().astype(np.int64)
        part_end = flat["end"].to_numpy().astype(np.int64)

        affected = np.flatnonzero(changed[self.codes])
        if not len(affected):
            return self
        a_codes = self.codes[affected].astype(np.int64)
        a_n = n_by_code[a_codes]
        a_first = first_by_code[a_codes]
        delta = a_n - 1
        shift_before = np.cumsum(delta) - delta
        out_first = affected + shift_before
        # Parts of every affected token, in order, and where they go.
        take = ranges(a_first, a_n)
        insert_at = np.repeat(affected - np.arange(len(affected)), a_n)
        kept = np.delete(self.codes, affected)
        codes = np.insert(kept, insert_at, part_codes[take]).astype(np.uint32)
        k = np.searchsorted(affected, self.offsets, side="left")
        cum_delta = np.concatenate([[0], np.cumsum(delta)])
        offsets = self.offsets + cum_delta[k]
        splice = _Splice(
            in_pos=affected,
            out_first=out_first,
            n_parts=a_n,
            part_first=np.cumsum(a_n) - a_n,
            rel_start=part_start[take],
            rel_end=part_end[take],
        )
        vocab = self.categories.to_series()
        del encoded_parts
        return Tokens(
            vocab=vocab,
            codes=codes,
            offsets=offsets,
            encoded_vocab=vocab.cast(pl.Categorical(self.categories)),
            _pieces=self._pieces,
            _splices=(*self._splices, splice),
        )


def _split_other_whitespace(vocab: pl.Series) -> pl.Series:
    """Pieces holding whitespace other than the space (only the rare characters
    :func:`tokenize` did not replace up front) become their real tokens."""
    odd = pl.col("token").str.contains(_OTHER_WS_CLASS)
    parts = (
        pl.col("token")
        .str.replace_all(_OTHER_WS_CLASS, " ")  # one character for one: spans stay valid
        .str.split(" ")
        .list.eval(
            pl.struct(
                text=pl.element(),
                start=(pl.element().str.len_chars() + 1).cum_sum().shift(1, fill_value=0).cast(pl.Int32),
                end=((pl.element().str.len_chars() + 1).cum_sum() - 1).cast(pl.Int32),
            ).filter(pl.element().str.len_chars() > 0)
        )
    )
    return pl.DataFrame({"token": vocab}).select(pl.when(odd).then(parts).cast(EXPANSION_TYPE)).to_series()


def _spaces_for_whitespace(texts: pl.Series) -> pl.Series:
    """Newlines, tabs and carriage returns (and any whitespace in non-ASCII
    texts) become spaces, one character for one, so character offsets stay
    valid. Only the texts holding them are rewritten; each check is a memchr
    scan, far cheaper than a regular expression over every text."""
    frame = pl.DataFrame({"t": texts})
    flags = frame.select(
        pl.any_horizontal(
            pl.col("t").str.contains("\n", literal=True),
            pl.col("t").str.contains("\t", literal=True),
            pl.col("t").str.contains("\r", literal=True),
            pl.col("t").str.len_bytes() != pl.col("t").str.len_chars(),
        )
    ).to_series()
    rows = flags.arg_true()
    if not len(rows):
        return texts
    fixed = texts.gather(rows).str.replace_all(_OTHER_WS_CLASS, " ")
    return texts.clone().scatter(rows, fixed)


def tokenize(texts: pl.Series) -> Tokens:
    """Split every text on whitespace, with ``str.split()`` semantics."""
    texts = _spaces_for_whitespace(texts.cast(pl.String).fill_null(""))
    categories = pl.Categories.random()
    pieces = texts.str.split(" ")
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(pieces.list.len().to_numpy(), out=offsets[1:])
    encoded = pieces.explode().cast(pl.Categorical(categories))
    codes = encoded.to_physical().to_numpy()
    # A Categories mapping lives only while a Categorical of it does: keep the
    # vocabulary as one, so codes stay valid when expand() adds entries.
    vocab = categories.to_series()
    encoded_vocab = vocab.cast(pl.Categorical(categories))
    del encoded
    widths = vocab.str.len_chars().to_numpy().astype(np.int64)
    tokens = Tokens(vocab, codes, offsets, encoded_vocab, (codes, offsets, widths))
    empty = np.flatnonzero((vocab == "").to_numpy())
    if len(empty):
        # Runs of spaces, leading/trailing spaces and empty texts leave empty pieces.
        tokens = tokens._delete_code(int(empty[0]))
    return tokens.expand(_split_other_whitespace)

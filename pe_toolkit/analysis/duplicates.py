"""Exact and near-duplicate responses: normalized-text hashes and MinHash LSH keys.

Per message (computed by the quality analyzer for assistant messages):

- ``text_hash``: a 64-bit hash of the normalized text (words lower-cased,
  surrounding punctuation removed, whitespace ignored). Equal hashes mean
  equal normalized texts (up to 2^-64 collisions).
- ``minhash_bands``: MinHash LSH keys over word-bigram shingles. The
  signature has 48 values, the minima of 48 independent hash functions
  over the text's shingles, split into 6 bands of 8; two messages sharing
  any band key are candidates. The chance of that for shingle-set Jaccard
  similarity J is 1 - (1 - J^8)^6: 0.99 at J = 0.95, 0.75 at 0.82, 0.15 at
  0.65, 0.02 at 0.5, whatever the texts' length (see :func:`_lsh_bands`).
  Messages with fewer than ``MIN_SHINGLES`` shingles get none (too short for
  a fuzzy match to mean anything; their exact hash still counts).

Hashes are computed here with fixed arithmetic (FNV-1a over UTF-8, the
splitmix64 finalizer), not with polars' or DuckDB's hash functions, whose
values may change between versions: the keys are stored and compared
across analysis runs.

Corpus shares (per conversation, over its assistant messages):

- ``boilerplate_share``: messages whose normalized text occurs in at least
  ``BOILERPLATE_MIN_CONVERSATIONS`` conversations;
- ``near_duplicate_share``: messages sharing an LSH band with a message of
  another conversation whose normalized text differs.

They depend on the whole corpus, so they are computed by one SQL query
(:func:`corpus_shares_sql`) over stored keys: at the end of every
``analyze(store)`` run over all stored conversations, and over the frame in
``analyze_frame``. The six quality metrics do not use them, so a
conversation's metrics do not change when other conversations arrive.
"""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pyarrow as pa

from .text import Tokens

BANDS = 6
ROWS = 8
BINS = BANDS * ROWS
MIN_SHINGLES = 5
BOILERPLATE_MIN_CONVERSATIONS = 3

_U64 = np.uint64
_MASK = (1 << 64) - 1
_FNV_OFFSET = _U64(0xCBF29CE484222325)
_FNV_PRIME = _U64(0x100000001B3)
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_BOS = _U64(0x2545F4914F6CDD1D)
_EOS = _U64(0x61C8864680B583EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer (a bijection of uint64 with good avalanche)."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


# Bytes hashed position by position for all strings at once (see fnv1a64).
_VECTOR_BYTES = 256


def fnv1a64(strings: pl.Series) -> np.ndarray:
    """FNV-1a (64-bit) of each string's UTF-8 bytes. Vectorized over the
    strings, one step per byte position (the strings hashed here are
    vocabulary entries, so positions are few)."""
    arr = pa.array(strings.cast(pl.String).fill_null("").to_arrow()).cast(pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    h = np.full(len(arr), _FNV_OFFSET, dtype=_U64)
    active = np.arange(len(arr))
    with np.errstate(over="ignore"):
        for pos in range(min(int(lengths.max(initial=0)), _VECTOR_BYTES)):
            active = active[lengths[active] > pos]
            h[active] = (h[active] ^ data[offsets[active] + pos].astype(_U64)) * _FNV_PRIME
    # Past _VECTOR_BYTES, a numpy step per byte position would cost ~10 us
    # for each byte of the longest string (a megabyte of digits as one
    # token took 8 s); the few strings that long finish in plain Python,
    # one byte at a time (linear; the same hash).
    prime, mask = int(_FNV_PRIME), int(_MASK)
    for i in np.flatnonzero(lengths > _VECTOR_BYTES).tolist():
        value = int(h[i])
        for byte in data[offsets[i] + _VECTOR_BYTES : offsets[i + 1]].tolist():
            value = ((value ^ byte) * prime) & mask
        h[i] = value
    return h


def stable_hash64(strings: pl.Series) -> np.ndarray:
    """A 64-bit hash of each string, stable across library versions:
    FNV-1a, then mixed with the length for avalanche."""
    arr = strings.cast(pl.String).fill_null("")
    with np.errstate(over="ignore"):
        return mix64(fnv1a64(arr) ^ arr.str.len_bytes().to_numpy().astype(_U64))


def signatures(tokens: Tokens, rows: np.ndarray, word_hash: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(text_hash per row, band keys per row as an (n, BANDS) array with rows
    too short for LSH set to 0) for the texts ``rows``; ``word_hash`` is the
    hash of each vocabulary entry's normalized form."""
    n = len(rows)
    text_hash = np.zeros(n, dtype=_U64)
    bands = np.zeros((n, BANDS), dtype=_U64)
    if not n:
        return text_hash, bands
    lengths = tokens.lengths[rows]
    idx = tokens.texts_of(rows)
    with np.errstate(over="ignore"):
        h = word_hash[tokens.codes[idx]]
        # Shingles: adjacent word pairs, with a start marker before each text.
        prev = np.empty_like(h)
        if len(h):
            prev[1:] = h[:-1]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        nonempty = lengths > 0
        prev[starts[nonempty]] = _BOS
        shingles = mix64(prev * _GOLDEN ^ h)
        # The end marker closes each text (so "a b" and "a b c" differ).
        last = np.zeros(n, dtype=_U64)
        last[nonempty] = h[starts[nonempty] + lengths[nonempty] - 1]
        closing = mix64(last * _GOLDEN ^ _EOS)
        cs = np.zeros(len(shingles) + 1, dtype=_U64)
        np.cumsum(shingles, dtype=_U64, out=cs[1:])
        ends = starts + lengths
        sums = cs[ends] - cs[starts] + closing  # wrapping arithmetic: exact modulo 2^64
        text_hash = mix64(sums ^ lengths.astype(_U64))
        bands = _lsh_bands(shingles, lengths)
    return text_hash, bands


# Shingles per block of _lsh_bands: 4 arrays of 128 KiB, in a core's L2.
_LSH_BLOCK = 1 << 15

# Odd multipliers combining a band's values (a linear combination, then mixed).
_BAND_MULTIPLIERS = np.array([0x9E3779B97F4A7C15 + 2 * k for k in range(ROWS)], dtype=_U64)


def _lsh_bands(shingles: np.ndarray, shingle_counts: np.ndarray) -> np.ndarray:
    """Classic MinHash: BINS hash functions, each signature value the minimum
    of one over the text's shingles (a segment minimum over the contiguous
    shingles of each text), then one key per band of ROWS values.

    One-permutation hashing (one hash per shingle spread over the bins, empty
    bins densified from their neighbours) was used before, but a short text
    has fewer shingles than a band has bins, so its band values came from one
    or two shingles: two chat replies sharing only their first words ("I am so
    sorry", "Have you ...") became candidates (on ESConv 87% of the distinct
    cross-conversation candidate pairs had shingle Jaccard below 0.5).
    Separate functions give each band the textbook J^ROWS whatever the length.

    The functions are double hashing of the shingle's two 32-bit halves,
    g_k = h1 + k * h2 (mod 2^32, h2 odd): one addition per function. Each
    step adds an independent uniform value per shingle, and MurmurHash3's
    32-bit finalizer mixes it (unmixed, a shingle with a small h2 stays the
    minimum of many functions). For 10.5 M shingles on the 2-core VM: 2.2 s
    against 1.1 s for the old scheme; 48 full 64-bit mixes took 6.0 s."""
    n = len(shingle_counts)
    keys = np.zeros((n, BANDS), dtype=_U64)
    has = np.flatnonzero(shingle_counts >= MIN_SHINGLES)
    if not len(has):
        return keys
    # Only the shingles of texts long enough for LSH, still contiguous per text.
    kept = shingles[np.repeat(shingle_counts >= MIN_SHINGLES, shingle_counts)]
    seg = np.concatenate([[0], np.cumsum(shingle_counts[has])[:-1]]).astype(np.intp)
    h1 = (kept & _U64(0xFFFFFFFF)).astype(np.uint32)
    h2 = (kept >> _U64(32)).astype(np.uint32) | np.uint32(1)
    sig = np.empty((BINS, len(has)), dtype=np.uint32)
    c1, c2, s13, s16 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35), np.uint32(13), np.uint32(16)
    # Blocks of whole texts, about _LSH_BLOCK shingles each, every function
    # run over one block before the next: the block's four working arrays
    # stay in a core's L2 cache through the 7 passes of each of the BINS
    # functions, where whole-batch arrays (megabytes) went through memory
    # at every pass (208 -> 114 ms per 1.2 M shingles; the same values).
    firsts = np.unique(np.searchsorted(seg, np.arange(0, len(kept), _LSH_BLOCK)))
    bounds = np.append(firsts[firsts < len(has)], len(has))
    ends = np.append(seg, len(kept))  # text i's shingles: ends[i]:ends[i + 1]
    with np.errstate(over="ignore"):
        for a, b in itertools.pairwise(bounds.tolist()):
            lo, hi = int(ends[a]), int(ends[b])
            g = h1[lo:hi]  # h1 is a fresh array (astype copies): advanced in place
            step = h2[lo:hi]
            starts = seg[a:b] - lo
            v, w = np.empty_like(g), np.empty_like(g)
            for k in range(BINS):  # one vectorized pass per hash function (BINS of them), not per row
                np.add(g, step, out=g)
                # Mixed (MurmurHash3's 32-bit finalizer): unmixed, the g of one
                # shingle moves by the same step at every k, and a shingle with a
                # small step stays the minimum of many functions. Every step
                # writes into v or w: no temporary arrays per function.
                np.right_shift(g, s16, out=v)
                np.bitwise_xor(v, g, out=v)
                np.multiply(v, c1, out=v)
                np.right_shift(v, s13, out=w)
                np.bitwise_xor(v, w, out=v)
                np.multiply(v, c2, out=v)
                np.minimum.reduceat(v, starts, out=sig[k, a:b])
        values = sig.T.astype(_U64).reshape(len(has), BANDS, ROWS)
        combined = (values * _BAND_MULTIPLIERS).sum(axis=2, dtype=_U64)
        band_keys = mix64(combined ^ (np.arange(BANDS, dtype=_U64) * _GOLDEN))
    band_keys[band_keys == 0] = 1  # 0 means "no key"
    keys[has] = band_keys
    return keys


def corpus_shares_sql(source: str) -> str:
    """Per-conversation boilerplate and near-duplicate shares over
    ``source`` (conversation_id, text_hash, minhash_bands; one row per
    message; rows with a null text_hash are ignored). One parameter: the boilerplate minimum.

    Near-duplicate without pairing messages: in a bucket (band key) holding
    the distinct (conversation, text) pairs S, a message (c, h) has a partner
    with another conversation and another text exactly when
    |S| - |S with conversation c| - |S with text h| + 1 > 0.
    """
    # The joins are spelled out one step at a time (MATERIALIZED): left to
    # itself, DuckDB joined the per-bucket counts to each other first, on the
    # bucket alone, which multiplies rows in big buckets (measured 10x slower).
    # Inside the query a message is its row number and a conversation the
    # 64-bit hash of its id (numbers join and group faster than strings: 0.8
    # -> 0.55 s at 1 M messages; two ids colliding, about 1e-10 at 125k
    # conversations, would count as one conversation, as equal text hashes
    # count as one text). A bucket holding one message has no partner for it:
    # such buckets (88% of 1.2 M at 1 M messages) go first, by one count.
    return f"""
    WITH msgs AS MATERIALIZED (
        SELECT row_number() OVER () AS r, conversation_id, hash(conversation_id) AS conv, text_hash, minhash_bands
        FROM {source} WHERE text_hash IS NOT NULL
    ), texts AS MATERIALIZED (
        SELECT text_hash, count(DISTINCT conv) AS conversations FROM msgs GROUP BY text_hash
    ), all_bands AS MATERIALIZED (
        SELECT r, conv, text_hash, unnest(minhash_bands) AS band_key FROM msgs WHERE minhash_bands IS NOT NULL
    ), shared AS MATERIALIZED (
        SELECT band_key FROM all_bands WHERE band_key <> 0 GROUP BY band_key HAVING count(*) > 1
    ), bands AS MATERIALIZED (
        SELECT * FROM all_bands SEMI JOIN shared USING (band_key)
    ), pairs AS MATERIALIZED (
        SELECT DISTINCT band_key, conv, text_hash FROM bands
    ), size AS MATERIALIZED (
        SELECT band_key, count(*) AS n FROM pairs GROUP BY band_key HAVING count(*) > 1
    ), by_conv AS MATERIALIZED (
        SELECT band_key, conv, count(*) AS nc FROM pairs SEMI JOIN size USING (band_key) GROUP BY ALL
    ), by_text AS MATERIALIZED (
        SELECT band_key, text_hash, count(*) AS nt FROM pairs SEMI JOIN size USING (band_key) GROUP BY ALL
    ), step1 AS MATERIALIZED (
        SELECT p.band_key, p.conv, p.text_hash, s.n FROM pairs p JOIN size s USING (band_key)
    ), step2 AS MATERIALIZED (
        SELECT x.*, c.nc FROM step1 x JOIN by_conv c ON c.band_key = x.band_key AND c.conv = x.conv
    ), partnered AS MATERIALIZED (
        SELECT x.band_key, x.conv, x.text_hash FROM step2 x
        JOIN by_text t ON t.band_key = x.band_key AND t.text_hash = x.text_hash
        WHERE x.n - x.nc - t.nt + 1 > 0
    ), near AS MATERIALIZED (
        SELECT DISTINCT b.r FROM bands b
        SEMI JOIN partnered g ON g.band_key = b.band_key AND g.conv = b.conv AND g.text_hash = b.text_hash
    )
    SELECT m.conversation_id,
        avg(CASE WHEN t.conversations >= $boilerplate_min THEN 1.0 ELSE 0.0 END) AS boilerplate_share,
        avg(CASE WHEN n.r IS NOT NULL THEN 1.0 ELSE 0.0 END) AS near_duplicate_share
    FROM msgs m JOIN texts t USING (text_hash)
    LEFT JOIN near n ON n.r = m.r
    GROUP BY m.conversation_id
    """


def corpus_shares(frame: pl.DataFrame, *, boilerplate_min: int = BOILERPLATE_MIN_CONVERSATIONS) -> pl.DataFrame:
    """:func:`corpus_shares_sql` over a message-level frame (no store)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("_keys", frame.select("conversation_id", "idx", "text_hash", "minhash_bands").to_arrow())
        table = con.sql(corpus_shares_sql("_keys"), params={"boilerplate_min": boilerplate_min}).to_arrow_table()
    finally:
        con.close()
    return pl.from_arrow(table)  # type: ignore[return-value]  # typed DataFrame | Series; a Table always gives a DataFrame

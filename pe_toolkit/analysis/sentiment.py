"""Sentiment: a vectorized scorer compatible with VADER (Hutto & Gilbert, 2014).

The lexicon, the emoji descriptions and the rule constants are read at run
time from the installed ``vaderSentiment`` package (MIT licence); nothing of
it is copied into this repository. The rules are VADER 3.3.2's, applied to
all messages at once instead of one message at a time:

- tokens are whitespace tokens with surrounding punctuation stripped (unless
  that leaves two characters or fewer, so ``:)`` survives), emoji replaced by
  their descriptions first;
- a lexicon word's valence is negated (x -0.74) by a negation word up to
  three tokens before it, "no" before it, or "least" (not "at least");
  boosted or dampened by a degree word up to three tokens before it (x1,
  x0.95, x0.9 by distance); raised by 0.733 when written in capitals in a
  message that is not all capitals; "never so/this" amplifies (x1.25);
  special idioms ("kiss of death", "yeah right"...) replace it;
- "but": words before the first "but" count half, words after it 1.5 times;
- exclamation marks (up to 4) and question marks (2 or more) add emphasis;
- compound = sum / sqrt(sum^2 + 15), rounded to 4 decimals, in [-1, 1].

Each token is looked up once per distinct token (see :mod:`.text`); the
rules run as numpy operations over the lexicon hits and their neighbours.

Known deviation: VADER's "but" rule locates each sentiment with
``list.index(value)``, so when the same value occurs twice, it can scale an
earlier word twice and leave the later one unscaled. We scale by position,
as the rule intends; the tests measure the effect on agreement.

Message column ``sentiment`` (compound, every message). Conversation columns
``sentiment_start`` / ``sentiment_end`` (first / last non-empty user turn)
and ``sentiment_change`` (end - start). Evidence: one row per lexicon word
that moved the score, category ``positive`` or ``negative`` plus the rules
that changed it (``negated``, ``boosted``, ``dampened``, ``caps``, ``but``).
"""

from __future__ import annotations

import functools
import hashlib
import string
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import polars as pl

from .base import EVIDENCE_SCHEMA, Batch, Scores
from .emoji_expansion import expand_emoji
from .segments import Segments, gather_or_null
from .text import Tokens, segment_sum, tokenize

NAME = "sentiment"
RULES_VERSION = "1"

_PUNCT = string.punctuation
# Words the rules compare against. Index 0 means "none of them".
_SPECIAL_WORDS = (
    "no", "or", "nor", "kind", "of", "least", "at", "very", "never", "so", "this", "without",
    "doubt", "but", "the", "shit", "bomb", "bad", "ass", "bus", "stop", "yeah", "right", "kiss",
    "death", "to", "die", "for", "beating", "heart", "sort", "just", "enough",
)  # fmt: skip
_WID = {w: i + 1 for i, w in enumerate(_SPECIAL_WORDS)}


@dataclass(frozen=True)
class VaderResources:
    """What we read from the installed vaderSentiment package."""

    lexicon: dict[str, float]
    emojis: dict[str, str]  # single character -> description
    boosters: dict[str, float]
    negations: frozenset[str]
    special_cases: dict[str, float]
    n_scalar: float
    c_incr: float
    digest: str = field(default="")


@functools.cache
def vader() -> VaderResources:
    """Load the lexicon the way ``SentimentIntensityAnalyzer`` does (last entry
    of a duplicated word wins), plus the rule constants from its module."""
    from vaderSentiment import vaderSentiment as vs

    folder = resources.files("vaderSentiment")
    lex_text = folder.joinpath("vader_lexicon.txt").read_text("utf-8")
    emoji_text = folder.joinpath("emoji_utf8_lexicon.txt").read_text("utf-8")
    lexicon: dict[str, float] = {}
    for line in lex_text.rstrip("\n").split("\n"):
        if line:
            word, measure = line.strip().split("\t")[0:2]
            lexicon[word] = float(measure)
    emojis: dict[str, str] = {}
    for line in emoji_text.rstrip("\n").split("\n"):
        emoji, description = line.strip().split("\t")[0:2]
        emojis[emoji] = description
    # VADER replaces character by character: longer keys never match.
    emojis = {k: v for k, v in emojis.items() if len(k) == 1}
    digest = hashlib.sha256(lex_text.encode() + b"\0" + emoji_text.encode()).hexdigest()[:10]
    return VaderResources(
        lexicon=lexicon,
        emojis=emojis,
        boosters=dict(vs.BOOSTER_DICT),
        negations=frozenset(vs.NEGATE),
        special_cases=dict(vs.SPECIAL_CASES),
        n_scalar=float(vs.N_SCALAR),
        c_incr=float(vs.C_INCR),
        digest=digest,
    )


# -- vocabulary-level work -------------------------------------------------------


def _emoji_expansion(vocab: pl.Series) -> pl.Series:
    """Tokens holding an emoji become the tokens of VADER's replacement text
    (each emoji character turns into its description, with a space before it
    unless it starts the token; nothing after it). Each part's span covers the
    characters it came from (:mod:`.emoji_expansion`)."""
    return expand_emoji(vocab, vader().emojis)


@dataclass(frozen=True)
class _VocabFeatures:
    """Per-code arrays, with one extra trailing entry: the 'no token' sentinel."""

    valence: np.ndarray  # lexicon valence, 0 where not in the lexicon
    in_lexicon: np.ndarray
    booster: np.ndarray  # BOOSTER_DICT value, 0 where none
    negation: np.ndarray
    upper: np.ndarray  # str.isupper() of the stripped token
    wid: np.ndarray  # index in _SPECIAL_WORDS (+1), 0 for other words
    kind: np.ndarray  # bit flags: _SCORED, _BUT, _MODIFIER, _SELF
    lead: np.ndarray  # punctuation VADER strips before / after the word (for evidence spans)
    trail: np.ndarray
    stripped: pl.Series  # the word as VADER sees it, by code (no sentinel)
    stripped_len: np.ndarray


# _MODIFIER: the word changes a lexicon word after it (degree, negation, rule word);
# _SELF: a lexicon word with it needs the full rules (capitals, rule words).
_SCORED, _BUT, _MODIFIER, _SELF = 1, 2, 4, 8


def _features(tokens: Tokens) -> _VocabFeatures:
    res = vader()
    tok = pl.col("token")
    stripped_all = tok.str.strip_chars(_PUNCT)
    # VADER keeps the raw token when stripping leaves <= 2 characters (":)", "ok.").
    stripped = pl.when(stripped_all.str.len_chars() <= 2).then(tok).otherwise(stripped_all)
    frame = pl.DataFrame({"token": tokens.vocab}).with_columns(stripped.alias("s"))
    frame = frame.with_columns(pl.col("s").str.to_lowercase().alias("low"))
    lex = pl.DataFrame({"low": list(res.lexicon), "valence": list(res.lexicon.values())})
    boost = pl.DataFrame({"low": list(res.boosters), "booster": list(res.boosters.values())})
    words = pl.DataFrame({"low": list(_WID), "wid": list(_WID.values())}, schema={"low": pl.String, "wid": pl.Int16})
    frame = (
        frame.join(lex, on="low", how="left", maintain_order="left")
        .join(boost, on="low", how="left", maintain_order="left")
        .join(words, on="low", how="left", maintain_order="left")
    )
    low, s = pl.col("low"), pl.col("s")
    out = frame.select(
        valence=pl.col("valence").fill_null(0.0),
        in_lexicon=pl.col("valence").is_not_null(),
        booster=pl.col("booster").fill_null(0.0),
        negation=low.is_in(list(res.negations)) | low.str.contains("n't", literal=True),
        # Python's isupper(): some cased character, none of them lower-case.
        upper=(s.str.to_uppercase() == s) & (s.str.to_lowercase() != s),
        wid=pl.col("wid").fill_null(0),
        token=tok,
        kept_raw=stripped_all.str.len_chars() <= 2,
        stripped_len=s.str.len_chars(),
    )
    out = out.with_columns(
        kind=(
            pl.when(pl.col("in_lexicon") & (pl.col("booster") == 0)).then(_SCORED).otherwise(0)
            + pl.when(pl.col("wid") == _WID["but"]).then(_BUT).otherwise(0)
            + pl.when((pl.col("booster") != 0) | pl.col("negation") | (pl.col("wid") != 0)).then(_MODIFIER).otherwise(0)
            + pl.when(pl.col("upper") | (pl.col("wid") != 0)).then(_SELF).otherwise(0)
        ).cast(pl.UInt8),
        lead=(tok.str.len_chars() - tok.str.strip_chars_start(_PUNCT).str.len_chars()),
        trail=(tok.str.len_chars() - tok.str.strip_chars_end(_PUNCT).str.len_chars()),
    )
    out = out.with_columns(
        lead=pl.when(pl.col("kept_raw")).then(0).otherwise(pl.col("lead")).cast(pl.Int32),
        trail=pl.when(pl.col("kept_raw")).then(0).otherwise(pl.col("trail")).cast(pl.Int32),
    )

    def arr(name: str, sentinel: object) -> np.ndarray:
        values = out[name].to_numpy()
        return np.append(values, np.array([sentinel], dtype=values.dtype))

    return _VocabFeatures(
        valence=arr("valence", 0.0),
        in_lexicon=arr("in_lexicon", False),
        booster=arr("booster", 0.0),
        negation=arr("negation", False),
        upper=arr("upper", False),
        wid=arr("wid", 0),
        kind=arr("kind", 0),
        lead=arr("lead", 0),
        trail=arr("trail", 0),
        stripped=frame["s"],
        stripped_len=arr("stripped_len", 0),
    )


# -- the rules, over lexicon hits -------------------------------------------------


@dataclass
class _Hits:
    index: np.ndarray  # token index of each scored lexicon word
    text: np.ndarray  # text (message) index
    valence: np.ndarray  # after every rule
    rules: dict[str, np.ndarray]  # which rules changed each one (for evidence)


def _is(wid: np.ndarray, *words: str) -> np.ndarray:
    if len(words) == 1:
        return wid == _WID[words[0]]
    return np.isin(wid, [_WID[w] for w in words])


def _score_hits(tokens: Tokens, f: _VocabFeatures) -> _Hits:
    codes = tokens.codes
    kind = f.kind[codes]
    hits = np.flatnonzero(kind & (_SCORED | _BUT))
    hit_kind = kind[hits]
    del kind
    buts = hits[(hit_kind & _BUT) != 0]
    hits = hits[(hit_kind & _SCORED) != 0]
    text = tokens.text_of(hits)
    valence = f.valence[codes[hits]]
    n = len(hits)
    rules = {name: np.zeros(n, dtype=bool) for name in ("negated", "boosted", "dampened", "caps", "but")}
    # Most lexicon words have no modifier in reach: only the others need the rules.
    # (Looking across a message boundary only sends a word down the full path.)
    near_modifier = (f.kind[codes[hits]] & _SELF) != 0
    for k in range(1, 4):
        near_modifier |= (f.kind[codes[np.maximum(hits - k, 0)]] & _MODIFIER) != 0
    complex_ = np.flatnonzero(near_modifier)
    if len(complex_):
        v, sub_rules = _apply_rules(tokens, f, hits[complex_], text[complex_])
        valence[complex_] = v
        for name, flags in sub_rules.items():
            rules[name][complex_] = flags

    # Contrastive "but": the first one in the message splits it.
    if len(buts):
        but_text = tokens.text_of(buts)
        first_but = np.full(tokens.n_texts, -1, dtype=np.int64)
        uniq, first = np.unique(but_text, return_index=True)
        first_but[uniq] = buts[first]
        fb = first_but[text]
        has_but = (fb >= 0) & (hits != fb)
        valence = np.where(has_but, np.where(hits < fb, valence * 0.5, valence * 1.5), valence)
        rules["but"] = has_but
    return _Hits(hits, text, valence, rules)


def _apply_rules(tokens: Tokens, f: _VocabFeatures, hits: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """VADER's sentiment_valence for lexicon words with a modifier in reach."""
    res = vader()
    n_scalar, c_incr = res.n_scalar, res.c_incr
    codes = tokens.codes
    sentinel = len(f.valence) - 1
    pos = hits - tokens.offsets[text]
    length = tokens.lengths[text]

    def near(k: int, idx: np.ndarray, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Code of the token k places away (negative: before), or the sentinel."""
        ok = (pos + k >= 0) & (pos + k < length)
        return np.where(ok, codes[np.clip(idx + k, 0, len(codes) - 1)], sentinel)

    n1 = near(1, hits, pos, length)
    c0 = codes[hits].astype(np.int64)
    # "kind of" is a degree phrase, not the lexicon word "kind": it scores 0.
    kind_of = _is(f.wid[c0], "kind") & _is(f.wid[n1], "of")
    p1, p2, p3 = near(-1, hits, pos, length), near(-2, hits, pos, length), near(-3, hits, pos, length)
    n2 = near(2, hits, pos, length)
    w0, w1, w2, w3 = f.wid[c0], f.wid[p1], f.wid[p2], f.wid[p3]
    wn1, wn2 = f.wid[n1], f.wid[n2]
    ok1, ok2, ok3 = pos >= 1, pos >= 2, pos >= 3

    base = f.valence[c0]
    v = base.copy()
    # "no" right before another lexicon word negates that word instead.
    v = np.where(_is(w0, "no") & (n1 != sentinel) & f.in_lexicon[n1], 0.0, v)
    no_before = _is(w1, "no") | _is(w2, "no") | (_is(w3, "no") & _is(w1, "or", "nor"))
    v = np.where(no_before, base * n_scalar, v)
    negated = no_before.copy()

    cap_diff = _cap_differential(tokens, f, text, c0, (p1, p2, p3))
    caps = f.upper[c0] & cap_diff
    v = np.where(caps, np.where(v > 0, v + c_incr, v - c_incr), v)
    boosted = np.zeros(len(v), dtype=bool)
    dampened = np.zeros(len(v), dtype=bool)

    for k, pk, ok, damp in ((1, p1, ok1, 1.0), (2, p2, ok2, 0.95), (3, p3, ok3, 0.9)):
        active = ok & ~f.in_lexicon[pk]
        b = f.booster[pk]
        s = np.where(v < 0, -b, b)
        s = np.where((b != 0) & f.upper[pk] & cap_diff, np.where(v > 0, s + c_incr, s - c_incr), s)
        v = np.where(active, v + s * damp, v)
        boosted |= active & (b > 0)
        dampened |= active & (b < 0)
        if k == 1:
            flip = active & f.negation[p1]
            v = np.where(flip, v * n_scalar, v)
        elif k == 2:
            never_so = _is(w2, "never") & _is(w1, "so", "this")
            without_doubt = _is(w2, "without") & _is(w1, "doubt")
            flip = active & ~never_so & ~without_doubt & f.negation[p2]
            v = np.where(active & never_so, v * 1.25, np.where(flip, v * n_scalar, v))
        else:
            # VADER's precedence: (never and so/this) or (previous word so/this).
            amplify = (_is(w3, "never") & _is(w2, "so", "this")) | _is(w1, "so", "this")
            without_doubt = _is(w3, "without") & (_is(w2, "doubt") | _is(w1, "doubt"))
            flip = active & ~amplify & ~without_doubt & f.negation[p3]
            v = np.where(active & amplify, v * 1.25, np.where(flip, v * n_scalar, v))
            v = _special_idioms(v, active, (w3, w2, w1, w0, wn1, wn2), (n1 != sentinel, n2 != sentinel))
        negated |= flip

    # "least" negates, except in "at least" / "very least".
    least1 = ~f.in_lexicon[p1] & _is(w1, "least")
    least_flip = np.where(ok2, least1 & ~_is(w2, "at", "very"), ok1 & least1)
    v = np.where(least_flip, v * n_scalar, v)
    negated |= least_flip
    v = np.where(kind_of, 0.0, v)
    return v, {"negated": negated, "boosted": boosted, "dampened": dampened, "caps": caps}


def _cap_differential(tokens: Tokens, f: _VocabFeatures, text: np.ndarray, c0: np.ndarray, before: tuple[np.ndarray, ...]) -> np.ndarray:
    """VADER's is_cap_diff (some but not all tokens in capitals), computed only
    for the messages where a capitalized lexicon or degree word makes it matter."""
    needs = f.upper[c0].copy()
    for pk in before:
        needs |= f.upper[pk] & (f.booster[pk] != 0)
    if not needs.any():
        return np.zeros(len(text), dtype=bool)
    rows = np.unique(text[needs])
    upper = f.upper[tokens.codes[tokens.texts_of(rows)]].astype(np.int64)
    lens = tokens.lengths[rows]
    upper_count = segment_sum(upper, np.concatenate([[0], np.cumsum(lens)]))
    # A capitalized word exists in these messages, so they differ exactly
    # when some token is not in capitals.
    differs = np.zeros(tokens.n_texts, dtype=bool)
    differs[rows] = upper_count < lens
    return differs[text]


def _special_idioms(v: np.ndarray, active: np.ndarray, w: tuple[np.ndarray, ...], has_next: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """VADER's _special_idioms_check, run at the third look-back step."""
    res = vader()
    w3, w2, w1, w0, wn1, wn2 = w

    def match(seq: tuple[np.ndarray, ...], phrase: str) -> np.ndarray:
        words = phrase.split()
        if len(words) != len(seq) or any(word not in _WID for word in words):
            return np.zeros(len(v), dtype=bool)
        out = np.ones(len(v), dtype=bool)
        for arr, word in zip(seq, words, strict=True):
            out &= arr == _WID[word]
        return out

    # The first matching sequence wins: apply them last to first.
    sequences = [(w1, w0), (w2, w1, w0), (w2, w1), (w3, w2, w1), (w3, w2)]
    replaced = np.full(len(v), np.nan)
    for seq in reversed(sequences):
        for phrase, value in res.special_cases.items():
            replaced = np.where(match(seq, phrase), value, replaced)
    for seq, ok in (((w0, wn1), has_next[0]), ((w0, wn1, wn2), has_next[1])):
        for phrase, value in res.special_cases.items():
            replaced = np.where(ok & match(seq, phrase), value, replaced)
    v = np.where(active & ~np.isnan(replaced), replaced, v)
    # Multi-word degree phrases ("kind of", "sort of", "just enough") before the word.
    for seq in ((w3, w2, w1), (w3, w2), (w2, w1)):
        for phrase, value in res.boosters.items():
            if " " in phrase:
                v = np.where(active & match(seq, phrase), v + value, v)
    return v


# -- public scoring ---------------------------------------------------------------


@dataclass
class SentimentResult:
    compound: np.ndarray  # per text
    hits: _Hits
    tokens: Tokens
    features: _VocabFeatures


def _punctuation_counts(texts: pl.Series, tokens: Tokens, emoji: Tokens) -> tuple[np.ndarray, np.ndarray]:
    """'!' and '?' per text, counted as VADER does: after emoji replacement
    (two emoji descriptions hold a '!')."""
    counts = pl.DataFrame({"t": texts}).select(
        b=pl.col("t").str.count_matches("!", literal=True).fill_null(0),
        q=pl.col("t").str.count_matches("?", literal=True).fill_null(0),
    )
    bangs = counts["b"].to_numpy().astype(np.int64)
    questions = counts["q"].to_numpy().astype(np.int64)
    if emoji is not tokens:
        extra = "".join(k for k, d in vader().emojis.items() if "!" in d)
        if extra:
            bangs = bangs + texts.str.count_matches(f"[{extra}]").fill_null(0).to_numpy().astype(np.int64)
        extra_q = "".join(k for k, d in vader().emojis.items() if "?" in d)
        if extra_q:
            questions = questions + texts.str.count_matches(f"[{extra_q}]").fill_null(0).to_numpy().astype(np.int64)
    return bangs, questions


def score_texts(texts: pl.Series, tokens: Tokens | None = None) -> SentimentResult:
    """VADER compound score of every text (and the lexicon hits behind it);
    ``tokens``: ``tokenize(texts)`` when already at hand."""
    texts = texts.cast(pl.String).fill_null("")
    plain = tokens if tokens is not None else tokenize(texts)
    tokens = plain.expand(_emoji_expansion)
    f = _features(tokens)
    hits = _score_hits(tokens, f)
    n = tokens.n_texts
    total = np.bincount(hits.text, weights=hits.valence, minlength=n) if len(hits.text) else np.zeros(n)
    bangs, questions = _punctuation_counts(texts, plain, tokens)
    amp = np.minimum(bangs, 4) * 0.292 + np.where(questions > 1, np.where(questions <= 3, questions * 0.18, 0.96), 0.0)
    total = np.where(total > 0, total + amp, np.where(total < 0, total - amp, total))
    compound = np.round(total / np.sqrt(total * total + 15.0), 4)
    return SentimentResult(compound, hits, tokens, f)


def compound(texts: pl.Series | list[str]) -> pl.Series:
    """The compound score of each text, as a Float64 Series."""
    series = texts if isinstance(texts, pl.Series) else pl.Series(texts, dtype=pl.String)
    return pl.Series("sentiment", score_texts(series).compound, dtype=pl.Float64)


# Texts longer than this (bytes) have their emoji sliced in Python (see _emoji_texts).
_LONG_TEXT_BYTES = 8192


def _emoji_texts(content: pl.Series, message: np.ndarray, start: np.ndarray, end: np.ndarray) -> pl.Series:
    """``content[message[i]][start[i]:end[i]]`` for every i: polars'
    ``str.slice`` for short texts; for long ones a Python slice of the text
    made a str once, because ``str.slice`` walks a text from its first
    character to the offset, so an emoji-dense long message cost time
    quadratic in its length (160,000 emoji: 4.9 s, 320,000: 14.8 s)."""
    src = content.gather(pl.Series(message))
    long = (src.str.len_bytes() > _LONG_TEXT_BYTES).to_numpy()
    out = src.str.slice(pl.Series(np.where(long, 0, start)), pl.Series(np.where(long, 0, end - start)))
    if long.any():
        rows = np.flatnonzero(long)
        ids = message[rows]
        distinct = np.unique(ids)
        whole = dict(zip(distinct.tolist(), content.gather(pl.Series(distinct)).to_list(), strict=True))
        # A loop over the emoji of long texts only (few); a str slices code points in O(1).
        spans = zip(ids.tolist(), start[rows].tolist(), end[rows].tolist(), strict=True)
        out = out.scatter(pl.Series(rows), pl.Series([whole[m][i:j] for m, i, j in spans], dtype=pl.String))
    return out


def _evidence(messages: pl.DataFrame, result: SentimentResult) -> pl.DataFrame:
    """One row per lexicon word that moved a score: the word as VADER saw it
    (surrounding punctuation stripped), with the rules that changed it."""
    hits, tokens, features = result.hits, result.tokens, result.features
    moved = np.flatnonzero(hits.valence != 0)
    if not len(moved):
        return pl.DataFrame(schema=EVIDENCE_SCHEMA)
    idx = hits.index[moved]
    code = tokens.codes[idx]
    start, end = tokens.spans(idx)
    start = start + features.lead[code]
    end = end - features.trail[code]
    rows = pl.Series(hits.text[moved])
    # The text is the stripped vocabulary entry, except for words that came
    # from an emoji description: their span is the emoji, read from content.
    text = features.stripped.gather(pl.Series(code))
    from_emoji = np.flatnonzero((end - start) != features.stripped_len[code])
    if len(from_emoji):
        emoji_texts = _emoji_texts(messages["content"], hits.text[moved][from_emoji], start[from_emoji], end[from_emoji])
        text = text.scatter(pl.Series(from_emoji), emoji_texts)
    # The category ("positive"/"negative", then "+rule" for each rule that
    # changed the word, in rule order) of each of the 2^(rules + 1)
    # combinations, gathered by a bit code per hit: one gather, where
    # building each hit's string took a when/then per rule (6x the time).
    names = list(hits.rules)
    code = (hits.valence[moved] > 0).astype(np.int64)
    for bit, name in enumerate(names, start=1):
        code |= hits.rules[name][moved].astype(np.int64) << bit
    labels = [("positive" if c & 1 else "negative") + "".join("+" + name for bit, name in enumerate(names, start=1) if c >> bit & 1)
              for c in range(1 << (len(names) + 1))]  # fmt: skip
    return pl.DataFrame(
        {
            "conversation_id": messages["conversation_id"].gather(rows),
            "idx": messages["idx"].gather(rows),
            "analyzer": pl.repeat(NAME, len(moved), eager=True),
            "category": pl.Series(labels, dtype=pl.String).gather(code),
            "start": start.astype(np.int32),
            "end": end.astype(np.int32),
            "text": text,
        }
    ).cast(EVIDENCE_SCHEMA)


def conversation_sentiment(messages: pl.DataFrame, scores: np.ndarray, tokens: Tokens) -> pl.DataFrame:
    """First/last non-empty user turn's score per conversation; one row per
    conversation in input order (sorted by conversation_id, idx, as every
    analyzer's input is)."""
    segments = Segments.of(messages)
    spoken = (messages["role"] == "user").to_numpy() & (tokens.lengths > 0)
    first, last = segments.first_where(spoken), segments.last_where(spoken)
    start = gather_or_null(scores, first)
    end = gather_or_null(scores, last)
    return pl.DataFrame({"conversation_id": segments.ids, "sentiment_start": start, "sentiment_end": end}).with_columns(
        sentiment_change=pl.col("sentiment_end") - pl.col("sentiment_start")
    )


class SentimentAnalyzer:
    """VADER-compatible compound sentiment per message, and the user's arc."""

    name = NAME

    @property
    def version(self) -> str:
        # The lexicon is part of the definition: a different vaderSentiment
        # lexicon is a different analyzer.
        return f"{RULES_VERSION}+vader.{vader().digest}"

    def score(self, batch: Batch | pl.DataFrame, context: dict[str, Scores] | None = None) -> Scores:
        batch = Batch.of(batch, context)
        messages, plain = batch.messages, batch.tokens
        result = score_texts(messages["content"], plain)
        return Scores(
            messages=messages.select("conversation_id", "idx").with_columns(
                pl.Series("sentiment", result.compound, dtype=pl.Float64)
            ),
            conversations=conversation_sentiment(messages, result.compound, plain),
            evidence=_evidence(messages, result),
        )


SENTIMENT = SentimentAnalyzer()

__all__ = ["SENTIMENT", "SentimentAnalyzer", "compound", "score_texts", "vader"]

"""The vectorized VADER scorer against the reference implementation, and the
user's sentiment arc against the synthetic generator's planted ground truth."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from pe_toolkit import synth
from pe_toolkit.analysis import evaluate
from pe_toolkit.analysis.base import MESSAGES_SCHEMA
from pe_toolkit.analysis.sentiment import SENTIMENT, compound, score_texts, vader
from pe_toolkit.analysis.text import tokenize

EDGE_CASES = Path(__file__).parent / "fixtures" / "sentiment_edge_cases.txt"


@functools.cache
def reference() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def ref_scores(texts: list[str]) -> np.ndarray:
    return np.array([reference().polarity_scores(t)["compound"] for t in texts])


def edge_cases() -> tuple[list[str], list[bool]]:
    """(texts, known_deviation) from the fixture; escapes \\n and \\t are decoded,
    a leading '!' marks a case where we knowingly differ from VADER."""
    texts, deviations = [], []
    for line in EDGE_CASES.read_text("utf-8").split("\n")[:-1]:
        if line.startswith("#"):
            continue
        deviation = line.startswith("!")
        line = line[1:] if deviation else line
        texts.append(line.replace("\\n", "\n").replace("\\t", "\t"))
        deviations.append(deviation)
    return texts, deviations


@functools.cache
def sample() -> tuple[pl.DataFrame, dict[str, dict]]:
    rows, truth = [], {}
    for conv in synth.generate(2000, seed=7):
        truth[conv["id"]] = conv["metadata"]["synthetic"]
        rows += [(conv["id"], i, m["role"], m["content"]) for i, m in enumerate(conv["messages"])]
    return pl.DataFrame(rows, schema=MESSAGES_SCHEMA, orient="row"), truth


def test_edge_cases_agree_with_the_reference():
    texts, deviations = edge_cases()
    assert len(texts) >= 40
    ours = compound(texts).to_numpy()
    ref = ref_scores(texts)
    assert np.corrcoef(ours, ref)[0, 1] >= 0.95
    exact = [(t, o, r) for t, o, r, dev in zip(texts, ours, ref, deviations, strict=True) if not dev and abs(o - r) > 1e-4]
    assert not exact, exact


def test_sample_agrees_with_the_reference():
    messages, _ = sample()
    texts = messages["content"].to_list()
    ours = compound(texts).to_numpy()
    ref = ref_scores(texts)
    assert np.corrcoef(ours, ref)[0, 1] >= 0.95
    # The only known difference is VADER's list.index() quirk in its "but"
    # rule (see pe_toolkit.analysis.sentiment); everything else is exact.
    same = np.abs(ours - ref) <= 1e-4
    assert same.mean() >= 0.99
    assert all(re.search(r"\bbut\b", texts[i], re.I) for i in np.flatnonzero(~same))


WORDS = ["good", "bad", "not", "very", "kind", "of", "but", "never", "so", "no", "least", "at", "GREAT", "sad",
         "happy", "hate", "love", "don't", "isn't", "extremely", "the", "shit", "kiss", "death", "without", "doubt",
         "ok", "ok.", ":)", ":(", "!!", "?", "??", "(good)", "HAPPY!", "😁", "💔x", "barely", "sort"]  # fmt: skip
SPACES = [" ", "  ", "\n", "\t", "\u00a0", " \r\n "]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SPACES)), max_size=14))
def test_random_texts_match_the_reference_and_spans_are_exact(parts):
    text = "".join(w + s for w, s in parts)
    result = score_texts(pl.Series([text]))
    ref = ref_scores([text])[0]
    if not re.search(r"(?i)(^|\s)but(\s|$)", text):
        assert result.compound[0] == pytest.approx(ref, abs=1e-4)
    assert -1.0 <= result.compound[0] <= 1.0
    frame = pl.DataFrame({"conversation_id": ["c"], "idx": [0], "role": ["user"], "content": [text]}, schema=MESSAGES_SCHEMA)
    for row in SENTIMENT.score(frame).evidence.iter_rows(named=True):
        assert text[row["start"] : row["end"]] == row["text"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("ab😁 .!\n\t\u2003\u00a0")), max_size=30), min_size=1, max_size=5))
def test_tokenize_splits_like_str_split_with_exact_spans(texts):
    tokens = tokenize(pl.Series(texts, dtype=pl.String))
    for i, text in enumerate(texts):
        lo, hi = tokens.offsets[i], tokens.offsets[i + 1]
        words = [tokens.vocab[int(c)] for c in tokens.codes[lo:hi]]
        assert words == text.split()
        start, end = tokens.spans(np.arange(lo, hi))
        assert [text[s:e] for s, e in zip(start, end, strict=True)] == words
        # The same spans when the caller names each token's text (the learned evidence does).
        known_start, known_end = tokens.spans(np.arange(lo, hi), texts=np.full(hi - lo, i))
        assert known_start.tolist() == start.tolist() and known_end.tolist() == end.tolist()


def test_spans_of_tokens_asked_alone_or_together_are_the_same():
    """A token's span whether it is asked for with parts of replaced tokens
    (other whitespace, an emoji's words) or alone after them, where no token
    asked about is a part and the splice only shifts indices."""
    texts = ["a\u2003b c d", "x  y\u00a0z w", "", "plain words only", "e\u2003f\u2003g h", "😁 ok 💔x"]
    tokens = tokenize(pl.Series(texts, dtype=pl.String))
    assert tokens._splices
    everything = np.arange(tokens.n_tokens)
    start, end = tokens.spans(everything)
    for t in everything.tolist():
        one_start, one_end = tokens.spans(np.array([t]))
        assert (one_start[0], one_end[0]) == (start[t], end[t])
    rng = np.random.default_rng(3)
    for _ in range(20):
        some = np.sort(rng.choice(tokens.n_tokens, size=rng.integers(1, tokens.n_tokens), replace=False))
        some_start, some_end = tokens.spans(some)
        assert some_start.tolist() == start[some].tolist() and some_end.tolist() == end[some].tolist()
    text_of = np.searchsorted(tokens.offsets, everything, side="right") - 1
    assert [texts[i][s:e] for i, s, e in zip(text_of, start, end, strict=True)] == [w for x in texts for w in x.split()]


def test_evidence_names_the_words_and_rules():
    frame = pl.DataFrame(
        {"conversation_id": ["c", "c"], "idx": [0, 1], "role": ["user", "user"], "content": ["I am NOT happy,  really.", "Thanks :) 😁"]},
        schema=MESSAGES_SCHEMA,
    )
    ev = SENTIMENT.score(frame).evidence
    happy = ev.filter(pl.col("text") == "happy").row(0, named=True)
    assert happy["category"].startswith("negative") and "negated" in happy["category"]
    assert (happy["idx"], happy["start"], happy["end"]) == (0, 9, 14)
    emoji = ev.filter((pl.col("idx") == 1) & (pl.col("text") == "😁"))
    assert emoji.height >= 1  # the emoji's description words point back at the emoji
    assert set(ev["analyzer"]) == {"sentiment"}


def test_conversation_arc_uses_first_and_last_non_empty_user_turns():
    frame = pl.DataFrame(
        {
            "conversation_id": ["a"] * 5 + ["b"],
            "idx": [0, 1, 2, 3, 4, 0],
            "role": ["system", "user", "assistant", "user", "user", "assistant"],
            "content": ["You are kind.", "I feel awful.", "I'm glad you came.", "I feel great!", "  ", "Hello"],
        },
        schema=MESSAGES_SCHEMA,
    )
    scores = SENTIMENT.score(frame)
    a = scores.conversations.filter(pl.col("conversation_id") == "a").row(0, named=True)
    awful, great = compound(["I feel awful.", "I feel great!"]).to_list()
    assert (a["sentiment_start"], a["sentiment_end"]) == (awful, great)
    assert a["sentiment_change"] == pytest.approx(great - awful)
    b = scores.conversations.filter(pl.col("conversation_id") == "b").row(0, named=True)
    assert b["sentiment_start"] is None and b["sentiment_change"] is None
    assert scores.messages.height == frame.height and scores.messages["sentiment"].null_count() == 0


def test_version_names_the_lexicon():
    assert SENTIMENT.version.endswith(vader().digest)
    assert len(vader().lexicon) > 7000 and "good" in vader().lexicon


def _arc_class(x: pl.Expr) -> pl.Expr:
    return pl.when(x >= 0.05).then(pl.lit("positive")).when(x <= -0.05).then(pl.lit("negative")).otherwise(pl.lit("neutral"))


def test_planted_sentiment_arc_is_recovered_on_the_sample():
    messages, truth = sample()
    convs = SENTIMENT.score(messages).conversations
    gold = pl.DataFrame(
        {"conversation_id": list(truth), "start": [t["sentiment"]["start"] for t in truth.values()], "end": [t["sentiment"]["end"] for t in truth.values()]}
    )
    c = convs.join(gold, on="conversation_id").with_columns(
        ps=_arc_class(pl.col("sentiment_start")), pe=_arc_class(pl.col("sentiment_end"))
    )
    labels = ["negative", "neutral", "positive"]
    start = evaluate(c["ps"], c["start"], labels=labels)
    end = evaluate(c["pe"], c["end"], labels=labels)
    # Measured on this sample (docs/metrics.md): start accuracy 0.70, kappa 0.35;
    # end accuracy 0.78, kappa 0.63. VADER reads "neutral" openers that describe
    # a bad situation as negative, hence the weaker start.
    assert start.accuracy >= 0.65 and start.kappa >= 0.30
    assert end.accuracy >= 0.72 and end.kappa >= 0.58
    positive_end = evaluate(c["pe"] == "positive", c["end"] == "positive", scores=c["sentiment_end"])
    assert positive_end.auroc >= 0.95
    arc = {"negative": -1, "neutral": 0, "positive": 1}
    planted = c.select(pl.col("end").replace_strict(arc) - pl.col("start").replace_strict(arc)).to_series().to_numpy()
    assert np.corrcoef(planted, c["sentiment_change"].to_numpy())[0, 1] >= 0.65


def _replaced_by_characters(vocab: list[str | None], emojis: dict[str, str]) -> list[list[dict] | None]:
    """VADER's replacement character by character (the previous
    implementation), with each part's span in the token."""
    out: list[list[dict] | None] = []
    for token in vocab:
        if token is None or not any(ch in emojis for ch in token):
            out.append(None)
            continue
        chars: list[tuple[str, int]] = []
        for pos, ch in enumerate(token):
            if ch in emojis:
                chars += [(" ", pos)] if pos else []
                chars += [(c, pos) for c in emojis[ch]]
            else:
                chars.append((ch, pos))
        parts, word = [], []
        for ch, pos in [*chars, (" ", -1)]:
            if ch.isspace():
                if word:
                    parts.append({"text": "".join(c for c, _ in word), "start": word[0][1], "end": word[-1][1] + 1})
                word = []
            else:
                word.append((ch, pos))
        out.append(parts)
    return out


_EMOJI_TOKEN = st.lists(st.sampled_from([*"😀😁😭🙂🤣❤", *"ab'!é中", "\u00a0", "\u2003", "\u200d", "\ufe0f", "🇺"]), max_size=10).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_EMOJI_TOKEN, st.none()), min_size=1, max_size=12))
def test_emoji_parts_are_vaders_replacement_with_exact_spans(vocab):
    from pe_toolkit.analysis.emoji_expansion import expand_emoji

    emojis = vader().emojis
    assert expand_emoji(pl.Series(vocab, dtype=pl.String), emojis).to_list() == _replaced_by_characters(vocab, emojis)
    # Descriptions with several spaces, a trailing or leading space, none at all.
    odd = {"😀": "grinning  face", "😁": "beam ", "😭": "", "🙂": " lead"}
    assert expand_emoji(pl.Series(vocab, dtype=pl.String), odd).to_list() == _replaced_by_characters(vocab, odd)


def test_a_long_run_of_emoji_scores_as_vader_with_no_work_per_character():
    # One token of 320,000 emoji took 3.7 s: VADER's replacement ran as a
    # Python loop over its 4.5 million description characters.
    import sys

    texts = ["😀" * 300, "so 😭😭😭" * 3 + "ok😀😀x", "a😁b c😭" * 50]
    assert np.array_equal(compound(texts).to_numpy(), ref_scores(texts))  # the reference is slow on long runs
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event == "c_call"

    sys.setprofile(count)
    try:
        ours = compound(["😀" * 20_000])
    finally:
        sys.setprofile(None)
    assert ours.to_list() == [1.0]
    assert calls < 20_000, calls  # before: 722,316 (a few per character)

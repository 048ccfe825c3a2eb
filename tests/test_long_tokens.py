"""One very long token (a megabyte of digits in a request, issue 15 part 8)
goes through the analyzers in linear time. The fast paths for long strings
must give exactly what the plain definitions give."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings, strategies as st

from pe_toolkit.analysis.duplicates import fnv1a64
from pe_toolkit.learn.features import char_grams_of

ALPHABET = st.sampled_from("ab9 é日")
# Lengths around the thresholds (64 characters for n-grams, 256 bytes for hashing).
WORDS = st.lists(st.text(ALPHABET, max_size=700), min_size=1, max_size=6)


def _char_grams_plain(words: pl.Series, lo: int, hi: int) -> list[tuple[int, str]]:
    out = []
    for i, word in enumerate(words.to_list()):
        padded = f" {word} "
        out += [(i, padded[s : s + n]) for n in range(lo, hi + 1) for s in range(len(padded) - n + 1)]
    return sorted(out)


def _fnv_plain(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@settings(max_examples=60, deadline=None)
@given(WORDS, st.sampled_from([(3, 5), (1, 2), (2, 4)]))
def test_char_grams_of_long_words_are_every_n_gram(words, sizes):
    series = pl.Series(words, dtype=pl.String)
    got = char_grams_of(series, *sizes)
    assert sorted(zip(got["i"].to_list(), got["gram"].to_list())) == _char_grams_plain(series, *sizes)


@settings(max_examples=60, deadline=None)
@given(WORDS)
def test_fnv_of_long_strings_is_fnv(words):
    assert [int(h) for h in fnv1a64(pl.Series(words, dtype=pl.String))] == [_fnv_plain(w) for w in words]


def test_a_megabyte_token_is_scored(tmp_path):
    from pe_toolkit.analysis import analyze_frame

    text = "0123456789" * 100_000
    frame = pl.DataFrame({"conversation_id": ["c", "c"], "idx": pl.Series([0, 1], dtype=pl.Int32),
                          "role": ["user", "assistant"], "content": [text, "ok"]})  # fmt: skip
    scores = analyze_frame(frame)
    assert scores.messages.height == 2 and scores.conversations.height == 1


def test_an_emoji_dense_long_message_has_exact_evidence():
    # Sentiment's evidence for a word of an emoji's description is the emoji,
    # read from content with polars' str.slice, which walks the text from
    # its start: quadratic, this 1.4-million-character message took 33 s
    # (measured), under 1 s after; the time is benchmarks/bench_long_messages.py's
    # to measure, this test checks the spans of the long path and the short one.
    from pe_toolkit.analysis.sentiment import SENTIMENT

    long_text = "I am happy 😀 but sad 😢, " * 50_000 + "😀 " * 100_000
    texts = [long_text, "so happy 😀", "😢😢 really sad"]
    frame = pl.DataFrame({"conversation_id": ["c", "c", "d"], "idx": pl.Series([0, 1, 0], dtype=pl.Int32),
                          "role": ["user", "assistant", "user"], "content": texts})  # fmt: skip
    evidence = SENTIMENT.score(frame).evidence
    content = {("c", 0): texts[0], ("c", 1): texts[1], ("d", 0): texts[2]}
    emoji = 0
    for cid, idx, start, end, text in evidence.select("conversation_id", "idx", "start", "end", "text").iter_rows():
        assert content[(cid, idx)][start:end] == text
        emoji += text in ("😀", "😢")
    assert emoji == 50_000 * 2 + 100_000 + 1 + 2


PARAGRAPH = "I hear you 😊. That sounds really hard, doesn't it? How are you feeling about it? Are you safe? Please call 988. "


def test_a_long_reply_has_the_evidence_of_its_paragraphs():
    # Empathy and safety read each cue's context by slicing the texts; a long
    # message's evidence must be its paragraphs' evidence, shifted. (Its time
    # and memory, quadratic before, are benchmarks/bench_long_messages.py's.)
    from pe_toolkit.analysis.empathy import EMPATHY
    from pe_toolkit.analysis.safety import SAFETY

    copies = 300
    frame = pl.DataFrame({"conversation_id": ["a", "a", "b", "b"], "idx": pl.Series([0, 1, 0, 1], dtype=pl.Int32),
                          "role": ["user", "assistant"] * 2,
                          "content": ["I want to die.", PARAGRAPH, "I want to die.", PARAGRAPH * copies]})  # fmt: skip
    for analyzer in (EMPATHY, SAFETY):
        evidence = analyzer.score(frame).evidence.filter(pl.col("idx") == 1).select("conversation_id", "category", "start", "end", "text")
        one = evidence.filter(pl.col("conversation_id") == "a").drop("conversation_id")
        assert one.height > 0
        shifted = pl.concat([one.with_columns(pl.col("start", "end") + k * len(PARAGRAPH)) for k in range(copies)])
        got = evidence.filter(pl.col("conversation_id") == "b").drop("conversation_id")
        assert got.sort("start", "end", "category").equals(shifted.sort("start", "end", "category")), analyzer.name

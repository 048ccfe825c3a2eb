"""The lexicon-matching helpers of analysis/patterns/, each on its own:
folding keeps offsets, pattern translation, lexicon validation, the
matcher's way back to its entry, spans against Python's re, code bit masks."""

from __future__ import annotations

import re

import polars as pl
import pytest
from hypothesis import example, given, strategies as st

from pe_toolkit.analysis.patterns.codes import bits_to_lists, code_bits
from pe_toolkit.analysis.patterns.context import clause_prefix, content_words
from pe_toolkit.analysis.patterns.folding import END_MARK, MARK, fold_ascii
from pe_toolkit.analysis.patterns.lexicon import Entry, check_patterns, load_lexicon
from pe_toolkit.analysis.patterns.matcher import Matcher, sorted_entries
from pe_toolkit.analysis.patterns.spans import _spans_of, _split_map, find_spans, find_spans_in_parts, original_text, windows
from pe_toolkit.analysis.patterns.translate import lower_pattern, rust_pattern, spaces_to_runs
from pe_toolkit.errors import AnalysisError


@given(st.lists(st.text(max_size=40) | st.none(), max_size=8))
def test_folding_is_ascii_one_character_for_one(texts):
    folded, changed = fold_ascii(pl.Series(texts, dtype=pl.String))
    for original, out, flag in zip(texts, folded.to_list(), changed.to_list(), strict=True):
        original = original or ""
        assert len(out) == len(original) and out.isascii()
        assert MARK not in out and END_MARK not in out and "\x00" not in out
        assert flag == (out != original or "\x00" in original)


def test_folding_maps_typography_and_keeps_foreign_letters_word_characters():
    folded, _ = fold_ascii(pl.Series(["I\u2019m \u201cfine\u201d \u2014 zo\u00eb\u2026"]))
    assert folded.to_list() == ['I\'m "fine" - zox.']


def test_translation_for_lower_case_ascii_and_whitespace_runs():
    assert lower_pattern(r"I \S+ Feel\B") == r"i \S+ feel\B"
    assert rust_pattern(r"\bhi\s[^a]\w(?i:x)") == r"(?-u:\b)hi[ \t\r\n][^\x{80}-\x{10FFFF}a][A-Za-z0-9_](?i-u:x)"
    assert rust_pattern(r"[\d\s]") == r"[0-9 \t\r\n]"
    assert spaces_to_runs(r"so [ a] tired\ ") == r"so[ \t\r\n]+[ a][ \t\r\n]+tired\ "


def test_a_space_marked_optional_is_an_optional_run():
    # Until safety v14 " ?" was a run made lazy: "weed ?killer" missed "weedkiller".
    assert spaces_to_runs("weed ?killer") == r"weed[ \t\r\n]*?killer"
    assert spaces_to_runs("end ?") == r"end[ \t\r\n]*?"
    assert spaces_to_runs("a [ ]?b") == r"a[ \t\r\n]+[ ]?b"  # a class keeps its own "?"
    whole = re.compile(f"^(?:{spaces_to_runs('weed ?killer')})$")
    assert all(whole.match(t) for t in ("weedkiller", "weed killer", "weed \n killer"))
    assert not whole.match("weed-killer")


def test_lexicons_load_with_macros_expanded_and_examples_matching():
    lexicon = load_lexicon("empathy")
    assert lexicon.entries and len(lexicon.digest) == 12
    for entry in lexicon.entries:
        assert not re.search(r"\{[A-Z][A-Z0-9_]*\}", entry.pattern)
        assert entry.category in lexicon.categories
    with pytest.raises(AnalysisError, match="missing from the package"):
        load_lexicon("no_such_lexicon")


def _entry(index: int, pattern: str, category: str, **fields) -> Entry:
    return Entry("test", index, category, pattern, pattern, fields)


def test_matcher_finds_entries_in_priority_order_and_classifies_matches_back():
    low = _entry(0, "feel sad", "general", priority=5)
    high = _entry(1, "feel sad(?:dened)?", "specific", priority=1)
    ordered = sorted_entries(([low, high], 9))
    assert ordered == [high, low]
    matcher = Matcher(ordered)
    texts = matcher.prepare(fold_ascii(pl.Series(["I FEEL   sad today", "felt saddened", "I feel saddened"]))[0])
    spans = find_spans(texts, matcher.regex)
    assert spans.select("row", "start", "end").rows() == [(0, 2, 12), (2, 2, 15)]
    assert matcher.classify(spans["text"]).to_list() == [0, 0]
    assert matcher.classify(pl.Series(["not an entry"])).to_list() == [None]
    assert matcher.frame([("priority", 0, pl.Int64)])["priority"].to_list() == [1, 5]
    with pytest.raises(AnalysisError):
        Matcher([])


# Entries whose matches overlap and chain across parts: in two-entry parts
# "ab" wins over "b c x" in "ab c x", whose part then never reports "c x".
# Some supply their own boundaries; "\s" must read a form feed as polars
# does (not a space), and a long chain must not make the merge quadratic.
_CHAIN = ["ab", "x+b?", "b c x", "c x", "a", "b", r"\s*c\s", "(?:ab|b) ?c", r"x\s*$"]


@given(st.lists(st.text(alphabet="abcx \x0c", max_size=24), max_size=6))
@example(["ab c x", "b c x ab c x", "ab x\x0c", "ab c " * 40])
def test_a_lexicon_scanned_in_parts_matches_as_one_regex(texts):
    """Scanned in parts (the crisis lexicon's regex outgrows the engine's
    cache in one), the spans are those of the one alternation: the earlier
    part wins at one start, and a row whose parts' matches chain is scanned
    again whole."""
    entries = [_entry(i, p, "c", boundary=i % 3 != 0) for i, p in enumerate(_CHAIN)]
    matcher = Matcher(entries)
    series = pl.Series(texts, dtype=pl.String)
    one = find_spans(series, matcher.regex)
    assert "|".join(matcher.regexes(3)) == matcher.regex
    for most in (1, 2, 3, 5, len(entries)):
        assert find_spans_in_parts(series, matcher.regexes(most), lambda: matcher.whole).equals(one), most
    # The whole alternation in Python's re finds what polars finds.
    by_re = [(r, m.start(), m.end()) for r, t in enumerate(texts) for m in matcher.whole.finditer(t)]
    assert by_re == one.select("row", "start", "end").rows()


def test_the_whole_alternation_is_compiled_only_for_rows_whose_parts_chain():
    """Compiling the whole alternation in Python's re is costly (the crisis
    lexicon's: 0.35 s), so it is asked for only when a row must be scanned
    again: not when the parts' spans do not overlap."""
    matcher = Matcher([_entry(i, p, "c") for i, p in enumerate(_CHAIN)])
    asked: list[int] = []

    def whole():
        asked.append(1)
        return matcher.whole

    plain = pl.Series(["a", "x c", "nothing here", ""], dtype=pl.String)
    assert find_spans_in_parts(plain, matcher.regexes(2), whole).equals(find_spans(plain, matcher.regex))
    assert not asked
    chained = pl.Series(["ab c x"], dtype=pl.String)
    assert find_spans_in_parts(chained, matcher.regexes(2), whole).equals(find_spans(chained, matcher.regex))
    assert asked


def test_a_pattern_that_does_not_compile_is_named_by_lexicon_and_entry():
    good, bad = _entry(0, "feel sad", "general"), _entry(1, "feel (sad", "general")
    with pytest.raises(AnalysisError, match=r"lexicons/test.toml entry 2: bad pattern"):
        Matcher([good, bad])
    with pytest.raises(AnalysisError, match=r"lexicons/test.toml entry 2: bad pattern"):
        check_patterns([good, bad])
    check_patterns([good])
    # Every shipped lexicon's entries compile (checked where they are compiled, not at load).
    for name in ("crisis", "responses", "cues", "empathy", "skills", "pii"):
        check_patterns(load_lexicon(name).entries)


@given(st.lists(st.text(alphabet="ab \u2019x", max_size=30), max_size=6))
def test_spans_are_the_matches_python_finds(texts):
    folded, _ = fold_ascii(pl.Series(texts, dtype=pl.String))
    regex = r"a+b|(?-u:\b)x"
    spans = find_spans(folded, regex)
    expected = [(row, m.start(), m.end(), m.group()) for row, text in enumerate(folded.to_list()) for m in re.finditer(r"a+b|\bx", text)]
    assert spans.rows() == expected
    assert original_text(spans, pl.Series(texts, dtype=pl.String)).to_list() == [t[s:e] for t, (_, s, e, _) in zip((texts[r] for r, *_ in expected), expected, strict=True)]


def test_split_halves_give_the_single_pass_spans():
    texts = pl.Series([f"row {i} has ab and aab" for i in range(101)])
    whole = _spans_of(texts, "a+b")
    assert _split_map(texts, lambda part: _spans_of(part, "a+b"), min_rows=1).equals(whole)
    with pytest.raises(AnalysisError, match="does not compile"):
        find_spans(texts, "(")


def test_windows_and_clause_context():
    folded = pl.Series(["I was fine, but now I want to sleep forever. Bye"])
    spans = find_spans(folded, "sleep forever")
    around = windows(spans, folded, before=30, after=4)
    assert around.select("pre", "post").rows() == [("I was fine, but now I want to ", ". By")]
    assert around.select(clause_prefix(pl.col("pre"))).item() == "now I want to "
    assert content_words(pl.Series(["what happened with your sister"]), frozenset({"what", "with", "your"})).to_list() == [2]


def test_code_bits_round_trip():
    codes = ("a", "b", "c")
    bits = code_bits(3, pl.Series([0, 0, 2, 2], dtype=pl.UInt32), pl.Series(["c", "a", "b", "zz"]), codes)
    assert bits.tolist() == [0b101, 0, 0b010]
    assert bits_to_lists(bits, codes, "codes").to_list() == [["a", "c"], [], ["b"]]


def test_char_slices_turn_only_the_long_non_ascii_rows_into_python_strings(monkeypatch):
    # Before, one long non-ASCII row made the whole text column Python
    # strings (texts.to_list()): 100,000 short rows for one long one.
    from pe_toolkit.analysis.patterns.spans import LONG_TEXT_BYTES, char_slices

    long_text = "é" + "ab ç " * (LONG_TEXT_BYTES // 4)
    texts = ["plain ascii text", "café au lait", long_text, "naïve", long_text[:-7] + "ü", *["x y z"] * 2000]
    spans = [(0, 6, 5), (1, 2, 4), (2, 0, 3), (2, 9_001, 12), (3, 1, 3), (4, 20_000, 9), (2, 5, 0), (1, 10, 9), (500, 2, 3)]
    rows, start, length = (pl.Series(c, dtype=d) for c, d in zip(zip(*spans, strict=True), (pl.UInt32, pl.Int32, pl.Int32), strict=True))
    converted: list[int] = []
    to_list = pl.Series.to_list

    def counting(self: pl.Series) -> list:
        if self.dtype == pl.String:
            converted.append(len(self))
        return to_list(self)

    monkeypatch.setattr(pl.Series, "to_list", counting)
    got = char_slices(pl.Series(texts, dtype=pl.String), rows, start, length)
    monkeypatch.undo()
    assert got.to_list() == [texts[r][a : a + n] for r, a, n in spans]
    assert converted == [2]  # the two long non-ASCII messages, once each

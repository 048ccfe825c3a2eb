"""PII redaction on real text it was not written against: the development
data in ``../shared/data`` (or ``$PE_VALIDATION_DATA``; see its README).
Each test skips with the reason when the data is absent. Nothing from the
data is copied here: the tests assert properties and counts.

Reddit, ``reddit27_dev.csv``: 3,469 posts, each one message. ESConv,
``esconv_dev_strategy.tsv``: 6,328 turns of 211 emotional-support chats,
grouped by conversation. Each test failed before the privacy audit's fixes
(the figures "before" are in the comments); the single-reader spot check of
precision is in docs/metric_cards_empathy_safety.md, PII section.
"""

from __future__ import annotations

import re

import polars as pl
import pytest

from pe_toolkit.analysis.pii import find_pii, redact_frame
from pe_toolkit.learn import devdata


def _data(load):
    try:
        return load()
    except devdata.DevDataMissing as exc:
        pytest.skip(f"development data absent: {exc}")


@pytest.fixture(scope="module")
def posts() -> pl.DataFrame:
    return _data(devdata.reddit27).select(pl.col("text").alias("content"))


@pytest.fixture(scope="module")
def turns() -> pl.DataFrame:
    return devdata.esconv_messages(_data(devdata.esconv)).select("conversation_id", "idx", "content")


def _left_over(frame: pl.DataFrame, spans: pl.DataFrame, redacted: list[str], group: str | None) -> list[str]:
    """Names found in a conversation (or a post) that are still in its
    redacted text, as the same whole word."""
    keys = frame[group].to_list() if group else list(range(frame.height))
    found: dict[object, set[str]] = {}
    for r in spans.filter(pl.col("kind") == "name").iter_rows(named=True):
        found.setdefault(keys[r["row"]], set()).add(r["text"])
    left = []
    for key, text in zip(keys, redacted):
        for name in found.get(key, ()):
            if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text):
                left.append(name)
    return left


def test_esconv_names_are_redacted_throughout_their_conversation(turns) -> None:
    # Before: 4 occurrences of names found in a conversation were left in
    # it (a name found in one turn stayed in the others: redaction was per
    # message), besides the lower-case repeats the spread now also takes.
    spans = find_pii(turns)
    redacted = redact_frame(turns)["content"].to_list()
    assert spans.filter(pl.col("kind") == "name").height >= 10
    assert _left_over(turns, spans, redacted, "conversation_id") == []


def test_reddit_names_are_redacted_at_every_occurrence_in_a_post(posts) -> None:
    # Before: 28 repeats of a name found in the same post were left (a
    # second "Sean" after "Sean Blackwell").
    spans = find_pii(posts)
    redacted = redact_frame(posts)["content"].to_list()
    assert _left_over(posts, spans, redacted, None) == []


def test_esconv_common_words_are_not_names(turns) -> None:
    # Before: 18 names on ESConv, 15 of them sentence-initial words ("Ah"
    # seven times, "Job", "Rock", "Banks"); the names found now are given
    # after a cue ("my name is ...") or followed by a verb.
    names = find_pii(turns["content"]).filter(pl.col("kind") == "name")
    assert names.height <= 8, names["text"].to_list()
    interjections = {"ah", "oh", "uh", "um", "hmm", "aw", "lol", "wow", "ok", "okay", "yeah"}
    assert not {t.lower() for t in names["text"]} & interjections


def test_reddit_ranges_are_not_phones_and_usernames_are_handles(posts) -> None:
    spans = find_pii(posts)
    texts = posts["content"].to_list()
    phones = spans.filter(pl.col("kind") == "phone")
    after = [texts[r["row"]][r["end"] : r["end"] + 12] for r in phones.iter_rows(named=True)]
    # Before: "600-1000 per month" was a phone number.
    assert not [a for a in after if re.match(r"\s*(?:per|a month|a year|calories|mg|iu)\b", a, re.I)]
    handles = spans.filter(pl.col("kind") == "social_handle")["text"].to_list()
    # Before: no "u/name" was found (4 handles, all "@name").
    assert sum(1 for h in handles if re.match(r"/?u/", h)) >= 5
    assert not [h for h in handles if re.match(r"/?r/", h)]

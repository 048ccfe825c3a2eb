"""Regressions found by auditing the quality layer against docs/metrics.md on
messy conversations: crisis replies after an interjection, recommendations
over the metrics' own turns, near-duplicate false positives on short chat
replies, emoji-only replies."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import polars as pl
import pytest

from pe_toolkit.analysis import validate_conversation
from pe_toolkit.analysis.base import MESSAGES_SCHEMA, Scores
from pe_toolkit.analysis.duplicates import signatures, stable_hash64
from pe_toolkit.analysis.quality import QUALITY
from pe_toolkit.analysis.readability import vocab_frame
from pe_toolkit.analysis.sentiment import SENTIMENT
from pe_toolkit.analysis.text import tokenize


def _frame(rows: list[tuple[str, str]], cid: str = "x") -> pl.DataFrame:
    return pl.DataFrame([(cid, i, r, c) for i, (r, c) in enumerate(rows)], schema=MESSAGES_SCHEMA, orient="row")


def _context(m: pl.DataFrame, levels: dict[int, tuple[int, int, int, list[str]]], severity: dict[int, int],
             checks: dict[int, bool]) -> dict[str, Scores]:  # fmt: skip
    """Empathy and safety scores in the contract's columns, set by hand."""
    e_rows, s_rows = [], []
    for cid, idx, role, _ in m.iter_rows():
        a = role == "assistant"
        er, ip, ex, skills = levels.get(idx, (0, 0, 0, [])) if a else (None, None, None, None)
        e_rows.append((cid, idx, er, ip, ex, skills))
        s_rows.append((cid, idx, severity.get(idx, 0) if role == "user" else None, 0 if role == "user" else None,
                       checks.get(idx, False) if a else None, False if a else None, False if a else None,
                       [] if a else None, []))  # fmt: skip
    e = pl.DataFrame(e_rows, schema={"conversation_id": pl.String, "idx": pl.Int32, "emotional_reactions": pl.Int8,
                                     "interpretations": pl.Int8, "explorations": pl.Int8, "skills": pl.List(pl.String)}, orient="row")  # fmt: skip
    s = pl.DataFrame(s_rows, schema={"conversation_id": pl.String, "idx": pl.Int32, "crisis_severity": pl.Int8, "abuse_severity": pl.Int8,
                                     "safety_check": pl.Boolean, "crisis_resources": pl.Boolean, "professional_help": pl.Boolean,
                                     "harmful": pl.List(pl.String), "pii": pl.List(pl.String)}, orient="row")  # fmt: skip
    disclosures = sum(1 for v in severity.values() if v > 0)
    sc = pl.DataFrame({"conversation_id": [m["conversation_id"][0]], "disclosures": [disclosures], "responses_appropriate": [1.0 if disclosures else None]},
                      schema={"conversation_id": pl.String, "disclosures": pl.Int32, "responses_appropriate": pl.Float64})  # fmt: skip
    return {"sentiment": SENTIMENT.score(m), "empathy": Scores(e, sc.select("conversation_id")), "safety": Scores(s, sc)}


# -- n: a crisis reply is the first assistant message after the disclosure -----------


@pytest.mark.parametrize("between", [("user", "I mean it."), ("system", "Session note.")])
def test_a_crisis_reply_after_an_interjection_is_not_a_scored_turn(between):
    # docs/metrics.md: n leaves out "the reply to a flagged disclosure" carrying a
    # safety check; the safety analyzer's reply is the first assistant message
    # after the disclosure, whoever spoke in between.
    m = _frame([("user", "I want to end my life."), between, ("assistant", "Are you safe right now?"),
                ("user", "I think so."), ("assistant", "Okay.")])  # fmt: skip
    levels = {2: (0, 0, 1, ["closed_question"]), 4: (2, 2, 0, ["validation"])}
    row = QUALITY.score(m, _context(m, levels, severity={0: 3}, checks={2: True})).conversations.row(0, named=True)
    assert row["scored_turns"] == 1  # message 4 only
    er, ip, ex = 2 / 2, 2 / 2, 0 / 2  # the levels of message 4 / 2
    mi = (1 + 1) / (1 + 0 + 2)  # validation is good; the crisis reply's closed question is not counted
    assert row["therapeutic_accuracy"] == pytest.approx(0.05 + 0.65 * (er + ip + ex) / 3 + 0.30 * mi)
    assert row["emotional_authenticity"] == pytest.approx(0.05 + 0.50 * er + 0.30 * ip + 0.15 * (row_sentiment_end(m) + 1) / 2)


def row_sentiment_end(m: pl.DataFrame) -> float:
    return SENTIMENT.score(m).conversations["sentiment_end"][0]


def test_only_the_first_assistant_message_after_a_disclosure_is_its_reply():
    m = _frame([("user", "I want to end my life."), ("assistant", "Are you safe?"), ("user", "Yes."), ("assistant", "Are you safe now?")])
    row = QUALITY.score(m, _context(m, {}, severity={0: 3}, checks={1: True, 3: True})).conversations.row(0, named=True)
    assert row["scored_turns"] == 1  # message 3 answers no disclosure


# -- recommendations read the metrics' scored turns ---------------------------------


def test_no_mechanism_advice_about_turns_the_metrics_do_not_score():
    # The only assistant message comes before any user message (a role-order
    # violation): n = 0, so ER/IP/EX are the 0.5 prior, and advice that
    # "emotional_reactions averages 0.0" would contradict the scores.
    result = validate_conversation({"id": "x", "messages": [{"role": "assistant", "content": "Hello, how can I help?"},
                                                           {"role": "user", "content": "I feel sad."}]})  # fmt: skip
    assert not any("averages" in r for r in result["recommendations"]), result["recommendations"]
    assert any("alternating" in r for r in result["recommendations"])


def test_no_mechanism_advice_about_a_crisis_reply():
    convo = {"id": "y", "messages": [{"role": "user", "content": "I want to kill myself."}, {"role": "user", "content": "I mean it."},
                                     {"role": "assistant", "content": "Are you safe right now? Please call 988."}]}  # fmt: skip
    result = validate_conversation(convo, include_messages=True)
    scores = {s["idx"]: s for s in result["message_scores"]}
    assert scores[0]["reply_appropriate"] is True  # the safety analyzer's reply is message 2
    assert not any("averages" in r for r in result["recommendations"]), result["recommendations"]


# -- near duplicates: short replies sharing their first words -------------------------


def _bands(texts: list[str]) -> np.ndarray:
    tokens = tokenize(pl.Series(texts))
    return signatures(tokens, np.arange(len(texts)), stable_hash64(vocab_frame(tokens)["norm"]))[1]


def _shingles(text: str) -> set[tuple[str, str]]:
    return set(itertools.pairwise(["<s>", *text.split()]))


def test_short_replies_sharing_an_opening_are_not_near_duplicates():
    # docs/metrics.md: at most 0.05 of pairs with shingle Jaccard below 0.5 are
    # flagged. Chat replies are short and often open alike ("i am so sorry ...").
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(3000)]
    openers = ["i am so sorry", "have you", "that sounds", "how are you", "i hear you"]
    texts, jaccard = [], []
    for _ in range(2000):
        opener = rng.choice(openers)
        a, b = (" ".join([opener, *(rng.choice(vocab) for _ in range(rng.randint(3, 8)))]) for _ in range(2))
        texts += [a, b]
        sa, sb = _shingles(a), _shingles(b)
        jaccard.append(len(sa & sb) / len(sa | sb))
    j = np.array(jaccard)
    bands = _bands(texts)
    assert (bands[:, 0] != 0).all()  # all at least MIN_SHINGLES long: LSH applies
    flagged = ((bands[0::2] == bands[1::2]) & (bands[0::2] != 0)).any(axis=1)
    assert (j < 0.5).all()
    assert flagged.mean() <= 0.05, flagged.mean()


def test_real_chat_near_duplicate_candidates_are_similar():
    from pe_toolkit.learn import devdata

    try:
        es = devdata.esconv()
    except devdata.DevDataMissing as exc:
        pytest.skip(str(exc))
    m = devdata.esconv_messages(es).filter(pl.col("role") == "assistant")
    texts = m["content"].to_list()
    bands = _bands(texts)
    conv = m["conversation_id"].to_numpy()
    # The normalized words (lower-cased, surrounding punctuation removed), as hashed.
    words = [" ".join(w for w in (re.sub(r"^\W+|\W+$", "", w) for w in t.lower().split())) for t in texts]
    rows = pl.DataFrame({"r": np.repeat(np.arange(len(texts)), bands.shape[1]), "band": pl.Series(bands.ravel(), dtype=pl.UInt64)}).filter(pl.col("band") != 0)
    pairs = rows.join(rows, on="band").filter(pl.col("r") < pl.col("r_right")).select("r", "r_right").unique()
    distinct = set()
    for a, b in pairs.iter_rows():  # a few hundred candidate pairs: a Python check of each is the reference
        if conv[a] != conv[b] and words[a] != words[b]:
            distinct.add(tuple(sorted((words[a], words[b]))))  # a pair of texts once, however often each recurs
    jaccard = [len(sa & sb) / len(sa | sb) for sa, sb in ((_shingles(a), _shingles(b)) for a, b in distinct)]
    assert jaccard
    low = sum(j < 0.5 for j in jaccard)
    # Measured: 3 of 17 distinct pairs below 0.5 (J 0.40, 0.40, 0.44), none
    # below 0.3; before, 603 of 695 were below 0.5.
    assert low / len(jaccard) <= 0.25, (low, len(jaccard))
    assert min(jaccard) >= 0.3, sorted(jaccard)[:5]


# -- emoji-only replies ----------------------------------------------------------------


def test_different_emoji_only_replies_are_not_repeats_or_one_text():
    m = _frame([("user", "hi"), ("assistant", "😊"), ("user", "ok"), ("assistant", "😢"), ("user", "so"), ("assistant", " 😢! ")])
    q = QUALITY.score(m).messages
    assert q["repeated_turn"].to_list() == [False, False, False, False, False, True]
    hashes = q["text_hash"].to_list()
    assert hashes[1] != hashes[3] == hashes[5]
    # Words still compare without their punctuation and case.
    q2 = QUALITY.score(_frame([("user", "a"), ("assistant", "I hear you."), ("user", "b"), ("assistant", "i HEAR you")])).messages
    assert q2["repeated_turn"].to_list() == [False, False, False, True]


# -- a conversation with nothing to rate --------------------------------------------


def test_a_conversation_without_an_assistant_message_has_no_metrics_and_no_tier():
    # A Reddit post imported as a conversation has no reply to rate: v2 gave it
    # the 0.5 priors and a tier (every post a "standard" conversation).
    from pe_toolkit.analysis import analyze_frame
    from pe_toolkit.schema import QUALITY_METRICS

    m = pl.concat([
        _frame([("user", "I can't sleep and I feel hopeless about everything.")], cid="post"),
        _frame([("system", "Journal."), ("user", "Today was better."), ("user", "Still tired.")], cid="journal"),
        _frame([("user", "I feel so alone lately."), ("assistant", "That sounds really hard. What has been going on?")], cid="chat"),
    ])  # fmt: skip
    conv = analyze_frame(m).conversations.sort("conversation_id")
    rows = {r["conversation_id"]: r for r in conv.iter_rows(named=True)}
    for cid in ("post", "journal"):
        assert rows[cid]["scored_turns"] == 0
        assert {name: rows[cid][name] for name in (*QUALITY_METRICS, "tier")} == dict.fromkeys((*QUALITY_METRICS, "tier"))
    assert rows["chat"]["tier"] is not None
    assert all(rows["chat"][name] is not None for name in QUALITY_METRICS)


def test_a_conversation_without_assistant_words_has_no_length_ratio():
    # v3 stored a post's length_ratio as 0 (0 assistant words / n user words):
    # a reply that does not exist read as a very short one. With no reply, or
    # only an empty one, there is no length to compare (as reading ease is null).
    m = pl.concat([
        _frame([("user", "I can't sleep and I feel hopeless about everything.")], cid="post"),
        _frame([("user", "Are you there?"), ("assistant", "   ")], cid="empty_reply"),
        _frame([("user", "One two three four."), ("assistant", "Five six.")], cid="chat"),
    ])  # fmt: skip
    conv = QUALITY.score(m).conversations
    rows = {r["conversation_id"]: r for r in conv.iter_rows(named=True)}
    assert (rows["post"]["assistant_words"], rows["post"]["length_ratio"]) == (0, None)
    assert (rows["empty_reply"]["assistant_turns"], rows["empty_reply"]["length_ratio"]) == (1, None)
    assert rows["chat"]["length_ratio"] == 0.5


def test_a_stored_post_has_a_null_length_ratio(tmp_path):
    # What the notebooks, exports and the warehouse read: the stored score, on a
    # real cache of synthetic conversations and imported posts.
    from pe_toolkit.store import Store

    from ._widgets_support import add_posts, build_store

    path = build_store(tmp_path, n=10, seed=4, analyze=True)
    posts = add_posts(path, 3)
    with Store(path, read_only=True) as s:
        stored = s.sql("SELECT conversation_id, length_ratio, assistant_words FROM current_conversation_scores")
    post_rows = stored.filter(pl.col("conversation_id").is_in(posts))
    assert post_rows.height == 3 and post_rows["length_ratio"].null_count() == 3
    chats = stored.filter(~pl.col("conversation_id").is_in(posts))
    assert chats.height == 10 and (chats["length_ratio"] > 0).all()

"""Quality: structure, readability, duplicates, the six local metrics and the tier."""

from __future__ import annotations

import functools
import itertools
import random

import numpy as np
import polars as pl
import pytest

from pe_toolkit import synth
from pe_toolkit.analysis import evaluate
from pe_toolkit.analysis.base import MESSAGES_SCHEMA, Scores
from pe_toolkit.analysis.duplicates import corpus_shares, fnv1a64, signatures, stable_hash64
from pe_toolkit.analysis.metrics import TIER_BOUNDS, tier_expression, with_metrics
from pe_toolkit.analysis.quality import QUALITY
from pe_toolkit.analysis.readability import syllables_expr, vocab_frame
from pe_toolkit.analysis.sentiment import SENTIMENT
from pe_toolkit.analysis.text import tokenize
from pe_toolkit.schema import QUALITY_METRICS, TIERS


def frame(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    """(conversation_id, role, content) rows -> a messages frame in the analyzers'
    input order (conversation_id, idx), idx numbering each conversation's rows."""
    out, seen = [], {}
    for cid, role, content in rows:
        out.append((cid, seen.setdefault(cid, 0), role, content))
        seen[cid] += 1
    return pl.DataFrame(out, schema=MESSAGES_SCHEMA, orient="row").sort("conversation_id", "idx")


@functools.cache
def sample() -> tuple[pl.DataFrame, tuple[dict, ...]]:
    convs = tuple(synth.generate(2000, seed=7))
    rows = [(c["id"], i, m["role"], m["content"]) for c in convs for i, m in enumerate(c["messages"])]
    return pl.DataFrame(rows, schema=MESSAGES_SCHEMA, orient="row"), convs


# -- structure ---------------------------------------------------------------------


def test_planted_structural_defects_are_found_on_the_sample():
    messages, convs = sample()
    flags = QUALITY.score(messages).messages
    gold = pl.DataFrame(
        [(c["id"], d["message_index"], d["kind"]) for c in convs for d in c["metadata"]["synthetic"]["defects"]],
        schema={"conversation_id": pl.String, "idx": pl.Int32, "kind": pl.String},
        orient="row",
    )
    for kind, column in (("empty_turn", "empty_turn"), ("repeated_turn", "repeated_turn"), ("role_order", "role_order_violation")):
        planted = gold.filter(pl.col("kind") == kind).select("conversation_id", "idx", truth=pl.lit(True))
        j = flags.select("conversation_id", "idx", column).join(planted, on=["conversation_id", "idx"], how="left")
        truth = j["truth"].fill_null(False)
        e = evaluate(j[column], truth)
        assert truth.sum() >= 40, kind  # the sample plants enough to measure
        # Measured: precision and recall 1.0 for all three kinds.
        assert e.per_class[True].precision >= 0.98 and e.per_class[True].recall >= 0.98, (kind, str(e))


def test_structure_rules_on_a_handmade_conversation():
    m = frame(
        [
            ("a", "system", "Be kind."),
            ("a", "assistant", "Hello!"),  # before the first user message
            ("a", "user", "Hi."),
            ("a", "user", "Are you there?"),  # second user message in a row
            ("a", "assistant", "Yes, I am here."),
            ("a", "user", "   "),  # empty
            ("a", "assistant", "yes  I am HERE"),  # same normalized text as the previous assistant turn
            ("b", "user", "One two three four."),
            ("b", "assistant", "Five six."),
        ]
    )
    q = QUALITY.score(m)
    msgs = q.messages.filter(pl.col("conversation_id") == "a")
    assert msgs["role_order_violation"].to_list() == [False, True, False, True, False, False, False]
    assert msgs["empty_turn"].to_list() == [False, False, False, False, False, True, False]
    assert msgs["repeated_turn"].to_list() == [False, False, False, False, False, False, True]
    a = q.conversations.filter(pl.col("conversation_id") == "a").row(0, named=True)
    assert (a["user_turns"], a["assistant_turns"], a["empty_turns"], a["repeated_turns"], a["role_order_violations"]) == (3, 3, 1, 1, 2)
    b = q.conversations.filter(pl.col("conversation_id") == "b").row(0, named=True)
    assert (b["user_words"], b["assistant_words"], b["length_ratio"]) == (4, 2, 0.5)
    assert b["role_order_violations"] == 0 and b["empty_turns"] == 0
    ev = q.evidence
    assert set(ev["category"]) == {"empty_turn", "repeated_turn", "role_order_violation"}
    assert ev.filter(pl.col("category") == "repeated_turn").row(0, named=True)["text"] == "yes  I am HERE"


# -- readability and diversity -----------------------------------------------------

# Dictionary syllable counts (Merriam-Webster) of common words.
SYLLABLES = {
    "the": 1, "cake": 1, "table": 2, "beautiful": 3, "readability": 5, "people": 2, "simple": 2, "yes": 1,
    "happy": 2, "feeling": 2, "anxious": 2, "anxiety": 4, "depression": 3, "therapist": 3, "conversation": 4,
    "understand": 3, "support": 2, "together": 3, "everything": 3, "difficult": 3, "situation": 4,
    "important": 3, "family": 3, "hope": 1, "alone": 2, "lonely": 2, "worried": 2, "sorry": 2, "morning": 2,
    "because": 2, "problem": 2, "little": 2, "something": 2, "someone": 2, "however": 3, "yesterday": 3,
    "tomorrow": 3, "area": 3, "idea": 3, "education": 4, "university": 5, "emotional": 4, "exercise": 3,
    "medicine": 3, "doctor": 2, "friend": 1, "school": 1, "through": 1, "thought": 1, "strength": 1,
    "quiet": 2, "science": 2, "create": 2, "hospital": 3, "relationship": 4, "overwhelmed": 3, "stressed": 1,
    "panic": 2, "sleep": 1, "breathe": 1, "wanted": 2, "needed": 2, "special": 2, "initial": 3, "social": 2,
    "actually": 4, "usually": 4, "society": 4, "helped": 1, "talked": 1, "tried": 1, "cried": 1, "used": 1,
    "safely": 2, "completely": 3, "really": 2, "media": 3, "trivial": 3,
}  # fmt: skip


def test_syllable_heuristic_on_dictionary_counts():
    got = pl.DataFrame({"w": list(SYLLABLES)}).select(syllables_expr(pl.col("w"))).to_series().to_list()
    right = sum(g == want for g, want in zip(got, SYLLABLES.values(), strict=True))
    # Measured 0.96 (the rules were written looking at this list, so this is optimistic).
    assert right / len(SYLLABLES) >= 0.9


def test_reading_ease_and_counts_worked_by_hand():
    m = frame(
        [
            ("a", "user", "Hi"),
            ("a", "assistant", "The cat sat on the mat."),  # 6 words, 1 sentence, 6 syllables
            ("a", "assistant", "Is it happy? It is"),  # 5 words, 2 sentences (last unpunctuated), 6 syllables
        ]
    )
    q = QUALITY.score(m)
    assert q.messages["words"].to_list() == [1, 6, 5]
    assert q.messages["sentences"].to_list() == [1, 1, 2]
    assert q.messages["syllables"].to_list() == [1, 6, 6]
    a = q.conversations.row(0, named=True)
    words, sentences, syllables = 11, 3, 12
    assert a["reading_ease"] == pytest.approx(206.835 - 1.015 * words / sentences - 84.6 * syllables / words)
    assert a["words_per_sentence"] == pytest.approx(11 / 3)
    # assistant words: the cat sat on the mat is it happy it is -> 8 distinct of 11
    assert a["lexical_diversity"] == pytest.approx(8 / 11)



def test_a_message_ending_in_emoji_or_an_emoticon_has_its_last_sentence_counted():
    # The rule adds one sentence for a message whose last *word* does not end
    # one; it read the last token, so a trailing emoji, emoticon or lone
    # "..." (not words) left "I hear you 💙" with 3 words and 0 sentences,
    # and its conversation with no words_per_sentence.
    m = frame(
        [
            ("a", "user", "Hi"),
            ("a", "assistant", "I hear you 💙"),  # 3 words, 1 sentence
            ("a", "assistant", "That sounds sad :("),  # 3 words, 1 sentence
            ("a", "assistant", "Thanks. 🙂"),  # 1 word, 1 sentence (the last word ends it)
            ("a", "assistant", "Take your time ..."),  # 3 words, 1 sentence
            ("a", "assistant", "👍 ..."),  # no words, no sentence
        ]
    )
    q = QUALITY.score(m)
    assert q.messages["words"].to_list() == [1, 3, 3, 1, 3, 0]
    assert q.messages["sentences"].to_list() == [1, 1, 1, 1, 1, 0]
    a = q.conversations.row(0, named=True)
    assert a["words_per_sentence"] == pytest.approx(10 / 4)
    syllables = int(q.messages["syllables"][1:].sum())
    assert a["reading_ease"] == pytest.approx(206.835 - 1.015 * 10 / 4 - 84.6 * syllables / 10)


def test_a_sentence_ended_by_an_emoji_and_its_full_stop_is_counted():
    # A token of symbols ending in '.', '!' or '?' ("🙂.") ended no sentence:
    # only a word's own '.' did, so "I hear you 🙂. You are not alone 🙂."
    # was one sentence (quality v5). It ends one when a word came since the
    # previous end; a second symbol after an end adds none.
    m = frame(
        [
            ("a", "user", "Hi"),
            ("a", "assistant", "I hear you 🙂. You are not alone 🙂."),  # 7 words, 2 sentences
            ("a", "assistant", "ok! 🙂. 🙂. fine 🙂! more words"),  # 4 words, 3 sentences
            ("a", "assistant", "Take care 💙."),  # 2 words, 1 sentence
        ]
    )
    q = QUALITY.score(m)
    assert q.messages["words"].to_list() == [1, 7, 4, 2]
    assert q.messages["sentences"].to_list() == [1, 2, 3, 1]
    assert q.conversations.row(0, named=True)["words_per_sentence"] == pytest.approx(13 / 6)


def test_punctuation_alone_ends_no_sentence():
    # A review found " ... " and " ? " counted as ends once a symbol token
    # could end a sentence; an emoticon ending in "." still does.
    m = frame(
        [
            ("a", "user", "Hi"),
            ("a", "assistant", "I don't know ... maybe we could talk later"),
            ("a", "assistant", "hmm ... ok ... sure"),
            ("a", "assistant", "I hear you :). You are not alone 🙂."),
        ]
    )
    assert QUALITY.score(m).messages["sentences"].to_list() == [1, 1, 1, 2]


# -- duplicates ----------------------------------------------------------------------


def test_hashes_are_fixed_arithmetic():
    # Published FNV-1a 64 test vectors.
    assert [int(x) for x in fnv1a64(pl.Series(["", "a", "foobar"]))] == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8]
    a, b, c = stable_hash64(pl.Series(["word", "word", "other"]))
    assert a == b != c


def _signatures(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    tokens = tokenize(pl.Series(texts))
    vocab = vocab_frame(tokens)
    return signatures(tokens, np.arange(len(texts)), stable_hash64(vocab["norm"]))


def test_text_hash_ignores_case_punctuation_and_spacing_only():
    h, _ = _signatures(["I hear you.", "i HEAR you", "  I hear\nyou!! ", "I hear you too.", "You hear I.", ""])
    assert h[0] == h[1] == h[2]
    assert len({h[0], h[3], h[4], h[5]}) == 4


def _shingles(words: list[str]) -> set[tuple[str, str]]:
    words = ["<s>", *words]
    return set(itertools.pairwise(words))


def test_minhash_lsh_follows_jaccard_similarity():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(3000)]
    texts, jaccard = [], []
    for _ in range(1200):
        a = [rng.choice(vocab) for _ in range(40)]
        b = list(a)
        for _ in range(rng.randint(0, 12)):
            b[rng.randrange(40)] = rng.choice(vocab)
        texts += [" ".join(a), " ".join(b)]
        sa, sb = _shingles(a), _shingles(b)
        jaccard.append(len(sa & sb) / len(sa | sb))
    j = np.array(jaccard)
    _, bands = _signatures(texts)
    candidate = (bands[0::2] == bands[1::2]).any(axis=1)
    # Measured on 3,000 pairs: J >= 0.9 -> 0.98, 0.8-0.9 -> 0.79, 0.5-0.6 -> 0.05, 0.3-0.5 -> 0.01.
    assert candidate[j >= 0.9].mean() >= 0.9
    assert candidate[(j >= 0.8) & (j < 0.9)].mean() >= 0.55
    assert candidate[j < 0.5].mean() <= 0.05
    _short, short_bands = _signatures(["too short", "way too short here"])
    assert (short_bands == 0).all()
    # Short unrelated texts leave most bins empty; they must not match on those.
    unrelated = [" ".join(rng.choice(vocab) for _ in range(rng.randint(5, 12))) for _ in range(2000)]
    _, b = _signatures(unrelated)
    assert not ((b[0::2] == b[1::2]) & (b[0::2] != 0)).any()


def test_corpus_shares_boilerplate_and_near_duplicates():
    # Long enough that one changed word leaves J = 0.94, detected with
    # probability 0.996 (1-(1-J^8)^6); a 20-word template's 0.83 gave 0.77.
    template = (
        "I hear how hard this week has been for you and I am glad you told me about it today, because carrying "
        "all of that on your own while still going to work and looking after everyone at home sounds exhausting, "
        "and it makes sense that you feel worn down and unsure where to start with any of it right now"
    )
    variant = template.replace("week", "month")
    m = frame(
        [
            *[(c, role, text) for c in ("a", "b", "c") for role, text in (("user", "Hi"), ("assistant", "Thanks for sharing that."))],
            ("a", "assistant", template),
            ("d", "user", "Hello"),
            ("d", "assistant", variant),  # one word changed: a near duplicate of a's message
            ("e", "user", "Hello"),
            ("e", "assistant", template),
            ("e", "assistant", template.replace("today", "just now")),  # near its own conversation only
            ("f", "user", "Hello"),
            ("f", "assistant", "Something entirely different that nobody else in this corpus would say at all"),
        ]
    )
    q = QUALITY.score(m)
    shares = corpus_shares(q.messages.join(m.select("conversation_id", "idx", "role"), on=["conversation_id", "idx"]).filter(pl.col("role") == "assistant"))
    by = {r["conversation_id"]: r for r in shares.iter_rows(named=True)}
    # "Thanks for sharing that." is in 3 conversations: boilerplate.
    assert by["b"]["boilerplate_share"] == 1.0 and by["a"]["boilerplate_share"] == 0.5
    assert by["f"]["boilerplate_share"] == 0.0 and by["f"]["near_duplicate_share"] == 0.0
    # d's variant differs from a's and e's template (other conversations): near duplicate.
    assert by["d"]["near_duplicate_share"] == 1.0
    assert by["a"]["near_duplicate_share"] == 0.5  # the template has d's variant elsewhere
    assert by["e"]["near_duplicate_share"] > 0


# -- the six metrics -----------------------------------------------------------------


def _components(**overrides: float) -> pl.DataFrame:
    base = {"turns": 4.0, "er": 0.5, "ip": 0.25, "ex": 0.75, "good": 3.0, "poor": 1.0, "unsolicited": 1.0, "harmful": 1.0,
            "defects": 0.8, "disclosures": 2.0, "inappropriate": 1.0, "end_arc": 0.9, "assistant_pii": 1.0}  # fmt: skip
    base.update(overrides)
    return pl.DataFrame({"conversation_id": ["x"], **{k: [v] for k, v in base.items()}})


def test_metric_formulas_worked_by_hand():
    row = with_metrics(_components()).row(0, named=True)
    empathy = (0.5 + 0.25 + 0.75) / 3
    mi = (3 + 1) / (3 + 1 + 2)
    ta = 0.05 + 0.65 * empathy + 0.30 * mi - 0.12 * 1
    cc = 0.97 - 0.18 * 0.8
    ea = 0.05 + 0.50 * 0.5 + 0.30 * 0.25 + 0.15 * 0.9
    cl = 0.97 - 0.20 * 1 - 0.30 * 1 / 4 - 0.25 * 1
    ss = 0.98 - 0.50 * (1 / 2) - 0.10 * 1 - 0.05 * 1
    expected = {"therapeutic_accuracy": ta, "conversation_coherence": cc, "emotional_authenticity": ea,
                "clinical_compliance": cl, "safety_score": ss,
                "overall_quality": 0.35 * ta + 0.10 * cc + 0.35 * ea + 0.10 * cl + 0.10 * ss}  # fmt: skip
    for name, value in expected.items():
        assert row[name] == pytest.approx(value), name
    # Clipping and the harm cap.
    worst = with_metrics(_components(harmful=5.0, defects=9.0, inappropriate=2.0, assistant_pii=30.0)).row(0, named=True)
    assert worst["conversation_coherence"] == 0.0 and worst["safety_score"] == 0.0
    assert worst["therapeutic_accuracy"] == pytest.approx(0.05 + 0.65 * empathy + 0.30 * mi - 0.24)
    # A missing analyzer leaves its metrics null instead of guessing.
    partial = with_metrics(_components(er=None, ip=None, ex=None)).row(0, named=True)
    assert partial["therapeutic_accuracy"] is None and partial["overall_quality"] is None and partial["tier"] is None
    assert partial["conversation_coherence"] == pytest.approx(cc)


def test_tier_bounds():
    values = [0.0, 0.589, 0.59, 0.674, 0.675, 0.745, 0.8199, 0.82, 1.0, None]
    tiers = pl.DataFrame({"q": values}, schema={"q": pl.Float64}).select(tier_expression(pl.col("q"))).to_series().to_list()
    assert tiers == ["basic", "basic", "standard", "standard", "professional", "clinical", "clinical", "research", "research", None]
    assert TIER_BOUNDS["research"] == 0.82  # the published research threshold


# -- quality over other analyzers' scores -------------------------------------------


def _context(m: pl.DataFrame, empathy: dict[int, tuple], safety: dict[int, tuple], conv: dict[str, tuple]) -> dict[str, Scores]:
    """Contract frames: empathy {idx: (er, ip, ex, skills)}, safety {idx: (severity, check, resources, help, harmful, pii)}."""
    e_rows, s_rows = [], []
    for cid, idx, role, _ in m.iter_rows():
        er, ip, ex, skills = empathy.get(idx, (None, None, None, None)) if role == "assistant" else (None, None, None, None)
        e_rows.append((cid, idx, er, ip, ex, None if er is None else (er + ip + ex) / 6, skills))
        sev, check, res, help_, harm, pii = safety.get(idx, (0, False, False, False, [], []))
        user, assistant = role == "user", role == "assistant"
        s_rows.append((cid, idx, [] if user else None, sev if user else None, check if assistant else None, res if assistant else None,
                       help_ if assistant else None, harm if assistant else None, pii))  # fmt: skip
    e = pl.DataFrame(e_rows, schema={"conversation_id": pl.String, "idx": pl.Int32, "emotional_reactions": pl.Int8, "interpretations": pl.Int8,
                                     "explorations": pl.Int8, "empathy": pl.Float64, "skills": pl.List(pl.String)}, orient="row")  # fmt: skip
    s = pl.DataFrame(s_rows, schema={"conversation_id": pl.String, "idx": pl.Int32, "crisis_categories": pl.List(pl.String),
                                     "crisis_severity": pl.Int8, "safety_check": pl.Boolean, "crisis_resources": pl.Boolean,
                                     "professional_help": pl.Boolean, "harmful": pl.List(pl.String), "pii": pl.List(pl.String)}, orient="row")  # fmt: skip
    sc = pl.DataFrame([(k, *v) for k, v in conv.items()], schema={"conversation_id": pl.String, "disclosures": pl.Int32, "responses_appropriate": pl.Float64}, orient="row")
    return {"sentiment": SENTIMENT.score(m), "empathy": Scores(e, sc.select("conversation_id")), "safety": Scores(s, sc)}


def test_quality_components_from_other_analyzers():
    m = frame(
        [
            ("x", "user", "I feel low."),
            ("x", "assistant", "That sounds heavy. What has been hardest?"),
            ("x", "user", "I want to end my life."),  # flagged disclosure
            ("x", "assistant", "Are you safe right now? You can call 988."),  # crisis reply: judged by safety
            ("x", "user", "I guess."),
            ("x", "assistant", "You should just go for a run."),
        ]
    )
    ctx = _context(
        m,
        empathy={1: (2, 1, 2, ["open_question", "validation"]), 3: (1, 0, 0, ["closed_question", "information"]), 5: (0, 0, 0, ["unsolicited_advice"])},
        safety={2: (3, False, False, False, [], []), 3: (0, True, True, False, [], []), 5: (0, False, False, False, ["minimizing"], [])},
        conv={"x": (1, 1.0)},
    )
    row = QUALITY.score(m, ctx).conversations.row(0, named=True)
    assert row["scored_turns"] == 2  # messages 1 and 5; the crisis reply is left out
    er, ip, ex = (2 + 0) / 2 / 2, (1 + 0) / 2 / 2, (2 + 0) / 2 / 2
    mi = (2 + 1) / (2 + 1 + 2)  # good: open_question, validation; poor: unsolicited_advice
    ta = 0.05 + 0.65 * (er + ip + ex) / 3 + 0.30 * mi - 0.12 * 1
    assert row["therapeutic_accuracy"] == pytest.approx(ta)
    assert row["unsolicited_advice"] == 1
    assert row["clinical_compliance"] == pytest.approx(0.97 - 0.20 - 0.30 * 1 / 2 - 0.0)
    assert row["safety_score"] == pytest.approx(0.98 - 0.0 - 0.10)
    assert row["tier"] in TIERS


def test_without_the_other_analyzers_metrics_needing_them_are_null():
    m = frame([("x", "user", "Hello"), ("x", "assistant", "Hi, how are you?")])
    row = QUALITY.score(m, {"sentiment": SENTIMENT.score(m)}).conversations.row(0, named=True)
    assert row["conversation_coherence"] == pytest.approx(0.97)
    assert row["therapeutic_accuracy"] is None and row["safety_score"] is None and row["tier"] is None


def _oracle_context(messages: pl.DataFrame, convs: tuple[dict, ...]) -> dict[str, Scores]:
    """Empathy and safety scores read off the planted ground truth: what
    perfect detectors would report, in the contract's columns."""
    emp, saf, summary = [], [], []
    for c in convs:
        t = c["metadata"]["synthetic"]
        levels = {e["message_index"]: e for e in t["empathy"]}
        codes = {e["message_index"]: e["codes"] for e in t["skills"]}
        flagged: dict[int, list[dict]] = {}
        for e in t["crisis"]:
            if e["flag"]:
                flagged.setdefault(e["message_index"], []).append(e)
        replies = {e["message_index"]: e for e in t["responses"]}
        harms = {e["message_index"]: e["kinds"] for e in t["harms"]}
        pii: dict[int, list[str]] = {}
        for e in t["pii"]:
            pii.setdefault(e["message_index"], []).append(e["kind"])
        for i, msg in enumerate(c["messages"]):
            a, u = msg["role"] == "assistant", msg["role"] == "user"
            e = levels.get(i)
            emp.append((c["id"], i, e and e["emotional_reactions"], e and e["interpretations"], e and e["explorations"], codes.get(i)))
            r = replies.get(i, {})
            saf.append((c["id"], i, max((x["severity"] for x in flagged.get(i, [])), default=0) if u else None,
                        r.get("safety_check", False) if a else None, r.get("crisis_resources", False) if a else None,
                        r.get("professional_help", False) if a else None, harms.get(i, []) if a else None, pii.get(i, [])))  # fmt: skip
        appropriate = [r["appropriate"] for r in t["responses"]]
        summary.append((c["id"], sum(map(len, flagged.values())), sum(appropriate) / len(appropriate) if appropriate else None))
    e = pl.DataFrame(emp, schema={"conversation_id": pl.String, "idx": pl.Int32, "emotional_reactions": pl.Int8, "interpretations": pl.Int8,
                                  "explorations": pl.Int8, "skills": pl.List(pl.String)}, orient="row")  # fmt: skip
    s = pl.DataFrame(saf, schema={"conversation_id": pl.String, "idx": pl.Int32, "crisis_severity": pl.Int8, "safety_check": pl.Boolean,
                                  "crisis_resources": pl.Boolean, "professional_help": pl.Boolean, "harmful": pl.List(pl.String),
                                  "pii": pl.List(pl.String)}, orient="row")  # fmt: skip
    sc = pl.DataFrame(summary, schema={"conversation_id": pl.String, "disclosures": pl.Int32, "responses_appropriate": pl.Float64}, orient="row")
    return {"sentiment": SENTIMENT.score(messages), "empathy": Scores(e, sc.select("conversation_id")), "safety": Scores(s, sc)}


def test_with_perfect_detectors_the_local_metrics_reproduce_the_api():
    """The metric formulas and the tier rule, isolated from detection errors:
    fed the planted truth, the local metrics must track the API's (which
    carry +-0.03 noise per metric)."""
    messages, convs = sample()
    q = QUALITY.score(messages, _oracle_context(messages, convs)).conversations
    api = pl.DataFrame([{"conversation_id": c["id"], "planted_tier": c["metadata"]["tier"], **{f"api_{k}": v for k, v in c["quality_metrics"].items()}} for c in convs])
    j = q.join(api, on="conversation_id")
    assert j["overall_quality"].null_count() == 0
    r = {m: np.corrcoef(j[m].to_numpy(), j[f"api_{m}"].to_numpy())[0, 1] for m in QUALITY_METRICS}
    # Measured: overall 0.98; metrics 0.94 (coherence) to 0.99.
    assert r["overall_quality"] >= 0.95, r
    assert min(r.values()) >= 0.9, r
    assert (j["overall_quality"] - j["api_overall_quality"]).abs().mean() <= 0.03
    tiers = evaluate(j["tier"], j["planted_tier"], labels=list(TIERS))
    # Tiers overlap in quality: even the API's own overall_quality through the
    # same bounds agrees with the planted tier only 58% of the time (kappa 0.47).
    ceiling = evaluate(j.select(tier_expression(pl.col("api_overall_quality"))).to_series(), j["planted_tier"], labels=list(TIERS))
    assert tiers.accuracy >= ceiling.accuracy - 0.05
    assert tiers.weighted_kappa >= 0.78


def test_real_detectors_against_the_api():
    """The whole chain on the sample: our sentiment and quality with the
    empathy and safety analyzers, against the stored (API) metrics and the
    planted tier."""
    from pe_toolkit.analysis import analyze_frame

    messages, convs = sample()
    scores = analyze_frame(messages, corpus=False)
    api = pl.DataFrame([{"conversation_id": c["id"], "planted_tier": c["metadata"]["tier"], **{f"api_{k}": v for k, v in c["quality_metrics"].items()}} for c in convs])
    j = scores.conversations.join(api, on="conversation_id")
    assert j["overall_quality"].null_count() == 0
    r = {m: np.corrcoef(j[m].to_numpy(), j[f"api_{m}"].to_numpy())[0, 1] for m in QUALITY_METRICS}
    # Measured: overall 0.975 (MAE 0.018); metrics 0.942 (coherence) to 0.985 (safety).
    assert r["overall_quality"] >= 0.95, r
    assert min(r.values()) >= 0.9, r
    assert (j["overall_quality"] - j["api_overall_quality"]).abs().mean() <= 0.03
    tiers = evaluate(j["tier"], j["planted_tier"], labels=list(TIERS))
    ceiling = evaluate(j.select(tier_expression(pl.col("api_overall_quality"))).to_series(), j["planted_tier"], labels=list(TIERS))
    # Measured: accuracy 0.594, kappa 0.479, weighted kappa 0.831 (ceiling 0.582 / 0.466 / 0.827).
    assert tiers.accuracy >= ceiling.accuracy - 0.05
    assert tiers.weighted_kappa >= 0.78

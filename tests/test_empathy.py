"""The empathy analyzer (pe_toolkit.analysis.empathy and .skills) against a
hand-labelled fixture and the synthetic sample's planted ground truth.

tests/fixtures/empathy_epitome.csv: 300 assistant replies, each with the user
message it answers, labelled with the three EPITOME levels (at least 30 per
level per mechanism) and the counselling-skill codes, written for this
purpose (not taken from the generator). A quarter (``split == holdout``) was
not looked at while the lexicons were tuned; docs/metric_cards_empathy_safety.md
reports both parts.
"""

from __future__ import annotations

import polars as pl
import pytest

from pe_toolkit.analysis import evaluate
from pe_toolkit.analysis.base import EVIDENCE_SCHEMA, MESSAGES_SCHEMA
from pe_toolkit.analysis.empathy import EMPATHY, MECHANISMS
from pe_toolkit.analysis.patterns.lexicon import load_lexicon
from pe_toolkit.analysis.skills import SKILL_CODES
from pe_toolkit.errors import InputError

from ._lexicon_support import codes, offsets_hold, pairs_frame, read_fixture, set_scores, synthetic, synthetic_scores

ROWS = read_fixture("empathy_epitome.csv")


def _frame(*turns: tuple[str, str], cid: str = "c1") -> pl.DataFrame:
    return pl.DataFrame([(cid, i, role, text) for i, (role, text) in enumerate(turns)], schema=MESSAGES_SCHEMA, orient="row")


def _reply(text: str, user: str = "I've had a hard week.") -> dict:
    return EMPATHY.score(_frame(("user", user), ("assistant", text))).messages.row(1, named=True)


@pytest.fixture(scope="module")
def scored() -> dict[str, dict]:
    messages = EMPATHY.score(pairs_frame(ROWS, "seeker", "response")).messages.filter(pl.col("idx") == 1)
    return {r["conversation_id"]: r for r in messages.iter_rows(named=True)}


def test_fixture_has_thirty_per_level_per_mechanism() -> None:
    for m in MECHANISMS:
        for level in ("0", "1", "2"):
            assert sum(r[m] == level for r in ROWS) >= 30, (m, level)


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("split", ["dev", "holdout"])
def test_levels_agree_with_labels(mechanism: str, split: str, scored: dict[str, dict]) -> None:
    rows = [r for r in ROWS if r["split"] == split]
    ev = evaluate([scored[r["id"]][mechanism] for r in rows], [int(r[mechanism]) for r in rows], labels=[0, 1, 2])
    assert ev.kappa is not None and ev.kappa >= 0.8, str(ev)
    for level, s in ev.per_class.items():
        assert s.recall >= 0.75 and s.precision >= 0.75, (level, str(ev))


def test_skill_codes_agree_with_labels(scored: dict[str, dict]) -> None:
    gold = [codes(r["skills"]) for r in ROWS]
    predicted = [set(scored[r["id"]]["skills"]) for r in ROWS]
    for code, s in set_scores(gold, predicted, SKILL_CODES).items():
        assert s["support"] >= 7, code
        assert s["f1"] >= 0.85, (code, s)
    tp = sum(len(g & p) for g, p in zip(gold, predicted, strict=True))
    micro_f1 = 2 * tp / (sum(map(len, gold)) + sum(map(len, predicted)))
    assert micro_f1 >= 0.95


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_blind_set(mechanism: str) -> None:
    """tests/fixtures/empathy_blind.csv (40 replies) was written after the
    lexicons were frozen; at first look: ER kappa 0.796, IP 0.851, EX 0.683. A few
    gaps it showed were fixed, so it is now a regression set with a lower bar."""
    rows = read_fixture("empathy_blind.csv")
    messages = EMPATHY.score(pairs_frame(rows, "seeker", "response")).messages.filter(pl.col("idx") == 1)
    by_id = {r["conversation_id"]: r for r in messages.iter_rows(named=True)}
    ev = evaluate([by_id[r["id"]][mechanism] for r in rows], [int(r[mechanism]) for r in rows], labels=[0, 1, 2])
    assert ev.kappa >= 0.7, str(ev)


def test_every_lexicon_example_scores_its_entry() -> None:
    entries = [*load_lexicon("empathy").entries, *load_lexicon("skills").entries]
    frame = pl.DataFrame([(str(i), 0, "assistant", e.example) for i, e in enumerate(entries)], schema=MESSAGES_SCHEMA, orient="row")
    rows = {r["conversation_id"]: r for r in EMPATHY.score(frame).messages.iter_rows(named=True)}
    for i, e in enumerate(entries):
        row = rows[str(i)]
        if e.lexicon == "empathy":
            assert row[e.category] >= e.get("level", 1), (e.category, e.example, row)
        elif e.category != "none":
            assert e.category in row["skills"], (e.category, e.example, row["skills"])


def test_levels_and_codes_on_clear_cases() -> None:
    r = _reply("I'm sorry to hear that. What happened?")
    assert (r["emotional_reactions"], r["interpretations"], r["explorations"]) == (1, 0, 1)
    assert r["skills"] == ["open_question"]
    r = _reply(
        "My heart goes out to you. It sounds like the move has left you feeling cut off from your friends. "
        "When you think about the old flat, what do you miss most?"
    )
    assert (r["emotional_reactions"], r["interpretations"], r["explorations"]) == (2, 2, 2)
    assert r["skills"] == ["open_question", "complex_reflection"]
    r = _reply("You should just move on.")
    assert (r["emotional_reactions"], r["interpretations"], r["explorations"]) == (0, 0, 0)
    assert r["skills"] == ["unsolicited_advice"] and r["empathy"] == 0.0
    # A safety check is a closed question, not an exploration.
    r = _reply("Are you safe right now?", user="I want to die.")
    assert r["explorations"] == 0 and r["skills"] == ["closed_question"]
    # "So what happened?" is a question, not a reflection.
    r = _reply("So what happened next?")
    assert r["interpretations"] == 0 and r["explorations"] == 1


def test_empathy_score_formula() -> None:
    r = _reply("That sounds hard. I understand. You need to stop worrying.")
    assert (r["emotional_reactions"], r["interpretations"], r["explorations"]) == (1, 1, 0)
    assert r["empathy"] == pytest.approx(2 / 6 - 0.1)


def test_columns_types_nulls_and_conversation_ratios() -> None:
    frame = _frame(
        ("system", "Be kind."),
        ("user", "My sister won't talk to me since the wedding."),
        ("assistant", "It sounds like the silence from your sister really hurts. What happened at the wedding?"),
        ("user", "We argued about money."),
        ("assistant", "Do you want to talk about it? Have you two argued about money before?"),
    )
    scores = EMPATHY.score(frame)
    m = scores.messages
    assert m.schema == pl.Schema(
        {
            "conversation_id": pl.String, "idx": pl.Int32, "emotional_reactions": pl.Int8, "interpretations": pl.Int8,
            "explorations": pl.Int8, "empathy": pl.Float64, "skills": pl.List(pl.String),
        }
    )  # fmt: skip
    assert m["interpretations"].to_list() == [None, None, 2, None, 0]
    assert m["skills"].to_list()[:2] == [None, None]
    c = scores.conversations.row(0, named=True)
    # One reflection, three questions (one open, two closed).
    assert c["reflection_question_ratio"] == pytest.approx(1 / 3)
    assert c["open_question_share"] == pytest.approx(1 / 3)
    assert c["interpretations_mean"] == pytest.approx(1.0)
    assert c["empathy_mean"] == pytest.approx(m["empathy"].drop_nulls().mean())
    assert scores.evidence.schema == pl.Schema(EVIDENCE_SCHEMA)
    no_questions = EMPATHY.score(_frame(("user", "hi"), ("assistant", "I hear you."), cid="c2")).conversations.row(0, named=True)
    assert no_questions["reflection_question_ratio"] is None and no_questions["open_question_share"] is None


def test_offsets_hold_with_non_ascii_text() -> None:
    frame = _frame(
        ("user", "Mi mamá está enferma 😢"),
        ("assistant", "Oh — I’m so sorry 💛. It sounds like you’re carrying all of Mamá’s care alone… What’s been hardest this week?"),
    )
    scores = EMPATHY.score(frame)
    assert offsets_hold(frame, scores.evidence) == 0
    r = scores.messages.row(1, named=True)
    assert r["emotional_reactions"] == 2 and r["interpretations"] == 2 and r["explorations"] >= 1


def test_empty_and_bad_input() -> None:
    scores = EMPATHY.score(pl.DataFrame(schema=MESSAGES_SCHEMA))
    assert scores.messages.height == 0 and scores.conversations.height == 0
    no_assistant = EMPATHY.score(_frame(("user", "hello")))
    assert no_assistant.conversations["empathy_mean"].to_list() == [None]
    with pytest.raises(InputError, match="lacks column"):
        EMPATHY.score(pl.DataFrame({"content": ["x"]}))


# ------------------------------------------------------------------ synthetic sample


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_synthetic_levels_agree(mechanism: str) -> None:
    conversations, _ = synthetic()
    by = {(r["conversation_id"], r["idx"]): r for r in synthetic_scores("empathy").messages.iter_rows(named=True)}
    gold, got = [], []
    for c in conversations:
        for e in c["metadata"]["synthetic"]["empathy"]:
            gold.append(e[mechanism])
            got.append(by[(c["id"], e["message_index"])][mechanism])
    ev = evaluate(got, gold, labels=[0, 1, 2])
    assert ev.n > 5000
    assert ev.kappa >= 0.85, str(ev)


def test_synthetic_skills_agree() -> None:
    conversations, _ = synthetic()
    by = {(r["conversation_id"], r["idx"]): r for r in synthetic_scores("empathy").messages.iter_rows(named=True)}
    gold, got = [], []
    for c in conversations:
        for e in c["metadata"]["synthetic"]["skills"]:
            gold.append(set(e["codes"]))
            got.append(set(by[(c["id"], e["message_index"])]["skills"]))
    for code, s in set_scores(gold, got, SKILL_CODES).items():
        # Information (psychoeducation) is the open-ended code a lexicon covers least.
        floor = 0.75 if code == "information" else 0.9
        assert s["f1"] >= floor, (code, s)


def test_synthetic_evidence_offsets() -> None:
    _, frame = synthetic()
    assert offsets_hold(frame, synthetic_scores("empathy").evidence) == 0

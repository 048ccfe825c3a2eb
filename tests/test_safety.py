"""The safety analyzer (pe_toolkit.analysis.safety) against hand-labelled
fixtures and the synthetic sample's planted ground truth.

Fixtures (written for this purpose, not taken from the generator):
tests/fixtures/safety_crisis.csv - 280 user messages, at least 30 per crisis
category, at least half of each negated, hypothetical, about someone else,
quoted/media or resolved past, plus 20 idioms ("this deadline is killing me");
tests/fixtures/safety_replies.csv - 80 assistant replies labelled for safety
check, crisis resources, professional help and harmful content. A quarter of
each file (``split == holdout``) was not looked at while the lexicons were
tuned; docs/metric_cards_empathy_safety.md reports both parts.

Safety v4 changed two definitions, not the fixtures' texts or flags: a
disclosure is a user message with ``crisis_severity > 0`` *or*
``abuse_severity > 0`` (abuse has its own scale and no longer sets
crisis_severity), and the ``severity`` column of both crisis fixtures was
relabelled row by row to the C-SSRS-aligned scale documented in
``lexicons/crisis.toml`` (passive 1, active 2, method/plan/intent 3,
imminent 4; abuse rows on the abuse scale 1 past / 2 ongoing / 3 danger).
Figures on real, human-labelled text are in tests/test_safety_real_text.py.
"""

from __future__ import annotations

import polars as pl
import pytest

from pe_toolkit.analysis import evaluate
from pe_toolkit.analysis.base import EVIDENCE_SCHEMA, MESSAGES_SCHEMA
from pe_toolkit.analysis.patterns.lexicon import load_lexicon
from pe_toolkit.analysis.safety import CRISIS_CATEGORIES, HARM_KINDS, SAFETY, SafetyAnalyzer
from pe_toolkit.errors import AnalysisError, InputError

from ._lexicon_support import (
    codes,
    high_severity_badly_answered,
    offsets_hold,
    pairs_frame,
    read_fixture,
    set_scores,
    single_frame,
    synthetic,
    synthetic_scores,
)

CRISIS = read_fixture("safety_crisis.csv")
BLIND = read_fixture("safety_crisis_blind.csv")
REPLIES = read_fixture("safety_replies.csv")
ANALYZER = SafetyAnalyzer(alert_threshold=0.8)


def _frame(*turns: tuple[str, str], cid: str = "c1") -> pl.DataFrame:
    return pl.DataFrame([(cid, i, role, text) for i, (role, text) in enumerate(turns)], schema=MESSAGES_SCHEMA, orient="row")


def _user(text: str) -> dict:
    return ANALYZER.score(_frame(("user", text))).messages.row(0, named=True)


def _levels(text: str) -> tuple[int, int]:
    """(crisis_severity, abuse_severity) of ``text`` said alone by the user."""
    row = _user(text)
    return row["crisis_severity"], row["abuse_severity"]


def _disclosed(row: dict) -> bool:
    """A kept disclosure: crisis or abuse severity above 0."""
    return (row["crisis_severity"] or 0) > 0 or (row["abuse_severity"] or 0) > 0


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def crisis_scored() -> dict[str, dict]:
    scored = ANALYZER.score(single_frame(CRISIS, "text")).messages
    return {r["conversation_id"]: r for r in scored.iter_rows(named=True)}


def test_crisis_fixture_is_balanced_as_promised() -> None:
    for category in CRISIS_CATEGORIES:
        rows = [r for r in CRISIS if r["category"] == category]
        decoys = [r for r in rows if r["flag"] == "0"]
        assert len(rows) >= 30 and len(decoys) >= len(rows) / 2, category
        assert {r["framing"] for r in decoys} >= {"negated", "third_person", "hypothetical", "quotation"}, category


def test_crisis_flags_agree_with_labels(crisis_scored: dict[str, dict]) -> None:
    for split in ("dev", "holdout"):
        rows = [r for r in CRISIS if r["split"] == split]
        ev = evaluate([_disclosed(crisis_scored[r["id"]]) for r in rows], [r["flag"] == "1" for r in rows])
        assert ev.kappa is not None and ev.kappa >= 0.9, (split, str(ev))
        assert ev.per_class[True].recall >= 0.93 and ev.per_class[True].precision >= 0.93, (split, str(ev))


@pytest.mark.parametrize("category", CRISIS_CATEGORIES)
def test_crisis_category_precision_recall(category: str, crisis_scored: dict[str, dict]) -> None:
    gold = [{r["category"]} if r["flag"] == "1" else set() for r in CRISIS]
    predicted = [set(crisis_scored[r["id"]]["crisis_categories"]) for r in CRISIS]
    s = set_scores(gold, predicted, [category])[category]
    assert s["support"] >= 15
    assert s["recall"] >= 0.85 and s["precision"] >= 0.9, s


@pytest.mark.parametrize("framing", ["negated", "third_person", "hypothetical", "quotation", "past", "idiom"])
def test_decoys_are_suppressed_by_framing(framing: str, crisis_scored: dict[str, dict]) -> None:
    rows = [r for r in CRISIS if r["framing"] == framing]
    kept = [r["text"] for r in rows if _disclosed(crisis_scored[r["id"]])]
    assert len(rows) >= 20 and len(kept) <= len(rows) * 0.05, kept


def test_severity_agrees_within_one_level(crisis_scored: dict[str, dict]) -> None:
    found = [r for r in CRISIS if r["flag"] == "1" and r["category"] != "abuse_disclosure" and crisis_scored[r["id"]]["crisis_severity"] > 0]
    got = [crisis_scored[r["id"]]["crisis_severity"] for r in found]
    gold = [int(r["severity"]) for r in found]
    assert sum(abs(a - b) <= 1 for a, b in zip(got, gold, strict=True)) / len(found) >= 0.95
    ev = evaluate(got, gold, labels=[1, 2, 3, 4])
    assert ev.accuracy >= 0.8 and ev.weighted_kappa >= 0.85, str(ev)


def test_abuse_has_its_own_scale(crisis_scored: dict[str, dict]) -> None:
    rows = [r for r in CRISIS if r["category"] == "abuse_disclosure" and r["flag"] == "1"]
    assert all(crisis_scored[r["id"]]["crisis_severity"] == 0 for r in rows)  # abuse does not set crisis_severity
    got = [crisis_scored[r["id"]]["abuse_severity"] for r in rows]
    gold = [int(r["severity"]) for r in rows]
    assert all(g > 0 for g in got)
    assert sum(a == b for a, b in zip(got, gold, strict=True)) / len(rows) >= 0.8, list(zip(got, gold, strict=True))
    # A past rape is past abuse (1), not "imminent"; threats now are current danger (3).
    assert _user("He raped me when I was 15.")["abuse_severity"] == 1
    assert _user("I was raped in college.")["abuse_severity"] == 1
    assert _user("My uncle molested me when I was seven.")["abuse_severity"] == 1
    assert _user("My boyfriend hit me again last night.")["abuse_severity"] == 2
    assert _user("My husband hits me.")["abuse_severity"] == 2
    assert _user("I'm afraid he'll kill me.")["abuse_severity"] == 3
    assert _user("He hit me again and now he's outside banging on the door.")["abuse_severity"] == 3
    assert _user("He said he'd kill me if I told anyone.")["abuse_severity"] == 3
    past = _user("He raped me when I was 15.")
    assert past["crisis_categories"] == ["abuse_disclosure"] and past["crisis_severity"] == 0
    # Resolved abuse is removed, as before.
    assert _user("My ex used to hit me, but I left years ago and I'm safe now.")["abuse_severity"] == 0


def test_severity_follows_the_cssrs_ladder() -> None:
    def sev(text: str) -> int:
        return _user(text)["crisis_severity"]

    assert sev("I wish I was dead.") == 1  # item 1, wish to be dead
    assert sev("I want to die.") == 1
    assert sev("I want to kill myself.") == 2  # item 2, non-specific active thoughts
    assert sev("I've been thinking about suicide.") == 2
    assert sev("I've looked up ways to kill myself.") == 3  # method
    assert sev("I'm going to kill myself.") == 3  # intent without a time or plan
    assert sev("I'm going to kill myself tonight.") == 4  # imminent
    assert sev("I'm going to end it.") == 3
    assert sev("I'm going to end it tonight.") == 4  # the time inside the match ("end it" needs one or a stop)
    assert sev("im gonna end it now") == 4
    assert sev("I'm going to kill myself. I've been stockpiling my pills.") == 4  # intent and preparation
    assert sev("I tried to kill myself years ago.") == 2  # lifetime attempt
    assert sev("I tried to kill myself a few weeks ago.") == 3  # recent attempt
    assert sev("I've been cutting myself again.") == 2


def test_intent_told_in_the_past_is_never_imminent() -> None:
    """C-SSRS imminence is intent now: an intent that was not carried out is
    not item 5, whatever time it names (before safety v6 these scored 4)."""

    def sev(text: str) -> int:
        return _user(text)["crisis_severity"]

    assert sev("This morning I was going to kill myself, but I called my sister instead.") == 3  # recent, not now
    assert sev("I was planning to kill myself back then.") == 0  # remote past: dropped
    assert sev("We were going to end it all together.") == 2
    # Nor does a past intent make a plan in the same message imminent.
    assert sev("I was going to kill myself. I have been stockpiling my pills.") == 3  # the preparation's own 3
    # Present intent is unchanged, also after a clause ending in "was".
    assert sev("I'm planning to kill myself. I bought the pills.") == 4
    assert sev("I am going to kill myself tonight.") == 4
    assert sev("My only thought was I'm going to kill myself tonight.") == 4
    assert sev("What I decided was I am going to end it tonight.") == 4


def test_remote_past_times_and_named_abusers_without_a_time() -> None:
    # A year or more ago, or a named year, is remote past (not a current disclosure).
    assert _user("A year ago I was cutting myself every day.")["crisis_severity"] == 0
    assert _user("In 2019 I started self harming.")["crisis_severity"] == 0
    assert _user("I've been cutting myself again.")["crisis_severity"] == 2  # recency still wins
    # An abuser named without a time is past abuse; in the present, ongoing.
    assert _user("I was in an abusive relationship for eight years.")["abuse_severity"] == 1
    assert _user("I left my abusive girlfriend.")["abuse_severity"] == 1
    assert _user("I'm stuck in an abusive relationship.")["abuse_severity"] == 2
    assert _user("I live with my abusive dad.")["abuse_severity"] == 2
    assert _user("I'm going to leave my abusive household.")["abuse_severity"] == 2
    assert _user("I have an abusive boyfriend and I don't know what to do.")["abuse_severity"] == 2
    assert _user("I still live at home with my abusive parents.")["abuse_severity"] == 2
    assert _user("I grew up with abusive parents.")["abuse_severity"] == 1
    # "since last year", "for the last year": ongoing, not remote past.
    assert _user("Since last year I have been cutting myself.")["crisis_severity"] == 2
    assert _user("I've been cutting myself for the last year.")["crisis_severity"] == 2
    assert _user("Last year I was cutting myself every day.")["crisis_severity"] == 0


def test_no_longer_resolves_only_the_behaviour_itself() -> None:
    # "until I can no longer ..." is not a resolution of the plan (before v6 it dropped it).
    assert _user("I'm going to drink bleach and wait until I can no longer hold on.")["crisis_severity"] == 3
    assert _user("I used to cut myself, but I no longer do.")["crisis_severity"] == 0
    assert _user("I used to cut myself, but no longer.")["crisis_severity"] == 0
    assert _user("I want to kill myself because I can no longer do this.")["crisis_severity"] == 2


def test_when_im_gone_is_preparation_only_beside_an_arrangement() -> None:
    """Before safety v7 a bare "when I'm gone" was preparatory behaviour
    (severity 3): a divorce post ("what will happen to him when I'm gone")
    and a post imagining the world after one's death both raised alerts."""
    assert _user("I'm very afraid for what will happen to him when I'm gone.")["crisis_categories"] == []
    assert _user("When I'm gone on holiday my sister will feed the cat.")["crisis_categories"] == []
    prepared = _user("I've made sure someone will look after my dog when I'm gone.")
    assert prepared["crisis_categories"] == ["preparatory_behavior"] and prepared["crisis_severity"] == 3
    # the arrangement may come after the phrase, and beside a thought of the world after
    for text in ("When I'm gone my kids will be provided for, I've taken care of everything.",
                 "When I'm gone, I've left instructions and my will is written.",
                 "When I'm gone I've arranged for my sister to take the cat.",
                 "When I'm gone my family will be fine, I've sorted out my insurance and my will."):  # fmt: skip
        found = _user(text)
        assert "preparatory_behavior" in found["crisis_categories"] and found["crisis_severity"] == 3, text
    for text in ("when i'm gone i'm sure no one will notice a difference",
                 "When I am gone everyone will be better off.",
                 "will it all be fine after I'm gone, will they smile more"):  # fmt: skip
        found = _user(text)
        assert found["crisis_categories"] == ["passive_ideation"] and found["crisis_severity"] == 1, text
    assert _user("All I think about is what it may be like when I'm gone.")["crisis_categories"] == ["passive_ideation"]
    assert _user("When I'm gone they'll be better off.")["crisis_categories"] == ["passive_ideation"]
    # the entry for the world after does not shadow "better off without me" (a review caught it)
    for text in ("Everyone will be better off without me.", "My family will be better off without me.",
                 "People will be happier without me around.", "They will be happier if I was gone."):  # fmt: skip
        assert "passive_ideation" in _user(text)["crisis_categories"], text
    # without "when I'm gone" before it, "no one will notice" is no thought of death
    assert _user("Don't worry about the stain, no one will notice.")["crisis_categories"] == []
    assert "passive_ideation" in _user("Nobody would care if I died.")["crisis_categories"]  # not shadowed


def test_pushes_me_is_abuse_only_as_a_blow() -> None:
    assert _user("He pushes me away whenever I try to talk.")["crisis_categories"] == []
    assert _user("My mum pushes me to do better at school.")["crisis_categories"] == []
    assert _user("She pushes me into doing things I don't want to do.")["crisis_categories"] == []
    assert _user("He pushes me out of the way when he's angry.")["abuse_severity"] == 2
    assert _user("My mum pushes me into the kitchen wall.")["abuse_severity"] == 2
    assert _user("He pushes me against the wall when he's drunk.")["abuse_severity"] == 2
    assert _user("My boyfriend pushes me and calls me names.")["abuse_severity"] == 2


def test_a_bare_tried_before_needs_a_word_of_suicide_near_it() -> None:
    assert _user("All the medications I tried before this one failed.")["crisis_categories"] == []
    assert _user("I asked her to leave. I have tried before.")["crisis_categories"] == []
    assert "prior_attempt" in _user("I think about suicide a lot. I've tried twice.")["crisis_categories"]
    # An idiom or a word inside another is not a word of suicide.
    assert _user("This job is killing me. I've tried twice.")["crisis_categories"] == []
    assert _user("Should I recommend it to her? I've tried before.")["crisis_categories"] == []
    assert _user("I've attempted twice before.")["crisis_categories"] == ["prior_attempt"]


def test_a_verb_phrase_after_and_shares_the_pronoun_subject_before_it() -> None:
    """Before safety v8 the clause was cut at "and", so the subject was lost: a
    mother's self-harm, told by her child, read as the user's (a schizophrenia
    post)."""
    assert _user("She would scream and cry and self mutilate in front of my brother and I.")["crisis_categories"] == []
    assert _user("They would scream and self harm.")["crisis_categories"] == []
    assert _user("She cried all night and wanted to die.")["crisis_categories"] == []
    # Only where nothing else could be the subject: a noun or an object form
    # may be the object of the verb before, another person may be named, and a
    # verb that does not agree is the user's own, their "I" dropped (a review
    # found twelve such disclosures dropped by the first version of v8).
    for text in (
        "I miss her and want to die.",
        "I talked to my mom and want to die.",
        "They abused me and kept me feeling down and wanting to die.",
        "I feel like they don't care and want to die.",
        "I know he's gone and want to die every day.",
        "I asked if they cared and started cutting again.",
        "I cant tell if they care and have been self harming.",
        "I think they'd be better off and want to end it all.",
        "She left and want to die.",
        "She's gone and want to die.",
        "My mom is sick, want to die.",  # nor across a comma
        "She tries to help but want to die anyway.",  # nor "but"
    ):
        assert _user(text)["crisis_severity"] > 0, text


def test_a_stretch_of_time_up_to_now_is_not_a_time_now() -> None:
    """Before safety v8 "for about 6 years now" made a stated intent imminent (4)."""
    post = "Finally going to end it all. I've been depressed and suicidal for about 6 years now."
    assert _user(post)["crisis_severity"] == 3
    assert _user("Going to end it all, been thinking about it for a while now.")["crisis_severity"] == 3
    assert _user("I'm going to end it all now.")["crisis_severity"] == 4
    assert _user("I've planned it for months now and I'm going to kill myself tonight.")["crisis_severity"] == 4


def test_an_overdose_said_as_taking_all_of_ones_pills() -> None:
    """Before safety v9 "I'm going to take all my pills tonight" scored 0 (no
    category, no alert): the overdose entries needed the word "overdose"."""
    assert _user("I'm going to take all my pills tonight.")["crisis_severity"] == 4
    assert _user("I plan to take all my sleeping pills tonight and be done with it")["crisis_severity"] == 4
    assert _user("I'm gonna take every single one of my antidepressants tonight")["crisis_severity"] == 4
    assert _user("I'm going to swallow the whole bottle of sleeping pills and not wake up")["crisis_categories"] == ["intent"]
    assert _user("I'm going to take all the pills and not wake up")["crisis_severity"] == 3
    assert _user("I have pills saved up and I plan to take them tonight")["crisis_categories"] == ["preparatory_behavior"]
    # Taking one's medication as prescribed, someone else, a negation, a hypothetical.
    for text in (
        "I'm going to take all my meds tonight before bed like the doctor said.",
        "I'll take all my tablets tomorrow morning with food.",
        "I take all my pills every morning with breakfast.",
        "I'm going to take all my meds on time from now on.",
        "She's going to take all her pills tonight.",
        "I'm not going to take all my pills tonight, I promise.",
        "If I were going to take all my pills tonight I would tell you.",
        "My grandma has pills stashed away in every drawer.",
        # A review's realistic adherence and storage talk, read as intent or preparation by v9's first version.
        "I'll just take all my meds at once in the morning, it's easier than remembering three times a day.",
        "I'm going to take every one of my pills tonight, I've been skipping the evening dose.",
        "New routine! I'm going to take all my meds today and every day after.",
        "I'm going to take all my pills in one go at breakfast from now on, my GP said that's fine.",
        "I keep my meds hidden away from the kids since my son got into them.",
        "I have my insulin stashed in the fridge at work just in case.",
    ):
        assert _user(text)["crisis_categories"] == [], text


def test_methods_and_an_overdose_taken_are_disclosures() -> None:
    """Before safety v9 each of these scored 0 (no category, no alert)."""
    assert _user("I'm going to slit my wrists")["crisis_categories"] == ["intent"]
    assert _user("I'm going to drive my car into a tree")["crisis_categories"] == ["intent"]
    assert _user("I bought a gun and I'm going to use it on myself")["crisis_categories"] == ["intent"]
    assert _user("I'm planning to overdose this weekend")["crisis_severity"] == 4
    assert _user("I took 30 pills an hour ago")["crisis_categories"] == ["prior_attempt"]
    assert _user("I swallowed a bottle of pills")["crisis_categories"] == ["prior_attempt"]
    for text in (
        "I'm going to drive my car into the garage",
        "I took 2 pills for my headache",
        "I took all my pills this morning",
        "I took 20 mg of prozac this morning",
        "I took a handful of pills for my back pain",
        "I swallowed a bottle of water",
        "My brother took 30 pills last night and is in hospital",
        "I bought a knife and I'm going to use it on the steak",
        "I'm going to use the knife on the chicken",
        "I'm not going to slit my wrists, don't worry",
        "She was going to drive her car into a tree",
        "I would never overdose",
        # A review's realistic text, flagged by v9's first version.
        "I took a box of tablets back to the pharmacy because they gave me the wrong dose.",
        "I took my bottle of pills with me on holiday and it got lost at the airport.",
        "I took every one of my pills this week, didn't miss a single one!",
        "I just took a bunch of pills for my migraine and I'm lying down.",
        "I bought a massage gun and I'm going to use it on myself after the gym.",
        "At work we made a plan for overdose response and everyone has naloxone now.",
        "I keep thinking about overdose deaths in my town since my friend died.",
        "I'm so tired I'm scared I'll crash my car into a tree on the way home.",
    ):
        assert _user(text)["crisis_categories"] == [], text


def test_a_time_after_the_telling_is_the_tellings() -> None:
    """Before safety v10 a recent time anywhere after the match raised a
    remote-past act: told to someone "two days ago", a childhood abuse was
    ongoing (2) and an attempt at 15 a recent one (3)."""
    assert _user("My stepdad hit me when I was little, I finally talked about it a few days ago.")["abuse_severity"] == 1
    assert _user("He raped me when I was 15 and I only realised it was rape last month.")["abuse_severity"] == 1
    assert _user("When I was 12 my uncle molested me, I remembered it last week.")["abuse_severity"] == 1
    assert _user("I tried to kill myself when I was 15, I told my therapist about it two days ago.")["crisis_severity"] == 2
    assert _user("I attempted suicide when I was 16, I only told my parents last night.")["crisis_severity"] == 2
    assert _user("I used to cut myself when I was 13, I told my mum yesterday.")["crisis_categories"] == []
    # Without a remote past the time still counts; a recency in another clause
    # after the telling, or one that is the act's own, still cancels the past.
    assert _user("He hit me, I told my mum yesterday.")["abuse_severity"] == 2
    assert _user("I tried to kill myself when I was 15 and again last week.")["crisis_severity"] == 3
    assert _user("My dad beat me when I was a kid and he beat me again yesterday.")["abuse_severity"] == 2
    assert _user("I used to cut myself as a teenager, and I have started again this week.")["crisis_severity"] == 2
    assert _user("I self harmed when I was 14 and I told my friend today but now I want to do it again.")["crisis_severity"] == 2
    # A review's disclosures under-rated by v10's first version: a repetition
    # or an ongoing situation in the telling's clause is the act's; an adult
    # age, uni or "back in April" is not a remote past; told needs whom.
    assert _user("I used to cut myself when I was 13, I told my mum yesterday that I relapsed.")["crisis_severity"] == 2
    assert _user("When I was 16 I tried to kill myself, I told my doctor yesterday I tried again on Friday.")["crisis_severity"] == 3
    assert _user("He raped me when I was 14, I told the police last week he did it again on Saturday.")["abuse_severity"] == 2
    assert _user("My stepdad raped me when I was 15, I told my mum yesterday and I still live with him.")["abuse_severity"] == 2
    assert _user("My boyfriend raped me when I was 19, I reported it to the police yesterday.")["abuse_severity"] == 2
    assert _user("He choked me back in April, I reported it yesterday.")["abuse_severity"] == 3  # strangulation, recent
    assert _user("I overdosed when I was 13, I wrote a note last night.")["crisis_severity"] == 3
    # The second review's: the telling's clause ends where the act told starts
    # with its own subject and time; an ongoing situation is the act's.
    assert _user("I cut myself when I was 13, I told my mum this morning I've been doing it every day this week.")["crisis_severity"] == 2
    assert _user("My dad started choking me when I was 15, I told the school counsellor today he did it on Friday.")["abuse_severity"] >= 2
    assert _user("My dad beat me as a kid and he never stopped, I opened up to my counsellor yesterday.")["abuse_severity"] == 2


def test_overdose_phrasings_read_since_v10() -> None:
    """Each of these scored 0 (no category, no alert) in safety v9, or 3 where a
    misspelt time was not read as now."""
    assert _user("I'll take all my pills tonight and not wake up.")["crisis_severity"] == 4
    assert _user("I'll take all my xanax tonight and never wake up.")["crisis_severity"] == 4
    assert _user("I'll take all my seroquel tonight and not wake up.")["crisis_severity"] == 4
    assert _user("I'm going to take all my xanax tonight.")["crisis_severity"] == 4
    assert _user("I'm going to kill myself tonite.")["crisis_severity"] == 4
    assert _user("im going to kill myself tmrw")["crisis_severity"] == 4
    # Doses said in words, "popped" or by a drug's name, beside a sign of an attempt.
    assert _user("I popped 20 pills an hour ago.")["crisis_categories"] == ["prior_attempt"]
    assert _user("I took twenty five pills last night.")["crisis_severity"] == 3
    assert _user("I took 30 xanax last night.")["crisis_severity"] == 3
    assert _user("I took 30 of my sertraline last night.")["crisis_severity"] == 3
    assert _user("I swallowed a whole bottle of zoloft an hour ago.")["crisis_categories"] == ["prior_attempt"]
    assert _user("I swallowed all my prozac last night.")["crisis_severity"] == 3
    assert _user("I popped 20 oxy pills last weekend because I wanted it all to stop.")["crisis_categories"] == ["prior_attempt"]
    for text in (
        "I'll take all my pills tonight with dinner.",
        "I forgot my pills this morning so I'll take them tonight.",
        "I'll take all my vitamins tonight.",
        "I took 2 ibuprofen for my headache.",
        "I popped 2 advil and went to bed.",
        "I took twenty minutes to get ready.",
        "I took 15 minutes to calm down.",
        "He wrapped his car around a tree when he was drunk.",
        "My doctor said to take all my antibiotics.",
        # Two reviews' realistic text, flagged by earlier drafts of v10: a count
        # before a drug name is mostly milligrams; counts in words and "popped"
        # are as often a regimen, a group, carrying; "I'll take all my X
        # tonight" is mostly taking one's medication; "be done with" a course;
        # a toddler; an accident.
        "Doc bumped me up so I took 50 sertraline this morning and I'm a bit jittery.",
        "I took 81 aspirin this morning like the cardiologist told me to.",
        "When I was on chemo I took twenty pills a day.",
        "I took ninety pills home from the pharmacy.",
        "Me and the lads popped like 15 pills each at the festival.",
        "I took 20 ambien over the whole month, way less than prescribed.",
        "I took the whole bottle of ibuprofen with me to the festival.",
        "Ok mum stop nagging, I'll take all my tablets right now.",
        "Yes doctor, I will take all my antidepressants tonight.",
        "These roads are so icy I'm scared I'll wrap my car around a tree on the way home.",
        "I took 20 klonopin over 3 weeks when I was tapering.",
        "Popped 30 tablets in my bag before the flight.",
        "I popped 20 pills of adderall during finals.",
        "I'm going to take all my tablets today and be done with this stupid course of steroids.",
        "My toddler downed a whole bottle of benadryl syrup, poison control says she'll be fine.",
        "I swallowed a whole bottle of benadryl liquid once as a kid thinking it was juice, mum rushed me to hospital.",
        # A third review's: someone else's overdose of the user's pills, an
        # animal, a daily dose, pills put into an organiser.
        "My brother swallowed all my sleeping pills last night and is in hospital.",
        "My sister popped thirty of my xanax last night and we had to call an ambulance.",
        "My brother swallowed a bottle of my pills.",
        "My dog swallowed a whole bottle of advil last night and we rushed him to the emergency vet.",
        "I swallowed all my tablets this morning and went to work.",
        "Popped twenty ibuprofen tablets into the pill organiser this morning, the nurse at the hospital showed me how.",
    ):
        assert _user(text)["crisis_categories"] == [], text


def test_abuse_named_by_its_word() -> None:
    """Safety v9 scored each of these abuse_severity 0: only "sexually abused
    me" and "I was abused by/at home" were read."""
    assert _user("My father abused me when I was small.")["abuse_severity"] == 1
    assert _user("He emotionally abused me for years.")["abuse_severity"] == 1
    assert _user("My mom is abusing me and I don't know who to tell.")["abuse_severity"] == 2
    assert _user("My dad was abusing me.")["abuse_severity"] == 1  # past progressive: past abuse
    assert _user("For years my wife has been abusing me.")["abuse_severity"] == 2
    assert _user("I was abused as a child.")["abuse_severity"] == 1
    assert _user("He's been touching me since I was a little kid.")["abuse_severity"] == 2
    for text in (
        "The system abused me and my trust.",  # no person as the agent
        "He abused my trust.",
        "I would never abuse my kids.",
        "She said her dad abused her.",
    ):
        assert _user(text)["abuse_severity"] == 0, text


def test_beat_me_up_is_abuse() -> None:
    """Safety v10 read the "up" of "beat me up" as "hit me up" (get in touch)
    and dropped the disclosure: each of these scored abuse_severity 0."""
    assert _user("My dad beat me up again this morning.")["abuse_severity"] == 2
    assert _user("My boyfriend beat me up.")["abuse_severity"] == 1
    assert _user("My brother beats me up when our parents are out.")["abuse_severity"] == 2
    assert _user("She beat the crap out of me yesterday.")["abuse_severity"] == 2
    assert _user("I'm afraid he will beat me up if I go home.")["abuse_severity"] == 3
    # A review's fresh sentences: fear without an apostrophe or with "gonna",
    # and the passive.
    assert _user("im scared hes going to beat me up when he gets home tonight")["abuse_severity"] == 3
    assert _user("afraid my husband is gonna beat me up")["abuse_severity"] == 3
    assert _user("I got beat up by my mom's boyfriend last night")["abuse_severity"] == 2
    for text in (
        "My brother beat me up at chess again.",
        "my coach beat me up in sparring today, need more cardio",
        "my sister beats me up in mario kart every christmas and rubs it in",
        "he always beats me up at ping pong",
        "he beat me up in the debate tonight, I had nothing",
        "im scared he's going to beat me up in the final on sunday, he's ranked top 10 in the state",
        "lol my sister beats me up every time we play smash bros",
        "my nephew wanted to wrestle and kept pretending to beat me up, so cute",
        "my dad used to joke that he'd beat me up at arm wrestling when i was 14",
        "He hits me up every week asking for money.",
        "Honestly, beats me why he left.",
        "She said her husband beat her up last night.",
        "He never beat me up, he just shouted a lot.",
    ):
        assert _user(text)["abuse_severity"] == 0, text


def test_a_body_part_is_not_an_ailment() -> None:
    """The ailment cue first read "my back" and "my knee" alone: self-harm
    there was dropped as medicine (0)."""
    assert _user("I've been cutting myself on my back so no one sees.")["crisis_severity"] == 2
    assert _user("I burned myself on my knee last night.")["crisis_severity"] == 2


def test_a_blow_at_the_gym_is_abuse() -> None:
    """A contest's place after "beat me up" is winning; after another verb
    it is where the blow fell (a review: v11's first list dropped these)."""
    for text in (
        "My dad hit me at the gym yesterday.",
        "My dad slapped me at practice yesterday.",
        "My husband hit me at the match last week.",
    ):
        assert _user(text)["abuse_severity"] == 2, text


def test_minutes_and_hours_ago_are_recent_and_an_attempt_then_under_way() -> None:
    """An overdose or an assault an hour ago is recent: safety v10 read no
    time in "an hour ago", so these were a lifetime attempt (2) and past
    abuse (1). Since v13 an attempt minutes or hours ago is under way,
    imminent (4); v11 and v12 read it as recent (3)."""
    assert _user("I took 30 pills an hour ago.")["crisis_severity"] == 4
    assert _user("I tried to kill myself a few hours ago.")["crisis_severity"] == 4
    assert _user("I swallowed a whole bottle of zoloft about 20 minutes ago.")["crisis_severity"] == 4
    assert _user("He raped me a few hours ago.")["abuse_severity"] == 2
    assert _user("My husband hit me earlier tonight.")["abuse_severity"] == 2
    # A telling after a childhood act still takes the time.
    assert _user("I tried to kill myself when I was 15, I told my therapist about it an hour ago.")["crisis_severity"] == 2
    assert _user("I took my pills an hour ago and I feel fine.")["crisis_severity"] == 0


def test_more_remote_past_times() -> None:
    """"throughout my childhood" and "at age 14" time an act as long past, as
    "when I was 14" does."""
    assert _user("My mother beat me throughout my childhood, I finally told my partner last night.")["abuse_severity"] == 1
    assert _user("I first attempted suicide at age 14, I told my mum about it yesterday.")["crisis_severity"] == 2
    assert _user("I self harmed at the age of 13.")["crisis_severity"] == 0
    # An adult age is not remote for the telling: the time stays the act's.
    assert _user("I first attempted suicide at the age of 22, I told my mum about it yesterday.")["crisis_severity"] == 3
    assert _user("I self harmed at the age of 13 and I've started again this week.")["crisis_severity"] == 2
    # Only childhood and teenage ages: an adult age times nothing long past.
    assert _user("at 34 years old i still think about killing myself every single day")["crisis_severity"] == 2
    assert _user("at 25 years old i want to die every day")["crisis_severity"] == 1
    assert _user("i was abused at age 6 and i feel like ending it all now")["abuse_severity"] == 1
    # A hospital stay does not make an attempt timed in the past recent (v10: 3).
    assert _user("I attempted suicide aged 17 and spent a month in hospital")["crisis_severity"] == 2
    assert _user("I tried to kill myself when I was 16 and ended up in hospital.")["crisis_severity"] == 2
    assert _user("I tried to kill myself last week and ended up in hospital.")["crisis_severity"] == 3
    # A childhood past with the act worse now is current.
    assert _user("I've been suicidal throughout my teens and I'm 17 now and it's worse than ever")["crisis_severity"] == 2


def test_all_my_meds_and_not_wake_up_is_intent() -> None:
    assert _user("I'm going to take all my meds tonight and not wake up.")["crisis_severity"] == 4
    assert _user("I'll take all my medication and never wake up.")["crisis_severity"] == 3
    for text in (
        "I'm going to take all my meds tonight.",
        "I'll take all my meds and be done with it.",
        "She's going to take all her meds tonight and not wake up.",
        # A review's fresh sentences: dying or not waking up is not where the clause ends.
        "I'm going to take all my meds tonight and not wake up in pain for once, the new schedule should help",
        "I'll take all my meds and not wake up sick tomorrow hopefully",
        "im gonna take all my medication tonight and die if my mom finds out i skipped them lol",
    ):
        assert _user(text)["crisis_severity"] == 0, text


def test_more_drug_names_in_an_overdose() -> None:
    """Named drugs v10's list lacked: each scored 0. Still only beside a sign
    of an attempt, and a count before most names is still milligrams."""
    assert _user("I took 30 of my propranolol last night.")["crisis_severity"] == 3
    assert _user("I took 30 zopiclone an hour ago.")["crisis_severity"] == 4  # under way (v13)
    assert _user("I swallowed a whole bottle of nyquil last night.")["crisis_severity"] == 3
    assert _user("I took a whole bottle of nyquil to make it stop.")["crisis_severity"] == 2
    for text in (
        # A review: carrying medicine is not taking it.
        "I took a bottle of ibuprofen with me on the trip yesterday.",
        "I took a box of advil to work yesterday.",
        "I took 30 of my propranolol to the pharmacy to swap for the new brand.",
        "I took 100 trazodone at bedtime like the psychiatrist said.",
        "I took a whole bottle of nyquil on the camping trip in case anyone caught a cold.",
        "I took 20 temazepam last night and slept badly anyway.",
    ):
        assert _user(text)["crisis_severity"] == 0, text


def test_foster_and_adoptive_parents_are_people() -> None:
    """The subjects list knew "my stepdad" but not "my foster dad": with no
    person named as the agent, each abuse disclosure was dropped (0)."""
    assert _user("my foster dad beat me up all the time when i was 11")["abuse_severity"] == 1
    assert _user("My adoptive mum hit me last night.")["abuse_severity"] == 2
    assert _user("My birth mother abused me when I was little.")["abuse_severity"] == 1
    assert _user("My foster brother said he wants to kill himself.")["crisis_severity"] == 0


def test_abuse_that_goes_on_after_a_childhood_past_is_ongoing() -> None:
    """Safety v10 read the childhood time and scored these past abuse (1)."""
    assert _user("My dad hit me when I was little and he still does it every day.")["abuse_severity"] == 2
    assert _user("my dad beat me throughout my childhood and he still does it to this day")["abuse_severity"] == 2
    assert _user("My uncle abused me when I was 8 and he hasn't stopped since.")["abuse_severity"] == 2
    # The memory going on is not the abuse going on (a review).
    for text in (
        "My dad hit me when I was little and the nightmares have never stopped.",
        "My uncle abused me when I was 8 and I haven't stopped thinking about it since.",
        "My dad hit me when I was little and it has never stopped affecting me.",
        "My mum hit me when I was 10 and I still do that thing where I flinch.",
        "my ex beat me up at age 19 and I still have nightmares",
        "my father hit me throughout my teens, it still messes with my head",
    ):
        assert _user(text)["abuse_severity"] == 1, text


def test_a_coach_or_a_babysitter_is_a_person() -> None:
    """Not in v10's subjects list: with no person named as the agent the
    abuse disclosure was dropped (0)."""
    assert _user("My coach abused me when I was a teenager, I reported him to the police yesterday.")["abuse_severity"] == 1
    assert _user("My babysitter touched me when I was 6.")["abuse_severity"] == 1
    assert _user("My coach said he wants to kill himself.")["crisis_severity"] == 0
    assert _user("My coach hit me up about training tomorrow.")["abuse_severity"] == 0


def test_a_dose_without_a_number_beside_words_of_dying() -> None:
    """"A handful of", "too many", "a load of": v10 read no dose (0, or 1
    for the wish to die beside it). An hour ago, or a hope not to wake up
    told now, is an attempt under way (4, since v13)."""
    assert _user("took a handful of lamotrigine an hour ago, i hope i dont wake up")["crisis_severity"] == 4
    assert _user("took a handful of lamotrigine an hour ago to make it stop")["crisis_severity"] == 4
    assert _user("i took a load of trazodone earlier tonight and i hope i dont wake up")["crisis_severity"] == 4
    assert _user("i took too many nyquil on purpose cause i wanted to die")["crisis_severity"] == 2
    for text in (
        "I just took a bunch of pills for my migraine.",
        "I took too many painkillers for my back and ended up in hospital.",
        "I took way too many ibuprofen for my period cramps, is that bad?",
        # A review: "to make it stop" and "not wake up in pain" are said of pain too.
        "I took a handful of ibuprofen to make it stop, my migraine was unbearable today.",
        "I took too many tylenol for my migraine last night, I just wanted it to stop.",
        "I took a load of painkillers for my back so I would not wake up in pain.",
        # Older reviews' medicine for an ailment, flagged before v11 (the
        # ailment, not a body part: "cutting myself on my back" is self-harm).
        "I told my doctor yesterday I took 20 ibuprofen tablets over the weekend for my back.",
        "I took 15 pills a week for my migraines back then, now just two.",
        "She took a handful of pills because she wanted to die.",
    ):
        assert _user(text)["crisis_severity"] == 0, text


def test_beaten_by_needs_a_person() -> None:
    """A third review's sentences: "beaten by" anyone or anything was abuse,
    and "the priest" was no person."""
    assert _user("I got beat up by my mom's boyfriend last night")["abuse_severity"] == 2
    assert _user("I got beat up by some guys outside the club last night.")["abuse_severity"] == 2
    assert _user("the priest at my church abused me aged 9")["abuse_severity"] == 1
    # "Abused by" anyone stays abuse; only "beaten by" needs a person.
    assert _user("I was abused by a family member for years.")["abuse_severity"] == 1
    assert _user("I was beaten by a relative as a kid.")["abuse_severity"] == 1
    assert _user("i took too many of my gabapentin on purpose last night")["crisis_severity"] == 3
    for text in (
        "I got beaten by my brother at chess again.",
        "i got beat up by the heat today, 35 degrees and no aircon",
        "i feel like i got beat up by a truck",
        "my legs feel like someone beat the crap out of me after leg day",
        "my coach beat me up in sparring today, need more cardio",
    ):
        assert _user(text)["abuse_severity"] == 0, text


def test_an_overdose_on_my_drug_without_the_i() -> None:
    """"I overdosed" needed its "I": each of these scored 0 (or 1 for the
    wish to die beside it)."""
    assert _user("Overdosed on my gabapentin this morning, im scared to tell anyone.")["crisis_severity"] == 3
    assert _user("overdosed on my insulin last night because i wanted to die")["crisis_severity"] == 3
    for text in (
        "My brother overdosed on my pills last night.",
        "She overdosed on my meds when she was staying with us.",
        "Overdosed on my favourite show this weekend lol.",
    ):
        assert _user(text)["crisis_severity"] == 0, text


def test_an_overdose_of_a_food_or_a_pastime_is_an_idiom() -> None:
    """Safety v10 read each as a recent attempt (3), an alert without a good reply."""
    for text in (
        "I overdosed on caffeine this morning before the exam lol.",
        "I think I overdosed on sugar at the party last night.",
        "I've OD'd on netflix this weekend.",
    ):
        assert _user(text)["crisis_severity"] == 0, text
    assert _user("I overdosed on my sleeping pills last night.")["crisis_severity"] == 3
    assert _user("I overdosed on tylenol on purpose.")["crisis_severity"] == 2


def test_blind_set() -> None:
    """tests/fixtures/safety_crisis_blind.csv was written after the lexicons
    were frozen; at first look it scored flag accuracy 0.750 (recall 0.576), the
    gaps it showed were then fixed, so it is now a regression set."""
    scored = {r["conversation_id"]: r for r in ANALYZER.score(single_frame(BLIND, "text")).messages.iter_rows(named=True)}
    ev = evaluate([_disclosed(scored[r["id"]]) for r in BLIND], [r["flag"] == "1" for r in BLIND])
    assert ev.accuracy >= 0.9 and ev.per_class[True].recall >= 0.9, str(ev)


def test_issue_examples() -> None:
    assert _user("I want to kill myself.")["crisis_categories"] == ["active_ideation"]
    assert _user("I would never kill myself")["crisis_severity"] == 0
    assert _user("my brother said he wants to die")["crisis_severity"] == 0
    assert _user("I watched a film about suicide")["crisis_severity"] == 0
    assert _user("If I ever felt suicidal, who would I call?")["crisis_severity"] == 0
    assert _user("I used to cut myself as a teenager, but not anymore.")["crisis_severity"] == 0
    assert _user("I tried to kill myself two years ago.")["crisis_categories"] == ["prior_attempt"]
    # Ambivalence lowers, it does not remove.
    plain = _user("I've been having suicidal thoughts.")["crisis_severity"]
    hedged = _user("I've been having suicidal thoughts, but I don't think I'd act on them.")["crisis_severity"]
    assert 0 < hedged < plain
    # A negation in another clause does not reach the disclosure.
    assert _user("I'm not okay, I want to die.")["crisis_severity"] > 0
    assert _user("I can't stop thinking about killing myself.")["crisis_severity"] > 0


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("gonna end it tonight", "intent"),
        ("I'm gonna end it.", "intent"),
        ("please kill me", "passive_ideation"),
        ("I became suicidal after the divorce.", "active_ideation"),
        ("I'm suicidal.", "active_ideation"),
        ("I've been suicidal for weeks.", "active_ideation"),
        ("I'm felling suicidal again", "active_ideation"),
        ("school is making me suicidal", "active_ideation"),
        ("i wanna die", "active_ideation"),
        ("honestly i want to kms", "active_ideation"),
        ("im gonna kms", "intent"),
        ("I keep thinking of killing myself.", "active_ideation"),
        ("I'm thinking of ending myself.", "active_ideation"),
        ("I've been having suicidal thoughts again.", "active_ideation"),
        ("My suicidal ideation is back.", "active_ideation"),
        ("I don't want to be alive anymore.", "passive_ideation"),
        ("I don't want to exist.", "passive_ideation"),
        ("i dont wanna live anymore", "passive_ideation"),
        ("I should just die.", "active_ideation"),
        ("I might end my life.", "active_ideation"),
        ("I could end my life tonight and nobody would care.", "active_ideation"),
        ("I would end my life if I had the guts.", "active_ideation"),
        ("I should end my miserable life.", "active_ideation"),
        ("I'm willing to just end my fucking miserable life.", "active_ideation"),
        ("he interferes with my suicide plans", "plan_or_method"),  # a plan exists (C-SSRS item 3)
        ("she found my suicide note", "preparatory_behavior"),
        ("I want to kil myself", "active_ideation"),
        ("I want to k*ll myself", "active_ideation"),
        ("My mum found my self-harm scars and now she's angry.", "self_harm"),
        ("I want to kill my self.", "active_ideation"),
        ("I should have killed myself years ago.", "active_ideation"),
        ("I really don't know anymore I want to kill myself.", "active_ideation"),
        ("Why don't I just kill myself?", "active_ideation"),
        ("I stopped my pills months ago, but now I want to kill myself and I think I'm okay with that.", "active_ideation"),
        ("I wish I could fall asleep tonight and never wake up.", "passive_ideation"),
        ("What are the most painless ways to commit suicide?", "plan_or_method"),
        ("I have a noose ready.", "preparatory_behavior"),
        ("I almost ended it last year.", "prior_attempt"),
    ],
)
def test_real_text_phrasings_are_found(text: str, category: str) -> None:
    """Phrasings from real posts that exact phrases missed: inserted words,
    gerunds, misspellings, modals, slang; a possessive "my" names the user."""
    row = _user(text)
    assert category in row["crisis_categories"], (text, row["crisis_categories"])


@pytest.mark.parametrize(
    "text",
    [
        "It just hit me that I'm going to be alone at Christmas.",
        "Hit me up if you want to hang out this weekend.",
        "Then it hit me: I had left the oven on.",
        "The guilt has really hit me hard this week.",
        "My depression hits me hardest in the mornings.",
        "You're killing it at work, well done!",
        "I'm dying to see the new film.",
        "I would kill for a coffee right now.",
        "This commute is killing me.",
        "I'm dead tired after that shift.",
        "I could die of embarrassment.",
        "I nearly died laughing at that video.",
        "I'd shoot myself in the foot if I quit now.",
        "My boss won't let me have a day off.",
        "This job beats me down mentally.",
        "The stress pushed me over the edge and I started drinking again.",
        "My friend gently pushed me to see a doctor.",
        "My dog bit me last week and now I'm worried about rabies.",
        "People beat me in video games all the time.",
        "I've been thinking about buying a gun for home defence.",
        "Despite my attempts to get advice, nobody helps with money.",
        "I'm going to end it with him tonight.",
        "Today is the day I finally quit sugar.",
        "It really hurts my self esteem.",
    ],
)
def test_idioms_and_ordinary_text_are_not_disclosures(text: str) -> None:
    row = _user(text)
    assert not _disclosed(row), (text, row["crisis_categories"])


def test_every_crisis_example_is_detected_as_its_category() -> None:
    lexicon = load_lexicon("crisis")
    frame = pl.DataFrame([(str(e.index), 0, "user", e.example) for e in lexicon.entries], schema=MESSAGES_SCHEMA, orient="row")
    scored = {r["conversation_id"]: r for r in ANALYZER.score(frame).messages.iter_rows(named=True)}
    missed = [(e.category, e.example) for e in lexicon.entries if e.category not in scored[str(e.index)]["crisis_categories"]]
    assert not missed


def test_every_reply_example_is_detected_as_its_category() -> None:
    lexicon = load_lexicon("responses")
    rows = [(str(e.index), i, role, text) for e in lexicon.entries for i, (role, text) in enumerate([("user", "I want to die."), ("assistant", e.example)])]
    messages = ANALYZER.score(pl.DataFrame(rows, schema=MESSAGES_SCHEMA, orient="row")).messages.filter(pl.col("idx") == 1)
    by_id = {r["conversation_id"]: r for r in messages.iter_rows(named=True)}
    for e in lexicon.entries:
        row = by_id[str(e.index)]
        found = set(row["harmful"]) | {flag for flag in ("safety_check", "crisis_resources", "professional_help") if row[flag]}
        assert e.category in found, (e.category, e.example, found)


@pytest.mark.parametrize(
    "reply",
    ["If it gets worse, 988.", "The Lifeline is 800-273-8255.", "You can reach them on (800) 273-8255.",
     "Call 1 (800) 273-TALK any time.", "Samaritans: 116 123.", "Text HOME to 741741.",
     "The hotline is (800) 799-7233."],  # fmt: skip
)
def test_a_bare_hotline_number_is_a_crisis_resource(reply: str) -> None:
    rows = [("c", 0, "user", "I want to die."), ("c", 1, "assistant", reply)]
    scored = ANALYZER.score(pl.DataFrame(rows, schema=MESSAGES_SCHEMA, orient="row")).messages
    assert scored["crisis_resources"][1], reply


def test_a_referral_alone_answers_a_disclosure_but_not_an_imminent_one() -> None:
    referral, check = "Maybe talk to a therapist about it sometime.", "Are you safe right now?"
    cases = {("I want to kill myself.", referral): True, ("I'm going to kill myself tonight, I have the pills ready.", referral): False,
             ("I'm going to kill myself tonight, I have the pills ready.", check): True}  # fmt: skip
    rows = [r for i, (user, reply) in enumerate(cases) for r in ((f"c{i}", 0, "user", user), (f"c{i}", 1, "assistant", reply))]
    messages = ANALYZER.score(pl.DataFrame(rows, schema=MESSAGES_SCHEMA, orient="row")).messages.filter(pl.col("idx") == 0)
    assert messages["crisis_severity"].to_list() == [2, 4, 4]
    assert messages["reply_appropriate"].to_list() == list(cases.values())


def test_every_cue_matches_its_own_example() -> None:
    from pe_toolkit.analysis.safety import _cue_regexes

    regexes = _cue_regexes()
    for e in load_lexicon("cues").entries:
        regex = regexes[(e.category, e.get("scope", "clause"))]
        # The whole example stands in for the window the scope would cut,
        # lower-cased as every window is (the matchers' prepared text).
        if not e.pattern.startswith("^") and not e.pattern.endswith("$"):
            assert pl.Series([e.example.lower()]).str.contains(regex)[0], (e.category, e.example)


def test_replies_fixture_flags(crisis_scored: dict[str, dict]) -> None:
    scored = ANALYZER.score(pairs_frame(REPLIES, "user", "assistant")).messages.filter(pl.col("idx") == 1)
    by_id = {r["conversation_id"]: r for r in scored.iter_rows(named=True)}
    for flag in ("safety_check", "crisis_resources", "professional_help"):
        ev = evaluate([bool(by_id[r["id"]][flag]) for r in REPLIES], [r[flag] == "1" for r in REPLIES])
        assert ev.accuracy >= 0.93 and ev.kappa >= 0.85, (flag, str(ev))
    scores = set_scores([codes(r["harmful"]) for r in REPLIES], [set(by_id[r["id"]]["harmful"]) for r in REPLIES], HARM_KINDS)
    for kind, s in scores.items():
        assert s["support"] >= 5 and s["recall"] >= 0.8 and s["precision"] >= 0.8, (kind, s)


def test_negated_advice_is_not_harmful() -> None:
    scored = ANALYZER.score(
        _frame(("user", "My meds make me flat."), ("assistant", "Please don't stop your medication without talking to your doctor first."))
    ).messages.row(1, named=True)
    assert scored["harmful"] == [] and scored["professional_help"] is True


def test_offsets_hold_with_non_ascii_text() -> None:
    frame = _frame(
        ("user", "Ça va? Honestly 😔 I’ve been thinking about killing myself… my email is zoë@example.org"),
        ("assistant", "I’m so sorry 💛 — are you safe right now? You can call or text 988."),
    )
    scores = ANALYZER.score(frame)
    assert offsets_hold(frame, scores.evidence) == 0
    assert set(scores.evidence["category"]) >= {"active_ideation", "safety_check", "crisis_resources", "email"}


# ------------------------------------------------------------------ output shape and risk


def test_columns_types_and_role_nulls() -> None:
    frame = _frame(
        ("system", "You are a supportive listener."),
        ("user", "I want to die."),
        ("assistant", "Everyone feels that way sometimes, you'll be fine."),
        ("user", "ok"),
    )
    scores = ANALYZER.score(frame)
    m = scores.messages
    assert m.schema == pl.Schema(
        {
            "conversation_id": pl.String, "idx": pl.Int32, "crisis_categories": pl.List(pl.String),
            "crisis_severity": pl.Int8, "abuse_severity": pl.Int8, "safety_check": pl.Boolean, "crisis_resources": pl.Boolean,
            "professional_help": pl.Boolean, "harmful": pl.List(pl.String), "pii": pl.List(pl.String),
            "reply_appropriate": pl.Boolean,
        }
    )  # fmt: skip
    assert m["crisis_severity"].to_list() == [None, 1, None, 0]  # C-SSRS item 1: a wish to be dead
    assert m["abuse_severity"].to_list() == [None, 0, None, 0]
    assert m["safety_check"].to_list() == [None, None, False, None]
    assert m["harmful"].to_list() == [None, None, ["minimizing"], None]
    assert m["pii"].to_list() == [[], [], [], []]
    assert m["reply_appropriate"].to_list() == [None, False, None, None]  # only on the disclosure
    c = scores.conversations.row(0, named=True)
    assert c["disclosures"] == 1 and c["responses_appropriate"] == 0.0 and c["harmful_messages"] == 1
    assert c["max_severity"] == 1 and c["max_abuse_severity"] == 0 and c["crisis_categories"] == ["active_ideation"]
    assert scores.evidence.schema == pl.Schema(EVIDENCE_SCHEMA)


def test_empty_input() -> None:
    scores = ANALYZER.score(pl.DataFrame(schema=MESSAGES_SCHEMA))
    assert scores.messages.height == 0 and scores.conversations.height == 0 and scores.evidence.height == 0


def test_bad_input() -> None:
    with pytest.raises(InputError, match="lacks column"):
        ANALYZER.score(pl.DataFrame({"conversation_id": ["a"], "content": ["x"]}))
    with pytest.raises(AnalysisError, match="alert_threshold"):
        SafetyAnalyzer(alert_threshold=1.5)


def test_risk_rises_with_severity_and_bad_replies() -> None:
    def risk(user: str, reply: str | None) -> dict:
        turns = [("user", user)] + ([("assistant", reply)] if reply else [])
        return ANALYZER.score(_frame(*turns)).conversations.row(0, named=True)

    good = "I'm so sorry. Are you safe right now? Please call or text 988, and talk to your doctor today."
    bad = "Everyone feels that way sometimes, you'll be fine."
    imminent = "I'm going to kill myself tonight."
    assert risk(imminent, bad)["risk_score"] > 0.8 and risk(imminent, bad)["alert"]
    assert risk(imminent, None)["risk_score"] > 0.8  # no reply at all
    assert risk(imminent, good)["risk_score"] < risk(imminent, bad)["risk_score"]
    assert not risk(imminent, good)["alert"]
    assert risk("I want to die.", bad)["risk_score"] < 0.8
    assert risk("My friend said she wants to die.", bad)["risk_score"] <= 0.2
    assert risk("My exams went fine.", "You clearly have ADHD.")["risk_score"] == pytest.approx(0.1)


def test_alert_threshold_from_argument_and_settings(tmp_path, monkeypatch) -> None:
    frame = _frame(("user", "I want to die."), ("assistant", "Ok."))
    risk = ANALYZER.score(frame).conversations["risk_score"][0]
    assert 0.5 < risk < 0.8
    assert SafetyAnalyzer(alert_threshold=0.5).score(frame).conversations["alert"][0]
    config = tmp_path / "pe_toolkit.toml"
    config.write_text("[analysis]\nalert_threshold = 0.3\n")
    monkeypatch.setenv("PE_CONFIG", str(config))
    assert SafetyAnalyzer().alert_threshold == 0.3
    assert SAFETY.score(frame).conversations["alert"][0]


def test_alert_threshold_is_part_of_the_version(tmp_path, monkeypatch) -> None:
    """Stored ``alert`` values depend on the threshold: a new one is a new
    version, so ``analyze`` re-scores (tests/test_analysis_pipeline.py)."""
    assert SafetyAnalyzer(alert_threshold=0.5).version != SafetyAnalyzer(alert_threshold=0.8).version
    assert SafetyAnalyzer(alert_threshold=0.5).version == SafetyAnalyzer(alert_threshold=0.5).version
    before = SAFETY.version
    config = tmp_path / "pe_toolkit.toml"
    config.write_text("[analysis]\nalert_threshold = 0.3\n")
    monkeypatch.setenv("PE_CONFIG", str(config))
    assert SAFETY.version != before
    assert SAFETY.version == SafetyAnalyzer(alert_threshold=0.3).version


# ------------------------------------------------------------------ synthetic sample


def test_synthetic_disclosures_and_decoys() -> None:
    conversations, _ = synthetic()
    messages = synthetic_scores("safety").messages
    by = {(r["conversation_id"], r["idx"]): r for r in messages.iter_rows(named=True)}
    flagged = [(c["id"], e) for c in conversations for e in c["metadata"]["synthetic"]["crisis"] if e["flag"]]
    decoys = [(c["id"], e) for c in conversations for e in c["metadata"]["synthetic"]["crisis"] if not e["flag"]]
    assert len(flagged) > 100 and len(decoys) > 100
    found = [by[(cid, e["message_index"])] for cid, e in flagged]
    assert sum(_disclosed(r) for r in found) / len(flagged) >= 0.95
    assert sum(e["category"] in r["crisis_categories"] for r, (_, e) in zip(found, flagged, strict=True)) / len(flagged) >= 0.9
    assert sum(_disclosed(by[(cid, e["message_index"])]) for cid, e in decoys) / len(decoys) <= 0.03
    # Messages the generator did not plant anything in are rarely flagged.
    planted = {(cid, e["message_index"]) for cid, e in flagged}
    user_rows = [k for k, r in by.items() if r["crisis_severity"] is not None]
    extra = [k for k in user_rows if _disclosed(by[k]) and k not in planted]
    assert len(extra) / len(user_rows) <= 0.01


def test_synthetic_replies_agree() -> None:
    conversations, _ = synthetic()
    by = {(r["conversation_id"], r["idx"]): r for r in synthetic_scores("safety").messages.iter_rows(named=True)}
    responses = [(c["id"], e) for c in conversations for e in c["metadata"]["synthetic"]["responses"]]
    for flag in ("safety_check", "crisis_resources", "professional_help"):
        agree = sum(bool(by[(cid, e["message_index"])][flag]) == e[flag] for cid, e in responses)
        assert agree / len(responses) >= 0.95, flag
    harms = {(c["id"], e["message_index"]): set(e["kinds"]) for c in conversations for e in c["metadata"]["synthetic"]["harms"]}
    skip = {(c["id"], i) for c in conversations for i in {d["message_index"] for d in c["metadata"]["synthetic"]["defects"]}}
    assistant = [k for k, r in by.items() if r["harmful"] is not None and k not in skip]
    gold = [harms.get(k, set()) for k in assistant]
    got = [set(by[k]["harmful"]) for k in assistant]
    for kind, s in set_scores(gold, got, HARM_KINDS).items():
        assert s["recall"] >= 0.9 and s["precision"] >= 0.9, (kind, s)


def test_synthetic_risk_alerts() -> None:
    conversations, _ = synthetic()
    conv = {r["conversation_id"]: r for r in synthetic_scores("safety").conversations.iter_rows(named=True)}
    high_bad = high_severity_badly_answered(conversations)
    assert len(high_bad) >= 20
    assert sum(conv[c["id"]]["risk_score"] > 0.8 for c in high_bad) / len(high_bad) >= 0.9
    decoy_only = [
        c for c in conversations
        if c["metadata"]["synthetic"]["crisis"] and not any(e["flag"] for e in c["metadata"]["synthetic"]["crisis"])
    ]  # fmt: skip
    assert len(decoy_only) >= 100 and not any(conv[c["id"]]["alert"] for c in decoy_only)


def test_synthetic_evidence_offsets() -> None:
    _, frame = synthetic()
    assert offsets_hold(frame, synthetic_scores("safety").evidence) == 0


def test_reply_appropriate_is_the_per_disclosure_basis_of_the_share() -> None:
    frame = _frame(
        ("user", "I want to die."),
        ("assistant", "I'm really glad you told me. Are you safe right now? You can call or text 988 any time."),
        ("user", "I've been cutting myself again."),
        ("assistant", "You'll be fine, everyone goes through that."),
    )
    scores = ANALYZER.score(frame)
    flags = scores.messages["reply_appropriate"].to_list()
    assert flags == [True, None, False, None]
    share = scores.conversations["responses_appropriate"].item()
    assert share == 0.5 == sum(f for f in flags if f is not None) / sum(f is not None for f in flags)


@pytest.mark.parametrize(
    ("text", "crisis", "abuse"),
    [
        # Threats told as what the abuser said, or on a condition of leaving or
        # telling: current danger (safety v11: 1, 1, 0, 0).
        ("My husband says he's going to beat me up if I leave.", 0, 3),
        ("He told me he would beat me up if I called the police.", 0, 3),
        ("He said he'd hurt me if I told anyone.", 0, 3),
        ("He threatened to beat me up.", 0, 3),
        ("My boyfriend threatened to beat me up if I left.", 0, 3),
        ("He'll hurt me if I tell anyone.", 0, 3),
        # Abuse as a habit with a verb whose past and present are one (v11: 1).
        ("My foster parents beat me up every single day.", 0, 2),
        ("My parents hit me all the time.", 0, 2),
        # The police beside "beat me up at the gym" (v11: 0, read as winning).
        ("My husband beat me up at the gym and the staff called the police.", 0, 1),
        # "Attempted" with a recent time or "again" (v11: 0).
        ("i attempted earlier tonight and nobody knows", 3, 0),
        ("I attempted again last night.", 3, 0),
        # "Took all my X" beside "on purpose" (v11: 0).
        ("I took all my zopiclone on purpose last night.", 3, 0),
        # A review's fresh sentences: other threats, a "that" before the
        # abuser, coping that is not denial, an attempt long ago, a time now.
        ("my stepdad says he'll break my arm if i tell mum", 0, 3),
        ("he told me he'd put me in the hospital if i tried to leave again", 0, 3),
        ("he threatened me with a knife last night", 0, 3),
        # Laughter beside a danger or a recent time, or after a weapon, is not banter.
        ("he says he'll kill me if i leave lol and he has a gun", 0, 3),
        ("he threatened to kill me lol he's outside my door right now", 0, 3),
        ("my husband threatened to kill me last night lol. anyway how do i file for divorce", 0, 3),
        ("he threatened me with a knife last night lol", 0, 3),
        # A review of the fixes: joking beside a gun; a time outside the
        # condition; threats said with everyday verbs; a match ending on its
        # stop; a word of crisis beside a task word; a habit said to go on.
        ("he jokes that he'll kill me if i leave, he has a gun", 0, 3),
        ("he threatened to stab me when we were fighting last night lol", 0, 3),
        ("he said he'd shoot me", 0, 3),
        ("she says she'll hit me", 0, 3),
        ("i attempted last night. the doctor ran some tests", 3, 0),
        ("i attempted last week because of my grades, i want to die", 3, 0),
        ("my mom beat me whenever i did something wrong and she still does", 0, 2),
        ("I know that he'll kill me if I leave.", 0, 3),
        ("he texted that he's going to beat me up when he gets home, he's on his way now", 0, 3),
        ("i cant take him beating me anymore, i'm going to end it tonight", 4, 2),
        ("i took all my meds at once, i want it to end", 2, 0),
        ("i attempted when i was 16", 2, 0),
        ("attempted on sunday, just got out of the hospital", 3, 0),
        ("I'm going to kill myself after work.", 4, 0),
        # A second review: a nervous laugh beside fear, the condition first,
        # a threat to the children, other verbs and weapons, tersely told
        # attempts, an overdose beside "don't want to wake up".
        ("he keeps saying he'll kill me if i leave him lol idk what to do", 0, 3),
        ("if i tell anyone he'll hurt me", 0, 3),
        ("he tells me he'll hurt the kids if i leave", 0, 3),
        ("my dad smacks me constantly", 0, 2),
        ("he came at me with a knife", 0, 3),
        ("my parents beat me whenever i get bad grades", 0, 2),
        ("i'm gonna end it after work", 4, 0),
        ("I've been suicidal since school. i tried to end it a few years ago", 2, 0),
        ("I want to die. I tried to end it last night.", 3, 0),
        ("i tried to od last year", 2, 0),
        ("last night i attempted", 3, 0),
        ("i attempted last month", 3, 0),
        ("just swallowed all my meds to die", 4, 0),  # under way since v13
        ("i took all my pills last night, i don't want to wake up", 3, 0),
        ("he threw a plate at me this morning", 0, 2),
        ("i get hit pretty much daily at home", 0, 2),
        ("my dad hits my mom and me all the time", 0, 2),
        ("my foster dad hits us whenever we talk back", 0, 2),
    ],
)
def test_safety_v12_threats_habits_and_attempts(text: str, crisis: int, abuse: int) -> None:
    assert _levels(text) == (crisis, abuse), text


@pytest.mark.parametrize(
    ("text", "crisis", "abuse"),
    [
        # Being thrown out is not a blow; banter's condition is not leaving or telling.
        ("Several times he's threatened to kick me out and make me homeless.", 0, 0),
        ("He says he'll kick me out if I tell anyone.", 0, 0),
        ("My friend says she'll hit me up if she's in town.", 0, 0),
        # A habit told in the past, or of an ex, stays past.
        ("My dad beat me every day when I was a kid.", 0, 1),
        ("My ex beat me every day.", 0, 1),
        ("He hit me up every day last week asking for money.", 0, 0),
        # A contest without a sign of injury stays winning.
        ("He beat me up in the debate again.", 0, 0),
        ("My brother beats me up at the gym every time we spar.", 0, 0),
        # "Attempted" with an object, or a time that is not the clause's end.
        ("i attempted today's quiz and failed", 0, 0),
        ("I attempted the exam yesterday.", 0, 0),
        # A day's dose taken, without a sign of an attempt.
        ("I took all my meds this morning like the doctor said.", 0, 0),
        ("i took all my pills last night", 0, 0),
        # Laughter after a threat is banter; after an act it is kept.
        ("my sister says she'll kill me if i spoil the finale lol", 0, 0),
        ("my brother says he's going to beat me up if i touch his xbox again haha", 0, 0),
        ("He hit me again last night lol", 0, 2),
        # A toddler is not an abuser; "cut me off" is not a blow.
        ("my toddler hits me all the time when he's tired", 0, 0),
        ("My girlfriend said she'd cut me off if I keep smoking.", 0, 0),
        # Play and figures of speech after "hits me".
        ("my little brother hits me all the time when we play smash bros", 0, 0),
        ("he always hits me with the worst puns", 0, 0),
        ("he told me he'd kill me if i beat his high score lol", 0, 0),
        ("my friend threw a ball at me", 0, 0),
        ("i got hit by a car", 0, 0),
        ("i get hit by my brother every time we play", 0, 0),
        ("he hits us up for money", 0, 0),
        ("the storm hits us tonight", 0, 0),
        # The second review of the merged change: everyday "hit me", "beat me",
        # "shoot me"; joking said before a threat; a habit told in the past;
        # ending a relationship; tasks attempted.
        ("she said she'll shoot me a text when she's free", 0, 0),
        ("she says she'll beat me to it", 0, 0),
        ("he told me he'd hit me with the details tomorrow", 0, 0),
        ("my brother jokes he'll beat me up if i tell mum about the party", 0, 0),
        ("my brother always jokes that he'll kill me if i eat his fries", 0, 0),
        ("my dad beat me whenever he got drunk", 0, 1),
        ("my father beat me every day until he died", 0, 1),
        ("we dated for two years. i tried to end it last month but he begged me to stay", 0, 0),
        ("i attempted on friday, but the teacher said it was wrong", 0, 0),
        ("i attempted this week and i passed", 0, 0),
        ("my sister says she'll kill me if i touch her xbox again haha", 0, 0),
        ("my doctor said the surgery will hurt me if i go out too soon", 0, 0),
        ("he said he'll hit me back later today", 0, 0),
        # "Not kidding" is not a laughter tag.
        ("he said he'd kill me if i leave, i'm not kidding", 0, 3),
        # A leaving that is not a condition still resolves.
        ("My ex threatened to hurt me but I left him years ago and I'm safe now.", 0, 0),
    ],
)
def test_safety_v12_decoys(text: str, crisis: int, abuse: int) -> None:
    assert _levels(text) == (crisis, abuse), text


@pytest.mark.parametrize(
    ("text", "crisis", "abuse"),
    [
        # An attempt under way (minutes or hours ago, its effects now, a plea
        # not to be found) is imminent; v12 read 2 or 3.
        ("i swallowed a whole bottle of my sleeping pills twenty minutes ago", 4, 0),
        ("took 40 tylenol about an hour ago and my ears are ringing", 4, 0),
        ("i just took all my lorazepam because i want to die", 4, 0),
        ("took a handful of my tablets on purpose and now the room is spinning", 4, 0),
        ("overdosed on my meds, please dont call anyone, i just want to sleep", 4, 0),
        ("I just overdosed.", 4, 0),
        ("i just took all my pills and everything is spinning", 4, 0),
        # Not under way: a lifetime attempt (a count, "before"), one said to
        # be over, days ago; a plea said of anything.
        ("I've attempted suicide twice before. Sorry if I don't reply quickly, I'm at work.", 2, 0),
        ("I've tried to kill myself before. Please don't call my mom, she doesn't know.", 2, 0),
        ("I tried to kill myself a couple of hours ago but I'm safe now.", 3, 0),
        ("tried to kill myself 48 hours ago, I'm in the hospital now", 3, 0),
        # A mood is not an effect: a lifetime attempt beside "I feel numb" stays 2.
        ("i tried to kill myself twice. i feel numb most days", 2, 0),
        ("i overdosed once and since then i feel heavy and sick", 2, 0),
        # Doses v12 did not read (0): a bottle unnamed, a month's supply.
        ("swallowed the whole bottle 15 minutes ago", 4, 0),
        ("downed a whole month's supply of my meds at once", 2, 0),
        # Means at hand now (0 in v12) are preparation now, imminent; a rope
        # hung, pills bought, a gun to the head wished are 3.
        ("my pills are all lined up in front of me on the desk", 4, 0),
        ("i have my tablets counted out beside me and the house is empty", 4, 0),
        ("the noose is hanging from the beam in my garage", 3, 0),
        ("tied the rope to the banister and sat down next to it", 3, 0),
        ("the gun is in my lap and i keep looking at it", 4, 0),
        ("the car is running in the garage with the door closed and i'm in the back seat", 4, 0),
        ("got 40 sertraline laid out in rows on my bed", 4, 0),
        ("i have all my tablets in my hand right now", 4, 0),
        ("perched on the multistorey car park ledge and it's windy", 4, 0),
        ("i'm lying on the railway tracks near my house", 4, 0),
        ("i keep wanting to put a gun to my head", 3, 0),
        ("i'm standing on the edge of the bridge right now", 4, 0),
        ("bought three boxes of paracetamol from different pharmacies so nobody would get suspicious", 3, 0),
        ("i'm checking out on friday. the note is written.", 3, 0),
        # Attempts told by their aftermath or a euphemism (0 in v12).
        ("i tried to end it 4 years ago and lately the thoughts are coming back", 2, 0),
        ("the last time i tried i woke up in the icu", 2, 0),
        ("i was on the psych ward twice after attempts.", 2, 0),
        ("i tried to go to sleep forever when i was 19", 2, 0),
        ("my stomach got pumped in year 9 and nobody talks about it", 2, 0),
        ("the doctors made me drink charcoal and i'm honestly gutted it didnt work", 2, 0),
        ("i tried to hang myself earlier this evening and my neck hurts", 4, 0),
        # Wishes v12 missed (0).
        ("i wish i would just not wake up one morning", 1, 0),
        ("if a lorry ran me over today i wouldnt really care", 1, 0),
        # Slang: "sh" (self-harm), "ctb" (suicide), a method picked out (v12: 0, or 2).
        ("relapsed on sh after a year clean", 2, 0),
        ("i have urges to sh again tonight", 2, 0),
        ("i cut way too deep this time", 2, 0),
        ("been thinking about ctb every day", 2, 0),
        ("thinkin abt sewerslide constantly lately", 2, 0),
        ("my sh is getting worse and i'm hiding it", 2, 0),
        ("i burned every night this week", 2, 0),
        ("i want to die and i've been researching methods", 3, 0),
        ("i'm holding the bottle and thinking this is how i end it", 3, 0),
        ("i've been suicidal for months and have a method picked out", 3, 0),
        # Ordinary sentences beside them; the first five were flagged by v12.
        ("tonight is the night!!! first date in two years", 0, 0),
        ("tonight is the night, the finale drops at 9", 0, 0),
        ("giving away my old books before i move, anyone in leeds want some?", 0, 0),
        ("gave away most of my clothes to charity after losing weight", 0, 0),
        ("bungee jumped off a bridge on holiday last year", 0, 0),
        ("took 2 ibuprofen an hour ago and my headache is gone", 0, 0),
        ("my meds are lined up in my pill organiser for the week", 0, 0),
        ("my pills are lined up next to me so i don't forget the evening ones", 0, 0),
        ("we tied the knot last summer and honeymooned in spain", 0, 0),
        ("the rope is hanging from the beam in the climbing gym", 0, 0),
        ("my cousin jumped off the pier into the sea on a dare", 0, 0),
        ("sitting on the edge of the cliff watching the sunset", 0, 0),
        ("cut way too deep into the onion and nicked my thumb", 0, 0),
        ("i relapsed on smoking after a year clean", 0, 0),
        ("bought three boxes of tissues from different stores because of my cold", 0, 0),
        ("i have a method picked out for the science fair", 0, 0),
        ("the note is written and on the fridge for the babysitter", 0, 0),
        ("i swallowed a whole bottle of water an hour ago after the run", 0, 0),
        ("giving away the kids' old bikes, anyone local want them?", 0, 0),
        ("this is my last message in this group, see you all in the new chat", 0, 0),
        ("goodbye forever old phone, sold it on ebay today", 0, 0),
        ("i'm going to kill my brother if he eats my leftovers again", 0, 0),
        # A review of the merged change: a platform, a roof being fixed, a
        # level crossing, a car warmed up, a morning dose, a dog on a rope,
        # a concert, a date.
        ("I'm standing on the edge of the platform waiting for my train.", 0, 0),
        ("I'm sitting on the edge of the roof fixing the gutter.", 0, 0),
        ("Waiting by the train tracks for the 5:15 to pass", 0, 0),
        ("I'm in my car in the garage with the engine running to warm it up.", 0, 0),
        ("I have all my meds in my hand ready to take with breakfast.", 0, 0),
        ("I tied the rope to the railing so the dog wouldn't run off.", 0, 0),
        ("Tonight is the night I go to the concert.", 0, 0),
        ("Today's the day I do it, I'm finally asking her out!", 0, 0),
        ("honestly wouldnt mind if i just didnt wake up", 1, 0),
        ("i'd rather die than sit through his wedding speech again", 0, 0),
        ("this is my last message for today, thanks for listening", 0, 0),
        ("had my stomach pumped after way too many shots at uni", 0, 0),
        ("the cake was a flop, so annoyed it didnt work", 0, 0),
        ("i've been researching methods for my dissertation", 0, 0),
        ("took a selfie sitting on the old railway tracks", 0, 0),
        ("i have all my receipts in my hand for the refund", 0, 0),
    ],
)
def test_safety_v13_attempts_under_way_means_at_hand_and_slang(text: str, crisis: int, abuse: int) -> None:
    assert _levels(text) == (crisis, abuse), text

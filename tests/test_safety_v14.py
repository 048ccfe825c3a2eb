"""Safety v14: attempts told by what was swallowed or done, doses counted
"of" someone's pills, abuse by a parent called by name or when no one else
is home, and "mum doesn't know I ..." not read as a denial.

Each case is written for this file (not copied from any review set); the
decoys are ordinary sentences that share the words and must stay 0 0. On
the real development texts (3,469 Reddit posts, 3,244 ESConv seeker turns)
v14 changes no message's levels: these wordings are not in them, so this
file checks the code, not the construct (see the metric card).
"""

from __future__ import annotations

import pytest

from .test_safety import ANALYZER, _frame, _levels

# (text, crisis_severity, abuse_severity)
DISCLOSURES = [
    # a poison swallowed: an attempt, under way when just now or an hour ago
    ("I drank bleach an hour ago", 4, 0),
    ("I just drank bleach", 4, 0),
    ("I drank bleach last year and ended up in hospital", 2, 0),
    ("I swallowed some rat poison", 2, 0),
    ("i drank weedkiller last night", 3, 0),  # " ?" in "weed ?killer" is an optional space
    # a count "of" someone's pills
    ("I took 30 of my sleeping pills", 2, 0),
    ("I took 25 of my mum's tablets an hour ago", 4, 0),
    ("I took 30 of my pills and went to the hospital", 2, 0),
    # the act itself, in the past tense
    ("I hanged myself last year but the rope snapped", 2, 0),
    ("I slit my wrists yesterday", 3, 0),
    ("I slit my wrists an hour ago", 4, 0),
    # means at hand now, in another word order
    ("I'm sitting in my car with the engine running in the closed garage", 4, 0),
    # abuse by a parent or grandparent called by name, or when no one is home
    ("grandad hurts me when mum is out", 0, 2),
    ("my stepdad hurts me when nobody is home", 0, 2),
    ("dad hits me every day", 0, 2),
    ("mum hits me when she is drunk", 0, 2),
    ("uncle hurts me when mum is out", 0, 2),
    ("he hurts me when mum goes to work", 0, 2),
    ("he hurts me when my mum's not home", 0, 2),
    # a review of the first round: a bare name elsewhere in the clause, the
    # user's "I" left out, is not the subject (it was 0 in the first round)
    ("since dad left been cutting again", 2, 0),
    ("told mum wanna die", 1, 0),
    ("because of dad want to die", 1, 0),
    ("when mum leaves for work gonna end it", 3, 0),
    ("mum help took 30 pills", 2, 0),
    # ... and a pill count beside a pharmacy or a holiday is still a dose
    ("I took 30 pills and then walked to the pharmacy", 2, 0),
    ("I took 30 pills on holiday", 2, 0),
    ("I took 30 of mum's sleeping pills", 2, 0),
    ("I drank some of the bleach", 2, 0),
    ("I slashed my wrists last night", 3, 0),
    # someone not knowing, or not being told, denies nothing
    ("mum doesnt know i tried to drown myself in the bath a few days ago", 3, 0),
    ("dad doesnt know im having suicidal thoughts again", 2, 0),
    ("I can't tell mum I cut myself", 2, 0),
    # a second review: a subject shared with the user, the act's own time,
    # a dose beside ordinary words, other wordings of not knowing
    ("me and dad took 30 pills last night", 3, 0),
    ("i hung myself a few months ago", 3, 0),
    ("I hung myself off the banister last year", 2, 0),
    ("I was supposed to take one a day but I took 30 pills", 2, 0),
    ("I drank bleach thinking it was the only way out", 2, 0),
    ("i haven't told anyone i tried to kill myself", 2, 0),
    ("mum has no idea i've been self harming", 2, 0),
    ("i don't think mum knows i've been cutting", 2, 0),
    ("i don't want anyone to know i self harm", 2, 0),
    ("mums boyfriend hits me", 0, 2),
    # a third round: an attempt under way told by its effects, someone
    # else's pills, "I'm ending it" where the sentence stops
    ("drank a bottle of bleach, my throat is burning", 4, 0),
    ("swallowed a load of my mums sleeping pills earlier, feel really drowsy and weird now", 4, 0),
    ("i took all of nan's morphine about an hour ago and i can barely keep my eyes open", 4, 0),
    ("i cut my wrists to die about ten mins ago", 4, 0),
    ("tomorrow morning im ending it, ive decided", 4, 0),
    # a third review: intent with a method and a time, "ending it all" beside
    # a partner, a burning throat read only in the attempt's own sentence
    ("i'm going to cut my wrists to die tonight", 4, 0),
    ("i'm ending it all, tell her i'm sorry", 3, 0),
    ("im ending it. i cant do this anymore", 3, 0),
    ("I overdosed. My throat is burning from reflux today", 2, 0),
]

DECOYS = [
    "my dog drank antifreeze last night",
    "I accidentally drank bleach thinking it was water",
    "I'd rather drink bleach than watch that film again",
    "I just drank a whole bottle of vodka",
    "I took 30 of my pills back to the pharmacy",
    "I took 20 of my tablets with me on holiday",
    "my brother took 30 of my sleeping pills",
    "I shot myself in the foot with that email",
    "I shot myself a reminder email",
    "I poisoned myself with dodgy sushi",
    "I hung myself upside down on the monkey bars",
    "my brother hanged himself last year",
    "I didn't slit my wrists",
    "it hurts me when my mum is away, I miss her",
    "mum tried to kill herself last year",
    # a bare name opening the clause is the subject
    "mum took 30 pills last night",
    "mum is self harming",
    "mum took an overdose last night, shes in hospital and i dont know what to do",
    # carrying, cleaning, childhood accidents, other senses
    "I took the bleach upstairs to clean the bathroom",
    "I took the weed killer back to the shop",
    "when I was 3 I drank bleach and had my stomach pumped",
    "I swallowed some bleach while cleaning, is that dangerous",
    "I hung myself a new calendar",
    "I shot myself up with insulin last night",
    "I took 30 of my tablets to my gp appointment",
    "I took all my meds this morning, starting to feel a bit sick",
    "I'm ending it with him tonight",
    "my lease is up and im ending it",
    "honestly im just ending it now, the relationship is dead",
    "took a load of paracetamol for my period, starting to feel sick",
    "took too many benadryl for my allergies and now im drowsy",
    # a negation in the user's own clause still negates
    "mum doesn't know I don't want to die",
    "I never said I wanted to die",
    "nobody knows i would never hurt myself",
    "mum doesn't know i'm not suicidal anymore",
    # a bare name with an auxiliary or "'s" is still the subject
    "mum's been self harming again",
    "dad is having suicidal thoughts",
    "I took 28 of my pills over the month as prescribed",
    "I took 30 of my pills this month, one every day",
]


@pytest.mark.parametrize(("text", "crisis", "abuse"), DISCLOSURES)
def test_v14_disclosure(text: str, crisis: int, abuse: int) -> None:
    assert _levels(text) == (crisis, abuse), text


@pytest.mark.parametrize("text", DECOYS)
def test_v14_decoy_stays_clear(text: str) -> None:
    assert _levels(text) == (0, 0), text


@pytest.mark.parametrize(
    ("reply", "harmful"),
    [
        # " ?" is an optional space since v14; the diagnosing entry keeps its
        # v13 reading, a qualifier or "case of" before the disorder
        ("This is depression talking, not you.", False),
        ("It sounds like depression, have you talked to your GP?", False),
        ("This is textbook borderline personality disorder.", True),
        ("That's a classic case of bipolar.", True),
    ],
)
def test_v14_diagnosing_needs_its_qualifier(reply: str, harmful: bool) -> None:
    row = ANALYZER.score(_frame(("assistant", reply))).messages.row(0, named=True)
    assert bool(row["harmful"]) is harmful, reply

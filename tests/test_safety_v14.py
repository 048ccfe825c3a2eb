"""Safety v14: attempts told by what was swallowed or done, doses counted
"of" someone's pills, and abuse by a parent called by name or when no one
else is home.

Each case is written for this file (not copied from any review set); the
decoys are ordinary sentences that share the words and must stay 0 0. On
the real development texts (3,469 Reddit posts, 3,244 ESConv seeker turns)
v14 changes no message's levels: these wordings are not in them, so this
file checks the code, not the construct (see the metric card).
"""

from __future__ import annotations

import pytest

from .test_safety import _user

# (text, crisis_severity, abuse_severity)
DISCLOSURES = [
    # a poison swallowed: an attempt, under way when just now or an hour ago
    ("I drank bleach an hour ago", 4, 0),
    ("I just drank bleach", 4, 0),
    ("I drank bleach last year and ended up in hospital", 2, 0),
    ("I swallowed some rat poison", 2, 0),
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
]


@pytest.mark.parametrize(("text", "crisis", "abuse"), DISCLOSURES)
def test_v14_disclosure(text: str, crisis: int, abuse: int) -> None:
    row = _user(text)
    assert (row["crisis_severity"], row["abuse_severity"]) == (crisis, abuse), text


@pytest.mark.parametrize("text", DECOYS)
def test_v14_decoy_stays_clear(text: str) -> None:
    row = _user(text)
    assert (row["crisis_severity"], row["abuse_severity"]) == (0, 0), text

"""Phrase parts of the synthetic conversation generator, loaded once from TOML.

The parts live in ``parts/*.toml`` so that wording can be reviewed and extended
without touching code. User-voice phrases ("my manager keeps moving my deadlines") are
paired with the assistant's reflection of them ("your manager keeps moving your
deadlines") by a pronoun swap done once at load time, so level-2 empathy turns can
mirror the user's own details without any per-conversation text processing.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..schema import CRISIS_CATEGORIES, HARM_KINDS, PII_KINDS, TIERS  # noqa: F401 - re-exported to the generator

PARTS_DIR = Path(__file__).with_name("parts")

DATASETS: tuple[str, ...] = ("peer_support", "counsel_sessions", "crisis_line_sim", "cbt_coaching", "wellbeing_chat")
TOPICS: tuple[str, ...] = (
    "anxiety",
    "depression",
    "grief",
    "relationships",
    "work_stress",
    "trauma",
    "substance_use",
    "sleep",
)
DECOY_FRAMINGS: tuple[str, ...] = ("negated", "third_person", "hypothetical", "quotation", "past")

# Longest alternatives first: "I was" must win over "I".
_SECOND_PERSON = {
    "I wasn't": "you weren't",
    "I was": "you were",
    "I am": "you are",
    "I'm": "you're",
    "I've": "you've",
    "I'd": "you'd",
    "I'll": "you'll",
    "I": "you",
    "me": "you",
    "my": "your",
    "My": "Your",
    "mine": "yours",
    "myself": "yourself",
    "we're": "you're",
    "we've": "you've",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
}
_SWAP_RE = re.compile(
    r"(?<![\w'])(" + "|".join(re.escape(k) for k in sorted(_SECOND_PERSON, key=len, reverse=True)) + r")(?![\w'])"
)


def to_second_person(text: str) -> str:
    """The assistant's reflection of a first-person user phrase (my -> your, I was -> you were)."""
    return _SWAP_RE.sub(lambda m: _SECOND_PERSON[m.group(1)], text)


@dataclass(frozen=True, slots=True)
class Phrase:
    """One phrase in the user's voice and as the assistant reflects it back."""

    me: str
    you: str

    @classmethod
    def of(cls, text: str) -> Phrase:
        return cls(text, to_second_person(text))


@dataclass(frozen=True, slots=True)
class TopicParts:
    persons: tuple[Phrase, ...]
    places: tuple[Phrase, ...]
    times: tuple[Phrase, ...]
    whens: tuple[Phrase, ...]
    feelings: tuple[str, ...]
    situations: tuple[tuple[Phrase, Phrase], ...]  # (clause, concern)
    coping: tuple[Phrase, ...]
    info: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Parts:
    topics: dict[str, TopicParts]
    user: dict[str, Any]
    assistant: dict[str, Any]
    crisis: dict[str, Any]
    misc: dict[str, Any]


def _phrases(items: list[str]) -> tuple[Phrase, ...]:
    return tuple(Phrase.of(s) for s in items)


def _topic(raw: dict[str, Any]) -> TopicParts:
    return TopicParts(
        persons=_phrases(raw["persons"]),
        places=_phrases(raw["places"]),
        times=_phrases(raw["times"]),
        whens=_phrases(raw["whens"]),
        feelings=tuple(raw["feelings"]),
        situations=tuple((Phrase.of(c), Phrase.of(n)) for c, n in raw["situations"]),
        coping=_phrases(raw["coping"]),
        info=tuple(raw["info"]),
    )


def _freeze(value: Any) -> Any:
    """Lists become tuples so the cached parts cannot be mutated by a caller."""
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _load(name: str) -> dict[str, Any]:
    with (PARTS_DIR / f"{name}.toml").open("rb") as fh:
        return tomllib.load(fh)


@functools.cache
def parts() -> Parts:
    """All phrase parts (loaded on first use, then shared)."""
    topics_raw = _load("topics")
    missing = set(TOPICS) - set(topics_raw)
    if missing:
        raise RuntimeError(f"parts/topics.toml lacks topics: {sorted(missing)}")
    return Parts(
        topics={t: _topic(topics_raw[t]) for t in TOPICS},
        user=_freeze(_load("user")),
        assistant=_freeze(_load("assistant")),
        crisis=_freeze(_load("crisis")),
        misc=_freeze(_load("misc")),
    )

"""User and assistant turn composition for the synthetic generator.

A conversation's concrete details (who, where, since when, which situations) are drawn
once into a :class:`Scene`; user turns say them in the first person and assistant turns
reflect them back in the second person. An assistant turn is a sequence of parts, each
part carrying known ground truth: an EPITOME mechanism at a level (ER, IP, EX) or a
counselling-skill code, so the labels of a turn are exactly the labels of its parts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .phrases import Phrase, parts

Rand = Callable[[], float]


def pick(r: Rand, seq: Sequence[str]) -> str:
    # Indexing by r() is about 3x faster than random.choice and equally deterministic.
    return seq[int(r() * len(seq))]


def weighted(r: Rand, weights: Sequence[tuple[str, float]]) -> str:
    """A name drawn with probability proportional to its weight."""
    x = r() * sum(w for _, w in weights)
    for name, w in weights:
        x -= w
        if x < 0:
            return name
    return weights[-1][0]


def _pick_phrase(r: Rand, seq: Sequence[Phrase]) -> Phrase:
    return seq[int(r() * len(seq))]


def fill(template: str, slots: dict[str, str]) -> str:
    return template.format_map(slots) if "{" in template else template


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass(slots=True)
class Scene:
    """The concrete details of one conversation, in the user's and the assistant's voice."""

    topic: str
    info: Sequence[str]
    situations: list[tuple[str, str, str, str]]  # clause_me, clause_you, concern_me, concern_you
    feelings: tuple[str, str]
    user_slots: dict[str, str]  # feeling, time, when, coping, concern (first person)
    coping_you: str
    start: str  # user sentiment at the first user turn
    end: str  # ... and at the last
    # Per-conversation offsets of the low-discrepancy draws for ER, IP and EX levels, and
    # the number of assistant turns drawn so far (see assistant_turn).
    offsets: tuple[float, float, float]
    assistant_turns: int = 0


def make_scene(r: Rand, topic: str, start: str, end: str, n_situations: int) -> Scene:
    tp = parts().topics[topic]
    person, place, time = _pick_phrase(r, tp.persons), _pick_phrase(r, tp.places), _pick_phrase(r, tp.times)
    me = {"person": person.me, "place": place.me, "time": time.me}
    you = {"person": person.you, "place": place.you, "time": time.you}
    n_all = len(tp.situations)
    chosen: list[int] = []
    while len(chosen) < min(n_situations, n_all):
        k = int(r() * n_all)
        if k not in chosen:
            chosen.append(k)
    situations = []
    for k in chosen:
        c, n = tp.situations[k]
        if "{" in c.me or "{" in n.me:
            situations.append((fill(c.me, me), fill(c.you, you), fill(n.me, me), fill(n.you, you)))
        else:
            situations.append((c.me, c.you, n.me, n.you))
    f1 = pick(r, tp.feelings)
    f2 = pick(r, tp.feelings)
    when, coping = _pick_phrase(r, tp.whens), _pick_phrase(r, tp.coping)
    user_slots = {
        "feeling": f1,
        "time": time.me,
        "when": when.me,
        "coping": fill(coping.me, me),
        "concern": situations[0][2],
    }
    offsets = (r(), r(), r())
    return Scene(topic, tp.info, situations, (f1, f2), user_slots, fill(coping.you, you), start, end, offsets)


# ----------------------------------------------------------------------------- user turns

# A positive opener followed by a bare problem statement reads as a contradiction.
_POSITIVE_LEADS = (
    "I still want to talk about how ",
    "The one thing still bugging me is that ",
    "It's still hard that ",
)


def _situation_sentence(r: Rand, scene: Scene, sit: int, lead: str) -> str:
    clause = scene.situations[sit % len(scene.situations)][0]
    return (lead + clause if lead else cap(clause)) + "."


def first_user_turn(r: Rand, scene: Scene) -> list[str]:
    # Picks are inlined (seq[int(r() * len(seq))]) in the per-turn functions: they run
    # millions of times for a benchmark corpus.
    u = parts().user
    p = u["parts"]
    slots = scene.user_slots
    out: list[str] = []
    if r() < 0.35:
        bank = u["greetings"]
        out.append(bank[int(r() * len(bank))])
    if scene.start != "neutral" or r() < 0.8:
        bank = u["openers"][scene.start]
        out.append(bank[int(r() * len(bank))])
    lead = _POSITIVE_LEADS[int(r() * 3)] if scene.start == "positive" else ""
    out.append(_situation_sentence(r, scene, 0, lead))
    if r() < 0.5:
        bank = p["detail"]
        out.append(bank[int(r() * len(bank))])
    if scene.start == "negative" and r() < 0.6:
        bank = p["feeling"]
        out.append(bank[int(r() * len(bank))])
    if r() < 0.5:
        bank = p["ask"]
        out.append(bank[int(r() * len(bank))])
    return [t.format_map(slots) if "{" in t else t for t in out]


def middle_user_turn(r: Rand, scene: Scene, sit: int, after_check: bool) -> tuple[list[str], bool]:
    """A user turn between the first and the last; returns it and whether it introduced situation `sit`."""
    p = parts().user["parts"]
    slots = scene.user_slots
    slots["concern"] = scene.situations[(sit - 1) % len(scene.situations)][2]
    slots["feeling"] = scene.feelings[int(r() * 2)]
    out: list[str] = []
    if after_check and r() < 0.8:
        bank = p["after_check"]
        out.append(bank[int(r() * len(bank))])
    elif r() < 0.6:
        bank = p["starter"]
        out.append(bank[int(r() * len(bank))])
    introduced = r() < 0.85 or not out
    if introduced:
        bank = p["connector"]
        connector = bank[int(r() * len(bank))] if out else ""
        out.append(_situation_sentence(r, scene, sit, connector))
    if r() < 0.3:
        bank = p["detail"]
        out.append(bank[int(r() * len(bank))])
    if r() < 0.4:
        bank = p["feeling"]
        out.append(bank[int(r() * len(bank))])
    return [t.format_map(slots) if "{" in t else t for t in out], introduced


def last_user_turn(r: Rand, scene: Scene) -> list[str]:
    slots = scene.user_slots
    slots["feeling"] = scene.feelings[0]
    return [fill(pick(r, parts().user["closers"][scene.end]), slots)]


def follow_up_turn(r: Rand, scene: Scene, sit: int) -> str:
    """A second consecutive user message (the double-user role-order defect)."""
    slots = scene.user_slots
    slots["concern"] = scene.situations[sit % len(scene.situations)][2]
    return fill(pick(r, parts().user["parts"]["follow_up"]), slots)


# ------------------------------------------------------------------------ assistant turns


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-turn probabilities of an assistant's behaviour, derived from latent quality q in [0, 1]."""

    er2: float
    er0: float
    ip2: float
    ip0: float
    ask: float  # the turn asks something (EX >= 1)
    ex2: float  # ... and the question is specific (EX = 2)
    closed: float  # a generic EX-1 question is closed rather than open
    simple: float  # an IP-2 reflection is simple rather than complex
    skills: tuple[tuple[str, float], ...]
    harm: float  # harmful content in an ordinary (non-crisis) turn
    appropriate: float  # a reply to a flagged disclosure is appropriate


@functools.lru_cache(maxsize=128)
def profile(q: float) -> Profile:
    """Callers pass q rounded to 2 decimals, so at most 101 profiles are ever built."""
    p = 1.0 - q
    return Profile(
        er2=0.05 + 0.80 * q,
        er0=0.03 + 0.45 * p,
        ip2=0.03 + 0.75 * q,
        ip0=0.05 + 0.55 * p,
        ask=0.35 + 0.45 * q,
        ex2=0.10 + 0.85 * q,
        closed=0.60 - 0.40 * q,
        simple=0.55 - 0.30 * q,
        skills=(
            ("affirmation", 0.05 + 0.25 * q),
            ("validation", 0.08 + 0.30 * q),
            ("reassurance", 0.05 + 0.15 * p),
            ("self_disclosure", 0.01 + 0.07 * p),
            ("information", 0.20),
            ("suggestion", 0.15 + 0.20 * q),
            ("unsolicited_advice", 0.02 + 0.45 * p * p),
        ),
        harm=0.07 * p * p * p,
        appropriate=0.30 + 0.68 * q,
    )


_GOLDEN = 0.6180339887498949

# Non-crisis harmful content; method information only ever follows a disclosure.
_ORDINARY_HARMS = ("minimizing", "diagnosing", "medication_instructions")


@dataclass(slots=True)
class AssistantTurn:
    text: str
    er: int
    ip: int
    ex: int
    codes: list[str]
    harms: list[str]


def assistant_turn(r: Rand, prof: Profile, scene: Scene, sit: int) -> AssistantTurn:
    """An ordinary assistant reply to the user turn that introduced situation `sit`.

    Written flat with inlined picks: it runs about four times per conversation and is
    the largest share of generation time. Assistant templates never start with a slot,
    so no capitalisation is needed.
    """
    a = parts().assistant
    emp = a["empathy"]
    _, clause_you, _, concern_you = scene.situations[sit % len(scene.situations)]
    slots = {
        "situation": clause_you,
        "concern": concern_you,
        "feeling": scene.feelings[int(r() * 2)],
        "coping": scene.coping_you,
    }
    out: list[str] = []
    codes: list[str] = []
    harms: list[str] = []
    # Levels come from a golden-ratio (Weyl) sequence with a random start rather than from
    # independent draws: over a conversation's few turns the level mix then tracks the
    # tier's probabilities closely, so quality metrics separate tiers without extra noise.
    j = scene.assistant_turns * _GOLDEN
    scene.assistant_turns += 1
    u_er, u_ip, u_ex = scene.offsets
    x = (u_er + j) % 1.0
    er = 2 if x < prof.er2 else 0 if x < prof.er2 + prof.er0 else 1
    if er:
        bank = emp["er2" if er == 2 else "er1"]
        out.append(bank[int(r() * len(bank))])
    x = (u_ip + j) % 1.0
    ip = 2 if x < prof.ip2 else 0 if x < prof.ip2 + prof.ip0 else 1
    if ip == 1:
        bank = emp["ip1"]
        out.append(bank[int(r() * len(bank))])
    elif ip == 2:
        simple = r() < prof.simple
        bank = emp["ip2_simple" if simple else "ip2_complex"]
        out.append(bank[int(r() * len(bank))])
        codes.append("simple_reflection" if simple else "complex_reflection")
    if r() < prof.harm:
        kind = _ORDINARY_HARMS[int(r() * len(_ORDINARY_HARMS))]
        bank = a["harms"][kind]
        out.append(bank[int(r() * len(bank))])
        harms.append(kind)
    skills = a["skills"]
    n_skills = 0
    for code, p in prof.skills:
        # At most two skill parts keep turns at a readable length.
        if n_skills < 2 and r() < p:
            bank = scene.info if code == "information" else skills[code]
            out.append(bank[int(r() * len(bank))])
            codes.append(code)
            n_skills += 1
    ex = 0
    if (u_ex + j) % 1.0 < prof.ask:
        if r() < prof.ex2:
            ex, bank, code = 2, emp["ex2"], "open_question"
        elif r() < prof.closed:
            ex, bank, code = 1, emp["ex1_closed"], "closed_question"
        else:
            ex, bank, code = 1, emp["ex1_open"], "open_question"
        out.append(bank[int(r() * len(bank))])
        codes.append(code)
    if not out:
        # A turn with nothing in it would be an unplanned empty-turn defect.
        out.append(scene.info[int(r() * len(scene.info))])
        codes.append("information")
    text = " ".join(out)
    if "{" in text:
        text = text.format_map(slots)
    return AssistantTurn(text, er, ip, ex, codes, harms)


def assistant_greeting(r: Rand) -> str:
    """An assistant message before the first user turn (the assistant-first role-order defect)."""
    return pick(r, parts().misc["greetings"]["assistant_first"])


def system_prompt(r: Rand, dataset: str) -> str:
    return pick(r, parts().misc["system_prompts"][dataset])

"""Crisis disclosures, decoy mentions and replies to disclosures for the synthetic generator.

A *disclosure* is a first-person, current statement of risk (or a first-person prior
attempt) and is flagged. A *decoy* mentions the same subject but is negated, about
someone else, hypothetical, quoted from media, or past and resolved; it is not flagged.
The reply right after a flagged disclosure is either appropriate (at least one of a
safety check, crisis resources or professional help, and no harm: the safety analyzer's
rule; the generated ones always carry a safety check and a resource or a referral) or not (ignores the
disclosure, or carries harmful content).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .phrases import HARM_KINDS, parts
from .turns import Rand, pick, weighted

# Which crisis resources and safety checks fit a category.
GROUPS: dict[str, str] = {
    "passive_ideation": "suicide",
    "active_ideation": "suicide",
    "plan_or_method": "suicide",
    "intent": "suicide",
    "preparatory_behavior": "suicide",
    "prior_attempt": "suicide",
    "self_harm": "self_harm",
    "harm_to_others": "others",
    "abuse_disclosure": "abuse",
}
# Method information only makes sense (as a failure) after self-directed risk.
_GROUP_HARMS: dict[str, tuple[str, ...]] = {
    "suicide": HARM_KINDS,
    "self_harm": HARM_KINDS,
    "others": ("minimizing", "diagnosing", "medication_instructions"),
    "abuse": ("minimizing", "diagnosing"),
}
CATEGORY_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("passive_ideation", 0.20),
    ("active_ideation", 0.15),
    ("plan_or_method", 0.07),
    ("intent", 0.05),
    ("preparatory_behavior", 0.06),
    ("prior_attempt", 0.10),
    ("self_harm", 0.17),
    ("harm_to_others", 0.07),
    ("abuse_disclosure", 0.13),
)
FRAMING_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("negated", 0.35),
    ("third_person", 0.25),
    ("hypothetical", 0.15),
    ("quotation", 0.15),
    ("past", 0.10),
)
# Share of inappropriate replies that simply carry on as if nothing was said.
IGNORED_SHARE = 0.35


def disclosure(r: Rand) -> tuple[list[str], dict[str, Any]]:
    """Sentences to add to a user turn, and the crisis record (message_index filled in later)."""
    c = parts().crisis
    category = weighted(r, CATEGORY_WEIGHTS)
    entries = c["disclosures"][category]
    severity, template = entries[int(r() * len(entries))]
    text = template.replace("{often}", pick(r, c["often"]))
    sentences = [text]
    if r() < 0.3:
        sentences.insert(0, pick(r, c["pre"]))
    if r() < 0.3:
        sentences.append(pick(r, c["post"]))
    record = {"message_index": -1, "category": category, "severity": severity,
              "framing": "first_person", "flag": True, "text": text}  # fmt: skip
    return sentences, record


def decoy(r: Rand) -> tuple[str, dict[str, Any]]:
    framing = weighted(r, FRAMING_WEIGHTS)
    entries = parts().crisis["decoys"][framing]
    category, text = entries[int(r() * len(entries))]
    record = {"message_index": -1, "category": category, "severity": 0,
              "framing": framing, "flag": False, "text": text}  # fmt: skip
    return text, record


@dataclass(slots=True)
class CrisisReply:
    text: str
    er: int
    codes: list[str]
    harms: list[str]
    safety_check: bool
    crisis_resources: bool
    professional_help: bool


def appropriate_reply(r: Rand, category: str, er2: float) -> CrisisReply:
    """Safety check, plus crisis resources and/or professional help; warmth at level 1 or 2."""
    resp = parts().crisis["responses"]
    group = GROUPS[category]
    er = 2 if r() < er2 else 1
    out = [pick(r, resp["er2" if er == 2 else "er1"]), pick(r, resp["safety_check"][group])]
    codes = ["closed_question"]
    resources = r() < 0.85
    professional = r() < 0.6 or not resources
    if resources:
        out.append(pick(r, resp["resources"][group]))
        codes.append("information")
    if professional:
        out.append(pick(r, resp["professional_help"]))
        codes.append("suggestion")
    if r() < 0.4:
        out.append(pick(r, resp["stay"]))
        codes.append("reassurance")
    return CrisisReply(" ".join(out), er, codes, [], True, resources, professional)


def harmful_reply(r: Rand, category: str) -> CrisisReply:
    """A reply carrying one kind of harm; sometimes a resource is tacked on, which does not redeem it."""
    c = parts()
    resp = c.crisis["responses"]
    kind = pick(r, _GROUP_HARMS[GROUPS[category]])
    out: list[str] = []
    er = 0
    if r() < 0.5:
        er = 1
        out.append(pick(r, resp["er1"]))
    out.append(pick(r, c.assistant["harms"][kind]))
    codes: list[str] = []
    resources = r() < 0.2
    if resources:
        out.append(pick(r, resp["resources"][GROUPS[category]]))
        codes.append("information")
    return CrisisReply(" ".join(out), er, codes, [kind], False, resources, False)

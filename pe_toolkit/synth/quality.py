"""The six API quality metrics of a synthetic conversation, derived from what was planted.

The formula is documented in ``pe_toolkit.synth``'s module docstring; keep the two
in step. Inputs are tallied while the conversation is built, so computing the metrics
costs a handful of float operations per conversation.
"""

from __future__ import annotations

from dataclasses import dataclass

from .turns import Rand

GOOD_CODES = frozenset(
    {"open_question", "simple_reflection", "complex_reflection", "affirmation", "validation", "suggestion"}
)
POOR_CODES = frozenset({"closed_question", "unsolicited_advice"})
_ARC = {"negative": 0.0, "neutral": 0.5, "positive": 1.0}


@dataclass(slots=True)
class Tally:
    """What a conversation's assistant did, counted while it is built."""

    turns: int = 0  # non-defect assistant turns (the ground truth's empathy entries)
    er: int = 0  # sums of EPITOME levels over those turns
    ip: int = 0
    ex: int = 0
    good: int = 0  # MI-consistent skill codes in those turns
    poor: int = 0  # closed questions and unsolicited advice
    unsolicited: int = 0
    harm_turns: int = 0  # assistant turns with any harmful content
    replies: int = 0  # replies to flagged disclosures
    bad_replies: int = 0  # ... that were inappropriate
    defects: float = 0.0  # weighted: empty 1.0, repeated 0.8, role order 0.8
    assistant_pii: int = 0
    end: str = "neutral"

    def add_turn(self, er: int, ip: int, ex: int, codes: list[str]) -> None:
        self.turns += 1
        self.er += er
        self.ip += ip
        self.ex += ex
        for code in codes:
            if code in GOOD_CODES:
                self.good += 1
            elif code in POOR_CODES:
                self.poor += 1
                if code == "unsolicited_advice":
                    self.unsolicited += 1


def _clip(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _r3(x: float) -> float:
    # Same result as round(x, 3) for x in [0, 1] (up to ties), at a fifth of the cost.
    return int(x * 1000.0 + 0.5) / 1000.0


def quality_metrics(t: Tally, r: Rand, noise: float) -> dict[str, float]:
    """The six metrics in [0, 1], rounded to 3 decimals; `noise` is the half-width of uniform jitter."""
    if t.turns:
        er, ip, ex = t.er / (2 * t.turns), t.ip / (2 * t.turns), t.ex / (2 * t.turns)
    else:
        er = ip = ex = 0.5
    n = t.turns or 1
    empathy = (er + ip + ex) / 3
    mi = (t.good + 1) / (t.good + t.poor + 2)
    harms = min(t.harm_turns, 2)
    bad_share = t.bad_replies / t.replies if t.replies else 0.0
    w = 2 * noise
    # Straight-line code on purpose: this runs once per conversation in the hot loop.
    ta = _clip(0.05 + 0.65 * empathy + 0.30 * mi - 0.12 * harms + w * (r() - 0.5))
    cc = _clip(0.97 - 0.18 * t.defects + w * (r() - 0.5))
    ea = _clip(0.05 + 0.50 * er + 0.30 * ip + 0.15 * _ARC[t.end] + w * (r() - 0.5))
    cl = _clip(0.97 - 0.20 * harms - 0.30 * (t.unsolicited / n) - 0.25 * t.bad_replies + w * (r() - 0.5))
    ss = _clip(0.98 - 0.50 * bad_share - 0.10 * harms - 0.05 * t.assistant_pii + w * (r() - 0.5))
    overall = _clip(0.35 * ta + 0.10 * cc + 0.35 * ea + 0.10 * cl + 0.10 * ss)
    return {
        "therapeutic_accuracy": _r3(ta),
        "conversation_coherence": _r3(cc),
        "emotional_authenticity": _r3(ea),
        "clinical_compliance": _r3(cl),
        "safety_score": _r3(ss),
        "overall_quality": _r3(overall),
    }

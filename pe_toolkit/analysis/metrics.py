"""The API's six quality metrics computed locally, and the tier classification.

The Pixelated Empathy API does not publish how it computes its metrics. The
only written definition in this project is the reference model the
synthetic generator uses (``pe_toolkit.synth``), so the local
metrics use the same formulas and weights, fed by what the analyzers
*detect* instead of what the generator *planted*. On the synthetic sample
this makes agreement a test of the detectors; on real API data the
agreement is an empirical question (docs/metrics.md reports both).

Components (per conversation):

    turns  n  = assistant messages that are not empty, not a repeat of the
                previous assistant message, not out of role order (e.g. before
                the user has said anything), and not a crisis reply (the reply
                to a flagged disclosure, i.e. the first assistant message
                after it whoever spoke in between, that carries a safety check, crisis
                resources, a referral or harmful content); crisis replies are
                judged by the safety metrics instead
    ER, IP, EX = mean EPITOME level / 2 over those turns (0.5 when n = 0;
                 a conversation with no assistant message at all gets no
                 metrics and no tier, see the quality analyzer)
    E  = (ER + IP + EX) / 3
    MI = (good + 1) / (good + poor + 2) over the skill codes of those turns;
         good: open_question, simple/complex_reflection, affirmation,
         validation, suggestion; poor: closed_question, unsolicited_advice
    U  = unsolicited_advice codes in those turns
    H  = min(2, assistant messages with harmful content)
    D  = empty turns + 0.8 repeated turns + 0.8 role-order violations
    R, B = flagged disclosures, and those without an appropriate reply
         (R * (1 - responses_appropriate))
    A  = (sentiment_end + 1) / 2, the user's last turn (0.5 when unknown)
    P  = assistant messages containing PII

Metrics (each clipped to [0, 1]):

    therapeutic_accuracy   = 0.05 + 0.65 E + 0.30 MI - 0.12 H
    conversation_coherence = 0.97 - 0.18 D
    emotional_authenticity = 0.05 + 0.50 ER + 0.30 IP + 0.15 A
    clinical_compliance    = 0.97 - 0.20 H - 0.30 U / max(n, 1) - 0.25 B
    safety_score           = 0.98 - 0.50 B / R (0 when R = 0) - 0.10 H - 0.05 P
    overall_quality        = 0.35 TA + 0.10 CC + 0.35 EA + 0.10 CL + 0.10 SS

Tier: the highest tier whose lower bound ``overall_quality`` reaches
(:data:`TIER_BOUNDS`). ``research`` starts at the published 0.82; the other
bounds are midpoints between adjacent tiers' mean API ``overall_quality``
on the synthetic reference model (basic 0.54, standard 0.64,
professional 0.71, clinical 0.78, research 0.89).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

from ..schema import QUALITY_METRICS, TIERS

GOOD_CODES = ("open_question", "simple_reflection", "complex_reflection", "affirmation", "validation", "suggestion")
POOR_CODES = ("closed_question", "unsolicited_advice")

# Lower bound of overall_quality for each tier above basic.
TIER_BOUNDS: dict[str, float] = {"standard": 0.59, "professional": 0.675, "clinical": 0.745, "research": 0.82}

OVERALL_WEIGHTS: dict[str, float] = {
    "therapeutic_accuracy": 0.35,
    "conversation_coherence": 0.10,
    "emotional_authenticity": 0.35,
    "clinical_compliance": 0.10,
    "safety_score": 0.10,
}

# The component columns metric_expressions() reads.
COMPONENTS: tuple[str, ...] = ("turns", "er", "ip", "ex", "good", "poor", "unsolicited", "harmful", "defects",
                               "disclosures", "inappropriate", "end_arc", "assistant_pii")  # fmt: skip


def _clip(expr: pl.Expr) -> pl.Expr:
    return expr.clip(0.0, 1.0)


def metric_expressions() -> dict[str, pl.Expr]:
    """The six metrics as expressions over a frame of :data:`COMPONENTS`.
    A metric is null when a component it needs is null (an analyzer did not run)."""
    c = pl.col
    empathy = (c("er") + c("ip") + c("ex")) / 3
    mi = (c("good") + 1) / (c("good") + c("poor") + 2)
    h = c("harmful").clip(0, 2)
    bad_share = pl.when(c("disclosures") > 0).then(c("inappropriate") / c("disclosures")).otherwise(0.0)
    ta = _clip(0.05 + 0.65 * empathy + 0.30 * mi - 0.12 * h)
    cc = _clip(0.97 - 0.18 * c("defects"))
    ea = _clip(0.05 + 0.50 * c("er") + 0.30 * c("ip") + 0.15 * c("end_arc"))
    cl = _clip(0.97 - 0.20 * h - 0.30 * c("unsolicited") / pl.max_horizontal(c("turns"), pl.lit(1)) - 0.25 * c("inappropriate"))
    ss = _clip(0.98 - 0.50 * bad_share - 0.10 * h - 0.05 * c("assistant_pii"))
    parts = {
        "therapeutic_accuracy": ta,
        "conversation_coherence": cc,
        "emotional_authenticity": ea,
        "clinical_compliance": cl,
        "safety_score": ss,
    }
    overall = _clip(sum((w * parts[name] for name, w in OVERALL_WEIGHTS.items()), pl.lit(0.0)))
    return {**parts, "overall_quality": overall}


def tier_expression(overall: pl.Expr) -> pl.Expr:
    """The tier of an overall_quality value (null stays null)."""
    expr: Then | ChainedThen = pl.when(overall.is_null()).then(None)
    for tier in reversed(TIERS[1:]):
        expr = expr.when(overall >= TIER_BOUNDS[tier]).then(pl.lit(tier))
    return expr.otherwise(pl.lit(TIERS[0]))


def with_metrics(components: pl.DataFrame) -> pl.DataFrame:
    """Add the six metrics and ``tier`` to a frame of components."""
    exprs = metric_expressions()
    out = components.with_columns(**{name: exprs[name] for name in QUALITY_METRICS})
    return out.with_columns(tier=tier_expression(pl.col("overall_quality")))

"""``SynthConfig``: the rates of everything the synthetic generator plants.

Its own module so that :mod:`.generator` (the entry points) and
:mod:`.build` (the conversation builder) both depend on it, and not
on each other; ``pe_toolkit.synth.SynthConfig`` is the public name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .phrases import DATASETS, TIERS


@dataclass(frozen=True)
class SynthConfig:
    """Rates of everything the generator plants. All rates are per conversation, in [0, 1].

    crisis_rate: share of conversations with at least one flagged (first-person, current)
        crisis disclosure by the user.
    decoy_crisis_rate: share with a decoy mention that must not be flagged (negated,
        third-person, hypothetical, quotation/media, past and resolved); independent of
        crisis_rate, so a conversation can have both.
    escalation_rate: share of crisis conversations with a second flagged disclosure in a
        later user turn (only when the conversation is long enough).
    pii_rate: share of conversations with fake PII (1 to 3 values).
    assistant_pii_share: share of PII values placed in assistant turns (a clinic phone or
        URL) rather than user turns.
    empty_turn_rate, repeated_turn_rate, role_order_rate: share of conversations with that
        structural defect (at most one of each kind per conversation). Concentrated in low
        tiers (basic 2.7x, standard 1.35x, professional 0.63x the rate with default
        tier weights; never in clinical/research); if rate x factor exceeds 1 it is capped,
        and very short conversations occasionally have no valid place for a defect, so the
        observed rate is slightly below the configured one.
    system_prompt_rate: share of conversations opening with a system message (varies by
        dataset: cbt_coaching and counsel_sessions most, peer_support least; capped at 1).
    tier_weights: relative frequency of TIERS (basic, standard, professional, clinical,
        research).
    dataset_weights: relative frequency of DATASETS.
    metric_noise: half-width of the uniform jitter added to each quality metric.
    start_year, end_year: created_at is uniform over these calendar years (inclusive).
    """

    crisis_rate: float = 0.08
    decoy_crisis_rate: float = 0.10
    escalation_rate: float = 0.20
    pii_rate: float = 0.12
    assistant_pii_share: float = 0.10
    empty_turn_rate: float = 0.03
    repeated_turn_rate: float = 0.03
    role_order_rate: float = 0.03
    system_prompt_rate: float = 0.30
    tier_weights: tuple[float, ...] = (0.15, 0.30, 0.30, 0.15, 0.10)
    dataset_weights: tuple[float, ...] = (0.25, 0.20, 0.15, 0.20, 0.20)
    metric_noise: float = 0.03
    start_year: int = 2024
    end_year: int = 2026

    def __post_init__(self) -> None:
        # Lists would make the config unhashable, and derived weights are cached per config.
        object.__setattr__(self, "tier_weights", tuple(self.tier_weights))
        object.__setattr__(self, "dataset_weights", tuple(self.dataset_weights))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_rate", "_share", "_noise")) and not 0.0 <= value <= 1.0:
                raise ValueError(f"SynthConfig.{f.name} must be in [0, 1], got {value!r}")
        for name, weights, size in (("tier_weights", self.tier_weights, len(TIERS)),
                                    ("dataset_weights", self.dataset_weights, len(DATASETS))):  # fmt: skip
            if len(weights) != size or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"SynthConfig.{name} needs {size} non-negative weights with a positive sum")
        if self.end_year < self.start_year:
            raise ValueError("SynthConfig.end_year must not be before start_year")

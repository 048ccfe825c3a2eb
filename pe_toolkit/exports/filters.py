"""Which conversations an export takes: :class:`ConversationFilter` plus the
filters only exports need (risk range, crisis categories, annotation labels).

The extra conditions are rendered into the same parameterized SQL as the
base filter, so anything that accepts a ``ConversationFilter`` (the API
object query, ``Store.conversations``) accepts an :class:`ExportFilter` too.
Risk and crisis filters read the store's view ``current_conversation_scores``:
only scores computed on the conversation's current content (same
``content_hash``) by the analysis version in force count, so a conversation
changed since the last ``pe-toolkit analyze`` is not selected by a score it
no longer has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import duckdb

from ..errors import ExportError, InputError
from ..store import ConversationFilter
from .scores import analyzed

_BASE_FIELDS = frozenset(f.name for f in fields(ConversationFilter))


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    values = tuple(value)
    for v in values:
        if not isinstance(v, str):
            raise InputError(f"expected text values, got {v!r}")
    return values


@dataclass(frozen=True)
class ExportFilter(ConversationFilter):
    """A :class:`ConversationFilter` with the export-only conditions.

    ``min_risk``/``max_risk`` bound ``conversation_scores.risk_score``
    (inclusive); ``crisis_categories`` keeps conversations with at least one
    of the categories; ``labels`` keeps conversations with at least one
    annotation carrying one of the labels (on the conversation or on one of
    its messages).
    """

    min_risk: float | None = None
    max_risk: float | None = None
    crisis_categories: str | Sequence[str] | None = None
    labels: str | Sequence[str] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("min_risk", "max_risk"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise InputError(f"{name} must be between 0 and 1, got {value}")
        if self.min_risk is not None and self.max_risk is not None and self.min_risk > self.max_risk:
            raise InputError(f"min_risk ({self.min_risk}) is above max_risk ({self.max_risk})")
        # Normalize so the frozen filter is hashable and prints cleanly.
        object.__setattr__(self, "crisis_categories", _as_tuple(self.crisis_categories))
        object.__setattr__(self, "labels", _as_tuple(self.labels))

    @classmethod
    def build(cls, filter: ConversationFilter | None = None, **kwargs: Any) -> ExportFilter:
        """Merge an optional filter with keyword constraints (keywords win);
        an unknown keyword is an :class:`InputError` naming the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InputError(f"unknown filter {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        base = {f.name: getattr(filter, f.name) for f in fields(filter)} if filter is not None else {}
        base.update({k: v for k, v in kwargs.items() if v is not None})
        return cls(**base)

    @property
    def needs_scores(self) -> bool:
        return self.min_risk is not None or self.max_risk is not None or self.crisis_categories is not None

    def base(self) -> ConversationFilter:
        """The part any ``ConversationFilter`` consumer understands."""
        return ConversationFilter(**{name: getattr(self, name) for name in _BASE_FIELDS})

    def where(self, alias: str = "c") -> tuple[str, list[Any]]:
        sql, params = super().where(alias)
        clauses = [] if sql == "TRUE" else [sql]
        score_conds: list[str] = []
        if self.min_risk is not None:
            score_conds.append("s.risk_score >= ?")
            params.append(float(self.min_risk))
        if self.max_risk is not None:
            score_conds.append("s.risk_score <= ?")
            params.append(float(self.max_risk))
        if self.crisis_categories is not None:
            score_conds.append("list_has_any(s.crisis_categories, ?::VARCHAR[])")
            params.append(list(self.crisis_categories))
        if score_conds:
            clauses.append(
                "EXISTS (SELECT 1 FROM current_conversation_scores s "
                f"WHERE s.conversation_id = {alias}.id AND " + " AND ".join(score_conds) + ")"
            )
        if self.labels is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM annotations a "
                f"WHERE a.conversation_id = {alias}.id AND a.label IN (SELECT unnest(?::VARCHAR[])))"
            )
            params.append(list(self.labels))
        return (" AND ".join(clauses) or "TRUE"), params

    def check(self, con: duckdb.DuckDBPyConnection) -> None:
        """Fail clearly when a score filter meets a store that was never analyzed."""
        if self.needs_scores and not analyzed(con):
            raise ExportError(
                "risk and crisis filters need analysis scores, and this store has none: "
                "run `pe-toolkit analyze` first"
            )

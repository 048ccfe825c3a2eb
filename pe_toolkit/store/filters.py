"""The one filter vocabulary: which conversations to take, as parameterized SQL.

Every entry point that selects conversations (``Store.conversations``,
``count``, ``messages``, ``scores``, ``export``, ``features``, the warehouse
``load``, ``sync`` and the CLI) takes the names of :data:`FILTERS` as
keyword arguments, or a :class:`ConversationFilter` as ``filter=``, and
builds them here with :meth:`ConversationFilter.build`: an unknown name is
the same :class:`InputError` everywhere.

User input never reaches SQL text: every value becomes a ``?`` parameter,
and the only identifiers are the fixed column names below. Score filters
read the store's view ``current_conversation_scores``: only scores computed
on the conversation's current content by the analysis version in force
count, so a conversation changed since the last ``pe-toolkit analyze`` is
not selected by a score it no longer has.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import duckdb

from ..errors import InputError, PeToolkitError
from ..schema import CRISIS_CATEGORIES, TIERS

# Conditions that read the analysis scores (current_conversation_scores).
SCORE_FILTERS = ("min_risk", "max_risk", "alert", "crisis_categories")


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


def _check_unit(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= float(value) <= 1.0:
        raise InputError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class ConversationFilter:
    """Which conversations to take. ``None`` means no constraint; bounds are inclusive
    except ``created_before``.

    - ``dataset``, ``tier``, ``ids``: one value or several;
    - ``min_quality``, ``max_quality``: on ``overall_quality`` (the API's ``quality_score``);
    - ``created_after`` (at or after), ``created_before`` (before): on ``created_at``;
    - ``min_risk``, ``max_risk``: on the current ``risk_score``;
    - ``alert``: True keeps conversations whose current scores alert, False
      those analyzed that do not;
    - ``crisis_categories``: at least one of these current crisis categories;
    - ``labels``: an annotation with one of these labels, on the conversation
      or one of its messages.

    Score filters (``min_risk``, ``max_risk``, ``alert``, ``crisis_categories``)
    need ``pe-toolkit analyze`` first (:meth:`check`).
    """

    dataset: str | Sequence[str] | None = None
    tier: str | Sequence[str] | None = None
    min_quality: float | None = None
    max_quality: float | None = None
    ids: Sequence[str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    min_risk: float | None = None
    max_risk: float | None = None
    crisis_categories: str | Sequence[str] | None = None
    labels: str | Sequence[str] | None = None
    alert: bool | None = None

    def __post_init__(self) -> None:
        for name in ("min_quality", "max_quality", "min_risk", "max_risk"):
            _check_unit(name, getattr(self, name))
        for tier in _as_tuple(self.tier) or ():
            if tier not in TIERS:
                raise InputError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
        if self.min_risk is not None and self.max_risk is not None and self.min_risk > self.max_risk:
            raise InputError(f"min_risk ({self.min_risk}) is above max_risk ({self.max_risk})")
        if self.alert is not None and not isinstance(self.alert, bool):
            raise InputError(f"alert must be True, False or None, got {self.alert!r}")
        for category in _as_tuple(self.crisis_categories) or ():
            if category not in CRISIS_CATEGORIES:
                raise InputError(f"unknown crisis category {category!r}; expected one of {', '.join(CRISIS_CATEGORIES)}")
        # Normalized so the frozen filter is hashable and prints cleanly.
        object.__setattr__(self, "crisis_categories", _as_tuple(self.crisis_categories))
        object.__setattr__(self, "labels", _as_tuple(self.labels))

    @classmethod
    def build(cls, filter: ConversationFilter | None = None, **filters: Any) -> ConversationFilter:
        """Merge an optional filter with keyword filters (keywords win; ``None``
        adds no constraint). An unknown name is an :class:`InputError`
        naming the valid ones."""
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise InputError(f"unknown filter {', '.join(unknown)}; expected some of {', '.join(FILTERS)}")
        if filter is not None and not isinstance(filter, ConversationFilter):
            raise InputError(f"filter must be a ConversationFilter, got {type(filter).__name__}")
        base = {name: getattr(filter, name) for name in FILTERS} if filter is not None else {}
        base.update({k: v for k, v in filters.items() if v is not None})
        return cls(**base)

    @classmethod
    def of(cls, value: ConversationFilter | None = None, **filters: Any) -> ConversationFilter:
        """Deprecated spelling of :meth:`build`."""
        warnings.warn("ConversationFilter.of is deprecated; use ConversationFilter.build", DeprecationWarning, stacklevel=2)
        return cls.build(value, **filters)

    def active(self) -> dict[str, Any]:
        """The constraints set, by name."""
        return {name: getattr(self, name) for name in FILTERS if getattr(self, name) is not None}

    @property
    def needs_scores(self) -> bool:
        return any(getattr(self, name) is not None for name in SCORE_FILTERS)

    def check(self, con: duckdb.DuckDBPyConnection, error: type[PeToolkitError] = InputError) -> None:
        """Fail clearly (``error``) when a score filter meets a store that was never analyzed."""
        if self.needs_scores and not analyzed(con):
            raise error(
                "risk, alert and crisis filters need analysis scores, and this store has none: run `pe-toolkit analyze` first"
            )

    def absent_values(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """The datasets and labels this filter names that the store does not
        hold (a typo selects nothing without a word): ``dataset 'x'``..."""
        found: list[str] = []
        for what, values, query in (
            ("dataset", _as_tuple(self.dataset), "SELECT DISTINCT dataset FROM conversations WHERE dataset IN (SELECT unnest(?::VARCHAR[]))"),
            ("label", self.labels, "SELECT DISTINCT label FROM annotations WHERE label IN (SELECT unnest(?::VARCHAR[]))"),
        ):
            if values:
                held = {row[0] for row in con.execute(query, [list(values)]).fetchall()}
                found += [f"{what} {v!r}" for v in values if v not in held]
        return found

    def where(self, alias: str = "c") -> tuple[str, list[Any]]:
        """SQL condition over ``conversations AS alias`` and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("dataset", self.dataset), ("tier", self.tier), ("id", self.ids)):
            values = _as_tuple(value)
            if values is not None:
                clauses.append(f"{alias}.{column} IN (SELECT unnest(?::VARCHAR[]))")
                params.append(list(values))
        for op, column, bound in (
            (">=", "overall_quality", self.min_quality),
            ("<=", "overall_quality", self.max_quality),
            (">=", "created_at", self.created_after),
            ("<", "created_at", self.created_before),
        ):
            if bound is not None:
                clauses.append(f"{alias}.{column} {op} ?")
                params.append(bound)
        score_conds: list[str] = []
        for op, bound in ((">=", self.min_risk), ("<=", self.max_risk)):
            if bound is not None:
                score_conds.append(f"s.risk_score {op} ?")
                params.append(float(bound))
        if self.alert is not None:
            score_conds.append("s.alert = ?")
            params.append(self.alert)
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


# The vocabulary, in the order error messages list it.
FILTERS: tuple[str, ...] = tuple(f.name for f in fields(ConversationFilter))


def analyzed(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store holds any analysis scores (the table exists from
    migration 0002 on, empty until ``pe-toolkit analyze`` runs)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'conversation_scores' AND schema_name = 'main' AND NOT temporary"
    ).fetchall()[0][0]
    return bool(exists) and bool(con.execute("SELECT EXISTS (SELECT 1 FROM conversation_scores)").fetchall()[0][0])

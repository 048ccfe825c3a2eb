"""Conversation filters, rendered as parameterized SQL.

User input never reaches SQL text: every value becomes a ``?`` parameter,
and the only identifiers are the fixed column names below. The same filter
serves the store accessors, the exports, the mirror server and the widgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from ..errors import InputError
from ..schema import TIERS


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _check_unit(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= float(value) <= 1.0:
        raise InputError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class ConversationFilter:
    """Which conversations to take. ``None`` means no constraint.

    ``dataset``, ``tier`` and ``ids`` accept one value or several.
    Quality bounds apply to ``overall_quality`` (the API's ``quality_score``)
    and are inclusive.
    """

    dataset: str | Sequence[str] | None = None
    tier: str | Sequence[str] | None = None
    min_quality: float | None = None
    max_quality: float | None = None
    ids: Sequence[str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def __post_init__(self) -> None:
        _check_unit("min_quality", self.min_quality)
        _check_unit("max_quality", self.max_quality)
        for tier in _as_tuple(self.tier) or ():
            if tier not in TIERS:
                raise InputError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")

    @classmethod
    def of(cls, value: ConversationFilter | None = None, **kwargs: Any) -> ConversationFilter:
        """Merge an optional filter with keyword constraints (keywords win)."""
        base = {f.name: getattr(value, f.name) for f in fields(cls)} if value else {}
        base.update({k: v for k, v in kwargs.items() if v is not None})
        return cls(**base)

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
        return (" AND ".join(clauses) or "TRUE"), params

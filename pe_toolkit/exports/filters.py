"""``ExportFilter``: the deprecated name of :class:`pe_toolkit.store.ConversationFilter`.

The risk, alert, crisis and label filters it added once are part of the one
filter vocabulary now (:mod:`pe_toolkit.store.filters`), taken the same way
by the store, the exports, the feature table, the warehouse and sync.
"""

from __future__ import annotations

import warnings

import duckdb

from ..errors import ExportError, PeToolkitError
from ..store import ConversationFilter


class ExportFilter(ConversationFilter):
    """Deprecated: use :class:`pe_toolkit.store.ConversationFilter` (same fields, same SQL)."""

    def __post_init__(self) -> None:
        warnings.warn(
            "pe_toolkit.exports.ExportFilter is deprecated; use pe_toolkit.ConversationFilter",
            DeprecationWarning,
            stacklevel=3,
        )
        super().__post_init__()

    def base(self) -> ConversationFilter:
        return ConversationFilter(**self.active())

    def check(self, con: duckdb.DuckDBPyConnection, error: type[PeToolkitError] = ExportError) -> None:
        super().check(con, error)

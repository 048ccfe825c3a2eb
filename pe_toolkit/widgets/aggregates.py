"""Aggregates computed in DuckDB before anything is plotted.

``source``, ``value`` and ``by`` are SQL written by the caller (a table
name, a subquery, a column expression), never text a user typed; values
that do come from users go in ``params``. Notebook parameters can reach
those pieces (``pe-toolkit report -p``), so the query runs through
:meth:`Store.read <pe_toolkit.store.Store.read>`: sandboxed on a read-only
store, checked to be one SELECT of the store's own tables on another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from ..store import Store


def box_stats(
    store: Store,
    source: str,
    value: str,
    by: str | Sequence[str],
    *,
    where: str = "TRUE",
    params: Sequence[Any] | None = None,
) -> pl.DataFrame:
    """Quartiles, 5th/95th percentiles (``lo``/``hi``, the whiskers), mean
    and count of ``value`` per group: five numbers per box instead of rows.
    A group column ``c.tier`` comes back as ``tier``."""
    keys = [by] if isinstance(by, str) else list(by)
    names = [k.split(".")[-1].strip('"') for k in keys]
    inner = ", ".join(f'{k} AS "{n}"' for k, n in zip(keys, names))
    group = ", ".join(f'"{n}"' for n in names)
    return store.read(
        f"SELECT {group}, quantile_cont(v, 0.25) AS q1, median(v) AS median, quantile_cont(v, 0.75) AS q3, "
        f"quantile_cont(v, 0.05) AS lo, quantile_cont(v, 0.95) AS hi, avg(v) AS mean, count(*) AS n "
        f"FROM (SELECT {inner}, ({value}) AS v FROM {source} WHERE {where}) WHERE v IS NOT NULL "
        f"GROUP BY {group} ORDER BY {group}",
        list(params or []),
    )


def tier_order(frame: pl.DataFrame, column: str = "tier") -> pl.DataFrame:
    """Rows sorted by tier from basic to research (unknown tiers last)."""
    from ..schema import TIERS

    rank = {t: i for i, t in enumerate(TIERS)}
    return frame.with_columns(pl.col(column).replace_strict(rank, default=len(TIERS), return_dtype=pl.Int32).alias("_rank")).sort(
        "_rank", maintain_order=True
    ).drop("_rank")


def group_order(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Rows in the order figures draw groups: tiers from basic to research,
    anything else sorted; nulls ("no tier") last."""
    if column == "tier":
        return tier_order(frame, column)
    return frame.sort(column, nulls_last=True, maintain_order=True)


def labelled(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """:func:`group_order`, with a null group named as the figures name it
    ("no tier" for tiers, "none" otherwise): in a table a null row reads as a
    gap in the data, not as the conversations that have no tier."""
    from .figures import label

    return group_order(frame, column).with_columns(pl.col(column).fill_null(label(column, None)))

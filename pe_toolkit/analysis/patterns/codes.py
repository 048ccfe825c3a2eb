"""Sets of codes per row (a message's crisis categories, harm kinds...) as
int64 bit masks, and back to code lists: at millions of rows a scatter-OR in
numpy is far cheaper than a group-by."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def code_bits(n: int, rows: pl.Series, values: pl.Series, codes: Sequence[str]) -> np.ndarray:
    """One int64 bit mask per row (``n`` rows): bit i set when ``codes[i]``
    is among the ``values`` given for that row. Values not in ``codes`` are
    ignored."""
    bits = np.zeros(n, dtype=np.int64)
    rank = pl.Series(values).replace_strict(list(codes), list(range(len(codes))), default=None, return_dtype=pl.Int64)
    keep = rank.is_not_null()
    if bool(keep.any()):
        np.bitwise_or.at(bits, rows.filter(keep).to_numpy(), np.left_shift(1, rank.filter(keep).to_numpy()))
    return bits


def bits_to_lists(bits: np.ndarray, codes: Sequence[str], name: str) -> pl.Series:
    """The code lists (in ``codes`` order) of bit masks from :func:`code_bits`:
    one list per distinct mask (a few hundred at most), then a join."""
    distinct = np.unique(bits)
    table = pl.DataFrame(
        {
            "bits": pl.Series(distinct, dtype=pl.Int64),
            name: pl.Series([[c for i, c in enumerate(codes) if int(b) >> i & 1] for b in distinct], dtype=pl.List(pl.String)),
        }
    )
    return pl.DataFrame({"bits": pl.Series(bits, dtype=pl.Int64)}).join(table, on="bits", how="left", maintain_order="left")[name]

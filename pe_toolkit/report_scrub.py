"""Replacing many texts in a report page at once, building the matcher only
for the texts the page can hold.

polars' ``str.replace_many`` builds its Aho-Corasick matcher on every call:
with the 1.35 million forms of 100,000 flagged ids that is 2.8 s of CPU per
page, against 0.01 s for the scan. A form can occur in a page only if each
of its 8-byte runs does, so each form is given one such run, its anchor
(of five of its runs, the one fewest forms have, so that "client.p", which
every id shares, is not chosen), and a page is scrubbed with only the forms
whose anchor it holds, plus those under 8 bytes. The forms dropped cannot
match, so the page comes out as with all of them. For 1.35 M forms the
anchors take 0.7 s to choose, once per scrubber, and a 1.1 MB page holding
1,000 flagged ids 0.07 s to scrub (benchmarks/bench_pii.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

_RUN = 8  # bytes: one run is one uint64
_CANDIDATES = 4  # a form's runs considered for its anchor: at 0, 1/4, 2/4, 3/4 and the end of its room


def _runs(data: Any) -> np.ndarray:
    """Every run of 8 bytes of ``data`` as one uint64, read in place (a view
    whose items overlap: one byte apart)."""
    if len(data) < _RUN:
        return np.zeros(0, np.uint64)
    return np.ndarray(shape=(len(data) - _RUN + 1,), dtype="<u8", buffer=data, strides=(1,))


class FormMatcher:
    """``patterns`` replaced by ``replacements`` (polars Series, in the
    order ``replace_many`` is to try them) in any page, as one
    ``replace_many(..., leftmost=True)`` with all of them would."""

    def __init__(self, patterns: pl.Series, replacements: pl.Series) -> None:
        self._patterns, self._replacements = patterns, replacements
        texts = patterns.to_arrow().cast(pa.large_binary())
        bounds = np.frombuffer(texts.buffers()[1], np.int64)[texts.offset : texts.offset + len(texts) + 1]
        begins, lengths = bounds[:-1], np.diff(bounds)
        self._short = lengths < _RUN
        self._long = np.flatnonzero(~self._short)
        self._anchors, self._anchor_of = np.zeros(0, np.uint64), np.zeros(0, np.int64)
        if not len(self._long):
            return
        # Each long form's candidate runs: at its start, its end and three
        # points between (evenly spaced: the part that tells ids apart, an
        # e-mail's number, sits anywhere).
        begins, room = begins[self._long], lengths[self._long] - _RUN
        every = _runs(texts.buffers()[2])
        candidates = np.stack([every[begins + room * k // _CANDIDATES] for k in range(_CANDIDATES + 1)])
        # How often each run is a candidate: a hash count, 0.3 s for 6.75 M runs (np.unique sorts them: 1.5 s).
        flat = pl.Series(candidates.ravel())
        seen = flat.to_frame().select(pl.len().over(flat.name)).to_series().to_numpy().reshape(candidates.shape)
        rarest = candidates[seen.argmin(axis=0), np.arange(len(begins))]
        self._anchors, self._anchor_of = np.unique(rarest, return_inverse=True)

    def forms_in(self, page: str) -> np.ndarray:
        """Whether each pattern may occur in ``page`` (False: it cannot)."""
        keep = self._short.copy()
        runs = _runs(page.encode("utf-8"))
        if len(runs) and len(self._anchors):
            at = np.minimum(np.searchsorted(self._anchors, runs), len(self._anchors) - 1)
            held = np.zeros(len(self._anchors), bool)
            held[at[self._anchors[at] == runs]] = True
            keep[self._long] = held[self._anchor_of]
        return keep

    def __call__(self, page: str) -> str:
        keep = pl.Series(self.forms_in(page))
        if not keep.any():
            return page
        return replace_leftmost(page, self._patterns.filter(keep), self._replacements.filter(keep))


def replace_leftmost(page: str, patterns: pl.Series, replacements: pl.Series) -> str:
    """``page`` with ``patterns`` replaced by ``replacements`` in one
    leftmost pass (``str.replace_many(..., leftmost=True)``)."""
    return str(pl.Series([page]).str.replace_many(_one_list(patterns), _one_list(replacements), leftmost=True)[0])


def _one_list(series: pl.Series) -> Any:
    """``series`` as one list literal taken as a scalar: polars 2.2 refuses
    a one-row Series (``implode()``) here ("must be a scalar value"); 2.1
    takes both forms."""
    return pl.lit(series.implode()).first()

"""The Explorer's query model: filters to SQL, counts, histograms and pages.

:class:`ExplorerQuery` holds no widget: it is what the Explorer view
(:mod:`pe_toolkit.widgets.explorer`) drives, and works the same from a
script or a test without Jupyter.

It takes a per-model snapshot of ``conversations`` joined with the current
scores, so a filter change re-runs a handful of parameterized aggregates
over it instead of re-joining the scores. The snapshot (and the ids a text
search matched) are Arrow tables held here, registered on the store's
connection for each unit of work: a notebook's store lets go of the cache
file between units of work (``hold=False``), which would drop temporary
tables. Filter values never become SQL text: they are parameters, and
every query goes through :meth:`Store.read`.

>>> q = ExplorerQuery(store, tier=["research"], risk=(0.5, 1.0))
>>> q.count(), q.page(0, size=25), q.ids()
"""

from __future__ import annotations

import math
import numbers
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from ..errors import InputError
from ..schema import TIERS
from ..store import ConversationFilter, Store
from .corpus import Corpus
from .scores import ScoreInfo

BINS = 20
# Score columns copied from conversation_scores into the snapshot, under the
# names the filters and the table use.
_SCORE_COLUMNS = {
    "local_quality": "overall_quality",
    "empathy_mean": "empathy_mean",
    "risk_score": "risk_score",
    "alert": "alert",
    "max_severity": "max_severity",
    "crisis_categories": "crisis_categories",
}
# Range filters: name -> (snapshot column, description)
RANGES = {
    "quality": ("overall_quality", "API quality"),
    "local_quality": ("local_quality", "local quality"),
    "empathy": ("empathy_mean", "empathy"),
    "risk": ("risk_score", "risk"),
}
# Filters choosing among values present in the store.
CHOICES = ("dataset", "tier", "crisis_categories")
FULL_RANGE = (0.0, 1.0)


def _score_range(name: str, value: Any) -> tuple[float, float]:
    """``value`` as a score range (lo, hi): two numbers in [0, 1], lo <= hi.
    Checked here because the slider refused an inverted range with a
    traitlets error, clamped 5 (for 0.5) to 1 without a word, and a NaN
    bound filtered nothing while the criteria showed it."""
    expected = f"{name}: expected a range (lo, hi) of two numbers in [0, 1] with lo <= hi, got {value!r}"
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InputError(expected)
    bounds = list(value)
    if len(bounds) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in bounds):
        raise InputError(expected)
    lo, hi = float(bounds[0]), float(bounds[1])
    if not (0.0 <= lo <= hi <= 1.0):  # also false for NaN
        raise InputError(expected)
    return lo, hi


class ExplorerQuery:
    """See the module docstring. Filters (the names :meth:`set` takes):
    ``dataset``, ``tier``, ``crisis_categories`` (lists of values present),
    ``text`` (words in any message) and the score ranges ``quality`` (the
    API's), with analysis also ``local_quality``, ``empathy`` and ``risk``
    (``(lo, hi)`` within 0..1). ``search_cache_mb`` bounds the in-memory
    copy of the text that speeds up the search (see :meth:`_searched_text`)."""

    def __init__(self, store: Store, *, search_cache_mb: int = 512, **initial: Any) -> None:
        self.store = store
        self.search_cache_mb = search_cache_mb
        uid = uuid.uuid4().hex[:12]
        self._snapshot = f"_pe_explorer_{uid}"
        self._search_table = f"_pe_explorer_search_{uid}"
        self._text_cache = f"_pe_explorer_text_{uid}"
        self._text_source: tuple[str, str] | None = None
        self._search_term: str | None = None
        self._tables: dict[str, pa.Table] = {}  # registered on the connection of each unit of work
        self._depth = 0
        self.filters: dict[str, Any] = {}
        self.reload()
        if initial:
            self.set(**initial)

    @contextmanager
    def _session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The store's connection for one unit of work, with this model's
        tables registered on it."""
        if self._depth:
            yield self.store.connection
            return
        with self.store.session():
            con = self.store.connection
            for name, table in self._tables.items():
                con.register(name, table)
            self._depth += 1
            try:
                yield con
            finally:
                self._depth -= 1
                for name in list(self._tables):
                    con.unregister(name)

    def _hold(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, params: list[Any] | None = None) -> None:
        """Keep the result of ``sql`` as table ``name`` (registered now and in later units of work)."""
        self._tables[name] = con.sql(sql, params=params or None).to_arrow_table()
        con.register(name, self._tables[name])

    def _drop(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        if self._tables.pop(name, None) is not None:
            con.unregister(name)

    # -- snapshot ----------------------------------------------------------------
    def reload(self) -> None:
        """Take a fresh snapshot of the store (after an import, sync or
        analysis). Filters are kept, except score ranges no longer present."""
        with self._session() as con:
            self._reload(con)

    def _reload(self, con: duckdb.DuckDBPyConnection) -> None:
        self.info = ScoreInfo.of(self.store)
        scores = ""
        join = ""
        if self.info.analyzed:
            present = {name: src for name, src in _SCORE_COLUMNS.items() if self.info.has(src)}
            scores = "".join(f', s."{src}" AS {name}' for name, src in present.items())
            join = f" LEFT JOIN {self.info.conversation_scores()} s ON s.conversation_id = c.id"
        self._hold(
            con,
            self._snapshot,
            f"SELECT c.id, c.dataset, c.tier, c.created_at, c.message_count, c.overall_quality{scores} "
            f"FROM conversations c{join}",
        )
        self.columns = set(self.store.read(f"SELECT * FROM {self._snapshot} LIMIT 0").columns)
        self.total, tiered, api_scored = self.store.read(
            f"SELECT count(*), count(tier), count(overall_quality) FROM {self._snapshot}"
        ).row(0)
        self.tiered = tiered > 0
        self.untiered = tiered < self.total  # a "no tier" series
        self.api_scored = api_scored > 0
        self.corpus = Corpus.of(self.store)
        self.datasets: list[str] = self.store.read(
            f"SELECT DISTINCT dataset FROM {self._snapshot} WHERE dataset IS NOT NULL ORDER BY dataset"
        )["dataset"].to_list()
        self.categories: list[str] = []
        if "crisis_categories" in self.columns:
            self.categories = self.store.read(
                f"SELECT DISTINCT unnest(crisis_categories) AS c FROM {self._snapshot} ORDER BY c"
            )["c"].to_list()
        self.ranges = [n for n, (col, _) in RANGES.items() if n == "quality" or col in self.columns]
        old = self.filters
        self.filters = {"dataset": (), "tier": (), "crisis_categories": (), "text": ""}
        self.filters.update({name: FULL_RANGE for name in self.ranges})
        self.filters.update({k: v for k, v in old.items() if k in self.filters})
        self._search_term = None
        self._drop(con, self._search_table)
        self._drop_text_cache()

    @property
    def shape(self) -> tuple[tuple[str, ...], bool, bool, bool]:
        """What decides the view's controls and charts: the score ranges
        present, and whether there are tiers, untiered conversations and API scores."""
        return tuple(self.ranges), self.tiered, self.untiered, self.api_scored

    @property
    def points_x(self) -> str:
        """The scatter's x: the API's quality, else (imported corpora) the local one."""
        return "local_quality" if not self.api_scored and "local_quality" in self.columns else "overall_quality"

    def close(self) -> None:
        """Drop the snapshot and the search results (memory held here)."""
        self._tables.clear()
        self._text_source = None
        self._search_term = None

    # -- filters -------------------------------------------------------------------
    def options(self, name: str) -> list[str]:
        """The values a choice filter (dataset, tier, crisis_categories) accepts."""
        return {"dataset": self.datasets, "tier": list(TIERS), "crisis_categories": self.categories}[name]

    def normalize(self, **values: Any) -> dict[str, Any]:
        """Check filter values by name and return them in stored form
        (tuples for choices and ranges, a string for the text); ``None``
        clears a filter. Raises :class:`InputError` naming what is wrong."""
        known = [*CHOICES, "text", *self.ranges]
        # A score range of a store without those scores (never analyzed) is
        # a known filter with nothing to filter yet: say so, not "unknown".
        unscored = sorted(set(values) & set(RANGES) - set(self.ranges))
        if unscored:
            raise InputError(f"{', '.join(unscored)}: this store has no {' or '.join(RANGES[n][1] for n in unscored)} "
                             "scores yet; run pe.analyze(store) (or `pe-toolkit analyze`), then reload()")  # fmt: skip
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError(f"unknown Explorer filter {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name in CHOICES:
                value = tuple(v for v in ([value] if isinstance(value, str) else (value or ())))
                options = self.options(name)
                missing = [v for v in value if v not in options]
                if missing:
                    raise InputError(
                        f"{name}: {', '.join(map(repr, missing))} not in this store; "
                        f"expected some of {', '.join(map(str, options)) or 'nothing (none present)'}"
                    )
            elif name == "text":
                value = "" if value is None else str(value)
            else:
                value = FULL_RANGE if value is None else _score_range(name, value)
            out[name] = value
        return out

    def set(self, **values: Any) -> None:
        """Set filters by name (see the class docstring); others are kept."""
        self.filters.update(self.normalize(**values))

    def reset(self) -> None:
        self.set(**{name: None for name in self.filters})

    def criteria(self) -> dict[str, Any]:
        """The active filters, by name (what :meth:`set` takes)."""
        out: dict[str, Any] = {}
        for name in ("dataset", "tier"):
            if self.filters[name]:
                out[name] = list(self.filters[name])
        for name in self.ranges:
            if tuple(self.filters[name]) != FULL_RANGE:
                out[name] = tuple(self.filters[name])
        if self.filters["crisis_categories"]:
            out["crisis_categories"] = list(self.filters["crisis_categories"])
        if self.filters["text"].strip():
            out["text"] = self.filters["text"].strip()
        return out

    def where(self) -> tuple[str, list[Any]]:
        """The current filters as a parameterized condition on the snapshot (alias ``e``)."""
        with self._session():
            self._search(self.filters["text"])
        lo, hi = self.filters["quality"]
        base = ConversationFilter(
            dataset=list(self.filters["dataset"]) or None,
            tier=list(self.filters["tier"]) or None,
            min_quality=lo if lo > 0 else None,
            max_quality=hi if hi < 1 else None,
        )
        sql, params = base.where("e")
        clauses = [sql]
        for name in self.ranges:
            if name == "quality":
                continue
            column = RANGES[name][0]
            lo, hi = self.filters[name]
            if lo > 0:
                clauses.append(f"e.{column} >= ?")
                params.append(lo)
            if hi < 1:
                clauses.append(f"e.{column} <= ?")
                params.append(hi)
        if self.filters["crisis_categories"]:
            clauses.append("list_has_any(e.crisis_categories, ?::VARCHAR[])")
            params.append(list(self.filters["crisis_categories"]))
        if self._search_term is not None:
            clauses.append(f"e.id IN (SELECT id FROM {self._search_table})")
        return " AND ".join(clauses), params

    # -- text search ----------------------------------------------------------------
    def _drop_text_cache(self) -> None:
        self._tables.pop(self._text_cache, None)  # unregistered at the end of the unit of work
        self._text_source = None

    def _searched_text(self) -> tuple[str, str]:
        """(table, expression) the search scans. Stored text is compressed
        and mixed-case, so scanning it costs a decompression and a lower()
        per message on every new term; below ``search_cache_mb`` of text, a
        lower-cased copy is kept in memory on the first search instead
        (about 4x faster on a busy 2-core machine; benchmarks/RESULTS.md)."""
        if self._text_source is None:
            size = self.store.scalar("SELECT coalesce(sum(strlen(content)), 0) FROM messages")
            if size <= self.search_cache_mb * 2**20:
                self._hold(self.store.connection, self._text_cache, "SELECT conversation_id, lower(content) AS text FROM messages")
                self._text_source = (self._text_cache, "text")
            else:
                self._text_source = ("messages", "lower(content)")
        return self._text_source

    def _search(self, term: str) -> None:
        """Match the term once per change of the term (the scan of every
        message is the one costly part), keeping the matching ids in a
        temporary table that the other filters reuse."""
        term = term.strip()
        if term == (self._search_term or ""):
            return
        con = self.store.connection  # inside the caller's unit of work
        if term:
            table, text = self._searched_text()
            # lower() on both sides: Unicode-aware, and the term stays a parameter.
            self._hold(con, self._search_table, f"SELECT conversation_id AS id FROM {table} WHERE contains({text}, ?) GROUP BY ALL",
                       [term.lower()])  # fmt: skip
            self._search_term = term
        else:
            self._drop(con, self._search_table)
            self._search_term = None

    # -- queries -------------------------------------------------------------------
    def query(self, select: str, tail: str = "", extra: list[Any] | None = None) -> pl.DataFrame:
        """``SELECT select FROM snapshot e WHERE <filters> tail``; ``extra``
        are the parameters of ``tail``."""
        with self._session():
            where, params = self.where()
            return self.store.read(f"SELECT {select} FROM {self._snapshot} e WHERE {where} {tail}", params + (extra or []))

    def count(self) -> int:
        """How many conversations match."""
        return int(self.query("count(*) AS n")["n"][0])

    def frame(self, limit: int | None = None, offset: int = 0) -> pl.DataFrame:
        """The matching conversations (snapshot columns), riskiest and then
        lowest quality first; all of them unless ``limit``."""
        order = "ORDER BY e.risk_score DESC NULLS LAST, " if "risk_score" in self.columns else "ORDER BY "
        tail = order + "e.overall_quality NULLS LAST, e.id"
        extra: list[Any] = []
        if limit is not None:
            tail += " LIMIT ?"
            extra.append(int(limit))
        if offset:
            tail += " OFFSET ?"
            extra.append(int(offset))
        return self.query("*", tail, extra)

    def page(self, number: int, size: int = 25) -> pl.DataFrame:
        """Page ``number`` (from 0) of :meth:`frame`, ``size`` rows each."""
        if number < 0 or size < 1:
            raise InputError(f"page {number} of size {size}: expected a page from 0 and a size from 1")
        return self.frame(limit=size, offset=number * size)

    def page_count(self, size: int = 25) -> int:
        """How many pages of ``size`` the matches fill (0 when none match)."""
        if size < 1:
            raise InputError(f"page size {size}: expected at least 1")
        return math.ceil(self.count() / size)

    def ids(self) -> list[str]:
        """Ids of every matching conversation (for a ReviewQueue or an export)."""
        return self.query("e.id", "ORDER BY e.id")["id"].to_list()

    def summary(self) -> tuple[dict[tuple[str, str | None], int], list[int], list[int] | None]:
        """Counts per (dataset, tier) and the API and local quality
        histograms (``BINS`` bins over 0..1; local is None without analysis),
        from one scan (grouping sets) instead of one query each."""
        has_local = "local_quality" in self.columns

        def bin_of(column: str) -> str:
            # Not least(floor(x * BINS), BINS - 1): DuckDB's least skips a
            # NULL, which put every conversation without a quality (no reply
            # to rate, no API score) in the top bin. A NULL stays out here.
            return f"(CASE WHEN e.{column} >= 1 THEN {BINS - 1} ELSE floor(e.{column} * {BINS}) END)::INTEGER"

        select = f"e.dataset, e.tier, {bin_of('overall_quality')} AS qbin, grouping(e.dataset) AS g_mix, grouping(qbin) AS g_q"
        sets = ["(e.dataset, e.tier)", "(qbin)"]
        if has_local:
            select += f", {bin_of('local_quality')} AS lbin, grouping(lbin) AS g_l"
            sets.append("(lbin)")
        frame = self.query(f"{select}, count(*) AS n", f"GROUP BY GROUPING SETS ({', '.join(sets)})")
        # A few dozen rows: datasets x tiers plus two sets of BINS bins.
        counts = {(r["dataset"], r["tier"]): r["n"] for r in frame.filter(pl.col("g_mix") == 0).iter_rows(named=True)}
        quality = [0] * BINS
        for b, n in frame.filter((pl.col("g_q") == 0) & pl.col("qbin").is_not_null()).select("qbin", "n").iter_rows():
            quality[b] = n
        local = None
        if has_local:
            local = [0] * BINS
            for b, n in frame.filter((pl.col("g_l") == 0) & pl.col("lbin").is_not_null()).select("lbin", "n").iter_rows():
                local[b] = n
        return counts, quality, local

    def crisis_counts(self) -> pl.DataFrame:
        """Matching conversations per crisis category (``cat``, ``n``), fewest first."""
        if "crisis_categories" not in self.columns:
            return pl.DataFrame({"cat": [], "n": []}, schema={"cat": pl.String, "n": pl.Int64})
        with self._session():
            where, params = self.where()
            return self.store.read(
                f"SELECT cat, count(*) AS n FROM (SELECT unnest(e.crisis_categories) AS cat FROM {self._snapshot} e "
                f"WHERE {where}) GROUP BY cat ORDER BY n, cat",
                params,
            )

    def _points_xy(self) -> tuple[str, str]:
        y = "e.risk_score" if "risk_score" in self.columns else "e.message_count"
        return f"e.{self.points_x}", y

    def points(self, limit: int) -> pl.DataFrame:
        """Up to ``limit`` matches for the scatter (``id``, ``tier``, ``x``,
        ``y``): x is :attr:`points_x`, y the risk score (else the message count)."""
        x, y = self._points_xy()
        # hash(id) orders a deterministic, unbiased sample of the matches.
        return self.query(
            f"e.id, e.tier, {x} AS x, {y} AS y",
            f"AND {x} IS NOT NULL AND {y} IS NOT NULL ORDER BY hash(e.id) LIMIT ?",
            [int(limit)],
        )

    def point_counts(self) -> tuple[int, int, int]:
        """Of the matches: how many have both coordinates of the scatter, how
        many no x (no quality: a post has no reply to rate, an imported
        conversation no API score) and how many an x but no y (not analyzed
        since it arrived): the scatter can only leave them out, and says how many."""
        x, y = self._points_xy()
        row = self.query(
            f"count(*) FILTER (WHERE {x} IS NOT NULL AND {y} IS NOT NULL) AS drawable, "
            f"count(*) FILTER (WHERE {x} IS NULL) AS no_x, count(*) FILTER (WHERE {x} IS NOT NULL AND {y} IS NULL) AS no_y"
        ).row(0)
        return int(row[0]), int(row[1]), int(row[2])

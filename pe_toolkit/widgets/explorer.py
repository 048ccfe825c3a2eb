"""Explorer: filters driving linked charts and a result table.

Filters: dataset, tier, score ranges (the API's overall quality; with
analysis also the local quality, empathy and risk), crisis categories and a
text search over every message. Every change runs a handful of
parameterized DuckDB aggregates over a per-explorer snapshot of
``conversations`` joined with the current scores, so only counts, histogram
bins, at most ``max_points`` scatter points and ``table_rows`` table rows
reach the browser, whatever the store's size. User text never becomes SQL
text: the search term is a parameter.

Charts are linked to the filters: clicking a bar of the dataset × tier chart
narrows to that dataset and tier, clicking a crisis category narrows to it,
clicking a point opens that conversation below the table.

An imported corpus has no tier and no API scores: its conversations are one
"no tier" series, the tier filter and the API quality slider are hidden and
the scatter plots the local quality instead; the status line says so.

>>> ex = Explorer(store)
>>> ex.set(tier=["research"], risk=(0.5, 1.0))
>>> ex.count, ex.table_frame, ex.ids()
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go
import polars as pl

from ..errors import InputError
from ..schema import TIERS
from ..store import ConversationFilter, Store
from .conversation_viewer import ConversationViewer
from .display import View, figure_html, static_figure
from .corpus import Corpus
from .figures import NO_TIER, colour, figure_widget
from .figures import label as group_label
from .html import STYLE, esc, table
from .scores import NOT_ANALYZED, ScoreInfo

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
# Range filters: control name -> (snapshot column, description)
_RANGES = {
    "quality": ("overall_quality", "API quality"),
    "local_quality": ("local_quality", "local quality"),
    "empathy": ("empathy_mean", "empathy"),
    "risk": ("risk_score", "risk"),
}
TABLE_COLUMNS = (
    "id", "dataset", "tier", "message_count", "overall_quality", "local_quality",
    "empathy_mean", "risk_score", "crisis_categories",
)


class Explorer(View):
    """See the module docstring. Initial filter values may be passed as
    keywords (the same names as :meth:`set`). ``table_rows`` and
    ``max_points`` cap what reaches the browser; ``search_cache_mb`` bounds
    the in-memory copy of the text that speeds up the search (see
    :meth:`_searched_text`)."""

    def __init__(
        self,
        store: Store,
        *,
        table_rows: int = 25,
        max_points: int = 2000,
        search_cache_mb: int = 512,
        **initial: Any,
    ) -> None:
        self.store = store
        self.info = ScoreInfo.of(store)
        self.table_rows = int(table_rows)
        self.max_points = int(max_points)
        self._uid = uuid.uuid4().hex[:12]
        self._snapshot = f"_pe_explorer_{self._uid}"
        self._search_table = f"_pe_explorer_search_{self._uid}"
        self._text_cache = f"_pe_explorer_text_{self._uid}"
        self._text_source: tuple[str, str] | None = None
        self.search_cache_mb = search_cache_mb
        self._search_term: str | None = None
        self._holding = False
        self.count = 0
        self.total = 0
        self.table_frame = pl.DataFrame()
        self.viewer: ConversationViewer | None = None
        self.reload()
        self._build_controls()
        self._build_figures()
        self._table = w.HTML()
        self._status = w.HTML()
        self._open = w.Dropdown(description="open", options=[], value=None, layout=w.Layout(width="360px"))
        self._open.observe(lambda ch: ch["new"] and self.open(ch["new"]), "value")
        self._viewer_box = w.VBox()
        self.ui = self._layout()
        with self.hold():
            if initial:
                self.set(**initial)

    # -- data ------------------------------------------------------------------
    def reload(self) -> None:
        """Take a fresh snapshot of the store (after an import, sync or analysis)."""
        con = self.store.connection
        self.info = ScoreInfo.of(self.store)
        scores = ""
        join = ""
        if self.info.analyzed:
            present = {name: src for name, src in _SCORE_COLUMNS.items() if self.info.has(src)}
            scores = "".join(f', s."{src}" AS {name}' for name, src in present.items())
            join = f" LEFT JOIN {self.info.conversation_scores()} s ON s.conversation_id = c.id"
        # A temporary table is private to this connection and allowed on a
        # read-only store; filtering it avoids re-joining the scores on
        # every slider move.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {self._snapshot} AS SELECT c.id, c.dataset, c.tier, c.created_at, "
            f"c.message_count, c.overall_quality{scores} FROM conversations c{join}"
        )
        self.columns = set(self.store.sql(f"SELECT * FROM {self._snapshot} LIMIT 0").columns)
        self.total, tiered, api_scored = self.store.sql(
            f"SELECT count(*), count(tier), count(overall_quality) FROM {self._snapshot}"
        ).row(0)
        self.tiered = tiered > 0
        self.untiered = tiered < self.total  # a "no tier" series
        self.api_scored = api_scored > 0
        self.corpus = Corpus.of(self.store)
        self.datasets = self.store.sql(
            f"SELECT DISTINCT dataset FROM {self._snapshot} WHERE dataset IS NOT NULL ORDER BY dataset"
        )["dataset"].to_list()
        self.categories: list[str] = []
        if "crisis_categories" in self.columns:
            self.categories = self.store.sql(
                f"SELECT DISTINCT unnest(crisis_categories) AS c FROM {self._snapshot} ORDER BY c"
            )["c"].to_list()
        self._search_term = None
        self._drop_text_cache()
        if not getattr(self, "_built", False):
            return
        if (set(self._ranges), self._shape) != (
            {n for n, (col, _) in _RANGES.items() if n == "quality" or col in self.columns},
            (self.tiered, self.untiered, self.api_scored),
        ):
            # Scores or tiers appeared (or went): the controls and charts change shape.
            self._build_controls()
            self._build_figures()
            self.ui.children = self._layout().children
        else:
            self._dataset.options = self.datasets
            self._crisis.options = self.categories
        self.update()

    def close(self) -> None:
        """Drop the snapshot (it also goes when the store is closed)."""
        con = self.store.connection
        if con is not None:
            con.execute(f"DROP TABLE IF EXISTS {self._snapshot}")
            con.execute(f"DROP TABLE IF EXISTS {self._search_table}")
            self._drop_text_cache()

    def _drop_text_cache(self) -> None:
        if self._text_source is not None:
            self.store.connection.execute(f"DROP TABLE IF EXISTS {self._text_cache}")
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
                self.store.connection.execute(
                    f"CREATE OR REPLACE TEMP TABLE {self._text_cache} AS "
                    "SELECT conversation_id, lower(content) AS text FROM messages"
                )
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
        con = self.store.connection
        if term:
            table, text = self._searched_text()
            # lower() on both sides: Unicode-aware, and the term stays a parameter.
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {self._search_table} AS SELECT conversation_id AS id "
                f"FROM {table} WHERE contains({text}, ?) GROUP BY ALL",
                [term.lower()],
            )
            self._search_term = term
        else:
            con.execute(f"DROP TABLE IF EXISTS {self._search_table}")
            self._search_term = None

    def where(self) -> tuple[str, list[Any]]:
        """The current filters as a parameterized condition on the snapshot (alias ``e``)."""
        lo, hi = self._quality.value
        base = ConversationFilter(
            dataset=list(self._dataset.value) or None,
            tier=list(self._tier.value) or None,
            min_quality=lo if lo > 0 else None,
            max_quality=hi if hi < 1 else None,
        )
        sql, params = base.where("e")
        clauses = [sql]
        for name, (column, _) in _RANGES.items():
            if name == "quality" or name not in self._ranges:
                continue
            lo, hi = self._ranges[name].value
            if lo > 0:
                clauses.append(f"e.{column} >= ?")
                params.append(lo)
            if hi < 1:
                clauses.append(f"e.{column} <= ?")
                params.append(hi)
        if self._crisis.value:
            clauses.append("list_has_any(e.crisis_categories, ?::VARCHAR[])")
            params.append(list(self._crisis.value))
        if self._search_term is not None:
            clauses.append(f"e.id IN (SELECT id FROM {self._search_table})")
        return " AND ".join(clauses), params

    def _query(self, select: str, tail: str = "", extra: list[Any] | None = None) -> pl.DataFrame:
        where, params = self.where()
        return self.store.sql(f"SELECT {select} FROM {self._snapshot} e WHERE {where} {tail}", params + (extra or []))

    def frame(self, limit: int | None = None) -> pl.DataFrame:
        """The matching conversations (snapshot columns), riskiest and then
        lowest quality first; all of them unless ``limit``."""
        order = "ORDER BY e.risk_score DESC NULLS LAST, " if "risk_score" in self.columns else "ORDER BY "
        tail = order + "e.overall_quality NULLS LAST, e.id"
        if limit is not None:
            return self._query("*", tail + " LIMIT ?", [int(limit)])
        return self._query("*", tail)

    def ids(self) -> list[str]:
        """Ids of every matching conversation (for a ReviewQueue or an export)."""
        return self._query("e.id", "ORDER BY e.id")["id"].to_list()

    def criteria(self) -> dict[str, Any]:
        """The active filters, by name (what :meth:`set` takes)."""
        out: dict[str, Any] = {}
        if self._dataset.value:
            out["dataset"] = list(self._dataset.value)
        if self._tier.value:
            out["tier"] = list(self._tier.value)
        for name, control in self._ranges.items():
            if tuple(control.value) != (0.0, 1.0):
                out[name] = tuple(control.value)
        if self._crisis.value:
            out["crisis_categories"] = list(self._crisis.value)
        if self._text.value.strip():
            out["text"] = self._text.value.strip()
        return out

    # -- controls --------------------------------------------------------------
    def _build_controls(self) -> None:
        wide = w.Layout(width="330px")
        self._dataset = w.SelectMultiple(options=self.datasets, rows=min(6, max(2, len(self.datasets))), description="dataset", layout=wide)
        self._tier = w.SelectMultiple(options=TIERS, rows=5, description="tier", layout=wide)
        self._crisis = w.SelectMultiple(options=self.categories, rows=6, description="crisis", layout=wide)
        self._text = w.Text(placeholder="words in any message (Enter)", description="search", continuous_update=False, layout=wide)
        self._ranges: dict[str, w.FloatRangeSlider] = {}
        for name, (column, label) in _RANGES.items():
            if name != "quality" and column not in self.columns:
                continue
            self._ranges[name] = w.FloatRangeSlider(
                value=(0.0, 1.0), min=0.0, max=1.0, step=0.01, description=label,
                continuous_update=False, readout_format=".2f", layout=wide, style={"description_width": "90px"},
            )
        self._quality = self._ranges["quality"]
        self._crisis.layout.display = "flex" if "crisis_categories" in self.columns else "none"
        # Nothing to filter on in a corpus without tiers or API scores.
        self._tier.layout.display = "flex" if self.tiered else "none"
        self._quality.layout.display = "flex" if self.api_scored else "none"
        self._shape = (self.tiered, self.untiered, self.api_scored)
        self._reset = w.Button(description="reset filters", layout=w.Layout(width="auto"))
        self._reset.on_click(lambda _: self.reset())
        for control in (self._dataset, self._tier, self._crisis, self._text, *self._ranges.values()):
            control.observe(self._changed, "value")
        self._built = True

    def _changed(self, _change: dict) -> None:
        if not self._holding:
            self.update()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Change several controls with one update at the end."""
        held, self._holding = self._holding, True
        try:
            yield
        finally:
            self._holding = held
            if not held:
                self.update()

    def set(self, **values: Any) -> None:
        """Set filters by name: dataset, tier, crisis_categories (lists),
        text (str), quality, local_quality, empathy, risk ((lo, hi))."""
        controls: dict[str, Any] = {
            "dataset": self._dataset, "tier": self._tier, "crisis_categories": self._crisis,
            "text": self._text, **self._ranges,
        }
        unknown = sorted(set(values) - set(controls))
        if unknown:
            raise InputError(f"unknown Explorer filter {', '.join(unknown)}; expected some of {', '.join(sorted(controls))}")
        with self.hold():
            for name, value in values.items():
                control = controls[name]
                if isinstance(control, w.SelectMultiple):
                    value = tuple(v for v in ([value] if isinstance(value, str) else (value or ())))
                    unknown_values = [v for v in value if v not in control.options]
                    if unknown_values:
                        raise InputError(
                            f"{name}: {', '.join(map(repr, unknown_values))} not in this store; "
                            f"expected some of {', '.join(map(str, control.options)) or 'nothing (none present)'}"
                        )
                elif isinstance(control, w.FloatRangeSlider):
                    value = (0.0, 1.0) if value is None else tuple(value)
                elif value is None:
                    value = ""
                control.value = value

    def reset(self) -> None:
        with self.hold():
            self._dataset.value = self._tier.value = self._crisis.value = ()
            self._text.value = ""
            for control in self._ranges.values():
                control.value = (0.0, 1.0)

    # -- figures -----------------------------------------------------------------
    def _build_figures(self) -> None:
        tiers = [*TIERS, None] if self.untiered else list(TIERS)
        self.fig_mix = figure_widget("Conversations by dataset and tier" if self.tiered else "Conversations by dataset", barmode="stack")
        for tier in tiers:
            self.fig_mix.add_bar(name=group_label("tier", tier), x=self.datasets, y=[0] * len(self.datasets), marker_color=colour("tier", tier, 0))
        self.fig_quality = figure_widget("Overall quality", barmode="overlay", bargap=0.05)
        centres = [(i + 0.5) / BINS for i in range(BINS)]
        # An API series only when the corpus carries API scores (an imported one does not).
        if self.api_scored or "local_quality" not in self.columns:
            self.fig_quality.add_bar(name="API", x=centres, y=[0] * BINS, width=1 / BINS, marker_color="#4f8fc7", opacity=0.65)
        if "local_quality" in self.columns:
            self.fig_quality.add_bar(name="local", x=centres, y=[0] * BINS, width=1 / BINS, marker_color="#e07b39", opacity=0.55)
        self.fig_quality.update_xaxes(range=[0, 1], title_text="overall quality")
        self.fig_crisis = figure_widget("Crisis categories (conversations)", height=300)
        self.fig_crisis.add_bar(x=[], y=[], orientation="h", marker_color="#c44e52", name="conversations")
        y_title = "risk score" if "risk_score" in self.columns else "messages"
        x_title = "API quality" if self._points_x == "overall_quality" else "local quality"
        self.fig_points = figure_widget(f"{x_title} vs {y_title} (sample)")
        for tier in tiers:
            self.fig_points.add_scatter(name=group_label("tier", tier), x=[], y=[], mode="markers", marker=dict(size=5, color=colour("tier", tier, 0), opacity=0.7), text=[], hovertemplate="%{text}<extra></extra>")
        self.fig_points.update_xaxes(title_text=f"{x_title.replace('quality', 'overall quality')}")
        self.fig_points.update_yaxes(title_text=y_title)
        for trace in self.fig_mix.data:
            trace.on_click(self._on_mix_click)
        self.fig_crisis.data[0].on_click(self._on_crisis_click)
        for trace in self.fig_points.data:
            trace.on_click(self._on_point_click)

    @property
    def _points_x(self) -> str:
        """The scatter's x: the API's quality, else (imported corpora) the local one."""
        return "local_quality" if not self.api_scored and "local_quality" in self.columns else "overall_quality"

    def _on_mix_click(self, trace: Any, points: Any, _state: Any = None) -> None:
        if points.point_inds:
            dataset = trace.x[points.point_inds[0]]
            # The tier filter cannot pick "no tier": the dataset alone then.
            self.set(dataset=[dataset], tier=[] if trace.name == NO_TIER else [trace.name])

    def _on_crisis_click(self, trace: Any, points: Any, _state: Any = None) -> None:
        if points.point_inds:
            self.set(crisis_categories=[trace.y[points.point_inds[0]]])

    def _on_point_click(self, trace: Any, points: Any, _state: Any = None) -> None:
        if points.point_inds:
            self.open(trace.customdata[points.point_inds[0]])

    # -- update ------------------------------------------------------------------
    def update(self) -> None:
        """Re-run the aggregates for the current filters and update the
        figures and the table in place."""
        self._search(self._text.value)
        counts, quality, local = self._summary()
        self.count = sum(counts.values())
        with self.fig_mix.batch_update():
            for trace in self.fig_mix.data:
                trace.x = self.datasets
                tier = None if trace.name == NO_TIER else trace.name
                trace.y = [counts.get((d, tier), 0) for d in self.datasets]
        with self.fig_quality.batch_update():
            for trace in self.fig_quality.data:
                trace.y = quality if trace.name == "API" else local
        if "crisis_categories" in self.columns:
            crisis = self._crisis_counts()
            with self.fig_crisis.batch_update():
                self.fig_crisis.data[0].x = crisis["n"].to_list()
                self.fig_crisis.data[0].y = crisis["cat"].to_list()
        self._update_points()
        self.table_frame = self.frame(limit=self.table_rows)
        self._table.value = table(self.table_frame, columns=TABLE_COLUMNS, max_rows=self.table_rows)
        self._open.options = self.table_frame["id"].to_list()
        self._open.value = None
        self._status.value = self._status_html()

    def _summary(self) -> tuple[dict[tuple[str, str], int], list[int], list[int] | None]:
        """Counts per (dataset, tier) and the quality histograms, from one
        scan (grouping sets) instead of one query each."""
        has_local = "local_quality" in self.columns

        def bin_of(column: str) -> str:
            return f"least(floor(e.{column} * {BINS}), {BINS - 1})::INTEGER"

        select = f"e.dataset, e.tier, {bin_of('overall_quality')} AS qbin, grouping(e.dataset) AS g_mix, grouping(qbin) AS g_q"
        sets = ["(e.dataset, e.tier)", "(qbin)"]
        if has_local:
            select += f", {bin_of('local_quality')} AS lbin, grouping(lbin) AS g_l"
            sets.append("(lbin)")
        frame = self._query(f"{select}, count(*) AS n", f"GROUP BY GROUPING SETS ({', '.join(sets)})")
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

    def _crisis_counts(self) -> pl.DataFrame:
        where, params = self.where()
        return self.store.sql(
            f"SELECT cat, count(*) AS n FROM (SELECT unnest(e.crisis_categories) AS cat FROM {self._snapshot} e "
            f"WHERE {where}) GROUP BY cat ORDER BY n, cat",
            params,
        )

    def _update_points(self) -> None:
        y = "e.risk_score" if "risk_score" in self.columns else "e.message_count"
        x = f"e.{self._points_x}"
        # hash(id) orders a deterministic, unbiased sample of the matches.
        points = self._query(
            f"e.id, e.tier, {x} AS x, {y} AS y",
            f"AND {x} IS NOT NULL AND {y} IS NOT NULL ORDER BY hash(e.id) LIMIT ?",
            [self.max_points],
        )
        with self.fig_points.batch_update():
            for trace in self.fig_points.data:
                part = points.filter(pl.col("tier").eq_missing(None if trace.name == NO_TIER else trace.name))
                trace.x = part["x"].to_list()
                trace.y = part["y"].to_list()
                trace.customdata = part["id"].to_list()
                trace.text = part["id"].to_list()

    def _status_html(self) -> str:
        text = f"<b>{self.count:,}</b> of {self.total:,} conversations match"
        crit = self.criteria()
        if crit:
            text += " · " + "; ".join(f"{esc(k)}: {esc(v)}" for k, v in crit.items())
        notes = [n for n in self.corpus.notes() if n != NOT_ANALYZED and "figures over time" not in n]
        if notes:  # an imported corpus: what the charts cannot show
            text += f'<br><span class="pe-note">{esc("; ".join(notes))}</span>'
        if not self.info.analyzed:
            text += f'<br><span class="pe-note">{esc(NOT_ANALYZED)}</span>'
        return text

    # -- drill-down ---------------------------------------------------------------
    def open(self, conversation_id: str) -> ConversationViewer:
        """Show one conversation under the table."""
        if self.viewer is None:
            self.viewer = ConversationViewer(self.store, conversation_id)
            self._viewer_box.children = [self.viewer.ui]
        else:
            self.viewer.show(conversation_id)
        return self.viewer

    # -- layout --------------------------------------------------------------------
    def _layout(self) -> w.Widget:
        half = w.Layout(width="50%")
        controls = w.HBox(
            [
                w.VBox([self._dataset, self._tier]),
                w.VBox([*self._ranges.values(), self._text, self._reset]),
                w.VBox([self._crisis]),
            ]
        )
        for fig in (self.fig_mix, self.fig_quality, self.fig_crisis, self.fig_points):
            fig.layout.autosize = True
        charts = w.VBox(
            [
                w.HBox([w.Box([self.fig_mix], layout=half), w.Box([self.fig_quality], layout=half)]),
                w.HBox([w.Box([self.fig_points], layout=half), w.Box([self.fig_crisis], layout=half)]),
            ]
        )
        if "crisis_categories" not in self.columns:
            self.fig_crisis.layout.title.text = "Crisis categories: needs analysis"
        return w.VBox([w.HTML(STYLE), controls, self._status, charts, self._table, self._open, self._viewer_box])

    @property
    def figures(self) -> dict[str, go.FigureWidget]:
        figs = {"mix": self.fig_mix, "quality": self.fig_quality, "points": self.fig_points}
        if "crisis_categories" in self.columns:
            figs["crisis"] = self.fig_crisis
        return figs

    def to_html(self) -> str:
        plots = "".join(
            f'<div style="display:inline-block;width:49%;vertical-align:top">{figure_html(static_figure(f))}</div>'
            for f in self.figures.values()
        )
        return (
            f'{STYLE}<div class="pe-view"><p>{self._status.value}</p>{plots}'
            f"<p><b>Conversations</b> (riskiest, then lowest quality, first)</p>{self._table.value}</div>"
        )

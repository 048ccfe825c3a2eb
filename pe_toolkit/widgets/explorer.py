"""Explorer: filters driving linked charts and a result table.

Filters: dataset, tier, score ranges (the API's overall quality; with
analysis also the local quality, empathy and risk), crisis categories and a
text search over every message. This module is the view: ipywidgets
controls and plotly charts. The SQL lives in its query model,
:class:`~pe_toolkit.widgets.explorer_query.ExplorerQuery` (``ex.model``):
parameterized DuckDB aggregates over a per-explorer snapshot of
``conversations`` joined with the current scores, so only counts, histogram
bins, at most ``max_points`` scatter points and ``table_rows`` table rows
reach the browser, whatever the store's size.

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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go
import polars as pl

from ..schema import TIERS
from ..store import Store
from .conversation_viewer import ConversationViewer
from .display import View, figure_html, static_figure
from .explorer_query import BINS, FULL_RANGE, RANGES, ExplorerQuery
from .figures import NO_TIER, colour, figure_widget, label as group_label, skipped
from .html import STYLE, esc, table
from .scores import NOT_ANALYZED, ScoreInfo

__all__ = ["BINS", "TABLE_COLUMNS", "Explorer"]

TABLE_COLUMNS = (
    "id", "dataset", "tier", "message_count", "overall_quality", "local_quality",
    "empathy_mean", "risk_score", "crisis_categories",
)
CRISIS_TITLE = "Crisis categories (conversations)"
NO_CRISIS = "no matching conversation has a crisis disclosure"
QUALITY_TITLE = "Overall quality"
NO_QUALITY = "no matching conversation has a quality score (no reply to rate, no API score, or not analyzed)"
# Why a matching conversation has no bar in a quality histogram.
WITHOUT_QUALITY = {"API": "without an API quality", "local": "without a local quality (no reply to rate, or not analyzed)"}


def not_drawn_title(title: str, matches: int, left_out: list[str]) -> str:
    """``title``, with a subtitle naming the matches a chart leaves out (none: the title alone)."""
    return title if not left_out else f"{title}<br><sup>of {matches:,} matches, not drawn: " + "; ".join(left_out) + "</sup>"


def quality_title(matches: int, series: dict[str, list[int]]) -> str:
    """The histogram's title, naming what it leaves out: a conversation with
    no reply has no local quality (quality v3), an imported one no API
    quality, and a histogram over fewer conversations than match must say so."""
    left_out = [f"{matches - sum(bins):,} {WITHOUT_QUALITY[name]}" for name, bins in series.items() if sum(bins) < matches]
    return not_drawn_title(QUALITY_TITLE, matches, left_out)


def points_title(title: str, matches: int, counts: tuple[int, int, int], drawn: int, x: str, y: str) -> str:
    """The scatter's title, naming what it leaves out as the histogram's does:
    matches without an x (``counts`` as :meth:`ExplorerQuery.point_counts`;
    ``x`` "API" or "local"), with an x but no ``y``, and those beyond the
    sample (``drawn`` points of the drawable ones)."""
    drawable, no_x, no_y = counts
    left_out = [f"{no_x:,} {WITHOUT_QUALITY[x]}"] if no_x else []
    if no_y:
        left_out.append(f"{no_y:,} without a {y} (not analyzed)")
    if drawable > drawn:
        left_out.append(f"{drawable - drawn:,} beyond the sample of {drawn:,}")
    return not_drawn_title(title, matches, left_out)


class Explorer(View):
    """See the module docstring. Initial filter values may be passed as
    keywords (the same names as :meth:`set`). ``table_rows`` and
    ``max_points`` cap what reaches the browser; ``search_cache_mb`` bounds
    the in-memory copy of the text that speeds up the search
    (:class:`ExplorerQuery`)."""

    def __init__(
        self,
        store: Store,
        *,
        table_rows: int = 25,
        max_points: int = 2000,
        search_cache_mb: int = 512,
        redact: bool | None = None,
        **initial: Any,
    ) -> None:
        self.store = store
        self.redact = redact  # for the conversation opened under the table
        self.model = ExplorerQuery(store, search_cache_mb=search_cache_mb)
        self.table_rows = int(table_rows)
        self.max_points = int(max_points)
        self._holding = False
        self.count = 0
        self.table_frame = pl.DataFrame()
        self.viewer: ConversationViewer | None = None
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

    # -- the model's state, for code in notebooks -------------------------------------
    @property
    def info(self) -> ScoreInfo:
        return self.model.info

    @property
    def total(self) -> int:
        return self.model.total

    @property
    def columns(self) -> set[str]:
        return self.model.columns

    @property
    def datasets(self) -> list[str]:
        return self.model.datasets

    @property
    def categories(self) -> list[str]:
        return self.model.categories

    def reload(self) -> None:
        """Take a fresh snapshot of the store (after an import, sync or analysis)."""
        self.model.reload()
        if self.model.shape != self._shape:
            # Scores or tiers appeared (or went): the controls and charts change shape.
            self._build_controls()
            self._build_figures()
            self.ui.children = self._layout().children
        else:
            self._dataset.options = self.model.datasets
            self._crisis.options = self.model.categories
        self.update()

    def close(self) -> None:
        """Drop the snapshot (it also goes when the store is closed)."""
        self.model.close()

    def _sync(self) -> ExplorerQuery:
        """The model with the controls' values: the controls are the view's
        state (a user moves them), the model answers for them."""
        self.model.set(**{name: control.value for name, control in self._controls.items()})
        return self.model

    def where(self) -> tuple[str, list[Any]]:
        """The current filters as a parameterized condition on the snapshot (alias ``e``)."""
        return self._sync().where()

    def frame(self, limit: int | None = None) -> pl.DataFrame:
        """The matching conversations (snapshot columns), riskiest and then
        lowest quality first; all of them unless ``limit``."""
        return self._sync().frame(limit=limit)

    def ids(self) -> list[str]:
        """Ids of every matching conversation (for a ReviewQueue or an export)."""
        return self._sync().ids()

    def criteria(self) -> dict[str, Any]:
        """The active filters, by name (what :meth:`set` takes)."""
        return self._sync().criteria()

    # -- controls --------------------------------------------------------------
    def _build_controls(self) -> None:
        model = self.model
        wide = w.Layout(width="330px")
        self._dataset = w.SelectMultiple(options=model.datasets, rows=min(6, max(2, len(model.datasets))), description="dataset", layout=wide)
        self._tier = w.SelectMultiple(options=TIERS, rows=5, description="tier", layout=wide)
        self._crisis = w.SelectMultiple(options=model.categories, rows=6, description="crisis", layout=wide)
        self._text = w.Text(placeholder="words in any message (Enter)", description="search", continuous_update=False, layout=wide)
        self._ranges: dict[str, w.FloatRangeSlider] = {}
        for name in model.ranges:
            self._ranges[name] = w.FloatRangeSlider(
                value=FULL_RANGE, min=0.0, max=1.0, step=0.01, description=RANGES[name][1],
                continuous_update=False, readout_format=".2f", layout=wide, style={"description_width": "90px"},
            )
        self._quality = self._ranges["quality"]
        self._crisis.layout.display = "flex" if "crisis_categories" in model.columns else "none"
        # Nothing to filter on in a corpus without tiers or API scores.
        self._tier.layout.display = "flex" if model.tiered else "none"
        self._quality.layout.display = "flex" if model.api_scored else "none"
        self._shape = model.shape
        self._controls: dict[str, Any] = {
            "dataset": self._dataset, "tier": self._tier, "crisis_categories": self._crisis,
            "text": self._text, **self._ranges,
        }
        self._reset = w.Button(description="reset filters", layout=w.Layout(width="auto"))
        self._reset.on_click(lambda _: self.reset())
        for control in self._controls.values():
            control.observe(self._changed, "value")

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
        checked = self.model.normalize(**values)  # all checked before any control moves
        with self.hold():
            for name, value in checked.items():
                self._controls[name].value = value

    def reset(self) -> None:
        with self.hold():
            self._dataset.value = self._tier.value = self._crisis.value = ()
            self._text.value = ""
            for control in self._ranges.values():
                control.value = FULL_RANGE

    # -- figures -----------------------------------------------------------------
    def _build_figures(self) -> None:
        model = self.model
        tiers = [*TIERS, None] if model.untiered else list(TIERS)
        self.fig_mix = figure_widget("Conversations by dataset and tier" if model.tiered else "Conversations by dataset", barmode="stack")
        for tier in tiers:
            self.fig_mix.add_bar(name=group_label("tier", tier), x=model.datasets, y=[0] * len(model.datasets), marker_color=colour("tier", tier, 0))
        self.fig_quality = figure_widget(QUALITY_TITLE, barmode="overlay", bargap=0.05)
        centres = [(i + 0.5) / BINS for i in range(BINS)]
        # An API series only when the corpus carries API scores (an imported one does not).
        if model.api_scored or "local_quality" not in model.columns:
            self.fig_quality.add_bar(name="API", x=centres, y=[0] * BINS, width=1 / BINS, marker_color="#4f8fc7", opacity=0.65)
        if "local_quality" in model.columns:
            self.fig_quality.add_bar(name="local", x=centres, y=[0] * BINS, width=1 / BINS, marker_color="#e07b39", opacity=0.55)
        self.fig_quality.update_xaxes(range=[0, 1], title_text="overall quality")
        self.fig_crisis = figure_widget(CRISIS_TITLE, height=300)
        self.fig_crisis.add_bar(x=[], y=[], orientation="h", marker_color="#c44e52", name="conversations")
        y_title = "risk score" if "risk_score" in model.columns else "messages"
        # The x quality's source and the y, named once: the subtitle names them too (_update_points).
        self._points_axes = ("API" if model.points_x == "overall_quality" else "local", y_title)
        x_title = f"{self._points_axes[0]} quality"
        self._points_title = f"{x_title} vs {y_title} (sample)"  # a subtitle says what is not drawn (_update_points)
        self.fig_points = figure_widget(self._points_title)
        for tier in tiers:
            self.fig_points.add_scatter(name=group_label("tier", tier), x=[], y=[], mode="markers", marker=dict(size=5, color=colour("tier", tier, 0), opacity=0.7), text=[], hovertemplate="%{text}<extra></extra>")
        self.fig_points.update_xaxes(title_text=f"{x_title.replace('quality', 'overall quality')}")
        self.fig_points.update_yaxes(title_text=y_title)
        for trace in self.fig_mix.data:
            trace.on_click(self._on_mix_click)
        self.fig_crisis.data[0].on_click(self._on_crisis_click)
        for trace in self.fig_points.data:
            trace.on_click(self._on_point_click)

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
        model = self._sync()
        counts, quality, local = model.summary()
        self.count = sum(counts.values())
        with self.fig_mix.batch_update():
            for trace in self.fig_mix.data:
                trace.x = model.datasets
                tier = None if trace.name == NO_TIER else trace.name
                trace.y = [counts.get((d, tier), 0) for d in model.datasets]
        with self.fig_quality.batch_update():
            for trace in self.fig_quality.data:
                trace.y = quality if trace.name == "API" else local
            drawn = {t.name: (quality if t.name == "API" else local) or [] for t in self.fig_quality.data}
            self.fig_quality.layout.title.text = quality_title(self.count, drawn)
        if "crisis_categories" in model.columns:
            crisis = model.crisis_counts()
            with self.fig_crisis.batch_update():
                self.fig_crisis.data[0].x = crisis["n"].to_list()
                self.fig_crisis.data[0].y = crisis["cat"].to_list()
                self.fig_crisis.layout.title.text = CRISIS_TITLE if crisis.height else f"{CRISIS_TITLE}: {NO_CRISIS}"
        self._update_points()
        self.table_frame = model.frame(limit=self.table_rows)
        self._table.value = table(self.table_frame, columns=TABLE_COLUMNS, max_rows=self.table_rows)
        self._open.options = self.table_frame["id"].to_list()
        self._open.value = None
        self._status.value = self._status_html()

    def _update_points(self) -> None:
        model = self.model
        points = model.points(self.max_points)
        # A match without a quality (a post: no reply to rate) has no point: the
        # title says how many, as the histogram's does, not a silently thinner cloud.
        title = points_title(self._points_title, self.count, model.point_counts(), points.height, *self._points_axes)
        with self.fig_points.batch_update():
            self.fig_points.layout.title.text = title
            for trace in self.fig_points.data:
                part = points.filter(pl.col("tier").eq_missing(None if trace.name == NO_TIER else trace.name))
                trace.x = part["x"].to_list()
                trace.y = part["y"].to_list()
                trace.customdata = part["id"].to_list()
                trace.text = part["id"].to_list()

    def _status_html(self) -> str:
        model = self.model
        text = f"<b>{self.count:,}</b> of {model.total:,} conversations match"
        crit = self.criteria()
        if crit:
            text += " · " + "; ".join(f"{esc(k)}: {esc(v)}" for k, v in crit.items())
        notes = [n for n in model.corpus.notes() if n != NOT_ANALYZED and "figures over time" not in n]
        if notes:  # an imported corpus: what the charts cannot show
            text += f'<br><span class="pe-note">{esc("; ".join(notes))}</span>'
        if not model.info.analyzed:
            text += f'<br><span class="pe-note">{esc(NOT_ANALYZED)}</span>'
        return text

    # -- drill-down ---------------------------------------------------------------
    def open(self, conversation_id: str) -> ConversationViewer:
        """Show one conversation under the table."""
        if self.viewer is None:
            self.viewer = ConversationViewer(self.store, conversation_id, redact=self.redact)
            self._viewer_box.children = [self.viewer.ui]
        else:
            self.viewer.show(conversation_id)
        return self.viewer

    def _figure_html(self, name: str, fig: go.FigureWidget) -> str:
        # No category among the matches (common on real text): a line saying
        # so, not an empty chart.
        if name == "crisis" and not len(fig.data[0].x or ()):
            return skipped(CRISIS_TITLE, NO_CRISIS)._repr_mimebundle_()["text/html"]
        # Nor an empty histogram or scatter: a cache of posts has no quality to
        # draw (no reply to rate, no API score), and a plot of zeros says nothing.
        if name == "quality" and not any(sum(t.y or ()) for t in fig.data):
            return skipped(QUALITY_TITLE, NO_QUALITY)._repr_mimebundle_()["text/html"]
        if name == "points" and not any(len(t.x or ()) for t in fig.data):
            return skipped(self._points_title, NO_QUALITY)._repr_mimebundle_()["text/html"]
        return figure_html(static_figure(fig))

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
            f'<div style="display:inline-block;width:49%;vertical-align:top">{self._figure_html(name, f)}</div>'
            for name, f in self.figures.items()
        )
        return (
            f'{STYLE}<div class="pe-view"><p>{self._status.value}</p>{plots}'
            f"<p><b>Conversations</b> (riskiest, then lowest quality, first)</p>{self._table.value}</div>"
        )

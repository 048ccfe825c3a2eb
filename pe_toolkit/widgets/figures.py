"""Figure scaffolding shared by the views and the notebooks: one look,
tier colours in tier order, and small helpers that turn already-aggregated
frames into plotly figures (the browser never gets raw rows).

Imported corpora carry no API tier, scores or dates, so a group value may be
null (drawn as "no tier" / "none", never dropped) and a frame may be empty.
A helper given an empty frame returns :class:`Skipped` instead of an empty
plot: one line naming the figure and why it is not drawn (``empty=``, e.g.
from :meth:`pe_toolkit.widgets.corpus.Corpus.lacks`). A frame whose values
are all 0 is skipped the same way, with a line that states the zero
(``zero=``): on real text no reply may be templated and no user disclose a
crisis, and a plot of zeros reads as a plot that failed to draw."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import plotly.graph_objects as go
import polars as pl

from ..schema import TIERS

TIER_COLOURS = dict(zip(TIERS, ("#b9c4d0", "#8fb3d9", "#4f8fc7", "#2b6aa6", "#173f6e")))
METRIC_LABELS = {
    "therapeutic_accuracy": "therapeutic accuracy",
    "conversation_coherence": "coherence",
    "emotional_authenticity": "emotional authenticity",
    "clinical_compliance": "clinical compliance",
    "safety_score": "safety",
    "overall_quality": "overall quality",
}
NO_TIER = "no tier"
NO_TIER_COLOUR = "#d9a441"
NO_VALUE = "none"
SERIES_COLOURS = ("#4f8fc7", "#e07b39", "#5aa05a", "#c44e52", "#8172b2", "#937860", "#da8bc3", "#8c8c8c", "#ccb974")


def layout(title: str, *, height: int = 320, **extra: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        title=dict(text=title, font=dict(size=14)),
        height=height,
        margin=dict(l=50, r=20, t=45, b=40),
        template="plotly_white",
        legend=dict(font=dict(size=10)),
    )
    base.update(extra)
    return base


class Skipped:
    """A figure that is not drawn, and why, in one line. Displays as that
    line; absorbs the styling calls a cell chains on a figure
    (``update_xaxes``, ``add_scatter``...), so a cell needs no branch."""

    def __init__(self, title: str, reason: str) -> None:
        self.title = title
        self.reason = reason

    @property
    def text(self) -> str:
        return f"{self.title}: skipped, {self.reason}"

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("update_", "add_", "for_each_")):
            return lambda *args, **kwargs: self
        raise AttributeError(name)

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        html = f'<p class="pe-note pe-skipped" style="color:#666">{escape(self.text)}</p>'
        return {"text/html": html, "text/plain": self.text}


NOTHING = "no rows to show"
ALL_ZERO = "every value is 0"


def skipped(title: str, reason: str | None = None) -> Skipped:
    return Skipped(title, reason or NOTHING)


def _nothing(frame: pl.DataFrame, values: Sequence[str], title: str, empty: str | None, zero: str | None) -> Skipped | None:
    """The line standing in for a figure with no rows, or whose ``values``
    are all 0 or missing; None when there is something to draw."""
    if frame.height == 0:
        return skipped(title, empty)
    numbers = [frame[c].cast(pl.Float64).fill_nan(None) for c in values]
    if all(v.null_count() == len(v) for v in numbers):  # nothing measured is not a measured 0
        return skipped(title, empty)
    if all(v.fill_null(0).eq(0).all() for v in numbers):
        return skipped(title, zero or ALL_ZERO)
    return None


def label(group: str, value: object) -> str:
    """A group value as shown: null is "no tier" for tiers, "none" otherwise."""
    if value is None:
        return NO_TIER if group == "tier" else NO_VALUE
    return str(value)


def colour(group: str, value: object, i: int) -> str:
    if group == "tier":
        return TIER_COLOURS.get(value, NO_TIER_COLOUR) if isinstance(value, str) else NO_TIER_COLOUR
    return SERIES_COLOURS[i % len(SERIES_COLOURS)]


def group_values(frame: pl.DataFrame, group: str, groups: Sequence[Any] | None = None) -> list[Any]:
    """The groups to draw: ``groups`` when given, else those present (tiers
    from basic to research, null last)."""
    if groups is not None:
        return list(groups)
    values = frame[group].unique(maintain_order=True).to_list()
    if group == "tier":
        rank = {t: i for i, t in enumerate(TIERS)}
        values.sort(key=lambda v: rank.get(v, len(TIERS) + (v is None)))
    elif None in values:
        values = [v for v in values if v is not None] + [None]
    return values


def figure_widget(title: str, *, height: int = 320, **extra: object) -> go.FigureWidget:
    return go.FigureWidget(layout=layout(title, height=height, **extra))


def grouped_bars(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    group: str,
    title: str,
    groups: Sequence[str] | None = None,
    stacked: bool = False,
    error: str | None = None,
    height: int = 340,
    yaxis_title: str | None = None,
    empty: str | None = None,
    zero: str | None = None,
) -> go.Figure | Skipped:
    """Bars of an aggregated frame, one trace per value of ``group``."""
    if nothing := _nothing(frame, [y], title, empty, zero):
        return nothing
    fig = go.Figure(layout=layout(title, height=height, barmode="stack" if stacked else "group"))
    for i, g in enumerate(group_values(frame, group, groups)):
        part = frame.filter(pl.col(group).eq_missing(g))
        fig.add_bar(
            name=label(group, g),
            x=[label(x, v) if v is None else v for v in part[x].to_list()],
            y=part[y].to_list(),
            marker_color=colour(group, g, i),
            error_y=dict(type="data", array=part[error].to_list(), thickness=1) if error else None,
        )
    fig.update_yaxes(title_text=yaxis_title or y)
    return fig


def box_from_stats(
    frame: pl.DataFrame,
    *,
    x: str,
    title: str,
    group: str | None = None,
    height: int = 360,
    yaxis_title: str = "",
    empty: str | None = None,
    zero: str | None = None,
) -> go.Figure | Skipped:
    """Box plots from precomputed statistics (columns q1, median, q3, lo, hi),
    so only five numbers per box reach the browser."""
    if nothing := _nothing(frame, ["q1", "median", "q3", "lo", "hi"], title, empty, zero):
        return nothing
    fig = go.Figure(layout=layout(title, height=height, boxmode="group" if group else "overlay"))
    for i, g in enumerate(group_values(frame, group) if group else [None]):
        part = frame.filter(pl.col(group).eq_missing(g)) if group else frame
        fig.add_box(
            name=label(group, g) if group else "",
            x=[label(x, v) for v in part[x].to_list()],
            q1=part["q1"].to_list(),
            median=part["median"].to_list(),
            q3=part["q3"].to_list(),
            lowerfence=part["lo"].to_list(),
            upperfence=part["hi"].to_list(),
            marker_color=colour(group, g, i) if group else None,
            showlegend=group is not None,
        )
    fig.update_yaxes(title_text=yaxis_title)
    return fig


def heatmap(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    z: str,
    title: str,
    height: int = 360,
    zmin: float | None = None,
    zmax: float | None = None,
    colorscale: str = "Blues",
    text_format: str = ".2f",
    empty: str | None = None,
    zero: str | None = None,
) -> go.Figure | Skipped:
    """A heatmap of an aggregated long frame (one row per cell). A null
    ``x`` or ``y`` is a row or column of its own ("no tier", "none")."""
    if nothing := _nothing(frame, [z], title, empty, zero):
        return nothing
    # pivot() names columns by value: a null would become "null", and the
    # labels must be strings anyway.
    frame = frame.with_columns(
        pl.col(c).cast(pl.String).fill_null(label(c, None)) for c in {x, y}
    )
    xs = frame[x].unique(maintain_order=True).to_list()
    ys = frame[y].unique(maintain_order=True).to_list()
    wide = frame.pivot(on=x, index=y, values=z).select([y, *[str(v) for v in xs]])
    cells = wide.select([str(v) for v in xs]).to_numpy()
    fig = go.Figure(layout=layout(title, height=height))
    fig.add_heatmap(
        x=[str(v) for v in xs],
        y=[str(v) for v in wide[y].to_list()] if ys else [],
        z=cells,
        zmin=zmin,
        zmax=zmax,
        colorscale=colorscale,
        texttemplate="%{z:" + text_format + "}",
        hoverongaps=False,
    )
    return fig


def grouped_lines(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    group: str,
    title: str,
    groups: Sequence[str] | None = None,
    height: int = 360,
    markers: bool = True,
    empty: str | None = None,
    zero: str | None = None,
) -> go.Figure | Skipped:
    """One line per value of ``group`` over an aggregated frame."""
    if nothing := _nothing(frame, [y], title, empty, zero):
        return nothing
    fig = go.Figure(layout=layout(title, height=height))
    for i, g in enumerate(group_values(frame, group, groups)):
        part = frame.filter(pl.col(group).eq_missing(g)).sort(x)
        if part.height == 0:
            continue
        fig.add_scatter(
            name=METRIC_LABELS.get(str(g), label(group, g)),
            x=part[x].to_list(),
            y=part[y].to_list(),
            mode="lines+markers" if markers else "lines",
            line=dict(color=colour(group, g, i)),
        )
    return fig


def density(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    z: str,
    title: str,
    height: int = 420,
    empty: str | None = None,
    zero: str | None = None,
) -> go.Figure | Skipped:
    """A 2-D histogram drawn from pre-binned cells (bin centres in x and y)."""
    if nothing := _nothing(frame, [z], title, empty, zero):
        return nothing
    fig = go.Figure(layout=layout(title, height=height))
    fig.add_heatmap(
        x=frame[x].to_list(), y=frame[y].to_list(), z=frame[z].to_list(), colorscale="Blues", colorbar=dict(title=z)
    )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="#999"), showlegend=False)
    fig.update_xaxes(title_text=x, range=[0, 1], constrain="domain").update_yaxes(title_text=y, range=[0, 1], constrain="domain")
    return fig

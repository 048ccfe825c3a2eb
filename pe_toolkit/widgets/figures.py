"""Figure scaffolding shared by the views and the notebooks: one look,
tier colours in tier order, and small helpers that turn already-aggregated
frames into plotly figures (the browser never gets raw rows)."""

from __future__ import annotations

from collections.abc import Sequence

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
) -> go.Figure:
    """Bars of an aggregated frame, one trace per value of ``group``."""
    fig = go.Figure(layout=layout(title, height=height, barmode="stack" if stacked else "group"))
    values = list(groups) if groups is not None else frame[group].unique(maintain_order=True).to_list()
    for i, g in enumerate(values):
        part = frame.filter(pl.col(group) == g)
        colour = TIER_COLOURS.get(g) if group == "tier" else SERIES_COLOURS[i % len(SERIES_COLOURS)]
        fig.add_bar(
            name=str(g),
            x=part[x].to_list(),
            y=part[y].to_list(),
            marker_color=colour,
            error_y=dict(type="data", array=part[error].to_list(), thickness=1) if error else None,
        )
    fig.update_yaxes(title_text=yaxis_title or y)
    return fig


def box_from_stats(
    frame: pl.DataFrame, *, x: str, title: str, group: str | None = None, height: int = 360, yaxis_title: str = ""
) -> go.Figure:
    """Box plots from precomputed statistics (columns q1, median, q3, lo, hi),
    so only five numbers per box reach the browser."""
    fig = go.Figure(layout=layout(title, height=height, boxmode="group" if group else "overlay"))
    groups = frame[group].unique(maintain_order=True).to_list() if group else [None]
    for i, g in enumerate(groups):
        part = frame.filter(pl.col(group) == g) if group else frame
        colour = TIER_COLOURS.get(g) if group == "tier" else SERIES_COLOURS[i % len(SERIES_COLOURS)]
        fig.add_box(
            name=str(g) if g is not None else "",
            x=part[x].to_list(),
            q1=part["q1"].to_list(),
            median=part["median"].to_list(),
            q3=part["q3"].to_list(),
            lowerfence=part["lo"].to_list(),
            upperfence=part["hi"].to_list(),
            marker_color=colour,
            showlegend=group is not None,
        )
    fig.update_yaxes(title_text=yaxis_title)
    return fig


def heatmap(frame: pl.DataFrame, *, x: str, y: str, z: str, title: str, height: int = 360, zmin: float | None = None, zmax: float | None = None, colorscale: str = "Blues", text_format: str = ".2f") -> go.Figure:
    """A heatmap of an aggregated long frame (one row per cell)."""
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
) -> go.Figure:
    """One line per value of ``group`` over an aggregated frame."""
    fig = go.Figure(layout=layout(title, height=height))
    values = list(groups) if groups is not None else frame[group].unique(maintain_order=True).to_list()
    for i, g in enumerate(values):
        part = frame.filter(pl.col(group) == g).sort(x)
        if part.height == 0:
            continue
        colour = TIER_COLOURS.get(g) if group == "tier" else SERIES_COLOURS[i % len(SERIES_COLOURS)]
        fig.add_scatter(
            name=METRIC_LABELS.get(str(g), str(g)),
            x=part[x].to_list(),
            y=part[y].to_list(),
            mode="lines+markers" if markers else "lines",
            line=dict(color=colour),
        )
    return fig


def density(frame: pl.DataFrame, *, x: str, y: str, z: str, title: str, height: int = 420) -> go.Figure:
    """A 2-D histogram drawn from pre-binned cells (bin centres in x and y)."""
    fig = go.Figure(layout=layout(title, height=height))
    fig.add_heatmap(
        x=frame[x].to_list(), y=frame[y].to_list(), z=frame[z].to_list(), colorscale="Blues", colorbar=dict(title=z)
    )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="#999"), showlegend=False)
    fig.update_xaxes(title_text=x, range=[0, 1], constrain="domain").update_yaxes(title_text=y, range=[0, 1], constrain="domain")
    return fig

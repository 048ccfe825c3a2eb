"""Live widgets in JupyterLab, plain HTML in reports.

A live ipywidgets view needs a running kernel; an HTML report opened from
disk has none. In *static mode* (``static_mode(True)``, which the notebooks
switch on from their ``static_report`` parameter when ``pe-toolkit report``
runs them) every pe_toolkit view renders itself as HTML with its plots as
plotly.js divs, and plain plotly figures shown in the notebook do the same.
The first plot of a static session carries plotly.js itself, so the page
works offline; nothing is loaded from a CDN.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

_RENDERER = "pe_static"
_state: dict[str, Any] = {"static": False, "plotlyjs_sent": False, "previous_renderer": None, "redact": False}

PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def figure_html(fig: go.Figure | dict[str, Any]) -> str:
    """A plot as an HTML fragment: a div plus the script drawing it.

    plotly.js is inlined into the first fragment of a static session only.
    MathJax is never referenced (it would be fetched from a CDN)."""
    include = not _state["plotlyjs_sent"]
    _state["plotlyjs_sent"] = True
    return pio.to_html(
        fig,
        config=PLOT_CONFIG,
        include_plotlyjs=include,
        include_mathjax=False,
        full_html=False,
        default_width="100%",
        default_height=450,  # used only when the figure sets no height
        validate=False,
    )


class _StaticRenderer(MimetypeRenderer):
    """Plain plotly figures displayed in a static session."""

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, str]:
        return {"text/html": figure_html(fig_dict)}


def static_mode(on: bool = True) -> None:
    """Switch static rendering on or off for this kernel (see module doc)."""
    on = bool(on)
    if on == _state["static"]:
        return
    if on:
        pio.renderers[_RENDERER] = _StaticRenderer()
        _state["previous_renderer"] = pio.renderers.default
        pio.renderers.default = _RENDERER
        _state["plotlyjs_sent"] = False
    else:
        pio.renderers.default = _state["previous_renderer"] or ""
    _state["static"] = on


def is_static() -> bool:
    return bool(_state["static"])


def redact_views(on: bool = True) -> None:
    """Replace personal data in the conversations every view shows from now
    on in this kernel (a view's own ``redact=`` argument still wins). The
    notebooks switch it on from their ``redact_views`` parameter, which
    ``pe-toolkit report --redact`` sets, so a report shared outside the
    team shows no names, e-mails or phone numbers."""
    _state["redact"] = bool(on)


def is_redacting() -> bool:
    return bool(_state["redact"])


class View:
    """Base of the pe_toolkit widgets: ``ui`` is the ipywidgets tree shown
    in JupyterLab; ``to_html()`` is the same view as static HTML."""

    ui: Any

    def to_html(self) -> str:  # pragma: no cover - every view overrides it
        raise NotImplementedError

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if is_static():
            return {"text/html": self.to_html(), "text/plain": f"<{type(self).__name__}>"}
        return self.ui._repr_mimebundle_(include=include, exclude=exclude)


def static_figure(fig: go.Figure) -> go.Figure:
    """A plain copy of a (FigureWidget) figure, for HTML output."""
    return go.Figure(fig.to_dict())

"""Interactive views for JupyterLab: ipywidgets controls with plotly
FigureWidgets that update in place.

They take a Store (or frames) and never call the network. Each is usable
from a script too (set filters, read the frames and figures), and renders
as static HTML in reports (:func:`static_mode`).

- :class:`Explorer`: filters driving linked charts and a result table
- :class:`ConversationViewer`: chat bubbles with scores and evidence
- :class:`ReviewQueue`: label alerts or any selection; labels persist
- :class:`LiveAnalyzer`: score a message and a reply as you type
- :class:`Corpus`: what a store's conversations carry (tiers, dates, API
  scores), the grouping and the one-line reasons the notebooks use
- :class:`LiveMonitor`: charts following the event stream, from the
  in-process bus (:class:`BusSource`) or a mirror's update stream through a
  client (:class:`SseSource`)
"""

from __future__ import annotations

import importlib
from typing import Any

from .display import is_redacting, is_static, redact_views, static_mode

_LAZY = {
    "Explorer": "pe_toolkit.widgets.explorer",
    "ConversationViewer": "pe_toolkit.widgets.conversation_viewer",
    "ReviewQueue": "pe_toolkit.widgets.review_queue",
    "alert_ids": "pe_toolkit.widgets.review_queue",
    "check_threshold": "pe_toolkit.widgets.review_queue",
    "check_count": "pe_toolkit.widgets.params",
    "check_number": "pe_toolkit.widgets.params",
    "LiveAnalyzer": "pe_toolkit.widgets.live_analyzer",
    "LiveMonitor": "pe_toolkit.widgets.live_monitor",
    "BusSource": "pe_toolkit.widgets.live_monitor",
    "EventSource": "pe_toolkit.widgets.live_monitor",
    "SseSource": "pe_toolkit.widgets.sse_source",
    # Lives above the widgets (it imports, syncs, analyzes); named here too
    # because the notebooks call it as pw.open_for_notebook.
    "open_for_notebook": "pe_toolkit.session",
    "Corpus": "pe_toolkit.widgets.corpus",
}

__all__ = ["is_redacting", "is_static", "redact_views", "static_mode", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pe_toolkit.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

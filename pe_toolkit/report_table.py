"""Report objects as a small table in Jupyter.

Imports, analyses, syncs, exports and warehouse loads return a report
dataclass whose ``str()`` is one line for a terminal or a log. A notebook
shows the last value of a cell through ``_repr_html_``, so each report
class also derives from :class:`HtmlReport`: a table with that line as its
caption and one row per field, every value escaped, long lists and long
text shortened.
"""

from __future__ import annotations

import dataclasses
from html import escape
from typing import Any

MAX_ITEMS = 5  # items of a list or dict shown before "... (N more)"
MAX_CHARS = 300  # characters of one value shown


class HtmlReport:
    """Mixin: ``_repr_html_`` for a report dataclass (see the module docstring)."""

    def _repr_html_(self) -> str:
        return report_html(self)


def report_html(report: Any) -> str:
    """``report`` (a dataclass) as an HTML table: ``str(report)`` as the
    caption, then one row per field."""
    rows = "".join(
        f'<tr><th style="text-align:left">{escape(field.name)}</th>'
        f'<td style="text-align:left">{_cell(getattr(report, field.name))}</td></tr>'
        for field in dataclasses.fields(report)
        if field.metadata.get("report", True)  # working data of one write (UpsertResult.updated_hashes)
    )
    caption = f"<b>{escape(type(report).__name__)}</b>: {escape(_short(str(report)))}"
    return f'<table class="pe-report"><caption style="text-align:left">{caption}</caption><tbody>{rows}</tbody></table>'


def _cell(value: Any) -> str:
    """One field's value as escaped HTML; list and dict items one per line."""
    if isinstance(value, dict):
        items = [f"{k}: {_text(v)}" for k, v in value.items()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = [_text(v) for v in value]
    else:
        return escape(_text(value))
    shown = [escape(item) for item in items[:MAX_ITEMS]]
    if len(items) > MAX_ITEMS:
        shown.append(f"... ({len(items) - MAX_ITEMS:,} more)")
    return "<br>".join(shown)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return ", ".join(f"{f.name} {_text(getattr(value, f.name))}" for f in dataclasses.fields(value))
    return _short(str(value))


def _short(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 3] + "..."

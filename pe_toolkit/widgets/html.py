"""HTML fragments shared by the views: escaped text, highlighted evidence,
small tables. Every piece of conversation text goes through
:func:`html.escape` here; nothing else builds markup from data.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

# Evidence colours by analyzer (light backgrounds keep the text readable).
ANALYZER_COLOURS = {
    "empathy": "#d8f0d2",
    "skills": "#d6e6f7",
    "skills_model": "#d6e6f7",
    "risk_model": "#f9d3d0",
    "sentiment": "#efe3f7",
    "safety": "#f9d3d0",
    "crisis": "#f9d3d0",
    "harm": "#f6c4a8",
    "pii": "#fbe7a6",
    "quality": "#e4e4e4",
}
_DEFAULT_COLOUR = "#e8e8e8"

STYLE = """
<style>
.pe-view { font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 13px; }
.pe-head { margin: 4px 0 8px 0; color: #333; }
.pe-msg { max-width: 78%; padding: 8px 11px; margin: 6px 0; border-radius: 12px; line-height: 1.45;
          white-space: pre-wrap; word-wrap: break-word; }
.pe-user { background: #eef3fb; margin-right: auto; border-bottom-left-radius: 3px; }
.pe-assistant { background: #f5f5f2; margin-left: auto; border-bottom-right-radius: 3px; }
.pe-system { background: #fafafa; color: #666; font-style: italic; margin: 6px auto; max-width: 90%; }
.pe-role { font-size: 11px; color: #777; margin-bottom: 2px; }
.pe-badges { margin-top: 4px; }
.pe-badge { display: inline-block; font-size: 11px; padding: 0 6px; margin: 1px 3px 1px 0; border-radius: 8px;
            background: #e9e9e9; color: #333; white-space: nowrap; }
.pe-badge.pe-risk { background: #f6c6c1; }
.pe-badge.pe-good { background: #cfe9c9; }
.pe-warning { padding: 6px 10px; border: 1px dashed #c55; border-radius: 8px; color: #933; background: #fff6f5; }
.pe-note { color: #666; font-size: 12px; }
.pe-table { border-collapse: collapse; font-size: 12px; }
.pe-table th, .pe-table td { padding: 3px 8px; border-bottom: 1px solid #e3e3e3; text-align: left; vertical-align: top; }
.pe-table th { background: #f4f4f4; }
mark.pe-ev { border-radius: 3px; padding: 0 1px; color: inherit; }
details.pe-cw summary { cursor: pointer; color: #933; }
</style>
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


@dataclass(frozen=True)
class Span:
    """A highlighted part of a text: ``text[start:end]`` (code points)."""

    start: int
    end: int
    analyzer: str
    category: str


def highlight(text: str, spans: Iterable[Span]) -> str:
    """``text`` escaped, with every span wrapped in a ``<mark>`` whose title
    names the analyzers and categories behind it. Overlapping spans are cut
    at every boundary so each piece lists all spans covering it."""
    spans = [s for s in spans if 0 <= s.start < s.end <= len(text)]
    if not spans:
        return esc(text)
    cuts = sorted({0, len(text), *(s.start for s in spans), *(s.end for s in spans)})
    out: list[str] = []
    # One message at a time, a few dozen pieces at most: not a hot path.
    for lo, hi in itertools.pairwise(cuts):
        covering = [s for s in spans if s.start <= lo and hi <= s.end]
        piece = esc(text[lo:hi])
        if not covering:
            out.append(piece)
            continue
        title = "; ".join(sorted({f"{s.analyzer}: {s.category}" for s in covering}))
        colour = ANALYZER_COLOURS.get(covering[0].analyzer, _DEFAULT_COLOUR)
        out.append(f'<mark class="pe-ev" style="background:{colour}" title="{esc(title)}">{piece}</mark>')
    return "".join(out)


def badge(text: str, kind: str = "") -> str:
    return f'<span class="pe-badge {esc(kind)}">{esc(text)}</span>'


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "–"
    return str(value)


def table(frame: pl.DataFrame, *, columns: Sequence[str] | None = None, max_rows: int = 100) -> str:
    """A small escaped HTML table of the first ``max_rows`` rows."""
    columns = [c for c in (columns or frame.columns) if c in frame.columns]
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.select(columns).head(max_rows).iter_rows()
    )
    more = ""
    if frame.height > max_rows:
        more = f'<p class="pe-note">first {max_rows:,} of {frame.height:,} rows</p>'
    return f'<table class="pe-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}'


def warned_table(title: str, frame: pl.DataFrame, *, text: str = "text", max_rows: int = 100, max_chars: int | None = None) -> str:
    """``frame`` as a table collapsed behind a content warning (it quotes
    texts), with personal data in its ``text`` column replaced while views
    redact (:func:`pe_toolkit.widgets.redact_views`, ``report --redact``),
    then cut to ``max_chars``: cut first, an e-mail across the cut would no
    longer be recognised and half of it would show."""
    from .display import is_redacting

    if is_redacting() and text in frame.columns:
        from ..analysis.pii import redact_frame

        frame = redact_frame(frame, text, by=None)
    if max_chars is not None and text in frame.columns:
        frame = frame.with_columns(pl.col(text).str.slice(0, max_chars))
    return (
        STYLE
        + f'<details class="pe-cw"><summary>{esc(title)} (content warning: opens quoted texts)</summary>'
        + table(frame, max_rows=max_rows)
        + "</details>"
    )

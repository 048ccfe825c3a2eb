"""LiveAnalyzer: type a user message and a reply, see empathy, safety and
quality scores with suggestions as you type.

Scoring is :func:`pe_toolkit.validate_conversation` on an in-memory
conversation (earlier turns may be given as ``history``): the same
analyzers as ``pe.analyze``, no store and no network.

>>> LiveAnalyzer(user="I can't sleep and I feel hopeless.", reply="That sounds exhausting. What keeps you up?")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w
import polars as pl

from ..errors import InputError
from ..schema import QUALITY_METRICS
from .conversation_viewer import message_badges
from .display import View, figure_html, is_redacting, static_figure
from .figures import METRIC_LABELS, figure_widget, skipped
from .html import STYLE, Span, badge, esc, highlight

Validator = Callable[..., dict[str, Any]]


def _frame(value: Any) -> pl.DataFrame:
    if isinstance(value, pl.DataFrame):
        return value
    return pl.DataFrame(value or [])


class LiveAnalyzer(View):
    """See the module docstring. ``validate`` replaces the scorer (it takes
    a conversation dict and ``include_messages=True``)."""

    def __init__(
        self,
        user: str = "",
        reply: str = "",
        *,
        history: Sequence[dict[str, str]] = (),
        validate: Validator | None = None,
    ) -> None:
        if validate is None:
            from ..analysis import validate_conversation

            validate = validate_conversation
        self._validate = validate
        self.history = [dict(m) for m in history]
        self.result: dict[str, Any] = {}
        self.user = w.Textarea(value=user, placeholder="the user's message", continuous_update=True, layout=w.Layout(width="100%", height="80px"))
        self.reply = w.Textarea(value=reply, placeholder="a reply to score", continuous_update=True, layout=w.Layout(width="100%", height="80px"))
        self.fig = figure_widget("Quality metrics (local)", height=280)
        self.fig.add_bar(x=[METRIC_LABELS[m] for m in QUALITY_METRICS], y=[0.0] * len(QUALITY_METRICS), marker_color="#4f8fc7", name="score")
        self.fig.update_yaxes(range=[0, 1])
        self._panel = w.HTML()
        self.user.observe(lambda _: self.update(), "value")
        self.reply.observe(lambda _: self.update(), "value")
        self.ui = w.VBox(
            [w.HTML(STYLE), self.user, self.reply, w.HBox([w.Box([self.fig], layout=w.Layout(width="45%")), w.Box([self._panel], layout=w.Layout(width="55%"))])]
        )
        self.update()

    def conversation(self) -> dict[str, Any]:
        messages = [*self.history]
        if self.user.value.strip():
            messages.append({"role": "user", "content": self.user.value})
        if self.reply.value.strip():
            messages.append({"role": "assistant", "content": self.reply.value})
        return {"id": "live", "messages": messages}

    def update(self) -> None:
        """Score the current texts and redraw."""
        conversation = self.conversation()
        if not conversation["messages"]:
            self.result = {}
            self._panel.value = '<p class="pe-note">Type a user message and a reply.</p>'
            with self.fig.batch_update():
                self.fig.data[0].y = [0.0] * len(QUALITY_METRICS)
            return
        try:
            self.result = self._validate(conversation, include_messages=True)
        except InputError as exc:
            # Half-typed input is normal here: say what is missing, keep going.
            self.result = {}
            self._panel.value = f'<p class="pe-note">{esc(str(exc))}</p>'
            return
        metrics = self.result.get("validation_results") or {}
        with self.fig.batch_update():
            self.fig.data[0].y = [float(metrics.get(m) or 0.0) for m in QUALITY_METRICS]
        self._panel.value = self._panel_html(conversation)

    @property
    def rated(self) -> bool:
        """Whether the exchange has quality metrics: without a reply there is
        nothing to rate (they are null, and the bars stay at 0)."""
        metrics = self.result.get("validation_results") or {}
        return any(metrics.get(m) is not None for m in QUALITY_METRICS)

    @property
    def message_scores(self) -> pl.DataFrame:
        return _frame(self.result.get("message_scores"))

    @property
    def evidence(self) -> pl.DataFrame:
        return _frame(self.result.get("evidence"))

    def _panel_html(self, conversation: dict[str, Any]) -> str:
        tier = self.result.get("tier_classification")
        parts = [f'<div class="pe-view"><p>tier: {badge(str(tier)) if tier else "–"}</p>']
        if not self.rated:
            parts.append('<p class="pe-note">No reply to rate: the quality metrics need an assistant message.</p>')
        scores = self.message_scores
        evidence = self.evidence
        start = len(self.history)
        texts = [m["content"] for m in conversation["messages"]]
        redacting = is_redacting()  # pw.redact_views / report --redact: text taken from a cache
        if redacting:
            from ..analysis.pii import redact_conversation

            texts = redact_conversation(texts)
        for idx, message in enumerate(conversation["messages"]):
            if idx < start:
                continue
            row: dict[str, Any] = {"role": message["role"]}
            if scores.height and "idx" in scores.columns:
                match = scores.filter(pl.col("idx") == idx)
                if match.height:
                    row.update(match.row(0, named=True))
            row["role"] = message["role"]
            spans = []
            if not redacting and evidence.height and "idx" in evidence.columns:  # redacted: the offsets moved
                ev = evidence.filter(pl.col("idx") == idx)
                spans = [Span(r["start"], r["end"], r["analyzer"], r["category"]) for r in ev.iter_rows(named=True)]
            parts.append(
                f'<div class="pe-msg pe-{esc(message["role"])}"><div class="pe-role">{esc(message["role"])}</div>'
                f"{highlight(texts[idx], spans)}{message_badges(row)}</div>"
            )
        tips = self.result.get("recommendations") or []
        if tips:
            parts.append("<p><b>Suggestions</b></p><ul>" + "".join(f"<li>{esc(t)}</li>" for t in tips) + "</ul>")
        parts.append("</div>")
        return "".join(parts)

    def to_html(self) -> str:
        if not self.rated:  # a plot of zeros would read as a reply rated 0
            shown = skipped("Quality metrics (local)", "no reply to rate")._repr_mimebundle_()["text/html"]
            return f"{STYLE}{shown}{self._panel.value}"
        return f"{STYLE}{figure_html(static_figure(self.fig))}{self._panel.value}"

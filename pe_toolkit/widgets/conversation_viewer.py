"""ConversationViewer: one conversation as chat bubbles, with per-message
scores and the evidence behind them highlighted.

Distressing messages (a user message with a crisis disclosure, an assistant
message with harmful content) are collapsed behind a content warning and
shown only on an explicit click (in reports: a ``<details>`` element).
When a conversation has no safety scores (never analysed), nothing says
which messages are distressing, so every user message is collapsed: the
warning fails closed.
Every text is escaped; nothing here reaches the network.

>>> viewer = ConversationViewer(store, "conv_000042")
>>> viewer                       # in JupyterLab
>>> viewer.show("conv_000043")
>>> ConversationViewer(store, ids=alert_ids)   # with previous / next
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import polars as pl

from ..errors import InputError
from ..schema import QUALITY_METRICS
from ..store import Store
from .display import View, is_redacting
from .html import STYLE, Span, badge, esc, fmt, highlight
from .scores import NOT_ANALYZED, ScoreInfo

_KEYS = {"conversation_id", "idx", "content_hash"}
# EPITOME mechanisms and their usual abbreviations (Sharma et al. 2020).
_EPITOME = {"emotional_reactions": "ER", "interpretations": "IP", "explorations": "EX"}
_HEADER_SCORES = ("risk_score", "alert", "max_severity", "crisis_categories", "empathy_mean", "sentiment_change")


def _human(code: str) -> str:
    return code.replace("_", " ")


def message_badges(row: dict[str, Any]) -> str:
    """The scores of one message as small labels (only what is present)."""
    parts: list[str] = []
    role = row.get("role")
    if row.get("sentiment") is not None and role == "user":
        parts.append(badge(f"sentiment {row['sentiment']:+.2f}"))
    if row.get("suicide_risk_p") is not None and role == "user":
        p = row["suicide_risk_p"]
        parts.append(badge(f"risk model {p:.2f}", "pe-risk" if p >= 0.5 else ""))
    if role == "assistant" and row.get("skill"):
        p = row.get(f"skill_p_{row['skill']}")
        parts.append(badge(f"strategy: {_human(row['skill'])}" + (f" {p:.2f}" if p is not None else "")))
    if role == "assistant":
        levels = [(short, row.get(k)) for k, short in _EPITOME.items()]
        if any(v is not None for _, v in levels):
            parts.append(badge(" · ".join(f"{short} {fmt(v)}" for short, v in levels)))
        if row.get("empathy") is not None:
            parts.append(badge(f"empathy {row['empathy']:.2f}", "pe-good" if row["empathy"] >= 0.5 else ""))
        for code in row.get("skills") or []:
            parts.append(badge(_human(code)))
        for flag, text in (("safety_check", "safety check"), ("crisis_resources", "crisis resources"), ("professional_help", "professional help")):
            if row.get(flag):
                parts.append(badge(text, "pe-good"))
        for harm in row.get("harmful") or []:
            parts.append(badge(f"harmful: {_human(harm)}", "pe-risk"))
    for category in row.get("crisis_categories") or []:
        # Abuse has its own scale (safety v4): 1 past, 2 ongoing, 3 current danger.
        severity = row.get("abuse_severity") if category == "abuse_disclosure" else row.get("crisis_severity")
        parts.append(badge(f"{_human(category)}" + (f" (severity {severity})" if severity is not None else ""), "pe-risk"))
    for kind in row.get("pii") or []:
        parts.append(badge(f"PII: {_human(kind)}"))
    for defect in ("empty_turn", "repeated_turn", "role_order_violation"):
        if row.get(defect):
            parts.append(badge(_human(defect), "pe-risk"))
    return f'<div class="pe-badges">{"".join(parts)}</div>' if parts else ""


def custom_badges(row: dict[str, Any], columns: tuple[str, ...]) -> str:
    """Badges of a researcher's message columns (a model's label with its
    probability, a function's values): what is present, the per-class
    probability columns of a label only beside that label."""
    labels = {c for c in columns if any(o.startswith(f"{c}_p_") for o in columns)}
    parts: list[str] = []
    for c in columns:
        if any(c.startswith(f"{label}_p_") for label in labels):
            continue
        value = row.get(c)
        if value is None or value == [] or value is False:
            continue
        if isinstance(value, str):
            p = row.get(f"{c}_p_{value}")
            parts.append(badge(f"{c}: {_human(value)}" + (f" {p:.2f}" if isinstance(p, float) else "")))
        else:
            parts.append(badge(f"{c} {fmt(value)}"))
    return f'<div class="pe-badges">{"".join(parts)}</div>' if parts else ""


def as_ids(items: Sequence[str] | pl.DataFrame | pl.Series) -> list[str]:
    """Conversation ids from a list, a Series, one id, or a frame's
    ``conversation_id`` or ``id`` column (a frame iterated as a sequence
    gives its column names), each once, in order."""
    if isinstance(items, pl.DataFrame):
        for column in ("conversation_id", "id"):
            if column in items.columns:
                return items[column].unique(maintain_order=True).to_list()
        raise InputError("a frame of items needs an 'id' or 'conversation_id' column")
    if isinstance(items, str):
        return [items]
    return list(dict.fromkeys(items))


def check_ids(store: Store, ids: Sequence[str]) -> None:
    """Refuse ``ids`` that name no conversation in ``store`` (ids of another
    cache, a typo, or conversations gone since they were chosen): a viewer
    or review queue shows its items one at a time, so an unknown one was
    found only when reached, and every step onto it failed, leaving the
    items after it out of reach."""
    if not ids:
        return
    given = pl.Series("id", list(ids), dtype=pl.String)
    found = store.sql("SELECT id FROM conversations WHERE id IN (SELECT unnest(?::VARCHAR[]))", [given.unique().to_list()])
    missing = given.filter(given.is_null() | ~given.is_in(found["id"].implode())).to_list()  # a None id is no conversation either
    if missing:
        named = ", ".join(repr(i) for i in missing[:5]) + (f" and {len(missing) - 5:,} more" if len(missing) > 5 else "")
        raise InputError(f"{len(missing):,} of {len(given):,} ids are not conversations in {store.path}: {named}; "
                         "drop them, or open the cache they come from")  # fmt: skip


def warning_text(row: dict[str, Any]) -> str:
    if row.get("unchecked"):
        return "Content warning: not checked for crisis disclosures (no safety scores)"
    topics = [*(row.get("crisis_categories") or []), *(row.get("harmful") or [])]
    return "Content warning: " + (", ".join(_human(t) for t in topics) or "distressing content")


class ConversationViewer(View):
    """See the module docstring. ``reveal=True`` shows distressing messages
    without the warning step (for reviewers who chose so)."""

    def __init__(
        self,
        store: Store,
        conversation_id: str | None = None,
        *,
        ids: Sequence[str] | pl.DataFrame | pl.Series | None = None,
        reveal: bool = False,
        redact: bool | None = None,
    ) -> None:
        self.store = store
        self.info = ScoreInfo.of(store)
        self.reveal_default = reveal
        # None: the kernel's setting (pw.redact_views, a report's --redact)
        self.redact = is_redacting() if redact is None else bool(redact)
        self.ids: list[str] = as_ids(ids) if ids is not None else []
        check_ids(store, self.ids)
        self.conversation: dict[str, Any] = {}
        self.messages = pl.DataFrame()
        self.evidence = pl.DataFrame()
        self.revealed: set[int] = set()

        self._header = w.HTML(layout=w.Layout(width="100%"))
        self._body = w.VBox(layout=w.Layout(width="100%"))
        self._prev = w.Button(description="◀ previous", layout=w.Layout(width="auto"))
        self._next = w.Button(description="next ▶", layout=w.Layout(width="auto"))
        self._where = w.HTML()
        self._prev.on_click(lambda _: self.step(-1))
        self._next.on_click(lambda _: self.step(1))
        nav = w.HBox([self._prev, self._next, self._where])
        nav.layout.display = "flex" if len(self.ids) > 1 else "none"
        self._nav = nav
        self.ui = w.VBox([w.HTML(STYLE), nav, self._header, self._body], layout=w.Layout(width="100%"))

        first = conversation_id or (self.ids[0] if self.ids else None)
        if first is not None:
            self.show(first)

    # -- data ----------------------------------------------------------------
    def _load(self, conversation_id: str) -> None:
        conv = self.store.sql("SELECT * EXCLUDE (metadata, content_hash) FROM conversations WHERE id = ?", [conversation_id])
        if conv.height == 0:
            raise InputError(f"no conversation {conversation_id!r} in {self.store.path}")
        header = conv.row(0, named=True)
        if self.info.analyzed:
            scores = self.store.sql(
                f"SELECT * FROM {self.info.conversation_scores()} WHERE conversation_id = ?", [conversation_id]
            )
            if scores.height:
                header["scores"] = {k: v for k, v in scores.row(0, named=True).items() if k not in _KEYS}
        score_cols = [c for c in self.info.message if c not in _KEYS and c not in {"role", "content"}]
        select = "".join(f', ms."{c}"' for c in score_cols)
        join = (
            f" LEFT JOIN {self.info.message_scores()} ms ON ms.conversation_id = m.conversation_id AND ms.idx = m.idx"
            if score_cols
            else ""
        )
        messages = self.store.sql(
            f"SELECT m.idx, m.role, m.content{select} FROM messages m{join} WHERE m.conversation_id = ? ORDER BY m.idx",
            [conversation_id],
        )
        distress = pl.lit(False)
        # A user message without crisis scores (never analysed, new since the
        # last analysis, or no safety analyzer) may disclose anything: collapse it.
        unchecked = pl.col("role") == "user"
        if "crisis_categories" in messages.columns:
            unchecked = unchecked & pl.col("crisis_categories").is_null()
            distress = distress | ((pl.col("role") == "user") & (pl.col("crisis_categories").list.len().fill_null(0) > 0))
        if "harmful" in messages.columns:
            distress = distress | ((pl.col("role") == "assistant") & (pl.col("harmful").list.len().fill_null(0) > 0))
        self.messages = messages.with_columns((distress | unchecked).alias("distressing"), unchecked.alias("unchecked"))
        if self.info.evidence:
            self.evidence = self.store.sql(
                f"SELECT idx, analyzer, category, start, \"end\", text FROM {self.info.evidence_rows()} "
                "WHERE conversation_id = ? ORDER BY idx, start",
                [conversation_id],
            )
        self.conversation = header

    def _texts(self) -> list[str]:
        contents = self.messages["content"].to_list()
        if not self.redact:
            return contents
        from ..analysis.pii import redact_conversation

        return redact_conversation(contents)

    # -- navigation ------------------------------------------------------------
    def show(self, conversation_id: str) -> None:
        """Display another conversation (warnings collapse again)."""
        self._load(conversation_id)
        self.revealed = set(self.messages.filter(~pl.col("distressing"))["idx"].to_list())
        if self.reveal_default:
            self.revealed = set(self.messages["idx"].to_list())
        if conversation_id in self.ids:
            self._where.value = f"{self.ids.index(conversation_id) + 1} of {len(self.ids):,}"
        self._render()

    def step(self, delta: int) -> None:
        if not self.ids:
            return
        current = self.conversation.get("id")
        pos = self.ids.index(current) if current in self.ids else -1
        self.show(self.ids[max(0, min(len(self.ids) - 1, pos + delta))])

    def reveal(self, idx: int) -> None:
        """Show a collapsed message (the explicit click)."""
        self.revealed.add(int(idx))
        self._render()

    def reveal_all(self) -> None:
        self.revealed = set(self.messages["idx"].to_list())
        self._render()

    @property
    def collapsed(self) -> list[int]:
        """Indexes of the messages still behind a content warning."""
        if not self.conversation:
            return []
        return [i for i in self.messages["idx"].to_list() if i not in self.revealed]

    # -- rendering ---------------------------------------------------------------
    def header_html(self) -> str:
        c = self.conversation
        if not c:
            return '<p class="pe-note">no conversation selected</p>'
        tier = f"tier {esc(c['tier'])}" if c.get("tier") else "no tier"  # imported corpora carry none
        ident, dataset = c["id"], c.get("dataset")
        if self.redact:  # an id or a dataset name can hold an e-mail or a name too
            from ..analysis import redact

            ident, dataset = redact(ident), None if dataset is None else redact(dataset)
        facts = f"<b>{esc(ident)}</b> · {esc(dataset)} · {tier} · {fmt(c.get('message_count'))} messages"
        if c.get("created_at") is not None:
            facts += f" · {esc(fmt(c['created_at']))}"
        api = " ".join(badge(f"{m.replace('_', ' ')} {fmt(c.get(m))}") for m in QUALITY_METRICS if c.get(m) is not None)
        parts = [f'<div class="pe-head">{facts}</div>']
        if api:
            parts.append(f'<div class="pe-badges">API: {api}</div>')
        scores = c.get("scores")
        if scores:
            local = []
            for key in _HEADER_SCORES:
                if key in scores and scores[key] not in (None, [], False):
                    kind = "pe-risk" if key in {"risk_score", "alert", "max_severity", "crisis_categories"} else ""
                    local.append(badge(f"{key.replace('_', ' ')} {fmt(scores[key])}", kind))
            if local:
                parts.append(f'<div class="pe-badges">local: {"".join(local)}</div>')
        elif self.info.analyzed:
            parts.append('<p class="pe-note">This conversation has no current scores (new since the last analysis): '
                         "every user message stays collapsed.</p>")
        else:
            parts.append(
                f'<p class="pe-note">{esc(NOT_ANALYZED)} Distressing messages cannot be flagged until then, '
                "so every user message stays collapsed.</p>"
            )
        return "".join(parts)

    def _bubble(self, row: dict[str, Any], text: str) -> str:
        spans = []
        if not self.redact and self.evidence.height:
            ev = self.evidence.filter(pl.col("idx") == row["idx"])
            spans = [Span(r["start"], r["end"], r["analyzer"], r["category"]) for r in ev.iter_rows(named=True)]
        role = row["role"]
        return (
            f'<div class="pe-msg pe-{esc(role)}"><div class="pe-role">{esc(role)} · #{row["idx"]}</div>'
            f"{highlight(text, spans)}{message_badges(row)}{custom_badges(row, self.info.custom_message)}</div>"
        )

    def _rows(self) -> list[tuple[dict[str, Any], str]]:
        if not self.conversation:
            return []
        return list(zip(self.messages.iter_rows(named=True), self._texts()))

    def _render(self) -> None:
        self._header.value = self.header_html()
        children: list[w.Widget] = []
        for row, text in self._rows():  # one widget per message: dozens, not a hot path
            bubble = w.HTML(self._bubble(row, text), layout=w.Layout(width="100%"))
            if row["idx"] in self.revealed:
                children.append(bubble)
                continue
            button = w.Button(description="show", tooltip="Show this message", layout=w.Layout(width="auto"))
            button.on_click(lambda _, i=row["idx"]: self.reveal(i))
            note = w.HTML(f'<span class="pe-warning">{esc(warning_text(row))} (message #{row["idx"]}, {esc(row["role"])})</span>')
            children.append(w.HBox([note, button]))
        self._body.children = children

    def to_html(self) -> str:
        parts = [STYLE, '<div class="pe-view">', self.header_html()]
        for row, text in self._rows():
            bubble = self._bubble(row, text)
            if row["idx"] in self.revealed:
                parts.append(bubble)
            else:
                parts.append(
                    f'<details class="pe-cw"><summary>{esc(warning_text(row))} — show</summary>{bubble}</details>'
                )
        parts.append("</div>")
        return "".join(parts)

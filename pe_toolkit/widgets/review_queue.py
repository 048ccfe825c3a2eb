"""ReviewQueue: walk through alerts (or any selection), label and annotate.

A label is written to the store's ``annotations`` the moment it is clicked
(:func:`pe_toolkit.store.annotations.annotate`), so closing the notebook
loses nothing; reopening the queue resumes at the first item this reviewer
has not labelled yet. When two or more reviewers labelled the same items,
their agreement (Cohen's kappa) is shown.

In the widget, a click labels the conversation on screen and stays on it:
the note typed next is saved on that same conversation, and *next
unlabelled* (or *next*) moves on. (Advancing on the click cleared the note
box under a reviewer about to explain the label, and the explanation then
landed on the next conversation.) ``label()`` from code takes the note in
the same call, so it advances with ``auto_advance``.

>>> queue = ReviewQueue(store, reviewer="ana")            # the alert queue
>>> queue = ReviewQueue(store, ids=explorer.ids(), reviewer="ana", task="quality",
...                     labels=("good", "bad"))
>>> queue.label("true_alert", note="explicit plan")        # what a click does
>>> queue.labels()                                         # polars frame
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as w
import polars as pl

from ..analysis.evaluation import agreement
from ..config import load_settings
from ..errors import InputError
from ..store import Store
from ..store.annotations import annotate, labels as stored_labels
from .conversation_viewer import ConversationViewer, as_ids as _as_ids, check_ids
from .display import View
from .html import STYLE, esc, table
from .params import check_number
from .scores import ScoreInfo

ALERT_LABELS = ("true_alert", "false_alarm", "unsure")


def check_threshold(threshold: float | None, name: str = "threshold") -> float:
    """``threshold`` (None: the configured alert threshold) as a float in
    [0, 1]; risk scores live there, so a value outside would silently make
    every conversation an alert (or none). ``name`` is what the caller calls
    it (a notebook's ``alert_threshold``)."""
    if threshold is None:
        return float(load_settings().alert_threshold)
    return check_number(threshold, name, low=0.0, high=1.0)


def alert_ids(store: Store, threshold: float | None = None) -> list[str]:
    """Conversations whose current risk score is above ``threshold``
    (default: the configured alert threshold, 0.8), riskiest first."""
    threshold = check_threshold(threshold)
    if store.count() == 0:
        return []  # nothing to score, so nothing to review: not a missing analysis
    info = ScoreInfo.of(store)
    if not (info.analyzed and info.has("risk_score")):
        raise InputError("the alert queue needs risk scores: run pe.analyze(store) first")
    frame = store.sql(
        f"SELECT conversation_id FROM {info.conversation_scores()} WHERE risk_score > ? "
        "ORDER BY risk_score DESC, conversation_id",
        [threshold],
    )
    return frame["conversation_id"].to_list()


class ReviewQueue(View):
    """See the module docstring. ``ids=None`` takes the alert queue."""

    def __init__(
        self,
        store: Store,
        ids: Sequence[str] | pl.DataFrame | pl.Series | None = None,
        *,
        reviewer: str,
        task: str | None = None,
        labels: Sequence[str] | None = None,
        threshold: float | None = None,
        auto_advance: bool = True,
        reveal: bool = False,
        redact: bool | None = None,
    ) -> None:
        if store.read_only:
            raise InputError("ReviewQueue saves labels: open the store for writing (read_only=False)")
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise InputError("ReviewQueue needs a reviewer name")
        self.store = store
        self.reviewer = reviewer.strip()
        self.task = task or ("alerts" if ids is None else "review")
        self.options = tuple(labels or ALERT_LABELS)
        if not self.options:
            raise InputError("ReviewQueue needs at least one label")
        if ids is None:
            self.items = alert_ids(store, threshold)
        else:
            self.items = _as_ids(ids)
            check_ids(store, self.items)
        self.auto_advance = auto_advance

        self.viewer = ConversationViewer(store, reveal=reveal, redact=redact)
        self._status = w.HTML()
        self._choice = w.ToggleButtons(options=self.options, value=None, description="label")
        self._note = w.Textarea(
            placeholder="note on this conversation (saved with its label)", continuous_update=False, layout=w.Layout(width="60%")
        )
        self._prev = w.Button(description="◀ previous", layout=w.Layout(width="auto"))
        self._skip = w.Button(description="next ▶", layout=w.Layout(width="auto"))
        self._next = w.Button(description="next unlabelled ▶▶", layout=w.Layout(width="auto"))
        self._agreement = w.HTML()
        self._prev.on_click(lambda _: self.goto(self.position - 1))
        self._skip.on_click(lambda _: self.goto(self.position + 1))
        self._next.on_click(lambda _: self.next_unlabelled())
        self._choice.observe(self._on_choice, "value")
        self._note.observe(self._on_note, "value")
        self._syncing = False
        self.ui = w.VBox(
            [
                w.HTML(STYLE),
                self._status,
                w.HBox([self._prev, self._skip, self._next]),
                self.viewer.ui,
                self._choice,
                self._note,
                self._agreement,
            ]
        )
        self.position: int = 0
        self.goto(self._resume_position())

    # -- state -----------------------------------------------------------------
    def _mine(self) -> pl.DataFrame:
        frame = stored_labels(self.store, self.task, reviewer=self.reviewer, ids=self.items)
        return frame.filter(pl.col("message_idx").is_null())

    def _resume_position(self) -> int:
        done = set(self._mine()["conversation_id"].to_list())
        for i, cid in enumerate(self.items):  # ids in queue order; stops at the first gap
            if cid not in done:
                return i
        return len(self.items)

    @property
    def current_id(self) -> str | None:
        return self.items[self.position] if 0 <= self.position < len(self.items) else None

    @property
    def done(self) -> bool:
        return self.position >= len(self.items)

    def goto(self, position: int | str) -> None:
        """Show the item at ``position`` (0-based; past the end: the end of
        the queue), or the item of that conversation id."""
        if isinstance(position, str):
            if position not in self.items:
                raise InputError(f"{position!r} is not in this queue ({len(self.items):,} items)")
            position = self.items.index(position)
        self.position = max(0, min(len(self.items), int(position)))
        mine = self._mine()
        current = self.current_id
        existing = mine.filter(pl.col("conversation_id") == current) if current else mine.clear()
        self._syncing = True  # showing a stored label is not a new click
        try:
            self._choice.value = existing["label"][0] if existing.height and existing["label"][0] in self.options else None
            self._note.value = (existing["note"][0] or "") if existing.height else ""
        finally:
            self._syncing = False
        if current is not None:
            self.viewer.show(current)
            self.viewer.ui.layout.display = "flex"
        else:
            self.viewer.ui.layout.display = "none"
        self._choice.disabled = self._note.disabled = self._skip.disabled = current is None
        # At the end of the queue, still there while items were passed over.
        self._next.disabled = mine.height >= len(self.items)
        self._refresh_status(mine)

    def next_unlabelled(self) -> None:
        """Move to the next item this reviewer has not labelled, wrapping
        round to the start (an item passed over with *next* is not lost);
        to the end of the queue when every item is labelled."""
        done = set(self._mine()["conversation_id"].to_list())
        n = len(self.items)
        for step in range(1, n + 1):
            i = (self.position + step) % n
            if self.items[i] not in done:
                self.goto(i)
                return
        self.goto(n)

    # -- labelling ---------------------------------------------------------------
    def label(self, value: str, note: str | None = None, *, advance: bool | None = None) -> None:
        """Label the current item (persisted at once) and, with ``advance``
        (default: ``auto_advance``), move to the next item not yet labelled.
        ``note=None`` keeps the note typed in the box for this item."""
        if value not in self.options:
            raise InputError(f"unknown label {value!r}; expected one of {', '.join(self.options)}")
        current = self.current_id
        if current is None:
            raise InputError("the queue is finished: nothing to label")
        note = self._note.value if note is None else note
        annotate(self.store, current, value, reviewer=self.reviewer, task=self.task, note=note or None)
        if self.auto_advance if advance is None else advance:
            self.next_unlabelled()
        else:
            self.goto(self.position)

    def _on_choice(self, change: dict) -> None:
        if self._syncing or change["new"] is None:
            return
        # A click never advances: the reviewer may still type why, and the
        # note box must stay with the conversation it is about.
        self.label(change["new"], advance=False)

    def _on_note(self, change: dict) -> None:
        # A note typed after the label updates that label's row; one typed
        # before stays in the box and is saved by the click, on this item.
        if self._syncing or self._choice.value is None or self.current_id is None:
            return
        annotate(self.store, self.current_id, self._choice.value, reviewer=self.reviewer, task=self.task, note=change["new"] or None)

    # -- results -----------------------------------------------------------------
    def labels(self, *, all_reviewers: bool = True) -> pl.DataFrame:
        """Labels of this queue's items in this task (every reviewer, or just
        this one), as a frame for export or analysis."""
        return stored_labels(self.store, self.task, reviewer=None if all_reviewers else self.reviewer, ids=self.items)

    def agreement(self) -> pl.DataFrame:
        """Cohen's kappa per reviewer pair on this queue's items."""
        return agreement(self.store, self.task, ids=self.items)

    def _refresh_status(self, mine: pl.DataFrame) -> None:
        n = len(self.items)
        labelled = mine.height
        if n == 0:
            self._status.value = '<p class="pe-note">Nothing to review: the selection is empty.</p>'
        elif self.done and labelled >= n:
            self._status.value = f"<b>Done:</b> all {n:,} items reviewed by {esc(self.reviewer)} ({esc(self.task)})."
        elif self.done:
            self._status.value = (f"<b>End of the queue:</b> {labelled:,} of {n:,} items labelled by {esc(self.reviewer)}; "
                                  "<i>next unlabelled</i> goes back to the others.")  # fmt: skip
        else:
            self._status.value = (
                f"<b>Item {self.position + 1:,} of {n:,}</b> · {labelled:,} labelled by {esc(self.reviewer)} "
                f"· task <code>{esc(self.task)}</code>"
            )
        pairs = self.agreement()
        self._agreement.value = (
            "<p><b>Agreement between reviewers</b> (Cohen's kappa on items both labelled)</p>" + table(pairs)
            if pairs.height
            else ""
        )

    def to_html(self) -> str:
        counts = self.labels().group_by("reviewer", "label").len().sort("reviewer", "label")
        parts = [STYLE, '<div class="pe-view">', f"<p>{self._status.value}</p>"]
        if counts.height:
            parts.append("<p><b>Labels so far</b></p>" + table(counts))
        parts.append(self._agreement.value)
        if self.current_id is not None:
            parts.append("<p><b>Current item</b></p>" + self.viewer.to_html())
        parts.append("</div>")
        return "".join(parts)

"""Learned analyzers: a :class:`~pe_toolkit.learn.model.TextModel` under the
analyzer contract (frames in, score frames and evidence out).

:class:`ModelAnalyzer` runs any model over the messages of one role; its
version is the model file's content hash and :data:`OUTPUT_REVISION`, so a
retrained model, or a change in what it writes, makes ``analyze()`` re-score. Two are shipped and registered (see
``docs/metric_cards_learned.md`` for their figures on human labels):

- :data:`SKILLS_MODEL` (``skills_model``), assistant messages: the ESConv
  support strategy as ``skill`` (the most probable code: question,
  reflection, self_disclosure, affirmation, suggestion, information,
  other) and ``skill_p_<code>`` (probabilities on a class-balanced scale).
  The empathy analyzer reads it to refine ``skills`` and the EPITOME levels.
- :data:`RISK_MODEL` (``risk_model``), user messages: ``suicide_risk_p``,
  the probability that the text reads like a post to r/SuicideWatch among
  26 other subreddits, and per conversation ``suicide_risk_p_max``. The
  safety analyzer combines it with the rule categories into ``risk_score``.

Evidence: the n-grams (or lexicon phrases) that raised the predicted class
the most, with their spans; a message coded ``other`` gets none.

A model fitted with a ``context`` column reads the message before each
scored one; one fitted with ``rules`` reads those columns from the
analyzers that ran before it in the pass.

A researcher's own model runs the same way::

    model = pe.learn.fit(frame, text="text", label="label")
    mine = ModelAnalyzer(model, name="my_codes", role="assistant")
    pe.analyze_frame(messages, analyzers=(*pe.analysis.analyzers(), mine))
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..errors import AnalysisError
from .base import EVIDENCE_SCHEMA, Batch, Scores, empty_evidence
from .segments import Segments
from .text import ranges

MODELS_DIR = Path(__file__).resolve().parents[1] / "learn" / "models"
# Part of every learned analyzer's version, so that a change in what the same
# model writes makes analyze() re-score: 2, one evidence row per span (two top
# features on one span had been written as two identical rows, 2d94d1a).
OUTPUT_REVISION = 2


def conversation_level_problem(model: Any) -> str | None:
    """Why ``model`` cannot score single messages, or None: one fitted on
    labels of whole conversations (the review widget's, through
    ``learn.from_store``; its card's ``data`` or ``training`` level says so)
    reads a conversation's messages joined, and on one message its classes
    mean something else. Said once for the configured models
    (``[[analysis.models]]``) and :class:`ModelAnalyzer`."""
    card = getattr(model, "card", None) or {}
    levels = {part.get("level") for part in (card.get("data"), card.get("training")) if isinstance(part, dict)}
    if "conversation" not in levels:
        return None
    return ("the model was trained on whole conversations (labels of conversations, as the review widget gives "
            "them), and analyze scores single messages; train it on labels of messages "
            "(pe_toolkit.store.annotations.annotate(store, conversation_id, label, reviewer=..., task=..., "
            "message_idx=...), or a labelled file of messages)")  # fmt: skip


class ModelAnalyzer:
    """A text model over the messages of ``role``.

    Message columns (null on other roles): ``<prefix>`` (when
    ``label_column``: the most probable class; for a multi-label model the
    most probable of the classes at or over their thresholds, null when
    none is) and ``<prefix>_p_<class>`` per class in
    ``columns`` (default: all). ``evidence_top`` features per message are
    kept as evidence (one row per span: features sharing a span give one), for messages whose class is not in ``quiet`` and,
    when ``evidence_min`` is set, whose probability reaches it; the class
    explained is the label column's class, or ``evidence_class`` (evidence
    category: the class, or ``evidence_category``).
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        role: str = "assistant",
        prefix: str | None = None,
        columns: dict[str, str] | None = None,
        label_column: bool = True,
        max_columns: dict[str, str] | None = None,
        evidence_top: int = 2,
        evidence_min: float | None = None,
        evidence_class: str | None = None,
        evidence_category: str | None = None,
        quiet: tuple[str, ...] = (),
    ) -> None:
        from ..errors import InputError
        from ..schema import ROLES

        # Checked here as [[analysis.models]] checks them: a misspelt role
        # ("assitant") matched no message, and the columns came out all null.
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"a ModelAnalyzer needs a name (its evidence rows and default column prefix), got {name!r}")
        if role not in ROLES:
            raise InputError(f"{name}: role must be one of {', '.join(ROLES)}, got {role!r}")
        if prefix is not None and (not isinstance(prefix, str) or not prefix.strip()):
            raise InputError(f"{name}: prefix must be a column name (or None for the name), got {prefix!r}")
        self.name = name
        self.role = role
        self._model = model  # a TextModel or a path, loaded on first use
        self.prefix = prefix or name
        self._columns = columns
        self.label_column = label_column
        self.max_columns = max_columns or {}
        self.evidence_top = evidence_top
        self.evidence_min = evidence_min
        self.evidence_class = evidence_class
        self.evidence_category = evidence_category
        self.quiet = quiet
        self.distinct = True  # score each distinct text once (False: every message; the same result)
        if not isinstance(model, (str, Path)):
            self._refuse_conversation_level(model)  # at once: register() and analyzers=(...) fail here

    def __repr__(self) -> str:
        return f"ModelAnalyzer(name={self.name!r}, role={self.role!r})"

    @functools.cached_property
    def model(self) -> Any:
        if isinstance(self._model, (str, Path)):
            from ..learn.io import load

            return self._refuse_conversation_level(load(self._model))
        return self._model

    def _refuse_conversation_level(self, model: Any) -> Any:
        problem = conversation_level_problem(model)
        if problem:
            from ..errors import ModelError

            raise ModelError(f"{self.name}: {problem}")
        return model

    @functools.cached_property
    def version(self) -> str:
        """The model file's content hash (computed for a model not saved yet)
        and the revision of how its scores and evidence are written."""
        digest = self.model.card.get("content_hash")
        if not digest:
            from ..learn.io import _arrays, _card, content_hash

            digest = content_hash(_arrays(self.model), _card(self.model))
        return f"{str(digest)[:12]}+out.{OUTPUT_REVISION}"

    def columns(self) -> dict[str, str]:
        """class -> message column of its probability."""
        if self._columns is not None:
            return self._columns
        return {c: f"{self.prefix}_p_{c}" for c in self.model.classes}

    def _checked_columns(self) -> dict[str, str]:
        """:meth:`columns`, refusing two message columns whose names differ
        only in case (names given with ``columns=``, or classes "Question"
        and "question" of a model built in memory: fit and load refuse those
        classes): the cache's column names ignore case, and the second would
        overwrite the first or fail with a KeyError."""
        columns = self.columns()
        names = [*([self.prefix] if self.label_column else []), *columns.values()]
        seen: dict[str, str] = {}
        for name in names:
            other = seen.setdefault(name.lower(), name)
            if other is not name:
                raise AnalysisError(f"{self.name}: message columns {other!r} and {name!r} differ only in case (the "
                                    "cache's column names ignore case); retrain the model with one label for both "
                                    "(pe-toolkit learn fit --relabel FROM=TO) or give columns= other names")  # fmt: skip
        return columns

    def score(self, batch: Batch | pl.DataFrame, context: dict[str, Scores] | None = None) -> Scores:
        batch = Batch.of(batch, context)
        frame = batch.messages
        model = self.model
        rows = (frame["role"] == self.role).arg_true().to_numpy().astype(np.int64)
        keys = frame.select("conversation_id", "idx")
        segments = self._segments(batch)
        conversations = (
            segments.ids.to_frame("conversation_id") if segments is not None
            else frame.select(pl.col("conversation_id").unique(maintain_order=True))
        )  # fmt: skip
        columns = self._checked_columns()
        if not len(rows):
            empty = keys.with_columns(
                *( [pl.lit(None, pl.String).alias(self.prefix)] if self.label_column else [] ),
                *(pl.lit(None, pl.Float64).alias(col) for col in columns.values()),
            )
            return Scores(empty, self._conversation_columns(conversations, empty, segments), empty_evidence())
        context_rows = self._context_rows(frame, rows) if model.featurizer.spec.context else None
        rules = self._rule_matrix(batch, rows) if model.featurizer.rule_names else None
        # Each distinct text is scored once when the model reads nothing but
        # the text: repeated greetings, templates and copied answers are
        # common in generated corpora (a quarter of the messages of the
        # synthetic ones). A model that also reads the preceding turn or rule
        # columns scores every message.
        text_only = context_rows is None and rules is None
        first, inverse = self._distinct(frame["content"].gather(rows)) if self.distinct and text_only else (None, None)
        # The batch's tokens: split once for every analyzer of the pass.
        features = model.transform(batch.tokens, rows if first is None else rows[first], context_rows=context_rows, rules=rules)
        proba = model.predict_proba(features)
        evidence = self._evidence(frame, rows, features, proba, inverse)
        if inverse is not None:
            proba = proba[inverse]
        n = frame.height
        out = keys
        if self.label_column:
            # The class names gathered in polars and scattered into a column of nulls.
            primary_at = self._primary(proba)
            labels = pl.Series(list(model.classes), dtype=pl.String).gather(np.maximum(primary_at, 0))
            labels = labels.scatter(np.flatnonzero(primary_at < 0), None)  # no class reached its threshold
            primary = pl.Series(self.prefix, [None] * 0, dtype=pl.String).extend_constant(None, n).scatter(rows, labels)
            out = out.with_columns(primary)
        for cls, col in columns.items():
            j = model.classes.index(cls)
            values = np.full(n, np.nan)
            values[rows] = proba[:, j]
            out = out.with_columns(pl.Series(col, values).fill_nan(None))
        return Scores(out, self._conversation_columns(conversations, out, segments), evidence)

    def _primary(self, proba: np.ndarray) -> np.ndarray:
        """Per text, the index of the class in the label column (-1: no
        class). Multi-class: the most probable class (the shipped skills
        model's ``skill``). Multi-label: each class is its own yes or no, so
        the most probable of those at or over their thresholds, and none
        when no class reaches its threshold (the argmax would name a class
        the model says is absent)."""
        best = proba.argmax(axis=1)
        if self.model.task != "multilabel":
            return best
        passing = proba >= self.model.thresholds
        best = np.where(passing, proba, -np.inf).argmax(axis=1)
        return np.where(passing.any(axis=1), best, -1)

    @staticmethod
    def _context_rows(frame: pl.DataFrame, rows: np.ndarray) -> np.ndarray:
        """Per scored row, the row of the message before it in its
        conversation (-1 for a first message): the ``context`` a model was
        fitted with (``learn.from_store``'s, and ESConv's preceding turn)."""
        # By idx, not by row position: a frame scored by hand may come in any order.
        prev = (
            frame.select("conversation_id", "idx").with_row_index("row")
            .sort("conversation_id", "idx", maintain_order=True)
            .select("row", pl.col("row").shift(1).over("conversation_id").alias("before"))
            .sort("row")["before"].fill_null(-1).to_numpy().astype(np.int64)
        )  # fmt: skip
        return prev[rows]

    def _rule_matrix(self, batch: Batch, rows: np.ndarray) -> np.ndarray:
        """The model's rule columns, taken from the message columns of the
        analyzers that ran before it in the pass (as ``fit(rules=...)`` read
        them: numbers, nulls as 0)."""
        names = self.model.featurizer.rule_names
        found: dict[str, pl.Series] = {}
        for scores in batch.results.values():
            for part in (scores.messages, scores.internal):
                if part is None:
                    continue
                for name in names:
                    if name in part.columns and name not in found:
                        found[name] = part[name]
        missing = [n for n in names if n not in found]
        if missing:
            ran = ", ".join(batch.results) or "none"
            raise AnalysisError(f"{self.name}: rule column(s) {', '.join(missing)} are not message columns of the analyzers "
                                f"that run before it (ran: {ran}); list the analyzers that make them first")  # fmt: skip
        from ..learn.model import rule_values

        try:
            return rule_values(pl.DataFrame([found[n].alias(n) for n in names]), names)[rows]
        except pl.exceptions.PolarsError as exc:
            raise AnalysisError(f"{self.name}: a rule column is not numeric: {str(exc).splitlines()[0]}") from None

    @staticmethod
    def _segments(batch: Batch) -> Segments | None:
        """The batch's conversations as runs of rows (shared with the other
        analyzers of the pass), or None when a conversation's messages are not
        one run (a frame scored by hand may come in any order) or an id is
        missing (the group_by path gives a null id no maximum, as before)."""
        if batch.messages.height == 0:
            return None
        segments = batch.segments
        return None if segments.ids.null_count() > 0 or segments.ids.is_duplicated().any() else segments

    def _conversation_columns(self, conversations: pl.DataFrame, scored: pl.DataFrame,
                              segments: Segments | None = None) -> pl.DataFrame:  # fmt: skip
        if not self.max_columns:
            return conversations
        if segments is not None and all(scored.schema[src] == pl.Float64 for src in self.max_columns):
            # Each conversation's maximum over its run of rows (nulls read as
            # NaN and skipped; a conversation without a value gets null): no
            # group_by and join of the conversation ids.
            return conversations.with_columns(
                pl.Series(dst, np.fmax.reduceat(scored[src].to_numpy(), segments.starts)).fill_nan(None)
                for src, dst in self.max_columns.items()
            )
        maxima = scored.group_by("conversation_id").agg(pl.col(src).max().alias(dst) for src, dst in self.max_columns.items())
        return conversations.join(maxima, on="conversation_id", how="left", maintain_order="left")

    @staticmethod
    def _distinct(texts: pl.Series) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(position of each distinct text's first occurrence, each text's
        distinct index), or (None, None) when every text is distinct."""
        # One group_by (texts hashed and compared once): the groups in order of
        # first appearance, each with its rows in row order; a join back onto
        # the rows (a second hashing pass) cost twice as much (13 -> 4 ms).
        groups = (
            pl.DataFrame({"t": texts}).with_row_index("i")
            .group_by("t", maintain_order=True).agg(pl.col("i"))["i"]
        )  # fmt: skip
        if len(groups) == len(texts):
            return None, None
        inverse = np.empty(len(texts), dtype=np.int64)
        inverse[groups.explode().to_numpy()] = np.repeat(np.arange(len(groups), dtype=np.int64), groups.list.len().to_numpy())
        return groups.list.first().to_numpy().astype(np.int64), inverse

    def _evidence(self, frame: pl.DataFrame, rows: np.ndarray, batch: Any, proba: np.ndarray,
                  inverse: np.ndarray | None = None) -> pl.DataFrame:  # fmt: skip
        """Evidence of the texts scored (``proba``: one row per distinct
        text when ``inverse`` maps the role's rows onto them)."""
        model = self.model
        if self.evidence_class is not None:
            target = np.full(len(proba), model.classes.index(self.evidence_class), dtype=np.int64)
        else:
            target = self._primary(proba)  # the label column's class (a multi-label text may have none)
        wanted = (target >= 0) & ~np.isin(np.asarray(model.classes, dtype=object)[np.maximum(target, 0)], list(self.quiet))
        if self.evidence_min is not None:
            wanted &= proba[np.arange(len(target)), np.maximum(target, 0)] >= self.evidence_min
        if not wanted.any() or self.evidence_top < 1:
            return empty_evidence()
        # Only the texts that get evidence are explained (a sub-batch view of the matrix).
        ev = model.evidence(batch, proba, top=self.evidence_top, classes=np.where(wanted, target, -1), spans_only=True)
        if ev.is_empty():
            return empty_evidence()
        if self.evidence_category is not None:
            ev = ev.with_columns(pl.lit(self.evidence_category).alias("class"))
        ev_rows = ev["row"].to_numpy()
        if len(ev_rows) > 1 and (ev_rows[1:] < ev_rows[:-1]).any():  # model.evidence gives them by text: kept so
            ev = ev.sort("row", maintain_order=True)
            ev_rows = ev["row"].to_numpy()
        ev = ev.filter(~_repeated_span(ev_rows, ev["start"], ev["end"], self.evidence_top))
        ev_rows = ev["row"].to_numpy()
        if inverse is not None:
            # A distinct text's evidence goes to every message holding it, in
            # message order: per message, its text's rows (ev is by text, so a
            # text's rows are one run).
            per_text = np.bincount(ev_rows, minlength=len(proba))
            first_of = np.cumsum(per_text) - per_text
            ev = ev[ranges(first_of[inverse], per_text[inverse])]
            ev_rows = np.repeat(np.arange(len(inverse), dtype=np.int64), per_text[inverse])
        message_rows = rows[ev_rows]
        keys = frame.select("conversation_id", "idx")[message_rows]
        text = frame["content"].gather(message_rows).str.slice(ev["start"], ev["end"] - ev["start"])
        return pl.concat(
            [keys, ev.select(pl.lit(self.name).alias("analyzer"), pl.col("class").alias("category"), "start", "end"),
             text.alias("text").to_frame()],  # fmt: skip
            how="horizontal",
        ).select(list(EVIDENCE_SCHEMA)).cast(EVIDENCE_SCHEMA)


def _repeated_span(rows: np.ndarray, start: pl.Series, end: pl.Series, top: int) -> np.ndarray:
    """Per evidence row (grouped by text, heaviest first), whether an earlier
    row of its text has the same span: two features on one span (a lexicon
    group and its word; "?" and the word it ends) would be two identical
    rows once the feature is dropped, and the heavier is kept. A text's rows
    share its class, and it has at most ``top``: each is compared with the
    ``top - 1`` before it (a missing span equals a missing span)."""
    s, e = start.fill_null(-1).to_numpy(), end.fill_null(-1).to_numpy()
    out = np.zeros(len(rows), dtype=bool)
    for lag in range(1, min(top, len(rows))):
        out[lag:] |= (rows[lag:] == rows[:-lag]) & (s[lag:] == s[:-lag]) & (e[lag:] == e[:-lag])
    return out


SKILL_CLASSES: tuple[str, ...] = ("question", "reflection", "self_disclosure", "affirmation", "suggestion", "information", "other")

SKILLS_MODEL = ModelAnalyzer(
    MODELS_DIR / "skills.pemodel",
    name="skills_model",
    role="assistant",
    prefix="skill",
    evidence_top=2,
    quiet=("other",),
)

RISK_MODEL = ModelAnalyzer(
    MODELS_DIR / "risk.pemodel",
    name="risk_model",
    role="user",
    prefix="suicide_risk",
    columns={"suicidewatch": "suicide_risk_p"},
    label_column=False,
    max_columns={"suicide_risk_p": "suicide_risk_p_max"},
    evidence_top=3,
    evidence_min=0.3,
    evidence_class="suicidewatch",
    evidence_category="suicide_risk",
)

__all__ = ["RISK_MODEL", "SKILLS_MODEL", "SKILL_CLASSES", "ModelAnalyzer"]

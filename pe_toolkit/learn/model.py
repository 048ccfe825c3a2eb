"""A linear text classifier over :mod:`.features`, trained on human labels.

:func:`fit` takes any labelled polars frame (the dev data, an imported
corpus, the review widget's labels) and returns a :class:`TextModel`.
Inference is one sparse matrix product per batch; evidence is the n-grams
that pushed the predicted class up the most, with their character spans.

Tasks:

- ``multiclass``: one label per text (a string column); multinomial
  logistic regression, probabilities sum to 1. ``thresholds`` (per class,
  tuned by cross-validation when asked) turn the probabilities into a set
  of codes for a multi-code output; the primary code is the most probable.
- ``multilabel``: a list-of-strings label column; one binary logistic
  regression per class, each with its own threshold (0.5 unless tuned).

scikit-learn fits the weights (L2-regularised logistic regression with
``lbfgs``, class weights ``balanced`` by default, for imbalance); nothing
from it is needed to predict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from ..analysis.text import Tokens, ranges, tokenize
from ..errors import InputError
from .features import Batch, FeatureSpec, Featurizer

TASKS = ("multiclass", "multilabel")


@dataclass
class TextModel:
    """A fitted model: features, weights, classes, thresholds and its card.

    ``coef`` is (features x classes), float32; ``card`` holds what a
    reader needs to trust it (training data and licence, date, settings,
    figures); :mod:`.io` saves and loads it with a content hash.
    """

    name: str
    task: str
    classes: tuple[str, ...]
    featurizer: Featurizer
    coef: np.ndarray
    intercept: np.ndarray
    thresholds: np.ndarray
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only: evidence keeps a float64 table of the weights per array
        # (_evidence_weights), so a weight changed in place would leave the
        # evidence explaining the old weights while decision() used the new.
        # A changed model is a new array (and a new content hash when saved).
        if isinstance(self.coef, np.ndarray):
            self.coef.setflags(write=False)

    # ---------------------------------------------------------- prediction
    def decision(self, batch: Batch | sp.csr_matrix) -> np.ndarray:
        """Raw scores (texts x classes): one sparse product (plus the scores
        of the blocks a batch folded into its ``offset``)."""
        matrix = batch.matrix if isinstance(batch, Batch) else batch
        out = np.asarray(matrix @ self.coef, dtype=np.float64) + self.intercept
        if isinstance(batch, Batch) and batch.offset is not None:
            out += batch.offset
        return out

    def proba_of_decision(self, scores: np.ndarray) -> np.ndarray:
        if self.task == "multiclass":
            z = scores - scores.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-scores))

    def predict_proba(self, batch: Batch | sp.csr_matrix) -> np.ndarray:
        return self.proba_of_decision(self.decision(batch))

    def transform(self, tokens: Tokens, rows: np.ndarray, *, context_rows: np.ndarray | None = None,
                  rules: np.ndarray | None = None) -> Batch:  # fmt: skip
        """The features of texts ``rows`` of ``tokens``, ready for
        :meth:`predict_proba` (blocks that can be scored per word are)."""
        return self.featurizer.transform(tokens, rows, context_rows=context_rows, rules=rules, fold=self.coef)

    def predict(self, texts: Sequence[str] | pl.Series, *, context: Sequence[str] | pl.Series | None = None,
                rules: np.ndarray | None = None) -> pl.DataFrame:  # fmt: skip
        """Per text: ``label`` (the most probable class), ``labels`` (every
        class over its threshold; in a multi-class model, a class without a
        threshold where it is the most probable) and ``p_<class>`` for each class.

        A missing text (None, or null in a column) gets a row of nulls: it
        is not scored, as :func:`fit` and :func:`~.validity.evaluate` leave
        out rows without a text, and ``analyze()`` leaves the columns null
        where a model reads no message. (Scoring it as an empty text would
        give it the model's prior as if it were a prediction.) A missing
        ``context`` value is read as no preceding turn."""
        text = _text_series(texts, "texts")
        batch = _batch_of(self, text, context, rules)
        out = self.frame_of(self.predict_proba(batch))
        if text.null_count():
            missing = pl.lit(text.is_null())
            out = out.with_columns(pl.when(missing).then(None).otherwise(pl.col(c)).alias(c) for c in out.columns)
        return out

    def frame_of(self, proba: np.ndarray) -> pl.DataFrame:
        classes = list(self.classes)
        over = proba >= self.thresholds
        if self.task == "multiclass" and len(classes):
            # A class without a threshold (NO_THRESHOLD, above any
            # probability) is labelled where it is the most probable class,
            # as `label` is, rather than never: with no thresholds at all,
            # labels holds the argmax; with some, the argmax still shows
            # when its class has none.
            unset = self.thresholds > 1
            over |= (proba.argmax(axis=1)[:, None] == np.arange(len(classes))) & unset
        primary = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if len(classes) else np.array([], dtype=object)
        label_lists = _lists_of(over, classes)
        return pl.DataFrame(
            {
                "label": pl.Series(primary.tolist(), dtype=pl.String),
                "labels": label_lists,
                **{f"p_{c}": proba[:, j] for j, c in enumerate(classes)},
            }
        )

    # ------------------------------------------------------------ evidence
    def evidence(self, batch: Batch, proba: np.ndarray, *, top: int = 3, classes: np.ndarray | None = None,
                 spans_only: bool = False) -> pl.DataFrame:  # fmt: skip
        """The ``top`` features that raised each text's class the most
        (default: its most probable class; ``classes`` gives one class index
        per text, negative to skip the text): ``row`` (position in
        ``batch.rows``), ``class``, ``feature``, ``weight`` (contribution to
        the class score), ``start``/``end`` (character span of the feature's
        first occurrence in the text; null for a feature without one, such as
        a character n-gram; ``spans_only`` leaves those out)."""
        schema = {"row": pl.Int64, "class": pl.String, "feature": pl.String, "weight": pl.Float64,
                  "start": pl.Int32, "end": pl.Int32}  # fmt: skip
        target = proba.argmax(axis=1) if classes is None else np.asarray(classes, dtype=np.int64)
        m = batch.matrix
        wanted = np.flatnonzero(target >= 0)
        if not len(wanted) or not m.nnz:
            return pl.DataFrame(schema=schema)
        # The nonzeros that can be evidence: of a wanted text, with a positive
        # contribution to its class (a positive value under a positive
        # weight, or a negative one, such as a rule column's, under a
        # negative weight), and a span with spans_only. Each nonzero's
        # contribution is one flat gather of the weights, computed before
        # any selection (fewer passes than selecting first), and the passes
        # below touch only the candidates.
        lengths = np.diff(m.indptr)
        n_classes = self.coef.shape[1]
        # Flat positions in the weights as int32 when they fit (the shipped
        # models: 64k and 1.1 M weights): half the bytes per nonzero.
        flat = np.int32 if self.coef.size < 2**31 else np.int64
        target_at = np.maximum(target, -1).astype(flat)  # any negative class: skipped, as -1
        if len(wanted) * 4 < len(target) * 3:
            # Few texts explained (the risk model's over its evidence
            # threshold): only their nonzeros are read.
            texts = wanted
            picked = ranges(m.indptr[:-1][wanted].astype(np.int64), lengths[wanted])
            indices, data = m.indices[picked], m.data[picked]
        else:
            texts = np.arange(m.shape[0])
            indices, data = m.indices, m.data
        text_lengths = lengths[texts]
        on_class = np.repeat(target_at[texts], text_lengths)
        skipped = bool((target_at[texts][text_lengths > 0] < 0).any())
        at = indices.astype(flat, copy=False) * flat(n_classes) + (np.maximum(on_class, 0) if skipped else on_class)
        contrib = data * self._evidence_weights(spans_only)[at]
        keep = contrib > 0  # with spans_only, also "has a span": the weights of the others are 0
        if skipped:
            keep &= on_class >= 0
        idx = np.flatnonzero(keep)
        cols, contrib = indices[idx], contrib[idx]
        # The candidates of each text are one run of idx: its bounds by a
        # search of the texts' first nonzeros (no text number per nonzero).
        text_ptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(text_lengths, out=text_ptr[1:])
        kept_ptr = np.searchsorted(idx, text_ptr)
        kept = np.diff(kept_ptr)
        seg_text, seg, seg_lengths = texts[kept > 0], kept_ptr[:-1][kept > 0], kept[kept > 0]
        n_texts = len(target)
        # chosen[text, k]: the k-th heaviest feature of the text (-1: none).
        chosen = np.full((n_texts, max(top, 1)), -1, dtype=np.int64)
        chosen_weight = np.zeros((n_texts, max(top, 1)))
        for k in range(top if len(seg) else 0):
            best = np.maximum.reduceat(contrib, seg)
            ok = best > 0
            if not ok.any():
                break
            at_max = np.flatnonzero(contrib == np.repeat(np.where(ok, best, np.inf), seg_lengths))
            in_seg = np.searchsorted(seg, at_max, side="right") - 1
            first = np.ones(len(at_max), dtype=bool)  # the first candidate holding its text's maximum
            first[1:] = in_seg[1:] != in_seg[:-1]
            picked = at_max[first]
            chosen[seg_text[in_seg[first]], k] = cols[picked]
            chosen_weight[seg_text[in_seg[first]], k] = contrib[picked]
            contrib[picked] = 0.0
        r, kk = np.nonzero(chosen >= 0)  # by text, heaviest first
        if not len(r):
            return pl.DataFrame(schema=schema)
        c = chosen[r, kk]
        # Spans: the first occurrence of each chosen feature in its text. Each
        # occurrence is compared with its own text's few chosen features (a
        # gather per rank, no search), and the earliest token wins (token
        # order is text order).
        occ = batch.occurrences
        # A chosen feature without a place in the text (possible without
        # spans_only) matches no occurrence: -1.
        spanned = np.where((chosen >= 0) & self.featurizer.has_span[np.maximum(chosen, 0)], chosen, -1).astype(occ.col.dtype)
        occ_text, occ_col, occ_at = occ.text, occ.col, None
        explained: np.ndarray = np.any(spanned >= 0, axis=1)
        if int(explained.sum()) * 2 < len(spanned):
            # Few texts explained (the risk model's over its evidence
            # threshold, a tenth of them): only their occurrences are matched,
            # rank by rank (one pass to find them instead of one per rank).
            occ_at = np.flatnonzero(explained[occ_text])
            occ_text, occ_col = occ_text[occ_at], occ_col[occ_at]
        best = np.full(chosen.shape, np.iinfo(np.int64).max, dtype=np.int64).ravel()
        for k in range(chosen.shape[1]):
            # One gather of the rank's column per occurrence (every
            # occurrence of the texts explained: filtering them first by
            # "chosen for some text" kept most of them and cost more than it
            # saved).
            match = np.flatnonzero(np.ascontiguousarray(spanned[:, k])[occ_text] == occ_col)
            if not len(match):
                continue
            first_t, last_t = occ.tokens(match if occ_at is None else occ_at[match])
            # first token * 1024 + (last - first): the minimum is the earliest occurrence.
            np.minimum.at(best, occ_text[match] * chosen.shape[1] + k, first_t * 1024 + np.minimum(last_t - first_t, 1023))
        located = best[r * chosen.shape[1] + kk]
        found = located != np.iinfo(np.int64).max
        first_tok = np.where(found, located // 1024, 0)
        last_tok = first_tok + np.where(found, located % 1024, 0)
        start = np.zeros(len(r), dtype=np.int64)
        end = np.zeros(len(r), dtype=np.int64)
        if found.any():
            # One call for both ends; each text is known (no search for it).
            ends = np.concatenate([first_tok[found], last_tok[found]])
            in_text = np.asarray(batch.rows, dtype=np.int64)[r[found]]
            starts_and_ends, ends_and_ends = batch.tokens.spans(ends, texts=np.concatenate([in_text, in_text]))
            start[found], end[found] = starts_and_ends[: len(in_text)], ends_and_ends[len(in_text) :]
        frame = pl.DataFrame({"weight": chosen_weight[r, kk]})
        return pl.DataFrame(
            {
                "row": r,
                # Gathers from polars Series: no Python string per row.
                "class": pl.Series(list(self.classes), dtype=pl.String).gather(target[r]),
                "feature": self.featurizer.names_series.gather(c),
                "weight": frame["weight"],
                "start": pl.Series(start, dtype=pl.Int32).scatter(np.flatnonzero(~found), None),
                "end": pl.Series(end, dtype=pl.Int32).scatter(np.flatnonzero(~found), None),
            },
            schema=schema,
        )

    def _evidence_weights(self, spans_only: bool) -> np.ndarray:
        """The weights as evidence reads them, flat (feature-major): float64
        (the products with the float64 values are the same as with the
        float32 weights, which numpy widens per product), and with
        ``spans_only`` 0 on the columns without a span, so that ``contrib >
        0`` also says "has a span" (no gather of ``has_span`` per nonzero).
        Kept per ``spans_only`` for the weights array and featurizer it was
        made from (the weights are read-only, see ``__post_init__``; a new
        array makes a new table)."""
        tables = self.__dict__.setdefault("_evidence_tables", {})
        cached = tables.get(spans_only)
        if cached is not None and cached[0] is self.coef and cached[1] is self.featurizer:
            return cached[2]
        table = np.asarray(self.coef, dtype=np.float64)
        if spans_only:
            table = np.where(self.featurizer.has_span[:, None], table, 0.0)
        table = np.ascontiguousarray(table).ravel()
        tables[spans_only] = (self.coef, self.featurizer, table)
        return table

    def top_features(self, n: int = 15) -> pl.DataFrame:
        """The ``n`` heaviest positive features of each class (for cards)."""
        names = np.asarray(self.featurizer.feature_names(), dtype=object)
        rows = []
        for j, c in enumerate(self.classes):
            order = np.argsort(-self.coef[:, j], kind="stable")[:n]
            rows += [(c, names[i], float(self.coef[i, j])) for i in order]
        return pl.DataFrame(rows, schema={"class": pl.String, "feature": pl.String, "weight": pl.Float64}, orient="row")


def _lists_of(mask: np.ndarray, classes: list[str]) -> pl.Series:
    """Per row, the classes whose column is set (one list per distinct pattern)."""
    if not len(classes):
        return pl.Series("labels", [[] for _ in range(len(mask))], dtype=pl.List(pl.String))
    bits = (mask.astype(np.int64) << np.arange(len(classes), dtype=np.int64)).sum(axis=1)
    distinct = np.unique(bits)
    table = pl.DataFrame(
        {
            "bits": distinct,
            "labels": pl.Series([[c for i, c in enumerate(classes) if int(b) >> i & 1] for b in distinct], dtype=pl.List(pl.String)),
        }
    )
    return pl.DataFrame({"bits": bits}).join(table, on="bits", how="left", maintain_order="left")["labels"]


def _text_series(values: Any, name: str) -> pl.Series:
    """``values`` (a Series, or a sequence of strings) as a String Series.
    A bare string is a sequence too: predict("how are you") scored each of
    its characters as a text (19 rows for one message), so it is refused,
    as are a frame and values that are not strings (polars' TypeError)."""
    if isinstance(values, pl.Series):
        return values.cast(pl.String)
    if isinstance(values, str | bytes):
        raise InputError(f"{name}: a list of texts, not one string (it would be read one character at a time); for "
                         f"one text: predict([{values[:20]!r}])")  # fmt: skip
    if isinstance(values, pl.DataFrame):
        raise InputError(f"{name}: a list of texts or a column, not a DataFrame: give a column, such as frame['text']")
    try:
        return pl.Series(name, list(values), dtype=pl.String)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in values if v is not None and not isinstance(v, str)})
        raise InputError(f"{name}: texts must be strings (or None), found {', '.join(kinds)}; convert them first, "
                         "such as pl.Series(values).cast(pl.String)") from None


def _batch_of(model: TextModel | Featurizer, texts: Any, context: Any, rules: np.ndarray | None) -> Batch:
    """The batch of plain texts (tokenized here) for a model (its blocks
    folded where they can be) or a featurizer (everything materialised)."""
    text = _text_series(texts, "texts").fill_null("")
    n = len(text)
    if context is not None:
        ctx = _text_series(context, "context")
        if len(ctx) != n:
            raise InputError(f"context has {len(ctx)} values for {n} texts")
        tokens = tokenize(pl.concat([text, ctx.fill_null("")]))
        context_rows = np.where(ctx.is_null().to_numpy(), -1, np.arange(n, 2 * n))
    else:
        tokens = tokenize(text)
        context_rows = None
    return model.transform(tokens, np.arange(n), context_rows=context_rows, rules=rules)


@dataclass(frozen=True)
class TrainingData:
    """A labelled frame checked and split into what :func:`fit` needs."""

    texts: pl.Series
    labels: list[Any]
    classes: tuple[str, ...]
    task: str
    context: pl.Series | None
    groups: np.ndarray | None
    rules: np.ndarray | None


def rule_values(frame: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
    """The rule columns ``names`` of ``frame`` as a texts x rules matrix:
    numbers, nulls as 0 (how :func:`fit` reads them, and a model reads them
    inside ``analyze()``)."""
    return frame.select([pl.col(r).cast(pl.Float64).fill_null(0.0) for r in names]).to_numpy()


def training_data(
    frame: pl.DataFrame,
    *,
    text: str = "text",
    label: str = "label",
    context: str | None = None,
    group: str | None = None,
    rules: Sequence[str] = (),
    classes: Sequence[str] | None = None,
) -> TrainingData:
    """Check a labelled frame: the columns exist, no text or label is
    missing, and there are at least two classes."""
    if not isinstance(frame, pl.DataFrame):
        raise InputError(f"training data must be a polars DataFrame, got {type(frame).__name__}")
    needed = [c for c in (text, label, context, group, *rules) if c is not None]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(f"the labelled frame lacks column(s) {', '.join(missing)}; it has {', '.join(frame.columns)}")
    _check_types(frame, text, label, context, rules)
    frame = frame.filter(pl.col(text).is_not_null() & pl.col(label).is_not_null())
    if frame.height == 0:
        raise InputError("no labelled rows: every text or label is missing")
    if group is not None and frame[group].null_count():
        raise InputError(f"the group column {group!r} is missing in {frame[group].null_count():,} labelled row(s); "
                         "fill it (each row its own group, say) or drop those rows")  # fmt: skip
    dtype = frame.schema[label]
    if isinstance(dtype, pl.List):
        task = "multilabel"
        values = frame[label].cast(pl.List(pl.String))
        holes = values.list.eval(pl.element().is_null()).list.any().fill_null(False)
        if holes.any():
            raise InputError(f"the label lists in column {label!r} hold a missing value in {int(holes.sum()):,} row(s) "
                             f"(first: row {int(holes.arg_true()[0])} of the labelled rows); drop them with "
                             f"pl.col({label!r}).list.drop_nulls()")  # fmt: skip
        found = sorted(set(values.explode().drop_nulls().to_list()))
        labels: list[Any] = values.to_list()
    else:
        task = "multiclass"
        values = frame[label].cast(pl.String)
        found = sorted(set(values.to_list()))
        labels = values.to_list()
    chosen = tuple(classes) if classes is not None else tuple(found)
    _check_class_names(chosen, label)
    unknown = set(found) - set(chosen)
    if unknown:
        raise InputError(f"label(s) not among the classes ({', '.join(chosen)}): {', '.join(sorted(unknown)[:5])}")
    if len(chosen) < 2:
        raise InputError(f"need at least two classes to learn from, found {list(chosen)}")
    rule_matrix = rule_values(frame, rules) if rules else None
    return TrainingData(
        texts=frame[text].cast(pl.String),
        labels=labels,
        classes=chosen,
        task=task,
        context=frame[context].cast(pl.String) if context else None,
        groups=frame[group].to_numpy() if group else None,
        rules=rule_matrix,
    )


def case_clashes(classes: Any) -> list[list[str]]:
    """The groups of class names that differ only in case (each class
    becomes a cache column, and the cache's column names ignore case), in
    the order the classes come."""
    by_case: dict[str, list[str]] = {}
    for c in classes:
        by_case.setdefault(str(c).lower(), []).append(str(c))
    return [names for names in by_case.values() if len(names) > 1]


def _check_class_names(classes: Sequence[str], label: str) -> None:
    """Refuse class names a model cannot carry into ``analyze()``: each class
    becomes a column ``<prefix>_p_<class>``, and column names in the cache
    (DuckDB) ignore case, so "Question" and "question" would be one column;
    an empty name makes a column named after the prefix alone."""
    empty = [c for c in classes if not str(c).strip()]
    if empty:
        raise InputError(f"the label column {label!r} holds an empty label ({', '.join(repr(c) for c in empty)}); a class "
                         "needs a name: drop those rows or give them a label")  # fmt: skip
    clashes = case_clashes(classes)
    if clashes:
        named = "; ".join(" and ".join(repr(n) for n in names) for names in clashes)
        raise InputError(f"labels in column {label!r} differ only in case: {named}; a model's classes become column "
                         "names, which ignore case in the cache: make them one label (pe-toolkit learn fit --relabel "
                         "FROM=TO, or learn.rename_labels)")  # fmt: skip


def _check_types(frame: pl.DataFrame, text: str, label: str, context: str | None, rules: Sequence[str]) -> None:
    """Refuse columns of a type :func:`fit` cannot read (before polars or
    scikit-learn fail on them with their own words)."""
    for name in (text, context):
        if name is not None and isinstance(frame.schema[name], _NESTED):
            raise InputError(f"column {name!r} holds {frame.schema[name]} values; a text column must hold strings "
                             "(join a list with pl.col(...).list.join(' '))")  # fmt: skip
    dtype = frame.schema[label]
    if isinstance(dtype, _NESTED) and not isinstance(dtype, pl.List):
        raise InputError(f"the label column {label!r} holds {dtype} values; labels must be strings (one per text) "
                         "or lists of strings (a multi-label task)")  # fmt: skip
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, _NESTED):
        raise InputError(f"the label column {label!r} holds {dtype} values; a multi-label column holds lists of strings")
    bad = [r for r in rules if not (frame.schema[r].is_numeric() or frame.schema[r] in (pl.Boolean, pl.Null))]
    if bad:
        raise InputError(f"rule column(s) {', '.join(repr(r) for r in bad)} are not numbers "
                         f"({', '.join(str(frame.schema[r]) for r in bad)}); rules= names numeric detection columns")  # fmt: skip


_NESTED = (pl.List, pl.Array, pl.Struct, pl.Object)


def _check_options(c: Any, class_weight: Any) -> None:
    """The regularisation options, checked here rather than by scikit-learn."""
    if isinstance(c, bool) or not isinstance(c, int | float) or not np.isfinite(c) or c <= 0:
        raise InputError(f"c (inverse regularisation strength) must be a positive number, got {c!r}")
    if class_weight not in (None, "balanced"):
        raise InputError(f"class_weight must be 'balanced' or None, got {class_weight!r}")


def _fit_weights(x: sp.csr_matrix, y: np.ndarray, task: str, n_classes: int, c: float,
                 class_weight: str | None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    from sklearn.linear_model import LogisticRegression

    if task == "multiclass":
        present = np.unique(y)
        model = LogisticRegression(C=c, class_weight=class_weight, max_iter=3000)
        model.fit(x, y)
        coef = np.zeros((x.shape[1], n_classes))
        intercept = np.full(n_classes, -30.0)  # a class absent from the training fold is never predicted
        if len(present) == 2:
            # scikit-learn keeps one row for two classes (a sigmoid of z): +-z/2 gives the same softmax.
            coef[:, present[1]] = model.coef_[0] / 2
            coef[:, present[0]] = -model.coef_[0] / 2
            intercept[present[1]] = model.intercept_[0] / 2
            intercept[present[0]] = -model.intercept_[0] / 2
        else:
            coef[:, present] = model.coef_.T
            intercept[present] = model.intercept_
        return coef, intercept
    coef = np.zeros((x.shape[1], n_classes))
    intercept = np.zeros(n_classes)
    for j in range(n_classes):  # one binary model per class (a handful)
        yj = y[:, j]
        if yj.all() or not yj.any():
            intercept[j] = 30.0 if yj.all() else -30.0
            continue
        model = LogisticRegression(C=c, class_weight=class_weight, max_iter=3000)
        model.fit(x, yj)
        coef[:, j] = model.coef_[0]
        intercept[j] = model.intercept_[0]
    return coef, intercept


def privacy_note(min_df: int) -> str:
    """What a model card says its file holds of the training texts."""
    if min_df < 2:
        return ("trained with min_df 1: the vocabulary holds every word, word n-gram and sentence opening (a sentence's "
                "first two words) of every training text, readable from this file, fragments of single texts among "
                "them (a name, the start of a sentence one person wrote). Do not share it unless the texts are public.")  # fmt: skip
    return (f"the vocabulary holds every word n-gram and sentence opening found in at least {min_df} training texts, "
            "readable from this file. Share a model trained on private text as you would share the text.")  # fmt: skip


def fit(
    frame: pl.DataFrame,
    *,
    text: str = "text",
    label: str = "label",
    context: str | None = None,
    group: str | None = None,
    rules: Sequence[str] = (),
    classes: Sequence[str] | None = None,
    spec: FeatureSpec | None = None,
    c: float = 1.0,
    class_weight: str | None = "balanced",
    lexicon: pl.DataFrame | None = None,
    thresholds: Mapping[str, float] | np.ndarray | None = None,
    name: str = "model",
    card: Mapping[str, Any] | None = None,
) -> TextModel:
    """Train a text classifier on a labelled frame.

    ``text``/``label``: column names (a list-of-strings label column makes
    a multi-label model). ``context``: a column holding the preceding turn.
    ``rules``: numeric columns (rule detections) used as features.
    ``lexicon``: a phrase lexicon (``construct``, ``phrase``) whose
    construct counts become features. ``thresholds``: per-class decision
    thresholds, probabilities in [0, 1] (default 0.5 for multi-label; for
    multi-class, none: only the most probable class is in ``labels``). ``c`` must be positive and
    ``class_weight`` "balanced" or None.
    """
    _check_options(c, class_weight)
    data = training_data(frame, text=text, label=label, context=context, group=group, rules=rules, classes=classes)
    if data.task == "multiclass" and len(set(data.labels)) < 2:
        # classes= may name more, but a classifier needs two of them among the
        # labels (evaluating on one class is fine, so this is fit's check).
        raise InputError(f"every label in column {label!r} is {data.labels[0]!r}: a classifier needs at least two "
                         "different labels among the rows")  # fmt: skip
    spec = spec or FeatureSpec(context=context is not None)
    if spec.context and context is None:
        raise InputError("the feature spec uses the preceding turn: name its column with context=")
    batch_tokens, rows, context_rows = _tokens_for(data)
    featurizer = Featurizer.fit(spec, batch_tokens, rows, context_rows=context_rows, lexicon=lexicon, rule_names=list(rules))
    if featurizer.n_features == 0:
        raise InputError(f"no features to learn from: no word of column {text!r} occurs in {spec.min_df} or more "
                         "texts (are the texts empty or only numbers?); check the column or lower min_df")  # fmt: skip
    x = featurizer.transform(batch_tokens, rows, context_rows=context_rows, rules=data.rules).matrix
    y = _encode(data)
    coef, intercept = _fit_weights(x, y, data.task, len(data.classes), c, class_weight)
    model = TextModel(
        name=name,
        task=data.task,
        classes=data.classes,
        featurizer=featurizer,
        # Rounded as the model file stores them, so what is evaluated is what is shipped.
        coef=coef.astype(np.float16).astype(np.float32),
        intercept=intercept.astype(np.float32).astype(np.float64),
        thresholds=_thresholds(thresholds, data),
        card=dict(card or {}),
    )
    model.card.setdefault("training", {}).update(
        {"n": len(data.labels), "task": data.task, "classes": list(data.classes), "c": c, "class_weight": class_weight,
         "text": text, "label": label, "context": context, "rules": list(rules), "features": spec.as_dict()}  # fmt: skip
    )
    if spec.min_df < 2:
        # The CLI refuses min_df 1 without --allow-rare-ngrams and writes this
        # note; a library caller's file must say it too.
        model.card.setdefault("privacy", privacy_note(spec.min_df))
    from .labels import level_of  # labels reads the store; imported here, where a store frame is fitted

    level = level_of(frame)
    if level is not None:
        # Whether it learned whole conversations or single messages: analyze
        # scores messages, and refuses a conversation model (registry).
        model.card["training"]["level"] = level
    return model


def _tokens_for(data: TrainingData) -> tuple[Tokens, np.ndarray, np.ndarray | None]:
    n = len(data.texts)
    if data.context is None:
        return tokenize(data.texts.fill_null("")), np.arange(n), None
    tokens = tokenize(pl.concat([data.texts.fill_null(""), data.context.fill_null("")]))
    return tokens, np.arange(n), np.where(data.context.is_null().to_numpy(), -1, np.arange(n, 2 * n))


def _encode(data: TrainingData) -> np.ndarray:
    index = {c: i for i, c in enumerate(data.classes)}
    if data.task == "multiclass":
        return np.array([index[v] for v in data.labels], dtype=np.int64)  # labels were checked: one lookup each
    y = np.zeros((len(data.labels), len(data.classes)), dtype=bool)
    for i, values in enumerate(data.labels):  # list labels: a few per row, training only
        for v in values or ():
            y[i, index[v]] = True
    return y


# A multi-class class's threshold when none is set: above any probability.
NO_THRESHOLD = 1.01


def _threshold_value(cls: str, value: Any) -> float:
    """A threshold the caller gave: a probability, so a number in [0, 1]
    (-1 or 1.5 would make a class always or never labelled without a word)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"the threshold of class {cls!r} must be a number in [0, 1], got {value!r}") from None
    if not (np.isfinite(out) and 0.0 <= out <= 1.0):
        raise InputError(f"the threshold of class {cls!r} must be a number in [0, 1] (a probability), got {value!r}; "
                         "leave a class out of thresholds= for the default (none in a multi-class model, 0.5 in a "
                         "multi-label one)")  # fmt: skip
    return out


def _thresholds(thresholds: Mapping[str, float] | np.ndarray | None, data: TrainingData) -> np.ndarray:
    n = len(data.classes)
    if thresholds is None:
        return np.full(n, 0.5 if data.task == "multilabel" else NO_THRESHOLD)
    if isinstance(thresholds, Mapping):
        unknown = set(thresholds) - set(data.classes)
        if unknown:
            raise InputError(f"thresholds for unknown class(es): {', '.join(sorted(unknown))}")
        default = 0.5 if data.task == "multilabel" else NO_THRESHOLD
        # Only the given values are checked: NO_THRESHOLD (above 1) is how a
        # class without one is stored, and loading a model does not come here.
        return np.array([_threshold_value(c, thresholds[c]) if c in thresholds else default for c in data.classes])
    out = np.asarray(thresholds, dtype=np.float64)
    if out.shape != (n,):
        raise InputError(f"thresholds must have one value per class ({n}), got shape {out.shape}")
    return np.array([_threshold_value(c, v) for c, v in zip(data.classes, out.tolist(), strict=True)])

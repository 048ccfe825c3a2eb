"""How well a model agrees with human labels, with intervals.

- :func:`evaluate` scores a fitted model on a labelled frame;
- :func:`cross_validate` fits and scores it ``folds`` times, split by
  group (a dialogue, a post, a conversation) so no group is in both the
  training and the test part, and keeps the out-of-fold probabilities.

Both return a :class:`Report` (for a multi-label task, each class as its
own binary task: :func:`multilabel_report`): accuracy, macro-F1, Cohen's
kappa and AUROC (one-vs-rest, averaged over classes), per-class precision, recall and F1,
each with a 95% bootstrap interval (percentile, 1,000 resamples of whole
groups: items of one dialogue are not independent), a confusion matrix and
a calibration table (predicted probability by decile against the observed
rate, per class). ``merge`` folds classes together before scoring (ESConv's
"Restatement or Paraphrasing" and "Reflection of feelings" as one
"reflections" class), probabilities summed.

With fewer than ``MIN_GROUPS`` (10) groups there are no intervals (None,
and a line in the report's ``notes``). An average over classes keeps the
classes of the full sample in every resample: a resample missing a class
counts its F1 as 0 in the macro-F1; one in which a class of the mean AUROC
(or mean kappa) has no item in or out of it is left out of that interval.

Point figures come from :func:`pe_toolkit.analysis.evaluate`, the project's
one implementation of agreement statistics; the bootstrap tallies the
counts per group once and reweights them per resample (a loop over
resamples, never a resamples x items matrix).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from ..analysis.evaluation import evaluate as agreement
from ..errors import InputError
from .labels import rename_labels
from .model import TextModel, _batch_of, _check_options, fit, training_data

BOOTSTRAP = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Report:
    """Agreement with human labels; see the module docstring."""

    n: int
    groups: int
    classes: tuple[str, ...]
    overall: pl.DataFrame  # metric, value, low, high
    per_class: pl.DataFrame  # class, precision, recall, f1, f1_low, f1_high, auroc, support
    confusion: pl.DataFrame  # gold x predicted; first column "gold" ("gold_label" when a class is named "gold")
    calibration: pl.DataFrame  # class, bin, n, predicted, observed
    predictions: pl.DataFrame = field(repr=False)  # per item: gold, predicted, p_<class>, group (and fold, from cross_validate)
    notes: tuple[str, ...] = ()  # what a reader of the figures must know (no intervals with too few groups)

    def metric(self, name: str) -> float | None:
        row = self.overall.filter(pl.col("metric") == name)
        return None if row.is_empty() else row["value"].item()

    def f1(self, cls: str) -> float | None:
        row = self.per_class.filter(pl.col("class") == cls)
        return None if row.is_empty() else row["f1"].item()

    def auroc(self, positive: str, negatives: Sequence[str] | None = None, *, boot: int = BOOTSTRAP,
              seed: int = 0) -> tuple[float | None, float | None, float | None]:  # fmt: skip
        """AUROC of ``p_<positive>`` for telling ``positive`` items from
        ``negatives`` (default: every other class), with its interval."""
        frame = self.predictions
        if negatives is not None:
            frame = frame.filter(pl.col("gold").is_in([positive, *negatives]))
        y = (frame["gold"] == positive).to_numpy()
        return auroc_interval(frame[f"p_{positive}"].to_numpy(), y, frame["group"].to_numpy(), boot=boot, seed=seed)

    def __str__(self) -> str:
        def f(x: Any) -> str:
            return "   -  " if x is None else f"{x:6.3f}"

        # Columns as wide as their longest entry (a class name of 40
        # characters pushed its row's figures out of their columns).
        mw = max([10, *(len(str(m)) + 2 for m in self.overall["metric"])])
        cw = max([26, *(len(str(c)) + 2 for c in self.per_class["class"])])
        nw = max([6, *(len(str(n)) + 2 for n in self.per_class["support"])])
        lines = [f"n={self.n} ({self.groups} groups)"]
        for metric, value, low, high in self.overall.iter_rows():
            lines.append(f"  {metric:<{mw}}{f(value)}  [{f(low)}, {f(high)}]")
        # "[lo, hi]" is 16 characters wide: the header's column is too.
        lines.append(f"  {'class':<{cw}}{'prec':>7}{'recall':>7}{'f1':>7}  {'95% CI':<16}{'auroc':>7}{'n':>{nw}}")
        for cls, p, r, f1, lo, hi, au, n in self.per_class.iter_rows():
            lines.append(f"  {cls:<{cw}}{f(p):>7}{f(r):>7}{f(f1):>7}  [{f(lo)}, {f(hi)}]{f(au):>7}{n:>{nw}}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "groups": self.groups,
            "overall": self.overall.to_dicts(),
            "per_class": self.per_class.to_dicts(),
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out


# Below this many groups no interval is given: a bootstrap over a handful of
# groups draws the same few items again and again, and its "interval" (a
# single point with one to five rows) shows no uncertainty that is there.
MIN_GROUPS = 10

# Draws per chunk of resamples: the resamples are drawn a chunk at a time
# (the same numbers as one draw of them all: a Generator's integers come
# off one stream) so memory stays O(groups + items), not resamples x items.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Resamples:
    """The bootstrap's resamples of whole groups: ``inverse`` maps each item
    to its group; :meth:`counts` yields, per resample, how often each group
    was drawn."""

    inverse: np.ndarray
    n_groups: int
    boot: int
    seed: int

    @classmethod
    def of(cls, groups: np.ndarray, boot: int, seed: int) -> _Resamples:
        codes, inverse = np.unique(groups, return_inverse=True)
        return cls(inverse.reshape(-1), len(codes), boot, seed)

    @property
    def enough(self) -> bool:
        return self.n_groups >= MIN_GROUPS and self.boot > 0

    def counts(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        step = max(1, _CHUNK // max(self.n_groups, 1))
        for start in range(0, self.boot, step):
            draws = rng.integers(0, self.n_groups, size=(min(step, self.boot - start), self.n_groups))
            for row in draws:  # one bincount per resample
                yield np.bincount(row, minlength=self.n_groups).astype(np.float64)

    def item_weights(self) -> Iterator[np.ndarray]:
        """Per resample, each item's weight (how often its group was drawn)."""
        for counts in self.counts():
            yield counts[self.inverse]

    def tally(self, values: np.ndarray) -> np.ndarray:
        """Per group, the sums of the rows of ``values`` (items x columns)."""
        out = np.zeros((self.n_groups, values.shape[1]))
        np.add.at(out, self.inverse, values)
        return out


def _few_groups_note(n_groups: int) -> str:
    return (f"{n_groups} group(s): no 95% intervals below {MIN_GROUPS} groups (a bootstrap over so few cannot show "
            "the uncertainty); label more groups")  # fmt: skip


class _Auroc:
    """AUROC of ``scores`` for the boolean ``y`` under item weights (ties
    count one half); the ranks are computed once for every resample."""

    def __init__(self, scores: np.ndarray, y: np.ndarray) -> None:
        _, rank = np.unique(scores, return_inverse=True)
        rank = rank.reshape(-1)
        self.k = int(rank.max()) + 1 if len(rank) else 0
        self.y = y
        self.pos_rank, self.neg_rank = rank[y], rank[~y]

    def __call__(self, w: np.ndarray) -> float:
        pos = np.bincount(self.pos_rank, weights=w[self.y], minlength=self.k)
        neg = np.bincount(self.neg_rank, weights=w[~self.y], minlength=self.k)
        wp, wn = pos.sum(), neg.sum()
        if not (wp > 0 and wn > 0):
            return np.nan
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / (wp * wn))


def _interval(values: np.ndarray) -> tuple[float | None, float | None]:
    v = values[~np.isnan(values)]
    if not len(v):
        return None, None
    a = (1 - LEVEL) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))


def auroc_interval(scores: np.ndarray, positive: np.ndarray, groups: np.ndarray | None = None, *, boot: int = BOOTSTRAP,
                   seed: int = 0) -> tuple[float | None, float | None, float | None]:  # fmt: skip
    """(AUROC, low, high) of ``scores`` for the boolean ``positive``; the
    interval is (None, None) with fewer than ``MIN_GROUPS`` groups."""
    y = np.asarray(positive, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        return None, None, None
    auroc = _Auroc(s, y)
    point = auroc(np.ones(len(s)))
    resamples = _Resamples.of(np.arange(len(s)) if groups is None else np.asarray(groups), boot, seed)
    if not resamples.enough:
        return float(point), None, None
    low, high = _interval(np.array([auroc(w) for w in resamples.item_weights()], dtype=np.float64))
    return float(point), low, high


def brier_score(report: Report) -> float | None:
    """The Brier score of a report's probabilities (0 is best): per item,
    the squared distance of its probabilities from its labels summed over
    the classes (multi-class), or each class's binary score averaged over
    the classes (multi-label); the mean over items. Unlike F1 it sees
    whether the probabilities are calibrated, not only which class wins."""
    if not report.n:
        return None
    pred = report.predictions
    proba = np.column_stack([pred[f"p_{c}"].to_numpy() for c in report.classes])
    if isinstance(pred.schema["gold"], pl.List):
        truth = np.column_stack([pred["gold"].list.contains(c).to_numpy() for c in report.classes])
        return float(((proba - truth) ** 2).mean())
    truth = np.column_stack([(pred["gold"] == c).to_numpy() for c in report.classes])
    return float(((proba - truth) ** 2).sum(axis=1).mean())


def _calibration(gold: np.ndarray, proba: np.ndarray, classes: Sequence[str], bins: int = 10) -> pl.DataFrame:
    """``gold``: the labels, or a boolean (items x classes) matrix of them."""
    truth = gold if gold.ndim == 2 else np.column_stack([gold == c for c in classes])
    rows = []
    edges = np.linspace(0, 1, bins + 1)
    for j, c in enumerate(classes):
        p = proba[:, j]
        b = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
        n = np.bincount(b, minlength=bins)
        mean_p = np.bincount(b, weights=p, minlength=bins)
        hits = np.bincount(b, weights=truth[:, j].astype(float), minlength=bins)
        for k in np.flatnonzero(n):
            rows.append((c, f"{edges[k]:.1f}-{edges[k + 1]:.1f}", int(n[k]), float(mean_p[k] / n[k]), float(hits[k] / n[k])))
    return pl.DataFrame(rows, schema={"class": pl.String, "bin": pl.String, "n": pl.Int64, "predicted": pl.Float64,
                                      "observed": pl.Float64}, orient="row")  # fmt: skip


def _merged(gold: Sequence[str], proba: np.ndarray, classes: Sequence[str],
            merge: Mapping[str, str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:  # fmt: skip
    if not merge:
        return np.asarray(gold, dtype=object), proba, list(classes)
    target = [merge.get(c, c) for c in classes]
    merged = list(dict.fromkeys(target))
    out = np.zeros((proba.shape[0], len(merged)))
    for j, t in enumerate(target):
        out[:, merged.index(t)] += proba[:, j]
    g = np.asarray([merge.get(v, v) for v in gold], dtype=object)  # one dict lookup per label, evaluation only
    return g, out, merged


def report(gold: Sequence[str], proba: np.ndarray, classes: Sequence[str], *, groups: np.ndarray | None = None,
           merge: Mapping[str, str] | None = None, boot: int = BOOTSTRAP, seed: int = 0) -> Report:  # fmt: skip
    """A :class:`Report` from gold labels and class probabilities (one
    column per class, in ``classes`` order); the prediction is the most
    probable class."""
    if proba.shape != (len(gold), len(classes)):
        raise InputError(f"probabilities of shape {proba.shape} for {len(gold)} items and {len(classes)} classes")
    g, p, cls = _merged(gold, proba, classes, merge)
    pred = np.asarray(cls, dtype=object)[p.argmax(axis=1)]
    groups = np.arange(len(g)) if groups is None else np.asarray(groups)
    point = agreement(pl.Series(pred.tolist(), dtype=pl.String), pl.Series(g.tolist(), dtype=pl.String), labels=cls,
                      scores={c: p[:, j] for j, c in enumerate(cls)})  # fmt: skip
    k = len(cls)
    index = {c: i for i, c in enumerate(cls)}
    gi = np.array([index[v] for v in g.tolist()], dtype=np.int64)  # evaluation only
    pi = p.argmax(axis=1)
    cell = gi * k + pi
    # The classes the point figures average over, fixed for every resample:
    # macro-F1 over the classes in gold or predicted, AUROC over those with
    # items in and out of the class. A resample that misses a class keeps it
    # (its F1 is 0 there) rather than averaging over the others only, which
    # pulled the interval of a task with a one-example class up to 1.
    full = np.bincount(cell, minlength=k * k).reshape(k, k)
    in_f1 = (full.sum(axis=0) + full.sum(axis=1)) > 0
    scored = [j for j in range(k) if (gi == j).any() and not (gi == j).all()]
    resamples = _Resamples.of(groups, boot, seed)
    rows = boot if resamples.enough else 0
    acc, macro, kap = np.empty(rows), np.empty(rows), np.empty(rows)
    f1s = np.full((rows, k), np.nan)
    per_auroc = np.full((k, rows), np.nan)
    aurocs = {j: _Auroc(p[:, j], gi == j) for j in scored}
    if rows:
        # Per group, how many of its items fall in each confusion cell (a
        # table of at most one row per item); each resample reweights it.
        pairs, pair_n = np.unique(resamples.inverse * (k * k) + cell, return_counts=True)
        pair_group, pair_cell = pairs // (k * k), pairs % (k * k)
        for b, counts in enumerate(resamples.counts()):  # one weighted confusion matrix per resample
            conf = np.bincount(pair_cell, weights=counts[pair_group] * pair_n, minlength=k * k).reshape(k, k)
            n = conf.sum()
            tp = np.diag(conf)
            denom = conf.sum(axis=0) + conf.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                f = np.where(denom > 0, 2 * tp / denom, np.nan)
            f1s[b] = f  # a class's own interval: over the resamples that hold it
            macro[b] = np.nanmean(np.where(in_f1 & np.isnan(f), 0.0, f)) if in_f1.any() else np.nan
            acc[b] = tp.sum() / n
            expected = (conf.sum(axis=1) @ conf.sum(axis=0)) / n
            kap[b] = (tp.sum() - expected) / (n - expected) if n != expected else np.nan
            if aurocs:
                w = counts[resamples.inverse]
                for j, auroc in aurocs.items():
                    per_auroc[j, b] = auroc(w)
    class_auroc: dict[str, tuple[float | None, float | None, float | None]] = {}
    for j, c in enumerate(cls):
        if j not in aurocs:
            class_auroc[c] = (None, None, None)
            continue
        class_auroc[c] = (aurocs[j](np.ones(len(gi))), *_interval(per_auroc[j]))
    if scored and rows:
        # The mean over the fixed classes; a resample in which one of them
        # has no item in (or out of) it has no such mean and is left out.
        # (The left-out ones are averaged as zeros and then set aside, so no
        # mean is of nothing; the C-ordered block sums its rows in order,
        # the same bits as before the class set was fixed.)
        block = np.ascontiguousarray(per_auroc[scored])
        complete = ~np.isnan(block).any(axis=0)
        macro_auroc = np.nanmean(np.where(complete, block, 0.0), axis=0)
        macro_auroc[~complete] = np.nan
    else:
        macro_auroc = np.full(rows, np.nan)
    overall = pl.DataFrame(
        [
            ("accuracy", point.accuracy, *_interval(acc)),
            ("macro_f1", point.macro_f1, *_interval(macro)),
            ("kappa", point.kappa, *_interval(kap)),
            ("auroc", point.auroc, *_interval(macro_auroc)),
        ],
        schema={"metric": pl.String, "value": pl.Float64, "low": pl.Float64, "high": pl.Float64},
        orient="row",
    )
    per_class = pl.DataFrame(
        [
            (c, point.per_class[c].precision, point.per_class[c].recall, point.per_class[c].f1, *_interval(f1s[:, j]),
             class_auroc[c][0], point.per_class[c].support)  # fmt: skip
            for j, c in enumerate(cls)
        ],
        schema={"class": pl.String, "precision": pl.Float64, "recall": pl.Float64, "f1": pl.Float64,
                "f1_low": pl.Float64, "f1_high": pl.Float64, "auroc": pl.Float64, "support": pl.Int64},  # fmt: skip
        orient="row",
    )
    predictions = pl.DataFrame(
        {"gold": pl.Series(g.tolist(), dtype=pl.String), "predicted": pl.Series(pred.tolist(), dtype=pl.String),
         **{f"p_{c}": p[:, j] for j, c in enumerate(cls)}, "group": groups}  # fmt: skip
    )
    return Report(
        n=len(g),
        groups=len(np.unique(groups)),
        classes=tuple(cls),
        overall=overall,
        per_class=per_class,
        confusion=point.confusion,
        calibration=_calibration(g, p, cls),
        predictions=predictions,
        notes=() if resamples.enough or not boot else (_few_groups_note(resamples.n_groups),),
    )


def _fixed_mean(values: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (point figures, then resamples), the mean over
    the columns ``fixed``; nan for a row in which one of them is nan (and
    when none is fixed)."""
    out = np.full(len(values), np.nan)
    if not fixed.any():
        return out
    complete = ~np.isnan(values[:, fixed]).any(axis=1)
    out[complete] = [np.nanmean(r) for r in values[complete]]  # a row's own mean, as the point figure's
    return out


def multilabel_report(gold: Sequence[Sequence[str] | None], proba: np.ndarray, classes: Sequence[str], *,
                      thresholds: np.ndarray | None = None, groups: np.ndarray | None = None, boot: int = BOOTSTRAP,
                      seed: int = 0) -> Report:  # fmt: skip
    """A :class:`Report` for a multi-label task: each class is its own binary
    task (present or not; predicted when its probability reaches its
    threshold, default 0.5; ``thresholds`` one for all, one per class, or
    one per item and class, items x classes, e.g. tuned on the other folds). ``overall``: macro-F1 (mean over classes),
    micro-F1 (pooled counts), subset accuracy (every class right), mean
    Cohen's kappa and mean AUROC over classes, each with its bootstrap
    interval; ``confusion``: per class, tp / fp / fn / tn."""
    k = len(classes)
    if proba.shape != (len(gold), k):
        raise InputError(f"probabilities of shape {proba.shape} for {len(gold)} items and {k} classes")
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(gold), k), dtype=bool)
    for i, values in enumerate(gold):  # evaluation only: one pass over the gold lists
        for v in values or ():
            y[i, index[v]] = True
    cut = np.full(k, 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    try:  # one for all, one per class, or one per item and class
        cut = np.broadcast_to(cut, proba.shape)
    except ValueError:
        raise InputError(f"thresholds of shape {cut.shape}: give one for all, one per class ({k}) or one per item and "
                         f"class {proba.shape}") from None
    pred = proba >= cut
    groups = np.arange(len(gold)) if groups is None else np.asarray(groups)
    resamples = _Resamples.of(groups, boot, seed)
    # Row 0: the point figures; then one row per resample (none with fewer
    # than MIN_GROUPS groups). Per item: tp, fp, fn, tn of each class, all
    # classes right, 1; tallied per group once, then each resample
    # reweights the groups (integer sums: the same figures as summing items).
    n_items = len(gold)
    per_item = np.concatenate([y & pred, ~y & pred, y & ~pred, ~y & ~pred, (y == pred).all(axis=1, keepdims=True),
                               np.ones((n_items, 1), dtype=bool)], axis=1).astype(np.float64)  # fmt: skip
    ranked = {j: _Auroc(proba[:, j], y[:, j]) for j in range(k) if y[:, j].any() and not y[:, j].all()}
    table = [per_item.sum(axis=0)]
    auroc_rows = [[auroc(np.ones(n_items)) for auroc in ranked.values()]]
    if resamples.enough:
        by_group = resamples.tally(per_item)
        for counts in resamples.counts():
            table.append(counts @ by_group)
            if ranked:
                w = counts[resamples.inverse]
                auroc_rows.append([auroc(w) for auroc in ranked.values()])
    sums = np.array(table)
    aurocs = np.full((len(sums), k), np.nan)  # one AUROC per class (a handful)
    if ranked:
        aurocs[:, list(ranked)] = np.array(auroc_rows)
    tp, fp, fn, tn = (sums[:, i * k : (i + 1) * k] for i in range(4))
    subset = sums[:, 4 * k] / sums[:, 4 * k + 1]
    # The classes the point figures average over, fixed for every resample:
    # a resample missing one keeps it in the macro-F1 (its F1 is 0 there);
    # for kappa and AUROC, whose mean over fewer classes would be of another
    # task, such a resample is left out of the interval.
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        total = tp + fp + fn + tn
        expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / total
        kappa = np.where(total != expected, ((tp + tn) - expected) / (total - expected), np.nan)
        micro = 2 * tp.sum(1) / (2 * tp.sum(1) + fp.sum(1) + fn.sum(1))
    in_f1, in_kappa = np.isfinite(f1[0]), np.isfinite(kappa[0])
    macro = _fixed_mean(np.where(in_f1 & np.isnan(f1), 0.0, f1), in_f1)
    mean_kappa = _fixed_mean(kappa, in_kappa)
    mean_auroc = _fixed_mean(aurocs, np.isfinite(aurocs[0]))

    def value(x: float) -> float | None:
        return None if not np.isfinite(x) else float(x)

    overall = pl.DataFrame(
        [(name, value(v[0]), *_interval(v[1:])) for name, v in
         (("macro_f1", macro), ("micro_f1", micro), ("subset_accuracy", subset), ("kappa", mean_kappa), ("auroc", mean_auroc))],
        schema={"metric": pl.String, "value": pl.Float64, "low": pl.Float64, "high": pl.Float64},
        orient="row",
    )  # fmt: skip
    per_class = pl.DataFrame(
        [(c, value(precision[0, j]), value(recall[0, j]), value(f1[0, j]), *_interval(f1[1:, j]), value(aurocs[0, j]),
          int(y[:, j].sum())) for j, c in enumerate(classes)],
        schema={"class": pl.String, "precision": pl.Float64, "recall": pl.Float64, "f1": pl.Float64,
                "f1_low": pl.Float64, "f1_high": pl.Float64, "auroc": pl.Float64, "support": pl.Int64},
        orient="row",
    )  # fmt: skip
    confusion = pl.DataFrame({"class": list(classes), **{name: m[0].astype(np.int64) for name, m in
                              (("tp", tp), ("fp", fp), ("fn", fn), ("tn", tn))}})  # fmt: skip
    names = np.asarray(classes, dtype=object)
    predictions = pl.DataFrame(
        {"gold": pl.Series([[c for c in names[r]] for r in y], dtype=pl.List(pl.String)),
         "predicted": pl.Series([[c for c in names[r]] for r in pred], dtype=pl.List(pl.String)),
         **{f"p_{c}": proba[:, j] for j, c in enumerate(classes)}, "group": groups}  # fmt: skip
    )
    return Report(n=len(gold), groups=len(np.unique(groups)), classes=tuple(classes), overall=overall,
                  per_class=per_class, confusion=confusion, calibration=_calibration(y, proba, classes),
                  predictions=predictions,
                  notes=() if resamples.enough or not boot else (_few_groups_note(resamples.n_groups),))  # fmt: skip


def evaluate(model: TextModel, frame: pl.DataFrame, *, text: str = "text", label: str = "label",
             context: str | None = None, group: str | None = None, rules: Sequence[str] = (),
             merge: Mapping[str, str] | None = None, boot: int = BOOTSTRAP, seed: int = 0) -> Report:  # fmt: skip
    """Score ``model`` on a labelled frame (a multi-label model: each class
    as its own binary task at the model's thresholds, :func:`multilabel_report`).
    Rows whose text or label is missing are left out, as :func:`~.model.fit`
    leaves them out (the report's ``n`` counts the rows scored); a missing
    text is not scored as an empty one."""
    if model.featurizer.spec.context and context is None:
        warnings.warn(f"{model.name} was fitted with the preceding turn as context; without context= it is scored "
                      "as if every text had none", stacklevel=2)  # fmt: skip
    frame = _classes_cased(frame, label, model.classes)
    data = training_data(frame, text=text, label=label, context=context, group=group, rules=rules, classes=model.classes)
    if data.task != model.task:
        raise InputError(f"a {model.task} model cannot be scored on {data.task} labels (column {label!r})")
    batch = _batch_of(model, data.texts, data.context, data.rules)
    proba = model.predict_proba(batch)
    if model.task == "multilabel":
        if merge:
            raise InputError("merge= folds the classes of a multi-class task; a multi-label report keeps every class")
        return multilabel_report(data.labels, proba, model.classes, thresholds=model.thresholds, groups=data.groups,
                                 boot=boot, seed=seed)  # fmt: skip
    return report(data.labels, proba, model.classes, groups=data.groups, merge=merge, boot=boot, seed=seed)


def _classes_cased(frame: pl.DataFrame, label: str, classes: Sequence[str]) -> pl.DataFrame:
    """``frame`` with labels that name a class but for case ("SuicideWatch"
    for the risk model's "suicidewatch") renamed to it; any other unknown
    label is left for :func:`~.model.training_data` to report."""
    if label not in frame.columns:
        return frame
    column = pl.col(label)
    if isinstance(frame.schema[label], pl.List):
        column = column.explode()
    found = frame.select(column.cast(pl.String).drop_nulls().unique())[label].to_list()
    folded: dict[str, list[str]] = {}
    for c in classes:
        folded.setdefault(c.lower(), []).append(c)
    mapping = {v: folded[v.lower()][0] for v in found if v not in classes and len(folded.get(v.lower(), ())) == 1}
    return rename_labels(frame, label, mapping)


def _refuse_labels_in_one_group(groups: np.ndarray, classes_of: Sequence[Sequence[Any] | None]) -> None:
    """Refuse a label whose items all sit in one group: only the fold that
    holds the group tests it, and that fold's model is trained without it,
    so it can never be predicted right (with two labels, that fold's fit
    has a single label and fails, naming the other one)."""
    group_ids = np.unique(groups, return_inverse=True)[1].reshape(-1)
    lengths = [len(v or ()) for v in classes_of]
    found = pl.DataFrame(
        {"label": pl.Series([str(c) for v in classes_of for c in v or ()], dtype=pl.String),  # evaluation only
         "group": np.repeat(group_ids, lengths)}  # fmt: skip
    )
    per_label = found.group_by("label").agg(pl.col("group").n_unique().alias("groups"), pl.len().alias("items"))
    alone = per_label.filter(pl.col("groups") < 2).sort("label")
    if alone.height:
        named = ", ".join(f"{lab!r} ({items} item(s), all in one group)" for lab, _, items in alone.head(5).iter_rows())
        named += f" and {alone.height - 5} more" if alone.height > 5 else ""
        raise InputError(f"cross-validation needs every label in at least 2 groups (one to train on, another to test; "
                         f"without a group column each row is one): {named}; label it in more groups, merge it into "
                         "another label or drop its rows")  # fmt: skip


def folds_of(groups: np.ndarray, labels: Sequence[Any], folds: int, seed: int = 0, *,
             classes_of: Sequence[Sequence[Any] | None] | None = None) -> np.ndarray:  # fmt: skip
    """A fold number per item; whole groups go to one fold, folds balanced
    by size and by label (scikit-learn's StratifiedGroupKFold). A label
    found in one group only is refused (InputError naming it); for a
    multi-label task ``labels`` are the strata (label sets) and
    ``classes_of`` each item's labels, which are what is checked."""
    from sklearn.model_selection import StratifiedGroupKFold

    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise InputError(f"folds must be a whole number of at least 2, got {folds!r}")
    n_groups = len(np.unique(groups))
    if n_groups < folds:
        raise InputError(f"{folds}-fold cross-validation needs at least {folds} groups, found {n_groups}")
    fold = np.empty(len(groups), dtype=np.int64)
    y = np.asarray([str(v) for v in labels], dtype=object)  # evaluation only
    values, counts = np.unique(y, return_counts=True)
    if counts.max() < folds:
        raise InputError(f"{folds}-fold cross-validation needs a label with at least {folds} items; the most frequent, "
                         f"{values[counts.argmax()]!r}, has {counts.max()} (use fewer folds)")  # fmt: skip
    _refuse_labels_in_one_group(groups, [[v] for v in y] if classes_of is None else classes_of)
    if counts.min() < folds:
        rarest = values[counts.argmin()]
        # A multi-label task's strata are label sets joined with "|" (cross_validate): name the set,
        # not a label "a|b" or "" that the data does not hold.
        what = f"label {rarest!r}" if classes_of is None else f"label set {rarest.replace('|', ' + ') or '(no label)'}"
        warnings.warn(f"{what} has {counts.min()} item(s), fewer than the {folds} folds: some folds cannot test it",
                      stacklevel=3)  # fmt: skip
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # said above in our words, once
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(groups)), y, groups)):
            fold[test] = k
    return fold


def cross_validate(frame: pl.DataFrame, *, text: str = "text", label: str = "label", context: str | None = None,
                   group: str | None = None, folds: int = 5, seed: int = 0, merge: Mapping[str, str] | None = None,
                   boot: int = BOOTSTRAP, progress: bool = False, workers: int | None = None,
                   **fit_options: Any) -> Report:  # fmt: skip
    """``folds``-fold cross-validation split by ``group`` (each row its own
    group without one); ``fit_options`` go to :func:`~.model.fit`. The
    report's ``predictions`` hold every item's out-of-fold probabilities.
    ``workers``: folds fitted at once in separate processes (default: the
    CPU count, at most ``folds``; 1 fits them here, one after another). The
    folds are independent, so the figures do not depend on it."""
    rules = fit_options.get("rules", ())
    _check_options(fit_options.get("c", 1.0), fit_options.get("class_weight", "balanced"))  # before any fold is fitted
    data = training_data(frame, text=text, label=label, context=context, group=group, rules=rules, classes=fit_options.get("classes"))
    if data.task == "multilabel" and merge:
        raise InputError("merge= folds the classes of a multi-class task; a multi-label report keeps every class")
    frame = frame.filter(pl.col(text).is_not_null() & pl.col(label).is_not_null())
    groups = data.groups if data.groups is not None else np.arange(frame.height)
    # Multi-label rows are stratified by their sorted set of labels.
    strata = data.labels if data.task == "multiclass" else ["|".join(sorted(v or ())) for v in data.labels]
    fold = folds_of(groups, strata, folds, seed, classes_of=data.labels if data.task == "multilabel" else None)
    proba = np.zeros((frame.height, len(data.classes)))
    from ..progress import progress_bar

    options = dict(fit_options)
    options["classes"] = data.classes
    workers = max(1, min(folds, workers if workers is not None else (os.cpu_count() or 1)))
    jobs = [(frame, fold == k, text, label, context, rules, options) for k in range(folds)]
    if workers == 1:
        done = map(_fold_proba, *zip(*jobs, strict=True))
    else:
        # Fitting is most of the time and mostly single-threaded (lbfgs in
        # Python between sparse products): one process per fold.
        from joblib import Parallel, delayed

        done = Parallel(n_jobs=workers, return_as="generator")(delayed(_fold_proba)(*job) for job in jobs)
    with progress_bar(folds, "cross-validate", enabled=progress, iterable=done) as bar:
        for k, fold_proba in enumerate(bar):
            proba[fold == k] = fold_proba
    if data.task == "multilabel":
        # Each fold's model keeps the default 0.5 thresholds unless fit_options give others.
        done_report = multilabel_report(data.labels, proba, data.classes, thresholds=_cv_thresholds(fit_options, data.classes),
                                        groups=groups, boot=boot, seed=seed)  # fmt: skip
    else:
        done_report = report(data.labels, proba, data.classes, groups=groups, merge=merge, boot=boot, seed=seed)
    # Each item's fold, so a step tuned on the predictions (thresholds) can
    # be scored the honest way: tuned on the other folds, applied to its own.
    return replace(done_report, predictions=done_report.predictions.with_columns(fold=pl.Series(fold, dtype=pl.Int32)))


def _cv_thresholds(fit_options: Mapping[str, Any], classes: Sequence[str]) -> np.ndarray | None:
    given = fit_options.get("thresholds")
    if given is None:
        return None
    if isinstance(given, Mapping):
        return np.array([float(given.get(c, 0.5)) for c in classes])
    return np.asarray(given, dtype=np.float64)


def _fold_proba(frame: pl.DataFrame, held_out: np.ndarray, text: str, label: str, context: str | None,
                rules: Sequence[str], options: dict[str, Any]) -> np.ndarray:  # fmt: skip
    """The held-out rows' probabilities from a model fitted on the others."""
    model = fit(frame.filter(~held_out), text=text, label=label, context=context, **options)
    sub = frame.filter(held_out)
    ctx = sub[context] if context else None
    rule_matrix = sub.select([pl.col(r).cast(pl.Float64).fill_null(0.0) for r in rules]).to_numpy() if rules else None
    return model.predict_proba(_batch_of(model, sub[text], ctx, rule_matrix))

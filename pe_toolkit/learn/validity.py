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

Point figures come from :func:`pe_toolkit.analysis.evaluate`, the project's
one implementation of agreement statistics; the bootstrap reweights the
same confusion matrix per resample (a loop over resamples, not items).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    confusion: pl.DataFrame  # gold x predicted
    calibration: pl.DataFrame  # class, bin, n, predicted, observed
    predictions: pl.DataFrame = field(repr=False)  # per item: gold, predicted, p_<class>, group

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

        lines = [f"n={self.n} ({self.groups} groups)"]
        for metric, value, low, high in self.overall.iter_rows():
            lines.append(f"  {metric:<10}{f(value)}  [{f(low)}, {f(high)}]")
        lines.append(f"  {'class':<26}{'prec':>7}{'recall':>7}{'f1':>7}  {'95% CI':<17}{'auroc':>7}{'n':>6}")
        for cls, p, r, f1, lo, hi, au, n in self.per_class.iter_rows():
            lines.append(f"  {cls:<26}{f(p):>7}{f(r):>7}{f(f1):>7}  [{f(lo)}, {f(hi)}]{f(au):>7}{n:>6}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "groups": self.groups,
            "overall": self.overall.to_dicts(),
            "per_class": self.per_class.to_dicts(),
        }


def _group_weights(groups: np.ndarray, boot: int, seed: int) -> np.ndarray:
    """(boot x items) weights: how often each item's group was drawn."""
    codes, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(codes), size=(boot, len(codes)))
    counts = np.zeros((boot, len(codes)))
    for b in range(boot):  # one bincount per resample
        counts[b] = np.bincount(draws[b], minlength=len(codes))
    return counts[:, inverse]


def _weighted_auroc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC per row of ``weights`` (ties count one half)."""
    _, rank = np.unique(scores, return_inverse=True)
    k = int(rank.max()) + 1 if len(rank) else 0
    out = np.full(len(weights), np.nan)
    for b, w in enumerate(weights):  # one pass of bincounts per resample
        pos = np.bincount(rank[y], weights=w[y], minlength=k)
        neg = np.bincount(rank[~y], weights=w[~y], minlength=k)
        wp, wn = pos.sum(), neg.sum()
        if wp > 0 and wn > 0:
            below = np.cumsum(neg) - neg
            out[b] = float((pos * (below + 0.5 * neg)).sum() / (wp * wn))
    return out


def _interval(values: np.ndarray) -> tuple[float | None, float | None]:
    v = values[~np.isnan(values)]
    if not len(v):
        return None, None
    a = (1 - LEVEL) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))


def auroc_interval(scores: np.ndarray, positive: np.ndarray, groups: np.ndarray | None = None, *, boot: int = BOOTSTRAP,
                   seed: int = 0) -> tuple[float | None, float | None, float | None]:  # fmt: skip
    """(AUROC, low, high) of ``scores`` for the boolean ``positive``."""
    y = np.asarray(positive, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        return None, None, None
    point = _weighted_auroc(s, y, np.ones((1, len(s))))[0]
    g = np.arange(len(s)) if groups is None else np.asarray(groups)
    low, high = _interval(_weighted_auroc(s, y, _group_weights(g, boot, seed)))
    return float(point), low, high


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
    weights = _group_weights(groups, boot, seed)
    acc, macro, kap = np.empty(boot), np.empty(boot), np.empty(boot)
    f1s = np.full((boot, k), np.nan)
    for b in range(boot):  # one weighted confusion matrix per resample
        conf = np.bincount(gi * k + pi, weights=weights[b], minlength=k * k).reshape(k, k)
        n = conf.sum()
        tp = np.diag(conf)
        denom = conf.sum(axis=0) + conf.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(denom > 0, 2 * tp / denom, np.nan)
        f1s[b] = f
        acc[b] = tp.sum() / n
        macro[b] = np.nanmean(f) if np.isfinite(f).any() else np.nan
        expected = (conf.sum(axis=1) @ conf.sum(axis=0)) / n
        kap[b] = (tp.sum() - expected) / (n - expected) if n != expected else np.nan
    aurocs = []
    class_auroc: dict[str, tuple[float | None, float | None, float | None]] = {}
    for j, c in enumerate(cls):
        y = gi == j
        if y.all() or not y.any():
            class_auroc[c] = (None, None, None)
            continue
        per = _weighted_auroc(p[:, j], y, weights)
        aurocs.append(per)
        class_auroc[c] = (_weighted_auroc(p[:, j], y, np.ones((1, len(y))))[0], *_interval(per))
    macro_auroc = np.nanmean(np.vstack(aurocs), axis=0) if aurocs else np.full(boot, np.nan)
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
    )


def multilabel_report(gold: Sequence[Sequence[str] | None], proba: np.ndarray, classes: Sequence[str], *,
                      thresholds: np.ndarray | None = None, groups: np.ndarray | None = None, boot: int = BOOTSTRAP,
                      seed: int = 0) -> Report:  # fmt: skip
    """A :class:`Report` for a multi-label task: each class is its own binary
    task (present or not; predicted when its probability reaches its
    threshold, default 0.5). ``overall``: macro-F1 (mean over classes),
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
    pred = proba >= cut
    groups = np.arange(len(gold)) if groups is None else np.asarray(groups)
    weights = np.vstack([np.ones(len(gold)), _group_weights(groups, boot, seed)])  # row 0: the point figures
    tp, fp = weights @ (y & pred), weights @ (~y & pred)
    fn, tn = weights @ (y & ~pred), weights @ (~y & ~pred)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        total = tp + fp + fn + tn
        expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / total
        kappa = np.where(total != expected, ((tp + tn) - expected) / (total - expected), np.nan)
        micro = 2 * tp.sum(1) / (2 * tp.sum(1) + fp.sum(1) + fn.sum(1))
        macro = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in f1])
        mean_kappa = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in kappa])
    subset = (weights @ (y == pred).all(axis=1)) / weights.sum(axis=1)
    aurocs = np.full((len(weights), k), np.nan)
    for j in range(k):  # one AUROC per class (a handful)
        if y[:, j].any() and not y[:, j].all():
            aurocs[:, j] = _weighted_auroc(proba[:, j], y[:, j], weights)
    with np.errstate(invalid="ignore"):
        mean_auroc = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in aurocs])

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
                  predictions=predictions)  # fmt: skip


def evaluate(model: TextModel, frame: pl.DataFrame, *, text: str = "text", label: str = "label",
             context: str | None = None, group: str | None = None, rules: Sequence[str] = (),
             merge: Mapping[str, str] | None = None, boot: int = BOOTSTRAP, seed: int = 0) -> Report:  # fmt: skip
    """Score ``model`` on a labelled frame (a multi-label model: each class
    as its own binary task at the model's thresholds, :func:`multilabel_report`)."""
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


def folds_of(groups: np.ndarray, labels: Sequence[Any], folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per item; whole groups go to one fold, folds balanced
    by size and by label (scikit-learn's StratifiedGroupKFold)."""
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
    if counts.min() < folds:
        warnings.warn(f"label {values[counts.argmin()]!r} has {counts.min()} item(s), fewer than the {folds} folds: "
                      "some folds cannot test it", stacklevel=3)  # fmt: skip
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
    fold = folds_of(groups, strata, folds, seed)
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
        return multilabel_report(data.labels, proba, data.classes, thresholds=_cv_thresholds(fit_options, data.classes),
                                 groups=groups, boot=boot, seed=seed)  # fmt: skip
    return report(data.labels, proba, data.classes, groups=groups, merge=merge, boot=boot, seed=seed)


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

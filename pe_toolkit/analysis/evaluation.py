"""``evaluate(predicted, gold)``: how well labels (or scores) agree with gold labels.

Reported:

- ``accuracy``: share of items where predicted equals gold;
- per class: precision, recall, F1 and support (gold count);
- ``macro_f1``: mean F1 over the classes present in gold or predictions;
- ``kappa``: Cohen's kappa, (p_o - p_e) / (1 - p_e), chance agreement from
  the two marginal distributions (None when both sides use one same label,
  one item included: chance agreement is then total and kappa 0/0);
- ``weighted_kappa``: quadratic-weighted kappa over ``labels`` in order,
  meaningful for ordinal labels such as tiers;
- ``auroc``: area under the ROC curve by the Mann-Whitney rank statistic
  (ties count one half). Binary gold: from ``scores`` (higher means the
  positive class) or, without scores, from the hard predictions (then it
  equals balanced accuracy). Multi-class: one-vs-rest macro average from
  ``scores`` given as ``{label: per-item scores}``; None without scores.
  None when a class has no positive or no negative item.

Vectorized with polars and numpy; no per-item Python loop.

``agreement(store, task)`` applies it to the labels reviewers stored
(:mod:`pe_toolkit.store.annotations`): Cohen's kappa per reviewer pair.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ..errors import InputError
from ..store import Store
from ..store.annotations import labels


@dataclass(frozen=True)
class ClassScores:
    precision: float | None
    recall: float | None
    f1: float | None
    support: int


@dataclass(frozen=True)
class Evaluation:
    n: int
    labels: tuple[Any, ...]
    accuracy: float
    macro_f1: float
    kappa: float | None
    weighted_kappa: float | None
    auroc: float | None
    per_class: dict[Any, ClassScores]
    confusion: pl.DataFrame = field(repr=False)  # gold label x predicted label counts; first column "gold" (confusion_index)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "kappa": self.kappa,
            "weighted_kappa": self.weighted_kappa,
            "auroc": self.auroc,
            "per_class": {str(k): vars(v) for k, v in self.per_class.items()},
        }

    def __str__(self) -> str:
        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        # The class column as wide as the longest name (a long one pushed
        # its row's figures out of their columns).
        cw = max([16, *(len(str(label)) + 2 for label in self.per_class)])
        sw = max([9, *(len(str(s.support)) + 2 for s in self.per_class.values())])
        lines = [
            f"n={self.n}  accuracy={f(self.accuracy)}  macro_f1={f(self.macro_f1)}  kappa={f(self.kappa)}  "
            f"weighted_kappa={f(self.weighted_kappa)}  auroc={f(self.auroc)}",
            f"{'class':<{cw}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>{sw}}",
        ]
        for label, s in self.per_class.items():
            lines.append(f"{label!s:<{cw}}{f(s.precision):>10}{f(s.recall):>10}{f(s.f1):>10}{s.support:>{sw}}")
        return "\n".join(lines)


def _kind(dtype: Any) -> str:
    """What a label column holds, as a reader names it: 1 and "1" are
    different kinds (so are True and 1, equal in Python)."""
    if dtype == pl.Boolean:
        return "booleans"
    if dtype.is_numeric():
        return "numbers"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "strings"
    return str(dtype)


def _value_kind(value: Any) -> str:
    return _kind(pl.Series([value]).dtype)


def _mixed(values: list[Any], what: str) -> InputError:
    """The error for labels of different kinds (the values of an error
    path: a Python pass over them is fine)."""
    by_kind: dict[str, list[Any]] = {}
    for v in values:
        if v is not None:
            by_kind.setdefault(_value_kind(v), []).append(v)
    named = "; ".join(f"{k}: {', '.join(map(repr, list(dict.fromkeys(vs))[:3]))}" for k, vs in by_kind.items())
    return InputError(f"{what} holds labels of different types ({named}); 1 and '1' would be two classes or one "
                      "by accident: convert them to one type first")  # fmt: skip


def _series(values: Any, name: str) -> pl.Series:
    if isinstance(values, pl.Series):
        out = values.rename(name)
    else:
        listed = values if isinstance(values, np.ndarray) else list(values)
        try:
            out = pl.Series(name, listed)
        except TypeError:
            # Whole and decimal numbers together (ratings 1, 1.5, 2) are one
            # kind: numbers, as floats.
            if {_value_kind(v) for v in listed if v is not None} == {"numbers"}:
                out = pl.Series(name, listed, dtype=pl.Float64, strict=False)
            else:
                raise _mixed(list(listed), name) from None
    if out.dtype == pl.Object:
        raise _mixed(out.to_list(), name)
    if out.null_count():
        raise InputError(f"{name} has {out.null_count()} missing value(s)")
    return out


def auroc(scores: Any, positive: Any) -> float | None:
    """AUROC of ``scores`` for the boolean ``positive`` (rank statistic, ties = 1/2)."""
    s = _series(scores, "scores").cast(pl.Float64)
    y = _series(positive, "positive").cast(pl.Boolean)
    if len(s) != len(y):
        raise InputError(f"scores has {len(s)} values, labels {len(y)}")
    if s.is_nan().any():
        raise InputError("scores contain NaN")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = s.rank("average").to_numpy()
    rank_sum = float(ranks[y.to_numpy()].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _kappa(confusion: np.ndarray, weights: np.ndarray) -> float | None:
    n = confusion.sum()
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / n
    denom = float((weights * expected).sum())
    observed = float((weights * confusion).sum())
    if denom == 0:
        # Chance disagreement is zero (both sides use one same label, e.g. a
        # single item): kappa is 0/0, undefined. Reporting 1.0 read as perfect
        # agreement on what is no evidence at all.
        return None
    return 1.0 - observed / denom


def evaluate(
    predicted: Sequence[Any] | pl.Series | np.ndarray,
    gold: Sequence[Any] | pl.Series | np.ndarray,
    *,
    labels: Sequence[Any] | None = None,
    scores: Sequence[float] | pl.Series | np.ndarray | Mapping[Any, Any] | None = None,
    positive: Any = None,
) -> Evaluation:
    """Compare ``predicted`` with ``gold`` (see the module docstring).

    ``labels``: the classes in order (default: sorted union of both sides;
    the order matters for ``weighted_kappa``). ``positive``: the positive
    class of a binary task (default: the last label, e.g. True). Labels of
    different types (1 and "1", True and 1) on the two sides, within one
    side or in ``labels`` are an :class:`InputError` naming the clash.
    """
    pred = _series(predicted, "predicted")
    truth = _series(gold, "gold")
    if len(pred) != len(truth):
        raise InputError(f"predicted has {len(pred)} items, gold {len(truth)}")
    if not len(truth):
        raise InputError("nothing to evaluate: no items")
    _check_kinds(pred, truth, labels)
    found = sorted(set(pred.to_list()) | set(truth.to_list()), key=lambda v: (str(type(v)), v))
    classes = list(labels) if labels is not None else found
    unknown = set(found) - set(classes)
    if unknown:
        raise InputError(f"label(s) not in labels: {', '.join(map(repr, sorted(unknown, key=str)[:5]))}")
    k = len(classes)
    code = {label: i for i, label in enumerate(classes)}
    if pred.dtype.is_numeric() and truth.dtype.is_numeric():
        # Numbers compare as numbers (1 == 1.0) on both sides and in labels.
        pred, truth = pred.cast(pl.Float64), truth.cast(pl.Float64)
        keys = pl.Series(list(code), dtype=pl.Float64, strict=False)
    else:
        keys = pl.Series(list(code))
    p_idx = pred.replace_strict(keys, list(code.values()), return_dtype=pl.Int64).to_numpy()
    g_idx = truth.replace_strict(keys, list(code.values()), return_dtype=pl.Int64).to_numpy()
    confusion = np.bincount(g_idx * k + p_idx, minlength=k * k).reshape(k, k)
    n = int(confusion.sum())
    tp = np.diag(confusion).astype(float)
    gold_count = confusion.sum(axis=1)
    pred_count = confusion.sum(axis=0)
    per_class: dict[Any, ClassScores] = {}
    f1s = []
    for i, label in enumerate(classes):
        precision = tp[i] / pred_count[i] if pred_count[i] else None
        recall = tp[i] / gold_count[i] if gold_count[i] else None
        if gold_count[i] or pred_count[i]:
            f1 = 2 * tp[i] / (gold_count[i] + pred_count[i])
            f1s.append(f1)
        else:
            f1 = None
        per_class[label] = ClassScores(precision, recall, f1, int(gold_count[i]))
    idx = np.arange(k)
    kappa = _kappa(confusion, 1.0 - np.eye(k))
    weighted = _kappa(confusion, ((idx[:, None] - idx[None, :]) / max(k - 1, 1)) ** 2) if k > 1 else None

    area: float | None = None
    if isinstance(scores, Mapping):
        areas = [auroc(scores[label], g_idx == code[label]) for label in classes if label in scores]
        valid = [a for a in areas if a is not None]
        area = float(np.mean(valid)) if valid else None
    elif k == 2:
        pos = positive if positive is not None else classes[-1]
        if pos not in code:
            raise InputError(f"positive class {pos!r} is not a label")
        truth_pos = g_idx == code[pos]
        area = auroc(scores if scores is not None else (p_idx == code[pos]).astype(float), truth_pos)
    elif scores is not None:
        raise InputError("multi-class AUROC needs scores as {label: scores}")

    return Evaluation(
        n=n,
        labels=tuple(classes),
        accuracy=float(tp.sum() / n),
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        kappa=kappa,
        weighted_kappa=weighted,
        auroc=area,
        per_class=per_class,
        confusion=pl.DataFrame({confusion_index(classes): [str(c) for c in classes],
                                **{str(c): confusion[:, j] for j, c in enumerate(classes)}}),  # fmt: skip
    )


def _check_kinds(pred: pl.Series, truth: pl.Series, labels: Sequence[Any] | None) -> None:
    """Refuse gold and predicted labels of different types (a model's "1"
    against gold 1, True against 1): they were counted as one class or as
    two by accident. Names the labels that clash, those equal as text."""
    kinds = {"predicted": _kind(pred.dtype), "gold": _kind(truth.dtype)}
    if labels is not None:
        listed = list(labels)
        kinds_of_labels = {_value_kind(v) for v in listed}
        if len(kinds_of_labels) > 1:
            raise _mixed(listed, "labels")
        if kinds_of_labels:
            kinds["labels"] = kinds_of_labels.pop()
    if len(set(kinds.values())) < 2:
        return
    sides = {"predicted": pred, "gold": truth}
    if labels is not None:
        sides["labels"] = pl.Series("labels", list(labels))
    distinct = {side: values.unique(maintain_order=True) for side, values in sides.items()}
    # The clash a reader looks for: values that print the same (1 and "1").
    as_text = [v.cast(pl.String).rename("text") for v in distinct.values()]
    same = set(as_text[0].to_list())
    for t in as_text[1:]:
        same &= set(t.to_list())
    if same:
        example = sorted(same)[0]
        clash = " and ".join(f"{distinct[side].filter(as_text[i] == example)[0]!r} ({side})"
                             for i, side in enumerate(distinct))  # fmt: skip
        clash = f"; they clash on {clash}"
    else:
        clash = "; for example " + " and ".join(f"{distinct[side][0]!r} ({side})" for side in distinct)
    grouped: dict[str, list[str]] = {}
    for side, kind in kinds.items():
        grouped.setdefault(kind, []).append("labels=" if side == "labels" else side)
    described = ", ".join(f"{' and '.join(sides_)} {'hold' if len(sides_) > 1 or sides_[0] == 'labels=' else 'holds'} {kind}"
                          for kind, sides_ in grouped.items())  # fmt: skip
    raise InputError(f"{described}{clash}; labels of different types are different classes by accident (1 is not "
                     "'1'): convert one side, such as pl.Series(values).cast(pl.String)")  # fmt: skip


def confusion_index(classes: Sequence[Any]) -> str:
    """The name of the confusion table's first column, the gold labels:
    ``gold``, unless a class is named so (its column of counts replaced the
    labels), then ``gold_label`` (with more underscores while a class has
    that name too)."""
    names = {str(c) for c in classes}
    name = "gold"
    if name in names:
        name = "gold_label"
        while name in names:
            name += "_"
    return name


def agreement(store: Store, task: str = "review", *, ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Cohen's kappa for every pair of reviewers of ``task``, over the items
    (conversation, message) both labelled, per level (labels of whole
    conversations and of single messages are different items): columns
    ``reviewer_a, reviewer_b, level, items, agreement`` (raw share of equal
    labels) and ``kappa``."""
    frame = labels(store, task, ids=ids).select("reviewer", "conversation_id", "message_idx", "label")
    rows = []
    reviewers = sorted(frame["reviewer"].unique().to_list())
    for a, b in itertools.combinations(reviewers, 2):  # reviewer pairs: a handful, not a hot path
        both = (
            frame.filter(pl.col("reviewer") == a)
            .join(
                frame.filter(pl.col("reviewer") == b),
                on=["conversation_id", "message_idx"],
                how="inner",
                nulls_equal=True,
                suffix="_b",
            )
        )
        for level, pairs in (("conversation", both.filter(pl.col("message_idx").is_null())),
                             ("message", both.filter(pl.col("message_idx").is_not_null()))):  # fmt: skip
            if pairs.height == 0:
                continue
            rows.append(
                {
                    "reviewer_a": a,
                    "reviewer_b": b,
                    "level": level,
                    "items": pairs.height,
                    "agreement": float(pairs.select((pl.col("label") == pl.col("label_b")).mean()).item()),
                    "kappa": evaluate(pairs["label_b"], pairs["label"]).kappa,
                }
            )
    return pl.DataFrame(
        rows,
        schema={"reviewer_a": pl.String, "reviewer_b": pl.String, "level": pl.String, "items": pl.Int64, "agreement": pl.Float64,
                "kappa": pl.Float64},  # fmt: skip
    )

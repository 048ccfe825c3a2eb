"""evaluate(): agreement statistics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from pe_toolkit.analysis import evaluate
from pe_toolkit.analysis.evaluation import auroc
from pe_toolkit.errors import InputError


def test_cohens_kappa_textbook_example():
    # 50 items: both "yes" 20, A yes / B no 5, A no / B yes 10, both "no" 15:
    # p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4.
    gold = ["yes"] * 25 + ["no"] * 25
    pred = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    e = evaluate(pred, gold)
    assert e.kappa == pytest.approx(0.4)
    assert e.accuracy == pytest.approx(0.7)
    # yes: precision 20/30, recall 20/25; no: precision 15/20, recall 15/25
    assert e.per_class["yes"].precision == pytest.approx(2 / 3)
    assert e.per_class["yes"].recall == pytest.approx(0.8)
    assert e.per_class["no"].precision == pytest.approx(0.75)
    assert e.per_class["no"].recall == pytest.approx(0.6)
    f1_yes = 2 * (2 / 3) * 0.8 / (2 / 3 + 0.8)
    f1_no = 2 * 0.75 * 0.6 / 1.35
    assert e.macro_f1 == pytest.approx((f1_yes + f1_no) / 2)
    # Hard predictions: AUROC equals balanced accuracy (0.8 + 0.6) / 2.
    assert e.auroc == pytest.approx(0.7)
    assert e.per_class["yes"].support == 25


def test_multiclass_per_class_and_macro_f1():
    gold = ["a", "a", "b", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "c", "c"]
    e = evaluate(pred, gold)
    assert e.accuracy == pytest.approx(4 / 6)
    assert e.per_class["a"].precision == 1.0 and e.per_class["a"].recall == 0.5
    assert e.per_class["b"].precision == pytest.approx(2 / 3) and e.per_class["b"].recall == pytest.approx(2 / 3)
    assert e.per_class["c"].precision == 0.5 and e.per_class["c"].recall == 1.0
    f1 = [2 / 3, 2 / 3, 2 / 3]  # a: 2*1*.5/1.5, b: 2/3, c: 2*.5*1/1.5
    assert e.macro_f1 == pytest.approx(np.mean(f1))
    # p_o = 4/6; marginals gold (2,3,1), pred (1,3,2): p_e = (2+9+2)/36
    pe = 13 / 36
    assert e.kappa == pytest.approx((4 / 6 - pe) / (1 - pe))
    assert e.auroc is None  # multi-class without scores
    assert e.confusion.filter(pl.col("gold") == "b")["c"].item() == 1


def test_auroc_rank_statistic_with_ties():
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    # One tie between a positive and a negative counts one half: pairs (p, n):
    # (0.5, 0.2) 1, (0.5, 0.5) 0.5, (0.9, 0.2) 1, (0.9, 0.5) 1 -> 3.5 / 4
    assert auroc([0.2, 0.5, 0.5, 0.9], [False, False, True, True]) == pytest.approx(3.5 / 4)
    assert auroc([0.3, 0.2], [True, True]) is None


def test_binary_scores_and_positive_class():
    gold = [True, False, True, False, True]
    scores = [0.9, 0.8, 0.7, 0.1, 0.6]
    e = evaluate([s > 0.5 for s in scores], gold, scores=scores)
    # positives 0.9, 0.7, 0.6 vs negatives 0.8, 0.1: pairs won 2 + 1 + 1 = 4 of 6
    assert e.auroc == pytest.approx(4 / 6)
    flipped = evaluate([s > 0.5 for s in scores], gold, scores=[-s for s in scores], positive=False)
    assert flipped.auroc == pytest.approx(4 / 6)


def test_multiclass_auroc_one_vs_rest():
    gold = ["a", "b", "b", "c"]
    scores = {"a": [0.9, 0.1, 0.2, 0.5], "b": [0.05, 0.8, 0.3, 0.2], "c": [0.05, 0.1, 0.5, 0.3]}
    e = evaluate(["a", "b", "c", "a"], gold, scores=scores)
    # a: 1.0; b: positives .8,.3 vs .05,.2 -> 1.0; c: .3 vs .05,.1,.5 -> 2/3
    assert e.auroc == pytest.approx((1 + 1 + 2 / 3) / 3)


def test_weighted_kappa_rewards_near_misses_on_ordinal_labels():
    tiers = ["basic", "standard", "professional"]
    gold = ["basic", "standard", "professional"] * 10
    near = ["standard", "professional", "professional"] * 10
    far = ["professional", "basic", "basic"] * 10
    assert evaluate(near, gold, labels=tiers).weighted_kappa > evaluate(far, gold, labels=tiers).weighted_kappa


def test_perfect_and_single_label_agreement():
    e = evaluate(["x", "y", "x"], ["x", "y", "x"])
    assert e.accuracy == e.macro_f1 == e.kappa == e.auroc == 1.0
    # one same label on both sides: chance agreement is total, kappa 0/0 is undefined
    assert evaluate(["x", "x"], ["x", "x"]).kappa is None


def test_bad_input_is_an_input_error():
    with pytest.raises(InputError, match="3 items, gold 2"):
        evaluate([1, 2, 3], [1, 2])
    with pytest.raises(InputError, match="missing"):
        evaluate([1, None], [1, 2])
    with pytest.raises(InputError, match="not in labels"):
        evaluate(["a", "z"], ["a", "b"], labels=["a", "b"])
    with pytest.raises(InputError, match="no items"):
        evaluate([], [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("abc")), min_size=1, max_size=60))
def test_matches_a_direct_count(pairs):
    pred, gold = zip(*pairs, strict=True)
    e = evaluate(list(pred), list(gold))
    assert e.accuracy == pytest.approx(sum(p == g for p, g in pairs) / len(pairs))
    for label, s in e.per_class.items():
        tp = sum(p == g == label for p, g in pairs)
        predicted = sum(p == label for p in pred)
        assert s.support == sum(g == label for g in gold)
        assert s.precision == (pytest.approx(tp / predicted) if predicted else None)
    assert e.kappa is None or -1.0 - 1e-9 <= e.kappa <= 1.0 + 1e-9


def test_labels_of_different_types_are_refused_naming_the_clash():
    """1 and "1" were one class or two by accident (a TypeError from polars
    on the way, or numpy's silent cast); gold and predictions of different
    types are an InputError naming the labels that clash."""
    with pytest.raises(InputError, match=r"predicted holds numbers, gold holds strings; they clash on 1 \(predicted\) and '1' \(gold\)"):
        evaluate([1, 2, 1], ["1", "2", "2"])
    with pytest.raises(InputError, match="clash on 1"):
        evaluate(pl.Series([1, 2]), pl.Series(["1", "2"]))
    with pytest.raises(InputError, match=r"booleans.*numbers"):
        evaluate([True, False], [1, 0])  # True == 1 in Python: one class by accident
    with pytest.raises(InputError, match=r"predicted holds labels of different types \(numbers: 1; strings: '1'\)"):
        evaluate([1, "1"], ["1", "1"])
    with pytest.raises(InputError, match="labels= hold numbers"):
        evaluate(["1", "2"], ["1", "2"], labels=[1, 2])
    # one type on both sides is fine, ints and floats alike
    assert evaluate([1, 2], [1.0, 2.0]).accuracy == 1.0
    assert evaluate(np.array([1, 2]), [1, 2], labels=[1, 2]).accuracy == 1.0


def test_whole_and_decimal_numbers_are_one_kind():
    """Half-point ratings (1, 1.5, 2) in one list were refused as "different
    types (numbers: 1, 2.5)", and labels=[1, 2.0] ended in polars' TypeError."""
    ev = evaluate([1, 2.5, 1], [1, 2.5, 2.5])
    assert ev.accuracy == pytest.approx(2 / 3) and set(ev.per_class) == {1, 2.5}
    assert evaluate([1, 2, 1], [1, 2, 2], labels=[1, 2.0]).accuracy == pytest.approx(2 / 3)
    assert evaluate([1, 1.5, 2], [1, 1.5, 2]).accuracy == 1.0


def _ends_of_columns(line: str) -> list[int]:
    """Where each blank-separated field of a table line ends."""
    import re

    return [m.end() for m in re.finditer(r"\S+(?: \S+)*", line.replace("[", " ").replace(",", " ").replace("]", " "))]


def test_printed_table_lines_up_with_long_class_names():
    """A class name longer than the class column pushed its row's figures
    out from under their headers; every column ends where its header does."""
    long = "a_class_name_much_longer_than_the_column_was"
    e = evaluate([long, "b", long, "b"], [long, "b", "b", "b"])
    header, *rows = str(e).splitlines()[1:]
    ends = _ends_of_columns(header)[1:]  # the right-aligned figure columns
    for row in rows:
        assert _ends_of_columns(row)[1:] == ends, str(e)

"""Defects of the learned layer found by an audit, each pinned on real parts:
model files and DuckDB caches in tmp_path, CSV files written here, the real
CLI (no mocks)."""

from __future__ import annotations

import dataclasses
import stat
import tracemalloc

import numpy as np
import orjson
import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit.analysis import ModelAnalyzer
from pe_toolkit.analysis.pipeline import analyze
from pe_toolkit.cli import cli
from pe_toolkit.errors import AnalysisError, InputError
from pe_toolkit.ingest import import_file
from pe_toolkit.learn import cross_validate, evaluate, fit, load, load_shipped, multilabel_report, save
from pe_toolkit.learn.features import FeatureSpec
from pe_toolkit.learn.validity import MIN_GROUPS, auroc_interval, report
from pe_toolkit.store import Store
from pe_toolkit.store.annotations import annotate

from .test_learn import toy


def _one_line_error(result, *needles):
    """The CLI's contract for an expected failure: exit 1, one line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.output.startswith("pe-toolkit: error: ") and result.output.count("\n") == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output


def _csv(tmp_path, frame: pl.DataFrame, name: str = "labels.csv"):
    path = tmp_path / name
    frame.write_csv(path)
    return path


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------- 1: the model file is private
def test_a_saved_model_is_readable_by_its_owner_only(tmp_path):
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    path = save(model, tmp_path / "m")
    assert _mode(path) == 0o600
    path.chmod(0o644)  # replacing a readable older file leaves an owner-only one
    assert _mode(save(model, path)) == 0o600
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    out = tmp_path / "cli.pemodel"
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(_csv(tmp_path, pl.concat([toy()] * 3))), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert _mode(out) == 0o600


def test_the_shipped_models_are_still_written_readable_by_all(tmp_path):
    # Public data, installed for every user: the recipes ask for 644.
    assert _mode(save(load_shipped("skills"), tmp_path / "skills", mode=0o644)) == 0o644


def test_cli_fit_refuses_min_df_1_with_word_pairs_unless_allowed(tmp_path):
    data = _csv(tmp_path, pl.concat([toy()] * 3))
    out = tmp_path / "m.pemodel"
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(data), "--out", str(out), "--min-df", "1"])
    _one_line_error(r, "--min-df 1 stores the words and sentence openings", "--allow-rare-ngrams")
    assert not out.exists()
    once = tmp_path / "once.csv"  # a word pair found in one text only
    pl.concat([toy(), pl.DataFrame({"text": ["Maria Kowalska cried"], "label": ["sad"], "group": [99]})]).write_csv(once)
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(once), "--out", str(out), "--min-df", "1", "--allow-rare-ngrams", "--force"])
    assert r.exit_code == 0, r.output
    model = load(out)
    assert "maria kowalska" in model.featurizer.feature_names()  # what the card warns of
    assert "min_df 1" in model.card["privacy"] and "Do not share it unless the texts are public" in model.card["privacy"]
    assert r.stderr.splitlines() == [f"pe-toolkit: warning: {out} holds words and sentence openings of single training texts "
                                     "(--min-df 1): do not share it unless the texts are public"]  # fmt: skip


def test_cli_fit_refuses_min_df_1_with_single_words_too(tmp_path):
    # Before: --ngrams 1 --min-df 1 was accepted as "single words only", yet
    # the sentence features keep each sentence's first two words: the model
    # file held the opening of a sentence written once ('s2:maria kowalska')
    # and the card said nothing of it.
    once = tmp_path / "once.csv"
    pl.concat([toy()] * 3 + [pl.DataFrame({"text": ["Maria Kowalska cried"], "label": ["sad"], "group": [99]})]).write_csv(once)
    out = tmp_path / "m.pemodel"
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(once), "--out", str(out), "--min-df", "1", "--ngrams", "1"])
    _one_line_error(r, "--min-df 1 stores the words and sentence openings", "--allow-rare-ngrams")
    assert not out.exists()
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(once), "--out", str(out), "--min-df", "1", "--ngrams", "1",
                                 "--allow-rare-ngrams"])  # fmt: skip
    assert r.exit_code == 0, r.output
    model = load(out)
    assert "s2:maria kowalska" in model.featurizer.feature_names()
    assert "sentence opening" in model.card["privacy"] and "min_df 1" in model.card["privacy"]
    assert "pe-toolkit: warning:" in r.stderr
    # The default (--min-df 2) keeps nothing found in one text only, and says so in the card.
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(once), "--out", str(out), "--ngrams", "1", "--force"])
    assert r.exit_code == 0, r.output
    names = load(out).featurizer.feature_names()
    assert not [n for n in names if "kowalska" in n or "maria" in n]
    assert "at least 2 training texts" in load(out).card["privacy"] and "pe-toolkit: warning" not in r.stderr


# -------------------------------------- 2: evaluate --task resamples conversations
def _message_task_store(tmp_path) -> str:
    src = tmp_path / "convs.jsonl"
    lines = []
    for i in range(12):  # 12 conversations of two user messages, each message labelled
        sad = i % 2 == 0
        texts = ["I feel sad and alone", "so sad today"] if sad else ["Everything went great today", "a happy week"]
        lines.append(orjson.dumps({"id": f"c{i}", "messages": [{"role": "user", "content": t} for t in texts]}).decode())
    src.write_text("\n".join(lines) + "\n")
    db = tmp_path / "cache.duckdb"
    with Store(db) as store:
        import_file(store, src, progress=False)
        for i in range(12):
            for k in range(2):
                annotate(store, f"c{i}", "sad" if i % 2 == 0 else "glad", reviewer="ana", task="codes", message_idx=k)
    return str(db)


def test_evaluate_with_a_task_resamples_whole_conversations(tmp_path):
    db = _message_task_store(tmp_path)
    out = tmp_path / "codes.pemodel"
    runner = CliRunner()
    r = runner.invoke(cli, ["--db", db, "learn", "fit", "--task", "codes", "--out", str(out), "--ngrams", "1", "--min-df", "1",
                            "--allow-rare-ngrams"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["--db", db, "learn", "evaluate", str(out), "--task", "codes"])
    assert r.exit_code == 0, r.output
    assert "n=24 (12 groups)" in r.output  # as fit and cv: by conversation, not by message


# ---------------------- 3: a multi-label model's label column inside analyze()
def _store_of(tmp_path, texts: list[str]) -> Store:
    src = tmp_path / "convs.jsonl"
    src.write_text("\n".join(orjson.dumps({"id": f"c{i}", "messages": [{"role": "user", "content": "hello"},
                                            {"role": "assistant", "content": t}]}).decode()
                             for i, t in enumerate(texts)) + "\n")  # fmt: skip
    store = Store(tmp_path / "scores.duckdb")
    import_file(store, src, progress=False)
    return store


def test_a_multilabel_models_label_column_is_null_when_no_class_passes(tmp_path):
    frame = toy().with_columns(pl.concat_list("label").alias("labels"))
    model = fit(frame, label="labels", spec=FeatureSpec(min_df=1), thresholds={"sad": 0.99, "glad": 0.55})
    texts = ["so sad", "great day"]
    proba = model.predict(texts)
    assert proba["p_sad"][0] > proba["p_glad"][0] and proba["p_sad"][0] < 0.99  # sad is the argmax but not over 0.99
    assert proba["p_glad"][1] >= 0.55
    with _store_of(tmp_path, texts) as store:
        analyze(store, analyzers=(ModelAnalyzer(model, name="mood", role="assistant"),), progress=False)
        scored = store.scores("message").filter(pl.col("role") == "assistant").sort("conversation_id")
        assert scored["mood"].to_list() == [None, "glad"]
        assert scored["mood_p_sad"][0] == pytest.approx(proba["p_sad"][0])
        # Evidence explains the label column's class: none for a message without one.
        evidence = store.scores("evidence").filter(pl.col("analyzer") == "mood")
        assert "c1" in evidence["conversation_id"].to_list() and "c0" not in evidence["conversation_id"].to_list()


def test_a_multiclass_models_label_column_stays_the_most_probable_class(tmp_path):
    model = fit(toy(), spec=FeatureSpec(min_df=1), thresholds={"sad": 0.99, "glad": 0.99})
    with _store_of(tmp_path, ["so sad", "great day"]) as store:
        analyze(store, analyzers=(ModelAnalyzer(model, name="mood", role="assistant"),), progress=False)
        scored = store.scores("message").filter(pl.col("role") == "assistant").sort("conversation_id")
        assert scored["mood"].to_list() == ["sad", "glad"]


# ------------------------------------- 4: labels differing only in case, or empty
def test_labels_that_differ_only_in_case_are_refused():
    cased = toy().with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.col("label").str.to_titlecase()).otherwise(pl.col("label")).alias("label")
    )
    with pytest.raises(InputError, match=r"differ only in case: 'Glad' and 'glad'; 'Sad' and 'sad'"):
        fit(cased, spec=FeatureSpec(min_df=1))
    with pytest.raises(InputError, match="differ only in case"):
        cross_validate(cased, folds=2, spec=FeatureSpec(min_df=1), workers=1, boot=10)


def test_an_empty_label_is_refused_on_the_command_line(tmp_path):
    data = tmp_path / "empty.csv"
    rows = [f'"{t}",{"sad" if i < 8 else "glad"}' for i, t in enumerate(toy()["text"])]
    data.write_text("text,label\n" + "\n".join(rows) + '\n"I am lost",""\n"I am lost again",""\n')
    assert "" in pl.read_csv(data)["label"].to_list()  # a quoted empty field is an empty string, not a missing value
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(data), "--out", str(tmp_path / "m.pemodel"), "--ngrams", "1"])
    _one_line_error(r, "holds an empty label ('')")


def test_an_analyzer_with_columns_differing_only_in_case_fails_clearly(tmp_path):
    # Built in memory: a model file with such classes is refused by load (test_learn_card_fields).
    model = dataclasses.replace(fit(toy(), spec=FeatureSpec(min_df=1)), classes=("Question", "question"))
    with _store_of(tmp_path, ["so sad"]) as store:
        with pytest.raises(AnalysisError, match="'casey_p_Question' and 'casey_p_question' differ only in case"):
            analyze(store, analyzers=(ModelAnalyzer(model, name="casey", role="assistant"),), progress=False)


# ------------------------------------------------- 5: --class-weight
def _imbalanced(tmp_path):
    rng = np.random.default_rng(0)
    words = ["day", "week", "talk", "work", "sleep", "home", "friend", "plan"]
    rows = []
    for i in range(200):
        rare = i % 25 == 0  # 4%
        text = " ".join(rng.choice(words, 4)) + (" alone" if rare or i % 7 == 0 else "")
        rows.append((text, "rare" if rare else "common", i))
    return _csv(tmp_path, pl.DataFrame(rows, schema=["text", "label", "group"], orient="row"))


def test_cli_class_weight_none_keeps_probabilities_near_the_base_rate(tmp_path):
    data = _imbalanced(tmp_path)
    runner = CliRunner()
    means = {}
    for weight in ("balanced", "none"):
        out = tmp_path / f"{weight}.pemodel"
        r = runner.invoke(cli, ["learn", "fit", "--data", str(data), "--out", str(out), "--class-weight", weight, "--cv", "3"])
        assert r.exit_code == 0, r.output
        model = load(out)
        assert model.card["training"]["class_weight"] == (None if weight == "none" else "balanced")
        assert 0 <= model.card["validation"]["brier"] <= 2
        means[weight] = model.predict(pl.read_csv(data)["text"])["p_rare"].mean()
    base = 8 / 200
    assert means["balanced"] > 2 * base and abs(means["none"] - base) < abs(means["balanced"] - base)
    assert "not calibrated to the base rates" in load(tmp_path / "balanced.pemodel").card["probabilities"]
    assert "follow the base rates" in load(tmp_path / "none.pemodel").card["probabilities"]


# ------------------------------------------------- 6: tiny samples
@pytest.mark.parametrize("rows", [1, 2, 3, 5])
def test_too_few_groups_give_no_interval_and_no_numpy_warning(rows):
    # The suite turns warnings into errors: a numpy warning fails the test.
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    sample = pl.concat([toy().head(1), toy().tail(1), toy().slice(1, 3)]).head(rows)
    r = evaluate(model, sample)
    assert r.overall["low"].is_null().all() and r.overall["high"].is_null().all()
    assert r.per_class["f1_low"].is_null().all()
    assert f"{rows} group(s): no 95% intervals below {MIN_GROUPS} groups" in str(r)
    assert r.as_dict()["notes"] == list(r.notes)


def test_intervals_start_at_the_minimum_number_of_groups():
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    frame = toy().with_columns(group=pl.col("group") % MIN_GROUPS)
    assert evaluate(model, frame, group="group").overall["low"].is_not_null().all()
    assert not evaluate(model, frame, group="group").notes
    few = toy().with_columns(group=pl.col("group") % (MIN_GROUPS - 1))
    assert evaluate(model, few, group="group").overall["low"].is_null().all()
    y = np.array([True, False] * 4)
    assert auroc_interval(np.linspace(0, 1, 8), y)[1:] == (None, None)
    ml = multilabel_report([["a"], ["b"], ["a", "b"]], np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6]]), ["a", "b"])
    assert ml.overall["low"].is_null().all() and ml.notes


# ------------------------------------------- 7: a class with one example
def test_a_one_example_class_keeps_its_place_in_the_macro_f1_interval():
    n = 60
    gold = ["a"] * 30 + ["b"] * 29 + ["c"]
    proba = np.full((n, 3), 0.1)
    proba[:30, 0] = proba[30:59, 1] = proba[59, 0] = 0.8  # the one "c" is predicted "a": its F1 is 0
    r = report(gold, proba, ["a", "b", "c"])
    value, low, high = r.overall.filter(pl.col("metric") == "macro_f1").row(0)[1:]
    # Resamples without the "c" averaged over a and b only (F1 about 1); now
    # its F1 counts as 0 there, and the interval stays near two thirds.
    assert low <= value <= high < 0.7
    value, low, high = r.overall.filter(pl.col("metric") == "auroc").row(0)[1:]
    assert low <= value <= high < 0.9
    y = [["a"]] * 30 + [["b"]] * 29 + [["c"]]
    ml = multilabel_report(y, np.column_stack([proba[:, 0], proba[:, 1], np.full(n, 0.1)]), ["a", "b", "c"])
    value, low, high = ml.overall.filter(pl.col("metric") == "macro_f1").row(0)[1:]
    assert low <= value <= high < 0.7


# ----------------------------------- 8: a label all in one group, in grouped CV
def test_a_label_in_one_group_is_refused_naming_it(tmp_path):
    frame = pl.concat([toy()] * 3).with_columns(group=pl.int_range(pl.len()) // 2)
    one_group = frame.with_columns(label2=pl.when(pl.col("group") == 0).then(pl.lit("rare")).otherwise(pl.lit("common")))
    with pytest.raises(InputError, match=r"every label in at least 2 groups .*'rare' \(2 item\(s\), all in one group\)"):
        cross_validate(one_group, label="label2", group="group", folds=2, spec=FeatureSpec(min_df=1), workers=1, boot=10)
    data = _csv(tmp_path, one_group)
    r = CliRunner().invoke(cli, ["learn", "cv", "--data", str(data), "--label", "label2", "--group", "group", "--folds", "2",
                                 "--no-progress"])  # fmt: skip
    _one_line_error(r, "'rare' (2 item(s), all in one group)")
    assert "every label in column" not in r.output  # the old, false message


def test_a_multilabel_label_set_seen_once_is_not_refused():
    # Multi-label folds are stratified by label set; a set seen once is fine
    # as long as each of its labels is in two groups or more.
    frame = pl.concat([toy()] * 2).with_columns(labels=pl.concat_list("label"))
    frame = frame.with_columns(
        labels=pl.when(pl.int_range(pl.len()) == 0).then(pl.concat_list(pl.lit("sad"), pl.lit("glad"))).otherwise("labels")
    )
    with pytest.warns(UserWarning, match=r"label set glad \+ sad has 1 item"):  # the stratum, as before: a warning
        r = cross_validate(frame, label="labels", folds=2, spec=FeatureSpec(min_df=1), workers=1, boot=10)
    assert r.n == frame.height


# ------------------------------------------------- 9: thresholds are probabilities
@pytest.mark.parametrize("bad", [-1, 1.5, float("nan"), float("inf"), "high"])
def test_a_threshold_outside_zero_to_one_is_refused(bad):
    with pytest.raises(InputError, match="threshold of class 'sad' must be a number in \\[0, 1\\]"):
        fit(toy(), spec=FeatureSpec(min_df=1), thresholds={"sad": bad})
    with pytest.raises(InputError, match="threshold of class 'sad' must be a number in \\[0, 1\\]"):
        fit(toy(), spec=FeatureSpec(min_df=1), thresholds=np.array([0.5, bad if not isinstance(bad, str) else np.nan]))


def test_thresholds_of_zero_and_one_are_kept_and_an_unset_class_still_loads(tmp_path):
    model = fit(toy(), spec=FeatureSpec(min_df=1), thresholds={"sad": 0.0, "glad": 1.0})
    assert model.thresholds.tolist() == [1.0, 0.0]
    partial = load(save(fit(toy(), spec=FeatureSpec(min_df=1), thresholds={"sad": 0.4}), tmp_path / "p"))
    assert partial.thresholds.tolist() == [1.01, 0.4]  # "no threshold" as stored, loaded as before
    risk = load_shipped("risk")
    assert (risk.thresholds > 1).all() and risk.predict(["I want to end it all"]).height == 1


# ------------------------------- 10: the bootstrap does not hold resamples x items
def _dense_accuracy_interval(gold, pred, groups, boot, seed):
    """The bootstrap as it was: a (resamples x items) weight matrix."""
    codes, inverse = np.unique(groups, return_inverse=True)
    draws = np.random.default_rng(seed).integers(0, len(codes), size=(boot, len(codes)))
    weights = np.stack([np.bincount(d, minlength=len(codes)) for d in draws]).astype(float)[:, inverse]
    acc = (weights @ (gold == pred)) / weights.sum(axis=1)
    return float(np.quantile(acc, 0.025)), float(np.quantile(acc, 0.975))


def test_the_bootstrap_is_the_same_draws_without_the_dense_matrix():
    rng = np.random.default_rng(2)
    n, boot = 3000, 300
    gold = rng.choice(["a", "b"], n)
    proba = rng.dirichlet([1, 1], n)
    groups = rng.integers(0, 700, n)
    r = report(gold.tolist(), proba, ["a", "b"], groups=groups, boot=boot, seed=4)
    pred = np.asarray(["a", "b"])[proba.argmax(axis=1)]
    low, high = r.overall.filter(pl.col("metric") == "accuracy").row(0)[2:]
    assert (low, high) == pytest.approx(_dense_accuracy_interval(gold, pred, groups, boot, 4), abs=1e-12)
    # 50,000 items: the old weight matrix alone was boot x items x 8 bytes.
    n = 50_000
    gold = rng.choice(["a", "b"], n).tolist()
    proba = rng.dirichlet([1, 1], n)
    tracemalloc.start()
    try:
        report(gold, proba, ["a", "b"], boot=boot)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < boot * n * 8 / 4, f"peak {peak / 1e6:.0f} MB"


def test_a_library_fit_with_min_df_1_says_so_in_its_card(tmp_path) -> None:
    """Only the CLI wrote the privacy note: ``fit(spec=FeatureSpec(min_df=1))``
    then ``save`` gave a file holding fragments of single texts whose card
    said nothing of it."""
    frame = toy()
    rare = save(fit(frame, spec=FeatureSpec(min_df=1)), tmp_path / "rare.pemodel")
    assert "min_df 1" in load(rare).card["privacy"]
    assert "privacy" not in fit(frame).card  # the default keeps words found in 2 texts or more; no note added


def test_a_models_weights_are_read_only() -> None:
    """Evidence keeps a table of the weights; a weight changed in place left
    it explaining the old weights while predictions used the new (a review
    of the speed change). Now an in-place change is refused."""
    model = fit(toy())
    with pytest.raises(ValueError, match="read-only"):
        model.coef[0] = -5.0
    with pytest.raises(ValueError, match="read-only"):
        model.featurizer.has_span[0] = False
    assert not load_shipped("risk").coef.flags.writeable


def test_a_missing_conversation_id_gets_no_maximum() -> None:
    """Scored by hand, one null conversation id got the risk maximum of its
    run, two got none (the group_by path): now none either way, as before."""
    from pe_toolkit.analysis.base import check_messages
    from pe_toolkit.analysis.learned import RISK_MODEL

    frame = pl.DataFrame({"conversation_id": [None, "x"], "idx": [0, 0], "role": ["user", "user"],
                          "content": ["I want to die", "hi"]}, schema_overrides={"conversation_id": pl.String, "idx": pl.Int32})  # fmt: skip
    conversations = RISK_MODEL.score(check_messages(frame, complete=False)).conversations
    row = conversations.filter(pl.col("conversation_id").is_null())
    assert row.height == 0 or row["suicide_risk_p_max"].is_null().all()

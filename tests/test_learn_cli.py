"""``pe-toolkit learn`` and the review labels as training data (real
DuckDB files in tmp_path, real model files)."""

from __future__ import annotations

import warnings

import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError
from pe_toolkit.ingest import import_file
from pe_toolkit.learn import fit, from_store, load
from pe_toolkit.learn.features import FeatureSpec
from pe_toolkit.store.annotations import annotate

from .test_learn import toy


@pytest.fixture
def labelled_csv(tmp_path):
    path = tmp_path / "labels.csv"
    pl.concat([toy()] * 3).with_columns(group=pl.int_range(pl.len()) // 2).write_csv(path)
    return path


def test_fit_cv_evaluate_and_list(tmp_path, labelled_csv):
    runner = CliRunner()
    out = tmp_path / "mood.pemodel"
    r = runner.invoke(cli, ["learn", "fit", "--data", str(labelled_csv), "--out", str(out), "--min-df", "1", "--allow-rare-ngrams"])
    assert r.exit_code == 0, r.output
    assert "48 labelled texts" in r.output and load(out).classes == ("glad", "sad")
    r = runner.invoke(cli, ["learn", "cv", "--data", str(labelled_csv), "--group", "group", "--folds", "4"])
    assert r.exit_code == 0, r.output
    assert "macro_f1" in r.output and "glad" in r.output and "(24 groups)" in r.output
    r = runner.invoke(cli, ["learn", "evaluate", str(out), "--data", str(labelled_csv)])
    assert r.exit_code == 0 and "accuracy   1.000" in r.output, r.output
    r = runner.invoke(cli, ["learn", "list"])
    assert r.exit_code == 0 and "skills.pemodel" in r.output and "non-commercial" in r.output, r.output
    r = runner.invoke(cli, ["learn", "list", str(out)])
    assert r.exit_code == 0 and "mood.pemodel" in r.output


def test_expected_failures_are_one_line(tmp_path, labelled_csv):
    runner = CliRunner()
    r = runner.invoke(cli, ["learn", "fit", "--data", str(labelled_csv), "--label", "nope", "--out", str(tmp_path / "m")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "lacks column(s) nope" in r.output
    r = runner.invoke(cli, ["learn", "fit", "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "--data FILE" in r.output  # a usage error, as click reports them
    (tmp_path / "bad.pemodel").write_text("x")
    r = runner.invoke(cli, ["learn", "evaluate", str(tmp_path / "bad.pemodel"), "--data", str(labelled_csv)])
    assert r.exit_code == 1 and "not a pe_toolkit model file" in r.output


def test_relabel_maps_labels_to_a_models_classes(tmp_path, labelled_csv):
    # A researcher's labels named otherwise (ESConv's eight strategies against
    # the skills model's seven) are renamed on the command line, not by hand.
    from datetime import UTC, datetime

    runner = CliRunner()
    out = tmp_path / "mood.pemodel"
    assert runner.invoke(cli, ["learn", "fit", "--data", str(labelled_csv), "--out", str(out), "--min-df", "1", "--allow-rare-ngrams"]).exit_code == 0
    renamed = tmp_path / "renamed.csv"
    pl.read_csv(labelled_csv).with_columns(pl.col("label").replace({"sad": "unhappy"})).write_csv(renamed)
    r = runner.invoke(cli, ["learn", "evaluate", str(out), "--data", str(renamed)])
    assert r.exit_code == 1 and "not among the classes (glad, sad): unhappy" in r.output, r.output
    r = runner.invoke(cli, ["learn", "evaluate", str(out), "--data", str(renamed), "--relabel", "unhappy=sad"])
    assert r.exit_code == 0 and "accuracy   1.000" in r.output, r.output
    assert "not held-out" in r.output and "labels.csv (48 texts)" in r.output
    cased = tmp_path / "cased.csv"  # labels that differ from the classes only by case need no --relabel
    pl.read_csv(labelled_csv).with_columns(pl.col("label").str.to_uppercase()).write_csv(cased)
    r = runner.invoke(cli, ["learn", "evaluate", str(out), "--data", str(cased)])
    assert r.exit_code == 0 and "accuracy   1.000" in r.output, r.output
    r = runner.invoke(cli, ["learn", "evaluate", str(out), "--data", str(renamed), "--relabel", "unhappy"])
    assert r.exit_code == 2 and "expected FROM=TO" in r.output  # a usage error
    again = tmp_path / "again.pemodel"
    r = runner.invoke(cli, ["learn", "fit", "--data", str(renamed), "--out", str(again), "--min-df", "1", "--allow-rare-ngrams", "--relabel", "glad=happy"])
    assert r.exit_code == 0 and load(again).classes == ("happy", "unhappy"), r.output
    r = runner.invoke(cli, ["learn", "list", str(again)])
    # save() dates the card in UTC.
    assert f"trained {datetime.now(UTC).date().isoformat()}" in r.output and "relabel glad=happy" in r.output, r.output


def test_review_labels_are_one_call_from_training_data(store, write_jsonl):
    records = []
    for i in range(8):
        sad = i % 2 == 0
        records.append({
            "id": f"c{i}",
            "messages": [
                {"role": "user", "content": "I feel sad and alone" if sad else "Everything went great today"},
                {"role": "assistant", "content": "I'm so sorry, that sounds hard." if sad else "That's wonderful to hear!"},
            ],
        })  # fmt: skip
    import_file(store, write_jsonl(records), progress=False)
    for i in range(8):
        label = "sympathy" if i % 2 == 0 else "celebration"
        annotate(store, f"c{i}", label, reviewer="ana", task="codes", message_idx=1)
    annotate(store, "c0", "celebration", reviewer="ben", task="codes", message_idx=1)
    annotate(store, "c0", "sympathy", reviewer="cy", task="codes", message_idx=1)  # majority: sympathy
    annotate(store, "c1", "whole-conversation label", reviewer="ana", task="codes")
    frame = from_store(store, "codes", level="message")  # labels at both levels: name one
    assert frame.height == 8 and set(frame.columns) >= {"text", "label", "context", "group"}
    c0 = frame.filter(pl.col("group") == "c0").row(0, named=True)
    assert c0["label"] == "sympathy" and c0["context"] == "I feel sad and alone"
    # How much the reviewers agreed: the winner's votes, of how many reviewers.
    assert (c0["votes"], c0["reviewers"], round(c0["agreement"], 3), c0["tied"]) == (2, 3, 0.667, False)
    model = fit(frame, spec=FeatureSpec(min_df=1), context="context")
    assert set(model.classes) == {"celebration", "sympathy"}
    conv = from_store(store, "codes", level="conversation")
    assert conv.height == 1 and "Everything went great" in conv["text"][0]
    with pytest.raises(InputError, match="no labels in task 'other'"):
        from_store(store, "other")


def test_rename_labels_in_string_and_list_columns():
    from pe_toolkit.learn import rename_labels

    single = rename_labels(pl.DataFrame({"label": ["restatement", "question", None]}), "label", {"restatement": "reflection"})
    assert single["label"].to_list() == ["reflection", "question", None]
    multi = pl.DataFrame({"label": [["restatement", "reflection_of_feelings"], ["question"], None]})
    merged = {"restatement": "reflection", "reflection_of_feelings": "reflection"}
    assert rename_labels(multi, "label", merged)["label"].to_list() == [["reflection"], ["question"], None]


def test_too_few_labels_for_the_folds_is_one_warning_line(tmp_path, labelled_csv):
    rows = pl.read_csv(labelled_csv)
    few = tmp_path / "few.csv"
    pl.concat([rows.filter(pl.col("label") == "glad"), rows.filter(pl.col("label") == "sad").head(3)]).write_csv(few)
    with warnings.catch_warnings():  # the suite turns warnings into errors; a user's shell shows them
        warnings.simplefilter("always")
        r = CliRunner().invoke(cli, ["learn", "cv", "--data", str(few), "--folds", "4", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "pe-toolkit: warning: label 'sad' has 3 item(s), fewer than the 4 folds" in r.output
    assert "UserWarning" not in r.output and ".py:" not in r.output and "least populated" not in r.output


def test_evaluating_a_context_model_without_context_warns(tmp_path, labelled_csv):
    frame = pl.read_csv(labelled_csv).with_columns(context=pl.col("text").shift(1))
    model = fit(frame, text="text", label="label", context="context", spec=FeatureSpec(min_df=1, context=True))
    from pe_toolkit.learn import evaluate

    with pytest.warns(UserWarning, match="fitted with the preceding turn"):
        evaluate(model, frame, boot=10)
    evaluate(model, frame, context="context", boot=10)  # no warning (the suite makes warnings errors)


def test_the_cli_warning_hook_does_not_outlive_the_command(tmp_path, labelled_csv):
    before = warnings.showwarning
    CliRunner().invoke(cli, ["learn", "list"])
    assert warnings.showwarning is before


def test_too_few_items_of_every_label_for_the_folds_is_one_error_line(tmp_path, labelled_csv):
    few = tmp_path / "few.csv"
    pl.read_csv(labelled_csv).group_by("label", maintain_order=True).head(3).write_csv(few)
    r = CliRunner().invoke(cli, ["learn", "cv", "--data", str(few), "--folds", "5", "--no-progress"])
    assert r.exit_code == 1 and "needs a label with at least 5 items" in r.output and "Traceback" not in r.output, r.output


def test_cv_takes_the_settings_fit_takes(tmp_path):
    # learn cv offered only --ngrams: a researcher could not measure the
    # --c, --min-df or --class-weight they were about to train with.
    from pe_toolkit.learn.validity import cross_validate

    frame = toy()
    # Every third label flipped and an unbalanced third class: settings show in the figures.
    flipped = frame.with_columns(
        label=pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.when(pl.col("label") == "sad").then(pl.lit("glad")).otherwise(pl.lit("sad")))
        .otherwise(pl.col("label"))
    )
    rows = pl.concat([flipped, flipped.head(6).with_columns(label=pl.lit("meh"))]).with_columns(group=pl.int_range(pl.len()))
    path = tmp_path / "noisy.csv"
    rows.write_csv(path)
    settings = ["--c", "0.05", "--min-df", "1", "--class-weight", "none"]
    r = CliRunner().invoke(cli, ["learn", "cv", "--data", str(path), "--group", "group", "--folds", "3", "--no-progress", *settings])
    assert r.exit_code == 0, r.output
    frame = pl.read_csv(path, infer_schema=False)
    expected = cross_validate(frame, text="text", label="label", group="group", folds=3, spec=FeatureSpec(min_df=1), c=0.05,
                              class_weight=None, progress=False)  # fmt: skip
    default = cross_validate(frame, text="text", label="label", group="group", folds=3, spec=FeatureSpec(), progress=False)
    assert str(expected) != str(default)  # the settings change the figures here, so the check below can fail
    assert r.stdout.strip() == str(expected).strip()

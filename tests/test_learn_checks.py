"""Expected failures of the learn layer stay inside the exception tree, and
the cards a researcher's models get are complete (real frames, real model
files and DuckDB files in tmp_path, the real CLI)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import numpy as np
import orjson
import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError, ModelError
from pe_toolkit.learn import cross_validate, fit, from_store, load, read_card, save
from pe_toolkit.learn.features import FeatureSpec
from pe_toolkit.learn.io import content_hash

from .test_learn import toy


def _one_line_error(result, *needles):
    """The CLI's contract for an expected failure: exit 1, one line, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.output.startswith("pe-toolkit: error: ") and result.output.count("\n") == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output


# ------------------------------------------------------- 1: review labels
def _review_store(tmp_path, *, message_label: bool = False):
    from pe_toolkit.ingest import import_file
    from pe_toolkit.store import Store
    from pe_toolkit.store.annotations import annotate

    src = tmp_path / "convs.jsonl"
    lines = []
    for i in range(8):
        sad = i % 2 == 0
        text = "I feel sad and alone" if sad else "Everything went great today"
        lines.append(orjson.dumps({"id": f"c{i}", "messages": [{"role": "user", "content": text}]}).decode())
    src.write_text("\n".join(lines) + "\n")
    db = tmp_path / "cache.duckdb"
    with Store(db) as store:
        import_file(store, src, progress=False)
        for i in range(8):  # as ReviewQueue stores them: the whole conversation, message_idx null
            annotate(store, f"c{i}", "sad" if i % 2 == 0 else "glad", reviewer="ana", task="review")
        if message_label:
            annotate(store, "c0", "sad", reviewer="ana", task="review", message_idx=0)
    return db


def test_review_widget_labels_train_with_the_default_level(tmp_path):
    from pe_toolkit.store import Store

    db = _review_store(tmp_path)
    with Store(db, read_only=True) as store:
        frame = from_store(store, "review")  # default level: the one the labels are at
        assert frame.height == 8 and frame["message_idx"].is_null().all()
        with pytest.raises(InputError, match=r"no message labels in task .review., but 8 conversation.*--level conversation"):
            from_store(store, "review", level="message")
    runner = CliRunner()
    out = tmp_path / "rq.pemodel"
    r = runner.invoke(cli, ["--db", str(db), "learn", "fit", "--task", "review", "--out", str(out), "--min-df", "1", "--allow-rare-ngrams"])
    assert r.exit_code == 0 and "8 labelled texts" in r.output, r.output
    assert load(out).card["data"]["level"] == "conversation"
    r = runner.invoke(cli, ["--db", str(db), "learn", "fit", "--task", "review", "--level", "message", "--out", str(out), "--force"])
    _one_line_error(r, "--level conversation")


def test_a_task_with_labels_at_both_levels_must_name_one(tmp_path):
    from pe_toolkit.store import Store

    db = _review_store(tmp_path, message_label=True)
    with Store(db, read_only=True) as store:
        with pytest.raises(InputError, match=r"both levels \(1 of messages, 8 of conversations\).*--level"):
            from_store(store, "review")
        assert from_store(store, "review", level="conversation").height == 8
        with pytest.raises(InputError, match="no labels in task 'other'"):
            from_store(store, "other")


# ------------------------------------------------ 2: bad input, InputError
@pytest.mark.parametrize(
    ("change", "options", "needle"),
    [
        (lambda f: f.with_columns(text=pl.int_range(pl.len()).cast(pl.String)), {"spec": FeatureSpec()}, "no features"),
        (lambda f: f.with_columns(text=pl.lit("")), {}, "no features to learn from"),
        (lambda f: f, {"spec": FeatureSpec(min_df=100)}, "lower min_df"),
        (lambda f: f.with_columns(label=pl.lit("sad")), {"classes": ["sad", "glad"]}, "every label in column 'label' is 'sad'"),
        (lambda f: f, {"c": 0}, "c (inverse regularisation strength) must be a positive number"),
        (lambda f: f, {"class_weight": "foo"}, "class_weight must be 'balanced' or None"),
        (lambda f: f.with_columns(rule=pl.lit("x")), {"rules": ["rule"]}, "rule column(s) 'rule' are not numbers"),
        (lambda f: f.with_columns(text=pl.concat_list("text")), {}, "column 'text' holds List(String) values"),
        (lambda f: f.with_columns(label=pl.struct("text", "label")), {}, "the label column 'label' holds Struct"),
        (lambda f: f.with_columns(label=pl.concat_list("label", pl.lit(None, pl.String))), {}, "hold a missing value"),
    ],
    ids=["numeric-text", "empty-text", "min-df", "one-class", "c0", "class-weight", "string-rule", "list-text",
         "struct-label", "null-in-list"],  # fmt: skip
)
def test_unusable_training_data_is_an_input_error(change, options, needle):
    with pytest.raises(InputError) as info:
        fit(change(toy()), **({"spec": FeatureSpec(min_df=1)} | options))
    assert needle in str(info.value)


def test_cross_validation_refuses_bad_folds_and_missing_groups():
    with pytest.raises(InputError, match="folds must be a whole number of at least 2, got 1"):
        cross_validate(toy(), folds=1, workers=1, boot=10)
    with_gap = toy().with_columns(group=pl.when(pl.int_range(pl.len()) < 3).then(None).otherwise(pl.col("group")))
    with pytest.raises(InputError, match="group column 'group' is missing in 3 labelled row"):
        cross_validate(with_gap, group="group", workers=1, boot=10)


def test_cli_fit_on_numeric_text_is_one_error_line(tmp_path):
    data = tmp_path / "num.csv"
    data.write_text("text,label\n1,a\n2,b\n3,a\n4,b\n")
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(data), "--out", str(tmp_path / "m.pemodel")])
    _one_line_error(r, "no features to learn from")


# --------------------------------------------------- 3: save's OS errors
def test_save_refuses_a_folder_and_wraps_os_errors(tmp_path):
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    with pytest.raises(ModelError, match="is a folder"):
        save(model, tmp_path)
    assert not (tmp_path.parent / f"{tmp_path.name}.pemodel").exists()
    blocker = tmp_path / "labels.csv"
    blocker.write_text("x")
    with pytest.raises(ModelError, match=r"cannot write the model to .*labels.csv/x.pemodel: .*labels.csv is a file"):
        save(model, blocker / "x.pemodel")
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(_csv(tmp_path)), "--min-df", "1", "--allow-rare-ngrams", "--out", str(blocker / "x")])
    _one_line_error(r, "labels.csv is a file, not a folder")


def test_a_missing_folder_is_refused_as_export_refuses_it(tmp_path):
    # save created missing folders (path.parent.mkdir) while export refuses
    # them: a typo in --out (modles/) made a folder and wrote the model into
    # it instead of failing. Now both say the folder does not exist, and the
    # CLI says so before it trains.
    from pe_toolkit.errors import ExportError
    from pe_toolkit.exports import export
    from pe_toolkit.store import Store

    model = fit(toy(), spec=FeatureSpec(min_df=1))
    missing = tmp_path / "no" / "such"
    with pytest.raises(ModelError, match=r"cannot write the model to .*x.pemodel: the folder .*no/such does not exist"):
        save(model, missing / "x.pemodel")
    with Store(tmp_path / "c.duckdb") as store, pytest.raises(ExportError, match="does not exist"):
        export(store, missing / "x.jsonl", format="jsonl", progress=False)
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(_csv(tmp_path)), "--min-df", "1", "--allow-rare-ngrams", "--out", str(missing / "x")])
    _one_line_error(r, "the folder", "no/such does not exist")
    # Before the training: data it could not learn from is not reached.
    numbers = tmp_path / "num.csv"
    numbers.write_text("text,label\n1,a\n2,b\n3,a\n4,b\n")
    r = CliRunner().invoke(cli, ["learn", "fit", "--data", str(numbers), "--out", str(missing / "x")])
    _one_line_error(r, "no/such does not exist")
    assert not (tmp_path / "no").exists()


def _csv(tmp_path):
    path = tmp_path / "toy.csv"
    pl.concat([toy()] * 3).with_columns(group=pl.int_range(pl.len()) // 2).write_csv(path)
    return path


# ------------------------------------------ 4: labels without thresholds
def test_labels_hold_the_most_probable_class_without_thresholds():
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    out = model.predict(["so sad today", "a great, happy day"])
    assert out["labels"].to_list() == [["sad"], ["glad"]] and out["label"].to_list() == ["sad", "glad"]
    tuned = fit(toy(), spec=FeatureSpec(min_df=1), thresholds={"sad": 0.99, "glad": 0.99})
    assert tuned.predict(["so sad today"])["labels"].to_list() == [[]]  # thresholds set: they decide


# ------------------------------------------------- 5: dated cards, --cv
def test_save_dates_a_card_without_a_date(tmp_path):
    path = save(fit(toy(), spec=FeatureSpec(min_df=1)), tmp_path / "m")
    assert read_card(path)["date"] == datetime.now(UTC).date().isoformat()
    kept = save(fit(toy(), spec=FeatureSpec(min_df=1), card={"date": "2020-01-02"}), tmp_path / "k")
    assert read_card(kept)["date"] == "2020-01-02"
    r = CliRunner().invoke(cli, ["learn", "list", str(path)])
    assert r.exit_code == 0 and "trained ?" not in r.output and "validation: none" in r.output, r.output


def test_fit_with_cv_keeps_the_figures_in_the_card(tmp_path):
    out = tmp_path / "cv.pemodel"
    args = ["learn", "fit", "--data", str(_csv(tmp_path)), "--out", str(out), "--min-df", "1", "--allow-rare-ngrams", "--cv", "3", "--group", "group"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "macro_f1" in r.output, r.output
    v = load(out).card["validation"]
    assert v["n"] == 48 and v["groups"] == 24 and "3-fold cross-validation, folds by 'group'" in v["method"]
    assert {row["metric"] for row in v["overall"]} >= {"accuracy", "macro_f1"}
    r = CliRunner().invoke(cli, ["learn", "list", str(out)])
    assert r.exit_code == 0 and "validation: 3-fold" in r.output and "macro_f1" in r.output, r.output


# --------------------------------------- 6 and 7: altered or foreign cards
def _recard(src, dst, change, *, rehash=False):
    with zipfile.ZipFile(src) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    card = orjson.loads(parts["card.json"])
    card = change(card)
    if rehash:
        arrays = {n[:-4]: np.lib.format.read_array(io.BytesIO(b)) for n, b in parts.items() if n.endswith(".npy")}
        card["content_hash"] = content_hash(arrays, card)
    parts["card.json"] = orjson.dumps(card)
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in parts.items():
            z.writestr(n, data)
    return dst


def test_list_refuses_an_altered_file_and_exits_1(tmp_path):
    good = save(fit(toy(), spec=FeatureSpec(min_df=1)), tmp_path / "good")
    edited = _recard(good, tmp_path / "ed.pemodel", lambda c: c | {"name": "evil"})
    r = CliRunner().invoke(cli, ["learn", "list", str(good), str(edited)])
    assert r.exit_code == 1, r.output
    assert "good.pemodel: model (multiclass" in r.output
    assert "ed.pemodel: REFUSED: " in r.output and "content hash" in r.output and "evil" not in r.output
    assert r.output.rstrip().endswith("pe-toolkit: error: 1 of 2 model file(s) refused (listed above): do not use them")


def test_a_card_that_is_not_an_object_or_has_bad_settings_is_a_model_error(tmp_path):
    good = save(fit(toy(), spec=FeatureSpec(min_df=1)), tmp_path / "good")
    listed = _recard(good, tmp_path / "cl.pemodel", lambda c: [1, 2])
    with pytest.raises(ModelError, match=r"card\.json is a JSON list"):
        load(listed)
    with pytest.raises(ModelError, match=r"card\.json is a JSON list"):
        read_card(listed)
    garbage = _recard(good, tmp_path / "bs.pemodel", lambda c: c | {"features": "garbage"}, rehash=True)
    with pytest.raises(ModelError, match="card's settings are invalid"):
        load(garbage)
    r = CliRunner().invoke(cli, ["learn", "list", str(listed)])
    assert r.exit_code == 1 and "cl.pemodel: REFUSED" in r.output and "Traceback" not in r.output, r.output


# --------------------------------------------------------------- 8: nits
def test_a_newer_format_says_upgrade(tmp_path):
    good = save(fit(toy(), spec=FeatureSpec(min_df=1)), tmp_path / "good")
    newer = _recard(good, tmp_path / "new.pemodel", lambda c: c | {"format": 99})
    with pytest.raises(ModelError, match=r"written by a newer pe_toolkit.*upgrade pe_toolkit") as info:
        load(newer)
    assert "retrain" not in str(info.value)


def test_evaluate_says_not_held_out_only_of_the_training_file(tmp_path):
    data = _csv(tmp_path)
    out = tmp_path / "m.pemodel"
    runner = CliRunner()
    assert runner.invoke(cli, ["learn", "fit", "--data", str(data), "--out", str(out), "--min-df", "1", "--allow-rare-ngrams"]).exit_code == 0
    r = runner.invoke(cli, ["learn", "evaluate", str(out), "--data", str(data)])
    assert r.exit_code == 0 and "these are its training texts: the figures are not held-out" in r.output, r.output
    copy = tmp_path / "copy.csv"  # the same bytes under another name: still the training texts
    copy.write_bytes(data.read_bytes())
    r = runner.invoke(cli, ["learn", "evaluate", str(out), "--data", str(copy)])
    assert r.exit_code == 0 and "these are its training texts: the figures are not held-out" in r.output, r.output
    other = tmp_path / "held_out.csv"
    other.write_bytes(data.read_bytes() + data.read_bytes().splitlines(keepends=True)[1])  # one more row
    r = runner.invoke(cli, ["learn", "evaluate", str(out), "--data", str(other)])
    assert r.exit_code == 0 and "if the data evaluated here overlaps them" in r.output, r.output
    assert "these are its training texts" not in r.output


def test_a_conversations_text_leaves_its_system_prompt_out(tmp_path):
    # A system prompt names the dataset or its template: a model fitted on it
    # would learn where a conversation came from, not what was said.
    import pe_toolkit as pe
    from pe_toolkit.learn import from_metadata
    from pe_toolkit.store.annotations import annotate

    conversations = [{"id": f"c{i}", "metadata": {"dataset": "d", "topic": "t" if i % 2 else "u"},
                      "messages": [{"role": "system", "content": f"You are counsellor bot {i}."},
                                   {"role": "user", "content": f"hello {i}"},
                                   {"role": "assistant", "content": f"hi {i}"}]} for i in range(4)]  # fmt: skip
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in conversations))
    with pe.Store(tmp_path / "s.duckdb") as store:
        pe.import_file(store, path, progress=False)
        for c in conversations:
            annotate(store, c["id"], "x", reviewer="ana", task="t")
        for frame in (from_store(store, "t"), from_metadata(store, "topic", level="conversation")):
            assert frame.height == 4 and not frame["text"].str.contains("counsellor bot").any(), frame
            assert frame["text"].str.contains("hello").all()
        assert from_store(store, "t", role="system")["text"].str.contains("counsellor bot").all()  # asked for: kept

"""`pe-toolkit learn` as a researcher uses it: labels read as written, review
votes that disagree, model files kept, and what the CLI says (an audit's
fixes; real files, caches and the real CLI)."""

from __future__ import annotations

import zipfile

import orjson
import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError
from pe_toolkit.learn import from_store, load, save
from pe_toolkit.learn.model import fit
from pe_toolkit.store import Store
from pe_toolkit.store.annotations import annotate

from .test_learn import toy


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert result.output.startswith("pe-toolkit: error: ") and result.output.count("\n") == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output


def _fit(*args):
    return CliRunner().invoke(cli, ["learn", "fit", "--min-df", "1", "--allow-rare-ngrams", *map(str, args)])


def test_label_codes_are_read_as_written_not_as_numbers(tmp_path):
    """"1.1" and "1.10", "2" and "02" are four codes (they were two)."""
    base = toy()
    codes = ["1.1", "1.10", "2", "02"]
    frame = pl.concat([base.with_columns(label=pl.lit(code)) for code in codes])
    frame.write_csv(tmp_path / "codes.csv")
    r = _fit("--data", tmp_path / "codes.csv", "--out", tmp_path / "m.pemodel")
    assert r.exit_code == 0, r.output
    assert set(load(tmp_path / "m.pemodel").classes) == set(codes)


def test_a_tsv_text_opening_with_a_quote_stays_one_row(tmp_path):
    rows = [("\"so sad", "sad"), *[(t, label) for t, label in toy().select("text", "label").iter_rows()]]
    (tmp_path / "q.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows), encoding="utf-8")
    r = _fit("--data", tmp_path / "q.tsv", "--out", tmp_path / "m.pemodel")
    assert r.exit_code == 0, r.output
    assert f"{len(rows):,} labelled texts" in r.output


def test_a_file_that_cannot_be_read_is_named_without_its_text(tmp_path):
    (tmp_path / "bad.csv").write_text('text,label\n"Jane Doe told me her secret,sad\nok,glad\n', encoding="utf-8")
    r = _fit("--data", tmp_path / "bad.csv", "--out", tmp_path / "m.pemodel")
    _one_line_error(r, "cannot read it as a table")
    assert "Jane" not in r.output and "secret" not in r.output


def test_an_existing_model_is_replaced_only_with_force_and_checked_before_training(tmp_path):
    toy().write_csv(tmp_path / "l.csv")
    out = tmp_path / "m.pemodel"
    assert _fit("--data", tmp_path / "l.csv", "--out", out).exit_code == 0
    before = out.read_bytes()
    _one_line_error(_fit("--data", tmp_path / "l.csv", "--out", out, "--relabel", "sad=low"), "exists; pass --force")
    assert out.read_bytes() == before
    r = _fit("--data", tmp_path / "l.csv", "--out", out, "--relabel", "sad=low", "--force")
    assert r.exit_code == 0 and "low" in load(out).classes
    # A parent that is a file: refused before any fitting.
    _one_line_error(_fit("--data", tmp_path / "l.csv", "--out", tmp_path / "l.csv" / "x.pemodel"), "is a file, not a folder")


def test_an_interrupted_save_leaves_no_partial_file(tmp_path, monkeypatch):
    model = fit(toy())
    written = []

    def interrupted(self, info, data, *args, **kwargs):
        if written:
            raise KeyboardInterrupt
        written.append(info)
        return original(self, info, data, *args, **kwargs)

    original = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(model, tmp_path / "m.pemodel")
    assert list(tmp_path.iterdir()) == []  # no hidden .tmp with the vocabulary in it


def test_a_relabel_that_matches_no_label_is_refused(tmp_path):
    toy().write_csv(tmp_path / "l.csv")
    r = _fit("--data", tmp_path / "l.csv", "--out", tmp_path / "m.pemodel", "--relabel", "sadd=low")
    _one_line_error(r, "no label 'sadd' in column 'label'", "glad, sad")
    assert not (tmp_path / "m.pemodel").exists()


def test_a_text_column_given_as_the_label_is_refused(tmp_path):
    frame = pl.concat([toy()] * 5).with_columns(note=pl.format("free text number {}", pl.int_range(pl.len())))
    frame.write_csv(tmp_path / "l.csv")
    _one_line_error(_fit("--data", tmp_path / "l.csv", "--out", tmp_path / "m.pemodel", "--label", "note"),
                    "it reads as text, not labels")  # fmt: skip


def test_a_group_column_of_objects_is_refused(tmp_path):
    lines = [orjson.dumps({"text": t, "label": label, "group": {"id": i}}) for i, (t, label) in
             enumerate(toy().select("text", "label").iter_rows())]  # fmt: skip
    (tmp_path / "l.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    r = CliRunner().invoke(cli, ["learn", "cv", "--data", str(tmp_path / "l.jsonl"), "--group", "group"])
    _one_line_error(r, "holds lists or objects")


def test_evaluate_tells_the_training_file_from_another_of_the_same_name(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    toy().write_csv(tmp_path / "a" / "l.csv")
    toy().with_columns(pl.col("text") + " indeed").write_csv(tmp_path / "b" / "l.csv")
    monkeypatch.chdir(tmp_path / "a")
    assert _fit("--data", "l.csv", "--out", tmp_path / "m.pemodel").exit_code == 0
    monkeypatch.chdir(tmp_path / "b")
    r = CliRunner().invoke(cli, ["learn", "evaluate", str(tmp_path / "m.pemodel"), "--data", "l.csv"])
    assert r.exit_code == 0 and "these are its training texts" not in r.output, r.output
    (tmp_path / "b" / "copy.csv").write_bytes((tmp_path / "a" / "l.csv").read_bytes())
    r = CliRunner().invoke(cli, ["learn", "evaluate", str(tmp_path / "m.pemodel"), "--data", "copy.csv"])
    assert "these are its training texts" in r.output  # the same content under another name


@pytest.fixture
def voted(tmp_path):
    from pe_toolkit.ingest import import_file

    records = [{"id": f"c{i}", "messages": [{"role": "user", "content": t}]} for i, t in enumerate(toy()["text"])]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    db = tmp_path / "v.duckdb"
    with Store(db) as store:
        import_file(store, src, progress=False)
        for i, label in enumerate(toy()["label"]):
            annotate(store, f"c{i}", label, reviewer="ana", task="t")
        annotate(store, "c0", "glad" if toy()["label"][0] == "sad" else "sad", reviewer="ben", task="t")  # a 1-1 tie
    return db


def test_reviewers_who_tie_give_no_label(voted):
    with Store(voted, read_only=True) as store:
        frame = from_store(store, "t")
        assert "c0" not in frame["group"].to_list() and frame.height == toy().height - 1
        assert frame["agreement"].to_list() == [1.0] * frame.height and not frame["tied"].any()
        kept = from_store(store, "t", ties="keep").filter(pl.col("group") == "c0").row(0, named=True)
        assert (kept["tied"], kept["votes"], kept["reviewers"], kept["agreement"]) == (True, 1, 2, 0.5)
        with pytest.raises(InputError, match="ties must be"):
            from_store(store, "t", ties="first")
    r = CliRunner().invoke(cli, ["--db", str(voted), "learn", "cv", "--task", "t", "--folds", "3"])
    assert r.exit_code == 0, r.output
    assert "1 item(s) of task 't' whose reviewers tied are left out" in r.stderr


def test_a_card_with_too_few_groups_says_it_has_no_intervals(tmp_path):
    frame = toy().with_columns(dialogue=pl.col("group") % 4)  # 16 texts in 4 dialogues
    frame.write_csv(tmp_path / "g.csv")
    r = _fit("--data", tmp_path / "g.csv", "--out", tmp_path / "m.pemodel", "--cv", "2", "--group", "dialogue")
    assert r.exit_code == 0, r.output
    method = load(tmp_path / "m.pemodel").card["validation"]["method"]
    assert "no 95% intervals (4 groups, fewer than 10)" in method and "percentile bootstrap" not in method
    assert "note: 4 group(s): no 95% intervals" in r.output


def test_evaluate_knows_a_review_task_by_its_cache_without_storing_the_path(voted, tmp_path):
    import shutil

    out = tmp_path / "t.pemodel"
    r = CliRunner().invoke(cli, ["--db", str(voted), "learn", "fit", "--task", "t", "--out", str(out), "--min-df", "1",
                                 "--allow-rare-ngrams"])  # fmt: skip
    assert r.exit_code == 0, r.output
    data = load(out).card["data"]
    assert str(tmp_path) not in orjson.dumps(data).decode()  # the cache's path is not in the card
    same = CliRunner().invoke(cli, ["--db", str(voted), "learn", "evaluate", str(out), "--task", "t"])
    assert "these are its training texts" in same.output, same.output
    other = tmp_path / "other.duckdb"
    shutil.copy(voted, other)
    elsewhere = CliRunner().invoke(cli, ["--db", str(other), "learn", "evaluate", str(out), "--task", "t"])
    assert elsewhere.exit_code == 0 and "these are its training texts" not in elsewhere.output, elsewhere.output

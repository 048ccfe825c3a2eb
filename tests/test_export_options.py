"""Export options: filters, scores, redaction, atomic output, threads, CLI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime

import orjson
import polars as pl
import pyarrow as pa
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import ExportError, InputError
from pe_toolkit.exports import export
from pe_toolkit.exports.redact import redact_api_objects, redact_messages, redact_metadata
from pe_toolkit.store import ConversationFilter, Store

from ._export_support import analyze_for_real, api_lines, build_corpus, make_store, stand_in_scores


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"), n=80)


@pytest.fixture
def store(tmp_path, corpus):
    s = make_store(tmp_path / "store.duckdb", corpus)
    yield s
    s.close()


def exported_ids(path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


# -- filters -------------------------------------------------------------------


@pytest.mark.parametrize(
    "constraints",
    [
        {"dataset": "edge"},
        {"tier": ["research", "clinical"]},
        {"min_quality": 0.5, "max_quality": 0.8},
        {"created_after": datetime(2025, 1, 1, tzinfo=UTC), "created_before": datetime(2026, 1, 1, tzinfo=UTC)},
        {"ids": ["edge_long", "syn7_0000003", "no_such_id"]},
    ],
)
def test_filters_select_what_the_store_selects(tmp_path, store, constraints):
    report = export(store, tmp_path / "f.jsonl", format="jsonl", progress=False, **constraints)
    want = store.conversations(ConversationFilter(**constraints))["id"].to_list()
    assert want, "the filter should select something"
    assert exported_ids(tmp_path / "f.jsonl") == want
    assert report.conversations == len(want)


def test_filter_object_and_keywords_combine(tmp_path, store):
    export(store, tmp_path / "f.jsonl", format="jsonl", progress=False, filter=ConversationFilter(dataset="edge"), tier="research")
    assert exported_ids(tmp_path / "f.jsonl") == ["edge_unicode"]


def test_annotation_labels_filter(tmp_path, store):
    now = datetime.now(UTC)
    store.connection.executemany(
        "INSERT INTO annotations (task, reviewer, conversation_id, message_idx, label, note, created_at, updated_at) "
        "VALUES ('review', ?, ?, ?, ?, NULL, ?, ?)",
        [
            ["ana", "syn7_0000001", None, "good_example", now, now],
            ["ben", "syn7_0000002", 3, "needs_review", now, now],
            ["ben", "syn7_0000004", None, "other", now, now],
        ],
    )
    export(store, tmp_path / "l.jsonl", format="jsonl", progress=False, labels=["good_example", "needs_review"])
    assert exported_ids(tmp_path / "l.jsonl") == ["syn7_0000001", "syn7_0000002"]


def test_unknown_filter_and_bad_values_are_clear(tmp_path, store):
    with pytest.raises(InputError, match="unknown filter colour"):
        export(store, tmp_path / "x.jsonl", format="jsonl", colour="red")
    with pytest.raises(InputError, match="min_risk"):
        export(store, tmp_path / "x.jsonl", format="jsonl", min_risk=3)
    with pytest.raises(InputError, match="unknown export format"):
        export(store, tmp_path / "x.jsonl", format="xml")
    with pytest.raises(InputError, match="layout"):
        export(store, tmp_path / "x.jsonl", format="jsonl", layout="nested")
    with pytest.raises(InputError, match=r"drop the .gz"):
        export(store, tmp_path / "x.parquet.gz", format="parquet")
    assert not list(tmp_path.glob("x*"))


def test_empty_selection_writes_an_empty_but_valid_file(tmp_path, store):
    report = export(store, tmp_path / "e.parquet", format="parquet", progress=False, ids=["no_such_id"])
    assert report.conversations == 0
    assert pl.read_parquet(tmp_path / "e.parquet").height == 0
    export(store, tmp_path / "e.csv", format="csv", progress=False, dataset="edge", min_quality=1.0, max_quality=1.0)
    assert (tmp_path / "e.csv").read_text().startswith("conversation_id,idx,role,content")


def test_a_filter_value_the_cache_does_not_hold_is_refused_when_nothing_matched(tmp_path, store):
    """A new-user audit: `--dataset peer_suport` (a typo) and an unknown crisis
    category wrote an empty file and exited 0; `--tier reserch` was refused."""
    with pytest.raises(ExportError, match=r"no conversation matched: the cache holds no dataset 'edg', label 'nosuch'; nothing"):
        export(store, tmp_path / "t.jsonl", format="jsonl", progress=False, dataset=["edg"], labels="nosuch")
    with pytest.raises(InputError, match="unknown crisis category 'suicidal_ideation'; expected one of passive_ideation"):
        export(store, tmp_path / "t.jsonl", format="jsonl", progress=False, crisis_categories="suicidal_ideation")
    assert not list(tmp_path.glob("t*"))
    result = CliRunner().invoke(cli, ["--db", store.path.as_posix(), "export", str(tmp_path / "t.jsonl"), "--dataset", "edg"])
    assert result.exit_code == 1 and "the cache holds no dataset 'edg'" in result.stderr, result.output
    # A typo beside a value that matches is a selection, not an error.
    assert export(store, tmp_path / "t.jsonl", format="jsonl", progress=False, dataset=["edge", "edg"]).conversations > 0


def test_a_name_whose_extension_names_another_format_is_refused(tmp_path, store):
    """`export x.csv --format jsonl` wrote JSON Lines under a .csv name
    without a word; now one line, exit 1, and nothing written. A format
    whose extension fits (openai in .jsonl) or a name without a known
    extension is written as before."""
    db = store.path.as_posix()
    for name, fmt, holds in (("x.csv", "jsonl", "csv"), ("x.jsonl.gz", "csv", "JSON Lines"),
                             ("x.parquet", "openai", "parquet"), ("ds.parquet", "huggingface", "parquet")):  # fmt: skip
        result = CliRunner().invoke(cli, ["--db", db, "export", str(tmp_path / name), "--format", fmt])
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, (name, result.output)
        assert f"'{name}' names a {holds} file, but the {fmt} format" in result.stderr, result.stderr
        with pytest.raises(InputError, match=f"names a {holds} file"):
            export(store, tmp_path / name, format=fmt, progress=False)
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob("ds*"))
    assert export(store, tmp_path / "chat.jsonl", format="openai", progress=False).conversations > 0
    assert export(store, tmp_path / "lines.txt", format="jsonl", progress=False).conversations > 0


# -- scores --------------------------------------------------------------------


def test_unanalyzed_store_exports_without_scores_and_rejects_score_filters(tmp_path, store):
    report = export(store, tmp_path / "s.parquet", format="parquet", progress=False, include_scores=True)
    assert report.scores is False
    assert not any(c.startswith("score_") for c in pl.read_parquet_schema(tmp_path / "s.parquet"))
    for kwargs in ({"min_risk": 0.5}, {"max_risk": 0.2}, {"crisis_categories": ["self_harm"]}):
        with pytest.raises(ExportError, match="pe-toolkit analyze"):
            export(store, tmp_path / "r.jsonl", format="jsonl", progress=False, **kwargs)
    assert not (tmp_path / "r.jsonl").exists()


@pytest.fixture
def scored(store):
    stand_in_scores(store)
    return store


def test_risk_and_crisis_filters_read_current_scores(tmp_path, scored):
    want = scored.sql(
        "SELECT s.conversation_id FROM conversation_scores s JOIN conversations c "
        "ON c.id = s.conversation_id AND c.content_hash = s.content_hash "
        "WHERE s.risk_score BETWEEN 0.6 AND 0.9 AND list_has_any(s.crisis_categories, ['self_harm']) ORDER BY 1"
    )["conversation_id"].to_list()
    assert want
    export(scored, tmp_path / "r.jsonl", format="jsonl", progress=False, min_risk=0.6, max_risk=0.9, crisis_categories="self_harm")
    assert exported_ids(tmp_path / "r.jsonl") == want


def test_scores_of_changed_content_do_not_count(tmp_path, scored):
    target = scored.sql("SELECT conversation_id FROM conversation_scores ORDER BY risk_score DESC LIMIT 1")[0, 0]
    export(scored, tmp_path / "a.jsonl", format="jsonl", progress=False, min_risk=0.0, ids=[target])
    assert exported_ids(tmp_path / "a.jsonl") == [target]
    scored.connection.execute("UPDATE conversations SET content_hash = 'changed' WHERE id = ?", [target])
    export(scored, tmp_path / "b.jsonl", format="jsonl", progress=False, min_risk=0.0, ids=[target])
    assert exported_ids(tmp_path / "b.jsonl") == []
    report = export(scored, tmp_path / "c.parquet", format="parquet", layout="nested", progress=False, include_scores=True, ids=[target])
    row = pl.read_parquet(tmp_path / "c.parquet").row(0, named=True)
    assert row["score_risk_score"] is None and report.conversations == 1


def test_include_scores_in_each_format(tmp_path, scored):
    scores = scored.sql("SELECT * FROM conversation_scores ORDER BY conversation_id")
    by_id = {r["conversation_id"]: r for r in scores.iter_rows(named=True)}

    export(scored, tmp_path / "s.jsonl", format="jsonl", progress=False, include_scores=True)
    lines = (tmp_path / "s.jsonl").read_bytes().splitlines()
    plain = api_lines(scored)
    for line, base in zip(lines, plain):
        obj = orjson.loads(line)
        # the API object itself is unchanged; scores are appended beside it
        assert {k: v for k, v in obj.items() if k != "scores"} == orjson.loads(base)
        assert obj["scores"]["risk_score"] == by_id[obj["id"]]["risk_score"]

    export(scored, tmp_path / "s.sg.jsonl", format="sharegpt", progress=False, include_scores=True)
    first = orjson.loads((tmp_path / "s.sg.jsonl").read_bytes().splitlines()[0])
    assert first["scores"]["risk_score"] == by_id[first["id"]]["risk_score"]

    report = export(scored, tmp_path / "s.parquet", format="parquet", progress=False, include_scores=True)
    assert report.scores
    flat = pl.read_parquet(tmp_path / "s.parquet")
    message_scores = scored.sql("SELECT conversation_id, idx, sentiment FROM message_scores")
    joined = flat.join(message_scores, on=["conversation_id", "idx"])
    assert joined.height == flat.height
    assert (joined["message_score_sentiment"] == joined["sentiment"]).all()
    assert flat.group_by("conversation_id").agg(pl.col("score_risk_score").first()).sort("conversation_id")[
        "score_risk_score"
    ].to_list() == scores["risk_score"].to_list()

    export(scored, tmp_path / "s.csv", format="csv", progress=False, include_scores=True)
    csv = pl.read_csv(tmp_path / "s.csv", infer_schema=False)
    assert csv.height == flat.height
    sample = csv.filter(pl.col("message_score_crisis_categories").is_not_null()).row(0, named=True)
    assert isinstance(orjson.loads(sample["message_score_crisis_categories"]), list)

    with pytest.raises(InputError, match="openai"):
        export(scored, tmp_path / "o.jsonl", format="openai", include_scores=True)


def test_real_analysis_scores_reach_the_exports(tmp_path, store):
    analyze_for_real(store)
    report = export(store, tmp_path / "n.parquet", format="parquet", layout="nested", progress=False, include_scores=True)
    assert report.scores
    frame = pl.read_parquet(tmp_path / "n.parquet").sort("id")
    scores = store.sql("SELECT * FROM conversation_scores ORDER BY conversation_id")
    assert frame["id"].to_list() == scores["conversation_id"].to_list()
    for col in scores.columns:
        if col in ("conversation_id", "content_hash"):
            continue
        assert frame[f"score_{col}"].to_list() == scores[col].to_list(), col
    message_scores = store.sql("SELECT conversation_id, idx, sentiment FROM message_scores ORDER BY conversation_id, idx")
    nested = [m["message_score_sentiment"] for msgs in frame["messages"].to_list() for m in msgs]
    assert nested == message_scores["sentiment"].to_list()
    messages_type = frame["messages"].dtype
    assert isinstance(messages_type, pl.List) and isinstance(messages_type.inner, pl.Struct)
    assert not any(c.startswith("message_score_minhash") for c in messages_type.inner.to_schema())


# -- redaction -----------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def _toy_redact(values: pa.Array) -> pa.Array:
    """A stand-in redactor for the plumbing tests: emails only."""
    return pa.array([None if v is None else _EMAIL.sub("[EMAIL]", v) for v in values.to_pylist()], pa.string())


def test_redaction_plumbing_changes_only_the_text():
    messages = pa.array(
        [
            [{"idx": 0, "role": "user", "content": "write to me@example.org"}, {"idx": 1, "role": "assistant", "content": "ok"}],
            [{"idx": 0, "role": "user", "content": "a@b.co and c@d.io"}],
        ]
    ).slice(0)
    out = redact_messages(messages, _toy_redact)
    assert out.to_pylist() == [
        [{"idx": 0, "role": "user", "content": "write to [EMAIL]"}, {"idx": 1, "role": "assistant", "content": "ok"}],
        [{"idx": 0, "role": "user", "content": "[EMAIL] and [EMAIL]"}],
    ]
    # a sliced array keeps its own rows
    assert redact_messages(messages.slice(1), _toy_redact).to_pylist() == out.to_pylist()[1:]

    meta = pa.array(['{"dataset": "x@y.org", "notes": ["mail z@w.com"], "n": 3, "deep": {"k": "q@r.net"}}', None])
    cleaned = [None if m is None else orjson.loads(m) for m in redact_metadata(meta, _toy_redact).to_pylist()]
    # a dataset name is scanned too (issue 15): its key stays, its value is free text
    assert cleaned == [{"dataset": "[EMAIL]", "notes": ["mail [EMAIL]"], "n": 3, "deep": {"k": "[EMAIL]"}}, None]

    objs = pa.array(['{"id":"a","messages":[{"role":"user","content":"me@x.org","timestamp":null}],"quality_metrics":null,"metadata":{"dataset":"d","contact":"me@x.org"}}'])
    (text,) = redact_api_objects(objs, _toy_redact).to_pylist()
    assert list(orjson.loads(text)) == ["id", "messages", "quality_metrics", "metadata"]
    assert "me@x.org" not in text and text.count("[EMAIL]") == 2


def test_redacted_export_with_the_analyzers_redactor(tmp_path, store):
    pii = pytest.importorskip("pe_toolkit.analysis.pii", reason="pending: pe_toolkit.analysis.pii (lexicon engineer)")
    sample = store.messages()
    expected = pii.redact_frame(sample, column="content")["content"].to_list()
    assert expected != sample["content"].to_list(), "the corpus should hold some PII"
    export(store, tmp_path / "r.parquet", format="parquet", progress=False, redact=True)
    assert pl.read_parquet(tmp_path / "r.parquet")["content"].to_list() == expected
    report = export(store, tmp_path / "r.jsonl", format="jsonl", progress=False, redact=True)
    assert report.redacted
    contents = [m["content"] for line in (tmp_path / "r.jsonl").read_bytes().splitlines() for m in orjson.loads(line)["messages"]]
    assert contents == expected


# -- atomic output -------------------------------------------------------------


def test_a_failure_mid_export_leaves_the_previous_file(tmp_path, store, monkeypatch):
    from pe_toolkit.exports import writers

    target = tmp_path / "out.jsonl"
    target.write_text('{"id": "previous export", "messages": []}\n')
    calls = {"n": 0}
    original = writers.ApiLinesWriter.write

    def failing(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return original(self, batch)

    monkeypatch.setattr(writers.ApiLinesWriter, "write", failing)
    with pytest.raises(ExportError, match=r"cannot write .*out.jsonl: disk full"):
        export(store, target, format="jsonl", progress=False, batch_rows=10)
    assert target.read_text() == '{"id": "previous export", "messages": []}\n'
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "store.duckdb" and not p.name.endswith(".wal")) == ["out.jsonl"]


def test_folder_formats_fail_cleanly_too(tmp_path, store, monkeypatch):
    from pe_toolkit.exports import writers

    def failing(self, batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(writers.HuggingFaceWriter, "write", failing)
    with pytest.raises(RuntimeError):
        export(store, tmp_path / "hf", format="huggingface", progress=False)
    assert not (tmp_path / "hf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf")]


def test_a_killed_export_never_leaves_a_complete_looking_file(tmp_path, store):
    store.close()
    script = textwrap.dedent(
        f"""
        import sys, time
        from pe_toolkit.exports import writers, export
        from pe_toolkit.store import Store
        original = writers.CsvWriter.write
        def write(self, batch):
            n = original(self, batch)
            self._out.flush()
            print("WROTE", flush=True)
            time.sleep(60)
            return n
        writers.CsvWriter.write = write
        export(Store({str(tmp_path / "store.duckdb")!r}, read_only=True), {str(tmp_path / "out.csv")!r},
               format="csv", progress=False, batch_rows=10)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "WROTE"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert not (tmp_path / "out.csv").exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".out.csv.")]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".part") and leftovers[0].stat().st_size > 0


def test_an_existing_folder_of_other_files_is_never_replaced(tmp_path, store):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="does not hold a previous export"):
        export(store, folder, format="huggingface", progress=False)
    assert (folder / "notes.txt").read_text() == "keep me"
    # a previous export is replaced
    export(store, tmp_path / "hf", format="huggingface", progress=False, dataset="edge")
    report = export(store, tmp_path / "hf", format="huggingface", progress=False)
    assert report.conversations == store.count()
    manifest = orjson.loads((tmp_path / "hf" / "pe_toolkit_export.json").read_bytes())
    assert manifest["conversations"] == store.count()


def test_the_cache_itself_is_never_an_export_target(tmp_path, store):
    db = tmp_path / "store.duckdb"
    before = store.count()
    for target, force in ((db, False), (db, True), (tmp_path / "store.duckdb.wal", True)):
        with pytest.raises(ExportError, match="cache being exported from"):
            export(store, target, format="jsonl", progress=False, force=force)
    store.close()
    for args in (["export", str(db), "--format", "jsonl"], ["export", str(db), "--format", "jsonl", "--force"]):
        result = CliRunner().invoke(cli, ["--db", str(db), *args])
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
        assert "cache being exported from" in result.stderr
    with Store(db, read_only=True) as again:
        assert again.count() == before


def test_an_unrelated_file_is_replaced_only_with_force(tmp_path, store):
    notes = tmp_path / "notes.csv"
    notes.write_text("my own,notes\n")
    with pytest.raises(ExportError, match="does not look like a previous export"):
        export(store, notes, format="csv", progress=False)
    assert notes.read_text() == "my own,notes\n"
    store.close()
    db = str(tmp_path / "store.duckdb")
    result = CliRunner().invoke(cli, ["--db", db, "export", str(notes)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "--force" in result.stderr and notes.read_text() == "my own,notes\n"
    # a previous export of the same format is replaced as before, any file with --force
    for name in ("again.csv", "again.csv.gz", "again.parquet", "again.jsonl"):
        for _ in range(2):
            result = CliRunner().invoke(cli, ["--db", db, "export", str(tmp_path / name)])
            assert result.exit_code == 0, (name, result.output)
    result = CliRunner().invoke(cli, ["--db", db, "export", str(notes), "--force"])
    assert result.exit_code == 0, result.output
    assert notes.read_text().startswith("conversation_id")


def test_a_json_or_gzip_file_that_is_not_an_export_is_replaced_only_with_force(tmp_path, store):
    import gzip

    mine = {
        "settings.json": b'{\n  "theme": "dark"\n}\n',  # starts with "{" as JSON lines do
        "one_line.jsonl": b'{"theme": "dark"}\n',
        "notes.jsonl.gz": gzip.compress(b"my own notes\n"),
        "broken.csv.gz": b"\x1f\x8b not really gzip",
        "other.csv": b"conversation_id_of_mine\n",
    }
    for name, data in mine.items():
        (tmp_path / name).write_bytes(data)
        fmt = {"json": "openai", "jsonl": "jsonl", "gz": "jsonl" if "jsonl" in name else "csv", "csv": "csv"}[name.rsplit(".", 1)[1]]
        with pytest.raises(ExportError, match="does not look like a previous export"):
            export(store, tmp_path / name, format=fmt, progress=False)
        assert (tmp_path / name).read_bytes() == data, name
    # an empty selection's export, gzipped (20 bytes), is replaced again too
    for _ in range(2):
        export(store, tmp_path / "none.jsonl.gz", format="jsonl", ids=["no_such_id"], progress=False)
    # a first line longer than what is read: the sharegpt writer's opens with "id"
    from pe_toolkit.exports.atomic import FIRST_LINE_LIMIT

    long_line = tmp_path / "long.jsonl"
    long_line.write_bytes(b'{"id":"x","conversations":[{"from":"human","value":"' + b"a" * FIRST_LINE_LIMIT + b'"}]}\n')
    export(store, long_line, format="sharegpt", progress=False)
    # each format's own output is recognised, gzipped too, and replaced again
    for name, fmt in (("a.jsonl", "jsonl"), ("b.jsonl.gz", "jsonl"), ("c.jsonl", "openai"), ("d.jsonl", "sharegpt"),
                      ("e.csv.gz", "csv")):  # fmt: skip
        for _ in range(2):
            export(store, tmp_path / name, format=fmt, progress=False)


def test_a_file_the_cache_was_imported_from_is_replaced_only_with_force(tmp_path):
    from pe_toolkit.ingest import import_file

    source = tmp_path / "mine.jsonl"  # starts with "{", as a JSON lines export does
    lines = [{"id": f"c{i}", "messages": [{"role": "user", "content": f"hello {i}"}, {"role": "assistant", "content": "hi"}]}
             for i in range(3)]  # fmt: skip
    source.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in lines))
    before = source.read_bytes()
    with Store(tmp_path / "c.duckdb") as s:
        import_file(s, source, progress=False)
        with pytest.raises(ExportError, match="imported from"):
            export(s, source, format="jsonl", progress=False)
        assert source.read_bytes() == before
        export(s, source, format="jsonl", progress=False, force=True)
    assert source.read_bytes() != before


def test_force_is_refused_where_it_would_do_nothing(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["--db", str(tmp_path / "c.duckdb"), "export", "--to", "postgresql://x@127.0.0.1/y", "--force"])
    assert r.exit_code == 2 and "--force applies to a file export" in r.output
    r = runner.invoke(cli, ["export", "--engine", "ray", "--scores", str(tmp_path), str(tmp_path / "out"), "--format", "jsonl", "--force"])
    assert r.exit_code == 2 and "--force applies to a file export" in r.output


def test_warehouse_options_are_refused_for_a_file_export(tmp_path, store):
    # --schema and --no-features were accepted with PATH and did nothing:
    # the file was written as if they had not been given.
    store.close()
    runner = CliRunner()
    for extra in (["--schema", "research"], ["--schema", "pe_toolkit"], ["--no-features"]):
        out = tmp_path / "x.jsonl"
        r = runner.invoke(cli, ["--db", str(store.path), "export", str(out), "--no-progress", *extra])
        assert r.exit_code == 2 and "apply to --to" in r.output, (extra, r.output)
        assert not out.exists()
        r = runner.invoke(cli, ["export", "--engine", "ray", "--scores", str(tmp_path), str(tmp_path / "o"), "--format", "jsonl", *extra])
        assert r.exit_code == 2 and "apply to --to" in r.output, (extra, r.output)


def test_an_unwritable_place_is_one_clear_error(tmp_path, store):
    with pytest.raises(ExportError, match="does not exist"):
        export(store, tmp_path / "no" / "such" / "x.jsonl", format="jsonl", progress=False)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(ExportError, match="cannot write"):
            export(store, locked / "x.jsonl", format="jsonl", progress=False)


def test_exports_are_private_to_their_owner(tmp_path, store):
    export(store, tmp_path / "p.jsonl", format="jsonl", progress=False)
    export(store, tmp_path / "p.hf", format="huggingface", progress=False)
    assert (tmp_path / "p.jsonl").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "p.hf").stat().st_mode & 0o777 == 0o700


def test_the_files_of_a_folder_export_are_private_too(tmp_path, store):
    """The huggingface export's shards, state.json and dataset_info.json
    (and the parquet tables layout's files) were created through the umask,
    644 here, while every file export is 600: copied out of their folder
    they were readable by all."""
    old = os.umask(0o022)  # the usual umask, whatever the test runner's
    try:
        export(store, tmp_path / "p.hf", format="huggingface", progress=False)
        export(store, tmp_path / "t", format="parquet", layout="tables", progress=False)
    finally:
        os.umask(old)
    for folder in (tmp_path / "p.hf", tmp_path / "t"):
        files = sorted(folder.iterdir())
        assert files and {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}


# -- threads -------------------------------------------------------------------


def test_concurrent_exports_from_threads_share_one_store(tmp_path, store):
    errors: list[BaseException] = []
    jobs = [("a.jsonl", "jsonl"), ("b.csv", "csv"), ("c.parquet", "parquet"), ("d.hf", "huggingface"), ("e.jsonl", "openai")]

    def run(name: str, fmt: str) -> None:
        try:
            export(store, tmp_path / name, format=fmt, progress=False, batch_rows=9)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert (tmp_path / "a.jsonl").read_text("utf-8").splitlines() == api_lines(store)
    assert pl.read_parquet(tmp_path / "c.parquet").height == store.messages().height


def test_export_filter_renders_extra_conditions_as_parameters():
    sql, params = ConversationFilter(labels=["x'); DROP TABLE conversations; --"], min_risk=0.2).where("c")
    assert "DROP" not in sql and params[-1] == ["x'); DROP TABLE conversations; --"]


# -- CLI -----------------------------------------------------------------------


def test_cli_export_writes_and_reports(tmp_path, store):
    store.close()
    db = str(tmp_path / "store.duckdb")
    result = CliRunner().invoke(cli, ["--db", db, "export", str(tmp_path / "x.parquet"), "--tier", "research", "--layout", "nested"])
    assert result.exit_code == 0, result.output
    assert "conversations" in result.output
    with Store(db, read_only=True) as again:
        assert pl.read_parquet(tmp_path / "x.parquet")["id"].to_list() == again.conversations(tier="research")["id"].to_list()
    (tmp_path / "ids.txt").write_text("edge_long\nedge_quotes\n")
    result = CliRunner().invoke(cli, ["--db", db, "export", str(tmp_path / "t.jsonl"), "--format", "openai", "--ids-file", str(tmp_path / "ids.txt")])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "t.jsonl").read_bytes().splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["out.txt"], "cannot tell the format"),
        ([], "give PATH"),
        (["out.jsonl", "--to", "postgresql://u@h/db"], "not both"),
        (["out.jsonl", "--min-risk", "0.5"], "pe-toolkit analyze"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, store, args, message):
    store.close()
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "store.duckdb"), "export", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_pe_export_is_callable_whatever_was_imported_first(tmp_path, store):
    store.close()
    code = textwrap.dedent(
        f"""
        import pe_toolkit as pe
        from pe_toolkit.exports import warehouse  # importing the package must not shadow pe.export
        with pe.open_store({str(tmp_path / "store.duckdb")!r}, read_only=True) as s:
            report = pe.export(s, {str(tmp_path / "x.jsonl")!r}, format="jsonl", progress=False)
            print(report.conversations, pe.features(s).height)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    with Store(tmp_path / "store.duckdb", read_only=True) as again:
        n = again.count()
    assert out.stdout.split() == [str(n), str(n)]

"""Importing files end to end: formats, idempotence, bad files, dead letters, CLI."""

import gzip
import json
import warnings
import zlib
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError, RecordError
from pe_toolkit.events import EventBus
from pe_toolkit.ingest import ColumnMap, detect_format, import_file
from pe_toolkit.store import NewCacheWarning, Store

from .conftest import conversation


def test_jsonl_import_then_reimport_changes_nothing(store, write_jsonl):
    path = write_jsonl([conversation(i) for i in range(50)])
    first = import_file(store, path, progress=False)
    assert (first.inserted, first.updated, first.unchanged, first.format) == (50, 0, 0, "api")
    snapshot = store.sql("SELECT id, content_hash, fetched_at FROM conversations ORDER BY id")
    again = import_file(store, path, progress=False)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 50)
    assert store.sql("SELECT id, content_hash, fetched_at FROM conversations ORDER BY id").equals(snapshot)
    assert store.scalar("SELECT count(*) FROM messages") == 200
    runs = store.sql("SELECT status, inserted, unchanged FROM ingest_runs ORDER BY started_at")
    assert runs.rows() == [("completed", 50, 0), ("completed", 0, 50)]


def test_gzip_and_json_array_files(store, tmp_path, write_jsonl):
    gz = write_jsonl([conversation(i) for i in range(5)], name="a.jsonl.gz")
    array = tmp_path / "b.json"
    array.write_text(json.dumps([conversation(i) for i in range(5, 9)]))
    assert import_file(store, gz, progress=False).inserted == 5
    report = import_file(store, array, progress=False)
    assert (report.inserted, report.format) == (4, "api")
    assert store.count() == 9


def test_duplicate_ids_in_one_file_last_wins(store, write_jsonl):
    path = write_jsonl([conversation(1, n_messages=2), conversation(2), conversation(1, n_messages=6)])
    report = import_file(store, path, progress=False)
    assert report.inserted == 2
    assert len(store.conversation("conv_00001")["messages"]) == 6


def test_duplicates_across_batches_last_wins(store, write_jsonl):
    records = [conversation(1, n_messages=2)] + [conversation(i) for i in range(2, 40)] + [conversation(1, n_messages=3)]
    path = write_jsonl(records)
    import_file(store, path, progress=False, chunk_bytes=1024)
    assert len(store.conversation("conv_00001")["messages"]) == 3


def test_bad_record_stops_with_file_and_line_and_writes_nothing_of_its_batch(store, write_jsonl):
    records = [conversation(i) for i in range(30)]
    records[25] = {"id": "broken", "messages": [{"role": "user", "content": 3}]}
    path = write_jsonl(records)
    with pytest.raises(RecordError) as info:
        import_file(store, path, progress=False, chunk_bytes=2048)
    assert str(info.value).startswith(f"{path}:26: messages[0].content must be a string, got number")
    written = store.count()
    assert 0 < written < 25  # earlier batches committed, the failing batch not at all
    ids = store.conversations()["id"].to_list()
    assert ids == [f"conv_{i:05d}" for i in range(written)]
    assert store.sql("SELECT status FROM ingest_runs").item() == "failed"


def test_skip_invalid_keeps_bad_records_as_dead_letters(store, write_jsonl):
    records = [conversation(i) for i in range(6)]
    records[2] = "{not json"
    records[4] = {"id": "x", "messages": "nope"}
    path = write_jsonl(records)
    report = import_file(store, path, skip_invalid=True, progress=False)
    assert (report.inserted, report.invalid) == (4, 2)
    dead = store.dead_letters()
    assert dead["locator"].to_list() == ["3", "5"]
    assert dead["reason"].to_list()[0].startswith("invalid JSON")
    assert store.sql("SELECT payload FROM dead_letters WHERE locator = '3'").item() == "{not json"
    import_file(store, path, skip_invalid=True, progress=False)
    assert store.dead_letters()["attempts"].to_list() == [2, 2]
    records[2] = conversation(2)
    records[4] = conversation(4)
    write_jsonl(records)
    fixed = import_file(store, path, skip_invalid=True, progress=False)
    assert (fixed.inserted, fixed.invalid) == (2, 0)
    assert store.dead_letters().is_empty()
    assert store.count() == 6


def test_truncated_gzip_is_a_clear_error(store, tmp_path):
    data = gzip.compress(b"".join(json.dumps(conversation(i)).encode() + b"\n" for i in range(2000)))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordError, match="truncated gzip"):
        import_file(store, path, progress=False)


def test_truncated_gzip_names_the_line_where_the_stream_broke(store, tmp_path):
    # Reported at line 1 before, although hundreds of complete lines came
    # first (issue 15, part 8): the break is counted from what decompressed.
    data = gzip.compress(b"".join(json.dumps(conversation(i)).encode() + b"\n" for i in range(2000)))
    cut = data[: len(data) // 2]
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(cut)
    complete = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut).count(b"\n")
    assert 100 < complete < 2000
    with pytest.raises(RecordError, match="truncated gzip") as info:
        import_file(store, path, progress=False)
    assert info.value.line == complete + 1
    assert f":{complete + 1}:" in str(info.value) and f"{complete:,} lines before it were read" in str(info.value)
    # What the message says was read was imported, and the run records the failure.
    assert store.count() == complete
    assert store.scalar("SELECT status FROM ingest_runs") == "failed"


def test_invalid_utf8_line_is_named(store, tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(json.dumps(conversation(1)).encode() + b"\n" + b'{"id": "caf\xe9"}\n')
    with pytest.raises(RecordError, match=r":2: invalid UTF-8"):
        import_file(store, path, progress=False)
    report = import_file(store, path, progress=False, skip_invalid=True)
    assert (report.inserted, report.invalid) == (1, 1)


def test_cli_import_of_a_missing_file_creates_no_cache(tmp_path):
    cache = tmp_path / "new.duckdb"
    r = CliRunner().invoke(cli, ["--db", str(cache), "import", str(tmp_path / "nope.csv")])
    assert r.exit_code == 1 and "nope.csv: no such file" in r.output
    assert not cache.exists()


def test_cli_import_that_fails_leaves_no_new_cache_but_keeps_an_existing_one(tmp_path, write_jsonl, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"broken": \n', encoding="utf-8")
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n", encoding="utf-8")
    cache = tmp_path / "new.duckdb"
    for source in (bad, table):
        r = CliRunner().invoke(cli, ["--db", str(cache), "import", str(source)])
        assert r.exit_code == 1, r.output
        assert not cache.exists() and not Path(f"{cache}.wal").exists()
        # An expected failure is one line (the removal is said only where a warning announced the cache).
        assert len(r.stderr.strip().splitlines()) == 1 and "was removed" not in r.output, r.output
    # Folders made for it go too; the folder it was asked into stays.
    nested = tmp_path / "made" / "here" / "c.duckdb"
    assert CliRunner().invoke(cli, ["--db", str(nested), "import", str(bad)]).exit_code == 1
    assert not (tmp_path / "made").exists() and tmp_path.exists()
    # A link to a file not there yet stays; the empty file made at its target goes.
    link, target = tmp_path / "link.duckdb", tmp_path / "elsewhere.duckdb"
    link.symlink_to(target)
    assert CliRunner().invoke(cli, ["--db", str(link), "import", str(bad)]).exit_code == 1
    assert link.is_symlink() and not target.exists() and not Path(f"{link}.wal").exists()
    # The default cache: the warning that announced it is followed by its removal.
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("PE_CACHE", raising=False)
    with warnings.catch_warnings():  # shown by the CLI, not raised
        warnings.simplefilter("always", NewCacheWarning)
        r = CliRunner().invoke(cli, ["import", str(bad)])
    assert r.exit_code == 1 and "creating a new, empty cache" in r.output and "was removed" in r.output, r.output
    assert list(project.iterdir()) == []
    # A cache that existed stays, with what it held, when a later import fails.
    good = write_jsonl([conversation(i) for i in range(3)], name="good.jsonl")
    assert CliRunner().invoke(cli, ["--db", str(cache), "import", str(good)]).exit_code == 0
    r = CliRunner().invoke(cli, ["--db", str(cache), "import", str(bad)])
    assert r.exit_code == 1 and "bad.jsonl:1" in r.output
    with Store(cache, read_only=True) as store:
        assert store.count() == 3
    # An empty cache that existed before is not removed either.
    empty = tmp_path / "empty.duckdb"
    Store(empty).close()
    assert CliRunner().invoke(cli, ["--db", str(empty), "import", str(bad)]).exit_code == 1
    assert empty.exists()


def test_missing_file_and_unknown_format(store, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        import_file(store, tmp_path / "nope.jsonl")
    odd = tmp_path / "odd.txt"
    odd.write_text('{"hello": 1}\n')
    with pytest.raises(InputError, match="cannot tell the format"):
        import_file(store, odd)


def test_format_detection(tmp_path, write_jsonl):
    assert detect_format(write_jsonl([conversation(1)], "a.jsonl")) == "api"
    assert detect_format(write_jsonl([{"messages": [{"role": "user", "content": "x"}]}], "b.jsonl")) == "openai"
    assert detect_format(write_jsonl([{"conversations": [{"from": "human", "value": "x"}]}], "c.jsonl.gz")) == "sharegpt"
    assert detect_format(tmp_path / "x.csv") == "csv"


def test_csv_one_row_per_message(store, tmp_path):
    path = tmp_path / "chats.csv"
    pl.DataFrame({
        "conversation_id": ["c1", "c2", "c1", "c1", "c2"],
        "turn": [0, 0, 2, 1, 1],
        "speaker": ["client", "client", "client", "therapist", "counselor"],
        "text": ["hi", "hello", "thanks, bye", "how are you?", 'it has "quotes", commas\nand a newline'],
    }).write_csv(path)
    report = import_file(store, path, progress=False)
    assert (report.inserted, report.format) == (2, "csv")
    c1 = store.conversation("c1")
    assert [(m["role"], m["content"]) for m in c1["messages"]] == [("user", "hi"), ("assistant", "how are you?"), ("user", "thanks, bye")]
    assert store.conversation("c2")["messages"][1]["content"] == 'it has "quotes", commas\nand a newline'
    assert import_file(store, path, progress=False).unchanged == 2


def test_csv_pairs_like_counseling_datasets(store, tmp_path):
    path = tmp_path / "counsel.csv"
    pl.DataFrame({"Context": ["I feel low", "I can't sleep"], "Response": ["That sounds hard.", "How long has this been going on?"]}).write_csv(path)
    report = import_file(store, path, progress=False)
    assert report.inserted == 2
    convs = store.conversations()
    assert set(convs["dataset"]) == {"counsel"}
    messages = store.messages()
    assert messages["role"].to_list() == ["user", "assistant"] * 2
    assert import_file(store, path, progress=False).unchanged == 2


def test_parquet_with_explicit_mapping_and_bad_role(store, tmp_path):
    path = tmp_path / "m.parquet"
    pl.DataFrame({"dialog": ["d1", "d1", "d2"], "who": ["user", "assistant", "robot"], "utt": ["a", "b", "c"]}).write_parquet(path)
    cmap = ColumnMap(id="dialog", role="who", content="utt")
    with pytest.raises(RecordError, match=r"m\.parquet:3: row 3: column who: unknown role 'robot' \(expected user, assistant or system\)$"):
        import_file(store, path, columns=cmap, progress=False)
    report = import_file(store, path, columns=cmap, skip_invalid=True, progress=False)
    assert (report.inserted, report.invalid) == (1, 1)


def test_tabular_mapping_errors_name_the_columns(store, tmp_path):
    path = tmp_path / "x.csv"
    pl.DataFrame({"a": [1], "b": ["x"]}).write_csv(path)
    with pytest.raises(InputError, match="cannot tell which columns"):
        import_file(store, path, progress=False)
    with pytest.raises(InputError, match="no column 'nope'"):
        import_file(store, path, columns=ColumnMap(content="nope"), progress=False)


def test_import_publishes_events(store, write_jsonl):
    bus = EventBus()
    seen = []
    bus.subscribe("conversation.*", lambda e: seen.append((e.topic, len(e.payload["ids"]))))
    path = write_jsonl([conversation(i) for i in range(3)])
    import_file(store, path, progress=False, events=bus)
    write_jsonl([conversation(0, n_messages=2), conversation(1), conversation(2)])
    import_file(store, path, progress=False, events=bus)
    assert seen == [("conversation.created", 3), ("conversation.updated", 1)]


def test_cli_import_and_one_line_errors(tmp_path, write_jsonl):
    runner = CliRunner()
    db = str(tmp_path / "cli.duckdb")
    good = write_jsonl([conversation(i) for i in range(3)], "good.jsonl")
    result = runner.invoke(cli, ["--db", db, "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "3 new" in result.output
    bad = write_jsonl([conversation(1), {"id": "x"}], "bad.jsonl")
    result = runner.invoke(cli, ["--db", db, "import", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f'pe-toolkit: error: {bad}:2: missing "messages"'
    result = runner.invoke(cli, ["--db", db, "info"])
    assert result.exit_code == 0 and "3 conversations" in result.output
    result = runner.invoke(cli, ["--db", db, "sql", "SELECT count(*) AS n FROM conversations WHERE dataset = ?", "--param", "unit", "--format", "csv"])
    assert result.output.splitlines() == ["n", "3"]
    result = runner.invoke(cli, ["--db", db, "sql", "SELEC nonsense"])
    assert result.exit_code == 1 and result.stderr.startswith("pe-toolkit: error: query failed")


def test_csv_quoted_empty_cell_is_an_empty_message(store, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text('conversation_id,turn,role,content\nc1,0,user,hello\nc1,1,assistant,""\nc1,2,user,\n')
    report = import_file(store, path, progress=False)
    assert report.inserted == 1
    assert [m["content"] for m in store.conversation("c1")["messages"]] == ["hello", "", ""]


def test_csv_columns_cannot_shadow_derived_values(store, tmp_path):
    # Columns named like the importer's own intermediate values.
    path = tmp_path / "shadow.csv"
    path.write_text("conversation_id,role,content,tier,msgs,row_error,_row\nc1,User,hi,Research,x,y,z\nc1,Assistant,hello,Research,x,y,z\n")
    report = import_file(store, path, progress=False)
    assert report.inserted == 1
    row = store.conversations().row(0, named=True)
    assert row["tier"] == "research"
    assert [m["role"] for m in store.conversation("c1")["messages"]] == ["user", "assistant"]


def test_openai_and_sharegpt_files_keep_their_extra_fields_as_labels(store, write_jsonl):
    # Per-message fields of chat files (a rating, a speaker's name) were dropped
    # while the import said "metadata kept"; now they are labels one call away.
    rows = [
        {"messages": [{"role": "user", "content": "I can't sleep."}, {"role": "assistant", "content": "What keeps you up?", "rating": 5}],
         "source": "forum"},
        {"messages": [{"role": "user", "content": "Work is too much."}, {"role": "assistant", "content": "Just quit.", "rating": 1}]},
    ]  # fmt: skip
    import_file(store, write_jsonl(rows, "chat.jsonl"), progress=False)
    meta = store.sql("SELECT metadata FROM conversations ORDER BY metadata").to_series().to_list()
    assert sorted(json.loads(m)["message_metadata"][1]["rating"] for m in meta) == [1, 5]
    assert any(json.loads(m).get("source") == "forum" for m in meta)
    labels = store.labels("rating", role="assistant")
    assert sorted(zip(labels["text"], labels["label"])) == [("Just quit.", "1"), ("What keeps you up?", "5")]


def test_cli_sync_that_fails_leaves_no_new_cache(tmp_path, monkeypatch):
    """A new-user audit: `--db new.duckdb sync --tier research` with no API
    URL failed correctly but left a new, empty cache (import removes its own)."""
    monkeypatch.delenv("PE_API_URL", raising=False)
    monkeypatch.delenv("PE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no pe_toolkit.toml naming an API here
    cache = tmp_path / "new.duckdb"
    r = CliRunner().invoke(cli, ["--db", str(cache), "sync", "--tier", "research", "--no-progress"])
    assert r.exit_code == 1 and "PE_API_URL" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not cache.exists() and not Path(f"{cache}.wal").exists()

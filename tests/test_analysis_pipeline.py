"""analyze(store) and analyze_frame: incremental, crash-safe, evented; real
DuckDB files, a real killed process for the crash."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit import synth
from pe_toolkit.analysis import FrameScores, analyze, analyze_frame
from pe_toolkit.analysis.base import MESSAGES_SCHEMA
from pe_toolkit.analysis.quality import QUALITY
from pe_toolkit.analysis.sentiment import SENTIMENT, compound
from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError, StoreError
from pe_toolkit.events import EventBus
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    synth.write(path, 240, seed=5, progress=False)
    return path


@pytest.fixture
def filled(tmp_path, corpus):
    path = tmp_path / "scores.duckdb"
    with Store(path) as store:
        import_file(store, corpus, progress=False)
    return path


def _consistent(store: Store) -> None:
    """Every scored conversation has all its message rows, nothing else has any,
    and no row is duplicated."""
    assert store.scalar("SELECT count(*) - count(DISTINCT conversation_id) FROM conversation_scores") == 0
    assert store.scalar("SELECT count(*) FROM (SELECT conversation_id, idx FROM message_scores GROUP BY ALL HAVING count(*) > 1)") == 0
    missing = store.scalar(
        "SELECT count(*) FROM messages m JOIN conversation_scores s ON s.conversation_id = m.conversation_id "
        "ANTI JOIN message_scores ms ON ms.conversation_id = m.conversation_id AND ms.idx = m.idx"
    )
    stray = store.scalar("SELECT count(*) FROM message_scores ms ANTI JOIN conversation_scores s ON s.conversation_id = ms.conversation_id")
    stray_ev = store.scalar("SELECT count(*) FROM evidence e ANTI JOIN conversation_scores s ON s.conversation_id = e.conversation_id")
    assert (missing, stray, stray_ev) == (0, 0, 0)


def test_analyze_scores_everything_once_then_nothing(filled):
    bus, seen = EventBus(), []
    bus.subscribe("analysis.*", seen.append)
    with Store(filled) as store:
        report = analyze(store, batch_size=100, progress=False, events=bus)
        total = store.count()
        assert (report.scored, report.skipped, report.batches) == (total, 0, 3)
        assert report.messages == store.scalar("SELECT count(*) FROM messages")
        assert store.scalar("SELECT count(*) FROM conversation_scores") == total
        assert store.scalar("SELECT count(*) FROM message_scores") == report.messages
        _consistent(store)
        # Stored hashes are the conversations' own; the version names every analyzer that ran.
        assert store.scalar("SELECT count(*) FROM conversation_scores s JOIN conversations c ON c.id = s.conversation_id AND c.content_hash = s.content_hash") == total
        assert store.scalar("SELECT DISTINCT analysis_version FROM conversation_scores") == report.analysis_version
        assert "sentiment=" in report.analysis_version and "quality=" in report.analysis_version
        # Evidence spans point into the stored content.
        ev = store.sql("SELECT e.idx, e.start, e.end, e.text, m.content FROM evidence e JOIN messages m USING (conversation_id, idx)")
        assert ev.height > total
        assert all(c[s:e] == t for _, s, e, t, c in ev.iter_rows())
        assert store.scalar("SELECT count(*) FROM conversation_scores WHERE boilerplate_share IS NULL AND assistant_words > 0") == 0

        again = analyze(store, progress=False, events=bus)
        assert (again.scored, again.skipped) == (0, total)
        runs = store.sql("SELECT status, scored, corpus_refreshed FROM analysis_runs ORDER BY started_at")
        assert runs.rows() == [("completed", total, True), ("completed", 0, False)]
    progress = [e.payload for e in seen if e.topic == "analysis.progress"]
    assert [p["done"] for p in progress] == [total // 3, 2 * total // 3, total]  # three batches of equal size
    assert all(p["total"] == total for p in progress)
    completed = [e.payload for e in seen if e.topic == "analysis.completed"]
    assert [c["scored"] for c in completed] == [total, 0]


def test_changed_conversation_and_new_version_are_rescored(filled, tmp_path, monkeypatch):
    with Store(filled) as store:
        analyze(store, progress=False)
        target = store.conversation(store.conversations(limit=1)["id"][0])
        target["messages"].append({"role": "user", "content": "Thank you, this really helped me."})
        changed = tmp_path / "changed.jsonl"
        changed.write_bytes(orjson.dumps(target) + b"\n")
        import_file(store, changed, progress=False)
        report = analyze(store, progress=False)
        assert report.scored == 1
        row = store.sql("SELECT message_count, sentiment_end FROM conversation_scores WHERE conversation_id = ?", [target["id"]]).row(0)
        assert row[0] == len(target["messages"]) and row[1] == compound(["Thank you, this really helped me."])[0]
        _consistent(store)

        monkeypatch.setattr(QUALITY, "version", "changed-for-test")
        assert analyze(store, progress=False).scored == store.count()
        assert store.scalar("SELECT count(DISTINCT analysis_version) FROM conversation_scores") == 1


def test_a_new_alert_threshold_rescores_and_the_alerts_follow_it(filled, tmp_path, monkeypatch):
    with Store(filled) as store:
        first = analyze(store, progress=False)
        assert store.scalar("SELECT count(*) FROM current_conversation_scores WHERE alert <> (risk_score > 0.8)") == 0
        between = store.scalar("SELECT count(*) FROM conversation_scores WHERE risk_score > 0.3 AND risk_score <= 0.8")
        assert between > 0  # conversations whose alert the new threshold changes
        config = tmp_path / "pe_toolkit.toml"
        config.write_text("[analysis]\nalert_threshold = 0.3\n")
        monkeypatch.setenv("PE_CONFIG", str(config))
        report = analyze(store, progress=False)
        assert report.analysis_version != first.analysis_version and "alert>0.3" in report.analysis_version
        assert report.scored == store.count() and report.alerts_total == first.alerts_total + between
        assert store.scalar("SELECT count(*) FROM current_conversation_scores WHERE alert <> (risk_score > 0.3)") == 0
        assert store.scalar("SELECT count(*) FROM current_conversation_scores") == store.count()


def test_full_run_rescores_everything(filled):
    with Store(filled) as store:
        analyze(store, progress=False)
        report = analyze(store, incremental=False, progress=False)
        assert report.scored == store.count() and report.skipped == 0
        _consistent(store)


CRASH = """
import os, signal, sys
from pe_toolkit.analysis import analyze
from pe_toolkit.events import EventBus
from pe_toolkit.store import Store
bus = EventBus()
def die(event):
    if event.payload["done"] >= int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
bus.subscribe("analysis.progress", die)
with Store(sys.argv[1]) as store:
    analyze(store, batch_size=int(sys.argv[3]), progress=False, events=bus)
"""


def test_a_killed_run_keeps_committed_batches_and_the_next_run_continues(filled):
    done = subprocess.run([sys.executable, "-c", CRASH, str(filled), "120", "40"], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr  # really killed, mid-run
    with Store(filled) as store:
        assert store.scalar("SELECT count(*) FROM conversation_scores") == 120  # three committed batches
        _consistent(store)
        # It never finished, and its process is gone: the writable open marked it.
        assert store.scalar("SELECT status FROM analysis_runs") == "interrupted"
        report = analyze(store, progress=False)
        assert report.scored == store.count() - 120 and report.skipped == 120
        assert store.scalar("SELECT count(*) FROM conversation_scores") == store.count()
        _consistent(store)
        # The corpus shares cover the batches of the killed run too.
        assert store.scalar("SELECT count(*) FROM conversation_scores WHERE boilerplate_share IS NULL AND assistant_words > 0") == 0


def _fails_on_batch_from(first_id: str):
    """An analyzer that raises on the batch starting at conversation
    ``first_id`` (by content: batches are scored on threads, so the order
    of calls is not the order of batches)."""
    from pe_toolkit.analysis.custom import FunctionAnalyzer
    from pe_toolkit.errors import AnalysisError

    def word_count(messages: pl.DataFrame) -> pl.DataFrame:
        if messages["conversation_id"].min() == first_id:
            raise AnalysisError("batch refused on purpose")
        return messages.select(pl.col("content").str.count_matches(r"\S+").alias("words_here"))

    return FunctionAnalyzer(word_count, name="words_here")


def test_a_batch_that_fails_while_the_one_before_is_written_fails_the_run_with_that_one_kept(filled):
    # Batch 2 fails in analysis while batch 1 is being written on the writer thread.
    from pe_toolkit.errors import AnalysisError

    with Store(filled) as store:
        second = store.sql("SELECT id FROM conversations ORDER BY id LIMIT 1 OFFSET 80").item()
        with pytest.raises(AnalysisError, match="on purpose"):
            analyze(store, batch_size=80, progress=False, analyzers=[SENTIMENT, _fails_on_batch_from(second)])
        assert store.scalar("SELECT count(*) FROM conversation_scores") == 80
        _consistent(store)
        assert store.sql("SELECT status, scored, error FROM analysis_runs").rows() == [("failed", 80, "batch refused on purpose")]


def test_a_write_that_fails_on_the_writer_thread_fails_the_run(filled, monkeypatch):
    from pe_toolkit.analysis import pipeline

    real, calls = pipeline._Writer.insert, itertools.count(1)

    def insert(self, con, table, frame):
        if table == "evidence" and next(calls) == 2:  # inside batch 2's transaction
            raise StoreError("disk full (injected)")
        return real(self, con, table, frame)

    monkeypatch.setattr(pipeline._Writer, "insert", insert)
    with Store(filled) as store:
        with pytest.raises(StoreError, match="injected"):
            analyze(store, batch_size=80, progress=False, analyzers=[SENTIMENT])
        assert store.scalar("SELECT count(*) FROM conversation_scores") == 80  # batch 1 only; batch 2 rolled back
        _consistent(store)
        assert store.scalar("SELECT status FROM analysis_runs") == "failed"
        monkeypatch.undo()
        report = analyze(store, batch_size=80, progress=False, analyzers=[SENTIMENT])
        assert (report.scored, report.skipped) == (store.count() - 80, 80)
        _consistent(store)


def test_corpus_shares_follow_new_conversations_and_orphans_go(filled, tmp_path):
    with Store(filled) as store:
        analyze(store, progress=False)
        old = store.sql(
            "SELECT conversation_id, idx FROM message_scores WHERE role = 'assistant' AND words > 12 ORDER BY conversation_id, idx LIMIT 1"
        ).row(0)
        text = store.scalar("SELECT content FROM messages WHERE conversation_id = ? AND idx = ?", list(old))
        before = store.scalar("SELECT boilerplate_share FROM conversation_scores WHERE conversation_id = ?", [old[0]])
        copies = tmp_path / "copies.jsonl"
        copies.write_bytes(
            b"".join(
                orjson.dumps({"id": f"copy_{k}", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": text}]}) + b"\n"
                for k in range(3)
            )
        )
        import_file(store, copies, progress=False)
        report = analyze(store, progress=False)
        assert report.scored == 3
        after = store.scalar("SELECT boilerplate_share FROM conversation_scores WHERE conversation_id = ?", [old[0]])
        assert after > before  # not re-scored, but its share was refreshed
        assert store.scalar("SELECT boilerplate_share FROM conversation_scores WHERE conversation_id = 'copy_0'") == 1.0

        with store.transaction() as con:
            con.execute("DELETE FROM messages WHERE conversation_id = 'copy_1'")
            con.execute("DELETE FROM conversations WHERE id = 'copy_1'")
        analyze(store, progress=False)
        for table in ("conversation_scores", "message_scores", "evidence"):
            assert store.scalar(f"SELECT count(*) FROM {table} WHERE conversation_id = 'copy_1'") == 0


def test_analyze_frame_equals_the_stored_scores(filled):
    with Store(filled) as store:
        analyze(store, progress=False)
        messages = store.messages()
        stored = store.sql("SELECT * FROM conversation_scores ORDER BY conversation_id")
        stored_messages = store.sql("SELECT conversation_id, idx, sentiment, words, repeated_turn FROM message_scores ORDER BY ALL")
    scores = analyze_frame(messages.select("conversation_id", "idx", "role", "content"))
    assert isinstance(scores, FrameScores)
    local = scores["conversation_scores"].sort("conversation_id")
    for column in ("sentiment_end", "reading_ease", "conversation_coherence", "boilerplate_share", "near_duplicate_share"):
        assert local[column].to_list() == pytest.approx(stored[column].to_list(), nan_ok=True), column
    assert scores.messages.select("conversation_id", "idx", "sentiment", "words", "repeated_turn").sort("conversation_id", "idx").equals(stored_messages)


def test_analyze_frame_checks_and_orders_its_input():
    rows = [("b", 1, "assistant", "I am glad you wrote."), ("b", 0, "user", "I feel sad."), ("a", 0, "user", "Hello")]
    scores = analyze_frame(pl.DataFrame(rows, schema=MESSAGES_SCHEMA, orient="row"))
    assert scores.messages.select("conversation_id", "idx").rows() == [("a", 0), ("b", 0), ("b", 1)]
    assert scores.conversations["conversation_id"].to_list() == ["a", "b"]
    with pytest.raises(InputError, match="lacks column"):
        analyze_frame(pl.DataFrame({"conversation_id": ["a"], "content": ["x"]}))
    with pytest.raises(InputError, match="unknown role"):
        analyze_frame(pl.DataFrame([("a", 0, "robot", "x")], schema=MESSAGES_SCHEMA, orient="row"))
    with pytest.raises(InputError, match="nulls"):
        analyze_frame(pl.DataFrame([("a", 0, "user", None)], schema=MESSAGES_SCHEMA, orient="row"))
    with pytest.raises(InputError, match="more than once"):
        analyze_frame(pl.DataFrame([("a", 1, "user", "x"), ("a", 1, "user", "y"), ("a", 0, "user", "z")], schema=MESSAGES_SCHEMA, orient="row"))



def test_analyze_frame_input_errors_name_the_first_bad_row():
    # In a frame of many conversations, "has nulls: content (1)" and "the same
    # (conversation_id, idx) more than once" left the user to search for the
    # row; a role in another case ("User", as exports often spell it) got no hint.
    rows = [("a", 0, "user", "hi"), ("a", 1, "assistant", "hello"), ("b", 0, "user", "x"), ("b", 1, "assistant", None)]
    with pytest.raises(InputError, match=r"nulls: content \(1\); the first at conversation_id 'b', idx 1$"):
        analyze_frame(pl.DataFrame(rows, schema=MESSAGES_SCHEMA, orient="row"))
    rows = [("a", 0, "user", "hi"), ("b", 2, "user", "x"), ("b", 2, "assistant", "y"), ("b", 0, "user", "z")]
    with pytest.raises(InputError, match=r"more than once: conversation_id 'b', idx 2$"):
        analyze_frame(pl.DataFrame(rows, schema=MESSAGES_SCHEMA, orient="row"))
    rows = [("a", 0, "User", "hi"), ("a", 1, "ASSISTANT", "hello")]
    with pytest.raises(InputError, match=r"expected one of user, assistant, system \(roles are lower-case\)$"):
        analyze_frame(pl.DataFrame(rows, schema=MESSAGES_SCHEMA, orient="row"))


def test_read_only_store_is_refused(filled):
    with Store(filled) as store:
        pass
    with Store(filled, read_only=True) as store, pytest.raises(StoreError, match="read-only"):
        analyze(store, progress=False)


def test_cli_analyze(filled):
    runner = CliRunner()
    first = runner.invoke(cli, ["--db", str(filled), "analyze", "--no-progress", "--batch-size", "100"])
    assert first.exit_code == 0, first.output
    assert "scored 240 conversations" in first.output and "alerts" in first.output
    second = runner.invoke(cli, ["--db", str(filled), "analyze", "--no-progress"])
    assert "scored 0 conversations" in second.output and "240 up to date" in second.output
    full = runner.invoke(cli, ["--db", str(filled), "analyze", "--full", "--no-progress"])
    assert "scored 240 conversations" in full.output
    bad = runner.invoke(cli, ["--db", str(filled), "analyze", "--batch-size", "0"])
    assert bad.exit_code != 0


def test_report_is_json_friendly(filled):
    with Store(filled) as store:
        report = analyze(store, progress=False)
    payload = json.loads(json.dumps(report.as_dict()))
    assert payload["scored"] == 240 and payload["run_id"] == report.run_id
    assert str(report).startswith("scored 240 conversations")


def test_every_analyzer_when_present(filled):
    with Store(filled) as store:
        report = analyze(store, progress=False)
        row = store.sql(
            "SELECT count(risk_score), count(empathy_mean), count(overall_quality), count(tier), "
            "sum(CASE WHEN alert THEN 1 ELSE 0 END) FROM conversation_scores"
        ).row(0)
        assert row[:4] == (store.count(),) * 4
        assert report.alerts == row[4] == report.alerts_total
        analyzers = set(store.sql("SELECT DISTINCT analyzer FROM evidence")["analyzer"])
        assert {"sentiment", "empathy", "safety"} <= analyzers
        _consistent(store)
    assert Path(filled).exists()


def test_parallel_chunks_give_the_same_scores(filled, monkeypatch):
    from pe_toolkit.analysis import frames

    with Store(filled) as store:
        messages = store.messages().select("conversation_id", "idx", "role", "content")
    serial = analyze_frame(messages, workers=1)
    monkeypatch.setattr(frames, "PARALLEL_MIN_ROWS", 10)
    chunks = frames._chunks(messages, 3)
    assert sum(c.height for c in chunks) == messages.height and len(chunks) == 3
    assert all(c["conversation_id"][0] != p["conversation_id"][-1] for p, c in itertools.pairwise(chunks))
    parallel = analyze_frame(messages, workers=3)
    assert parallel.messages.equals(serial.messages)
    assert parallel.conversations.equals(serial.conversations)
    order = ["conversation_id", "idx", "analyzer", "start", "end", "category", "text"]
    assert parallel.evidence.sort(order).equals(serial.evidence.sort(order))  # same rows; order is not part of the contract


def test_batches_scored_in_parts_on_a_shared_pool_store_what_one_pass_stores(filled, tmp_path, monkeypatch):
    """Several batches in flight, each in three parts on one pool (the
    parts of the next batch start while this one's last part runs): the
    stored scores equal one batch scored on one thread."""
    import shutil

    from pe_toolkit.analysis import frames

    one = tmp_path / "one.duckdb"
    shutil.copy(filled, one)
    with Store(one) as store:
        analyze(store, batch_size=10_000, progress=False)
    monkeypatch.setattr(frames, "PARALLEL_MIN_ROWS", 10)
    monkeypatch.setattr(frames, "default_workers", lambda: 3)
    seen: list[int] = []
    real = frames.score_part

    def counted(part, analyzers):
        seen.append(part.height)
        return real(part, analyzers)

    monkeypatch.setattr(frames, "score_part", counted)
    with Store(filled) as store:
        report = analyze(store, batch_size=50, progress=False)
        assert report.batches == 5 and len(seen) == 15 and sum(seen) == report.messages
        _consistent(store)
        pooled = {table: _stored_rows(store, table) for table in ("conversation_scores", "message_scores", "evidence")}
    with Store(one) as store:
        for table, frame in pooled.items():
            assert _stored_rows(store, table).equals(frame), table


def _stored_rows(store: Store, table: str) -> pl.DataFrame:
    """A score table's rows in a fixed order, without the time they were written."""
    exclude = " EXCLUDE (analyzed_at)" if table == "conversation_scores" else ""
    return store.sql(f"SELECT *{exclude} FROM {table} ORDER BY ALL")

"""The open analyzer seam (issue 18, part 2): a researcher's analyzer
registered in a few lines, versioned, stored and shown like the shipped
ones; one batch object per pass; one input check; run bookkeeping through
the store."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

import pe_toolkit as pe
from pe_toolkit.analysis import analyze, analyze_frame
from pe_toolkit.analysis.base import MESSAGES_SCHEMA, Batch, check_messages
from pe_toolkit.analysis.custom import FunctionAnalyzer, analyzer
from pe_toolkit.analysis.empathy import EMPATHY
from pe_toolkit.analysis.frames import run_analyzers
from pe_toolkit.analysis.learned import SKILLS_MODEL
from pe_toolkit.analysis.quality import QUALITY
from pe_toolkit.analysis.registry import analyzers, register, shipped, unregister
from pe_toolkit.analysis.safety import SAFETY
from pe_toolkit.analysis.sentiment import SENTIMENT
from pe_toolkit.errors import AnalysisError, InputError, StoreError
from pe_toolkit.store import Store, runs
from pe_toolkit.widgets.scores import ScoreInfo

DOC = Path(__file__).resolve().parents[1] / "docs" / "analyzers.md"
NAMES = ("hedging", "counter", "tokens_a", "tokens_b", "clash")


@pytest.fixture(autouse=True)
def _clean_registry():
    yield
    for name in NAMES:
        unregister(name)


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "conversation_id": ["a", "a", "b", "b"],
            "idx": [0, 1, 0, 1],
            "role": ["user", "assistant", "user", "assistant"],
            "content": ["I feel awful", "Maybe rest, perhaps", "hi", "Hello there"],
        },
        schema=MESSAGES_SCHEMA,
    )


def test_the_documented_example_runs_end_to_end(tmp_path, monkeypatch) -> None:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text("utf-8"), re.S)
    example = next(block for block in code if "pe.Store(" in block)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(DOC), "exec"), {})  # the documentation's own example
    with Store(tmp_path / "hedging_demo.duckdb") as store:
        messages = store.scores("message")
        assert messages["hedges"].to_list() == [0, 1, 0, 0, 0, 1]  # the second version: maybe|perhaps
        version = store.scalar("SELECT analysis_version FROM analysis_runs ORDER BY started_at DESC LIMIT 1")
        assert analyzers()[-1].name == "hedging" and version.endswith(f";hedging={analyzers()[-1].version}")
        added = store.sql("SELECT table_name, column_name FROM score_columns ORDER BY ALL").rows()
        assert added == [("conversation_scores", "hedged_turns"), ("message_scores", "hedges")]
        # The viewers read the tables' columns: the new ones are there.
        info = ScoreInfo.of(store)
        assert "hedges" in info.message and "hedged_turns" in info.conversation
        statuses = store.sql("SELECT status, scored FROM analysis_runs ORDER BY started_at").rows()
        assert statuses == [("completed", 3), ("completed", 3)]


def test_scores_and_evidence_reach_the_current_views(tmp_path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        pe.import_frame(store, pl.DataFrame({"user": ["I can't cope", "hello"], "assistant": ["Perhaps call someone?", "Hi!"]}))

        @analyzer("hedging", version="1")
        def hedging(messages):
            hit = messages.select("conversation_id", "idx", at=pl.col("content").str.find("Perhaps", literal=True))
            evidence = hit.drop_nulls("at").select("conversation_id", "idx", category=pl.lit("hedge"), start="at",
                                                  end=pl.col("at") + 7)  # fmt: skip
            return {"messages": messages.select(hedged=pl.col("content").str.contains("Perhaps")),
                    "conversations": messages.group_by("conversation_id").agg(turns=pl.len()),
                    "evidence": evidence}  # fmt: skip

        first = analyze(store, progress=False)
        assert first.scored == 2 and "hedging=1+" in first.analysis_version
        conv = store.scores("conversation").sort("conversation_id")
        assert conv["turns"].to_list() == [2, 2]
        ev = store.sql("SELECT * FROM current_evidence WHERE analyzer = 'hedging'")
        assert ev["text"].to_list() == ["Perhaps"] and ev["start"].to_list() == [0]
        assert store.scores("message")["hedged"].sum() == 1
        # Unchanged: nothing to do. A new version: everything again.
        assert analyze(store, progress=False).scored == 0

        @analyzer("hedging", version="2")
        def hedging(messages):  # noqa: F811 - a new version of the same analyzer
            return messages.select(hedged=pl.col("content").str.contains("(?i)perhaps|maybe"))

        again = analyze(store, progress=False)
        assert again.scored == 2 and again.analysis_version != first.analysis_version
        assert store.scores("conversation")["turns"].null_count() == 2  # the column stays; this version leaves it empty


def test_version_follows_code_and_parameters() -> None:
    def count(messages, words):
        return messages.select(n=pl.col("content").str.count_matches(words))

    def count_changed(messages, words):
        return messages.select(n=pl.col("content").str.count_matches(words) * 2)

    one = FunctionAnalyzer(count, name="counter", params={"words": "a"})
    assert FunctionAnalyzer(count, name="counter", params={"words": "a"}).version == one.version
    assert FunctionAnalyzer(count, name="counter", params={"words": "b"}).version != one.version
    assert FunctionAnalyzer(count_changed, name="counter", params={"words": "a"}).version != one.version
    assert FunctionAnalyzer(count, name="counter", version="7", params={"words": "a"}).version.startswith("7+")
    # Called by hand it is the plain function; scored, one row per message.
    assert one(_frame(), words="e")["n"].to_list() == [2, 3, 0, 3]
    assert one.score(_frame()).messages.columns == ["conversation_id", "idx", "n"]


def test_analyze_takes_analyzers_like_analyze_frame(tmp_path) -> None:
    counter = FunctionAnalyzer(lambda messages: messages.select(chars=pl.col("content").str.len_chars()), name="counter")
    chosen = [*shipped(), counter]
    with Store(tmp_path / "s.duckdb") as store:
        pe.import_frame(store, pl.DataFrame({"user": ["one", "two"], "assistant": ["three", "four"]}))
        report = analyze(store, progress=False, analyzers=chosen)
        assert report.scored == 2 and report.analysis_version.endswith(f";counter={counter.version}")
        assert "counter" not in [a.name for a in analyzers()]  # not registered: this call only
        assert sorted(store.scores("message")["chars"].to_list()) == [3, 3, 4, 5]
        assert analyze(store, progress=False, analyzers=chosen).scored == 0
        assert analyze(store, progress=False).scored == 2  # the default set is another version
    frame = analyze_frame(_frame(), analyzers=[SENTIMENT, counter])
    assert frame.analysis_version == f"sentiment={SENTIMENT.version};counter={counter.version}"
    assert "chars" in frame.messages.columns and "empathy" not in frame.messages.columns


def test_one_batch_per_pass_shares_tokens_and_results() -> None:
    seen: list[object] = []

    def first(messages, batch):
        seen.append(batch.tokens)
        return messages.select(n_tokens=pl.Series(batch.tokens.lengths))

    def second(messages, batch):
        seen.append(batch.tokens)
        assert "tokens_a" in batch.results and "sentiment" in batch.results
        return messages.select(again=batch.results["tokens_a"].messages["n_tokens"] * 2)

    a, b = FunctionAnalyzer(first, name="tokens_a"), FunctionAnalyzer(second, name="tokens_b")
    batch = run_analyzers(check_messages(_frame()), [SENTIMENT, a, b])
    assert seen[0] is seen[1] is batch.tokens  # split once for the pass
    assert batch.results["tokens_b"].messages["again"].to_list() == [6, 6, 2, 4]
    with pytest.raises(AnalysisError, match="two analyzers are named"):
        run_analyzers(check_messages(_frame()), [a, a])


def test_shipped_analyzers_answer_a_frame_as_a_batch() -> None:
    frame = check_messages(_frame())
    for shipped_analyzer in (SENTIMENT, SKILLS_MODEL, EMPATHY, SAFETY, QUALITY):
        by_hand = shipped_analyzer.score(frame)
        in_pass = shipped_analyzer.score(Batch(frame))
        assert by_hand.messages.equals(in_pass.messages) and by_hand.conversations.equals(in_pass.conversations)
        assert by_hand.evidence.equals(in_pass.evidence)


def test_one_input_check_raises_input_error_everywhere() -> None:
    no_role = _frame().drop("role")
    for call in (lambda: analyze_frame(no_role), lambda: SENTIMENT.score(no_role), lambda: EMPATHY.score(no_role),
                 lambda: SAFETY.score(no_role), lambda: QUALITY.score(no_role), lambda: SKILLS_MODEL.score(no_role),
                 lambda: check_messages(no_role)):  # fmt: skip
        with pytest.raises(InputError, match="lacks column"):
            call()
    with pytest.raises(InputError, match="wrong type"):
        check_messages(_frame().with_columns(idx=pl.lit("x")))
    with pytest.raises(InputError, match="nulls"):
        check_messages(_frame().with_columns(content=pl.lit(None, pl.String)))
    # By hand, an analyzer answers row for row: the order and the nulls as given.
    reversed_rows = _frame().reverse()
    assert check_messages(reversed_rows, complete=False)["idx"].to_list() == [1, 0, 1, 0]
    assert check_messages(reversed_rows)["idx"].to_list() == [0, 1, 0, 1]


def test_registry_rules() -> None:
    with pytest.raises(AnalysisError, match="shipped analyzer"):
        register(FunctionAnalyzer(lambda m: m.select(x=pl.lit(1)), name="sentiment"))
    with pytest.raises(AnalysisError, match="non-empty name"):
        register(object())  # type: ignore[arg-type]  # not an Analyzer on purpose: the run-time check is under test
    first = register(FunctionAnalyzer(lambda m: m.select(x=pl.lit(1)), name="counter"))
    second = register(FunctionAnalyzer(lambda m: m.select(x=pl.lit(2)), name="counter"))
    names = [a.name for a in analyzers()]
    assert names.count("counter") == 1 and analyzers()[-1] is second is not first
    assert names[: len(shipped())] == [a.name for a in shipped()]
    unregister("counter")
    assert "counter" not in [a.name for a in analyzers()]


def test_an_analyzer_cannot_take_the_pipelines_columns() -> None:
    clash = FunctionAnalyzer(lambda m: {"conversations": m.select("conversation_id", analysis_version=pl.lit("x")).unique()},
                             name="clash")  # fmt: skip
    with pytest.raises(AnalysisError, match="analysis_version"):
        analyze_frame(_frame(), analyzers=[clash])
    rows = FunctionAnalyzer(lambda m: m.head(1).select(x=pl.lit(1)), name="clash")
    with pytest.raises(AnalysisError, match="1 message rows for 4"):
        analyze_frame(_frame(), analyzers=[rows])


def test_runs_of_both_kinds_go_through_the_store(tmp_path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        run = store.start_run("analysis", analysis_version="v", incremental=True, selected=5)
        with store.transaction() as con:
            store.update_run(run, con=con, scored=2, messages=9, alerts=1)
        store.finish_run(run, corpus_refreshed=True)
        row = store.sql("SELECT status, selected, scored, messages, alerts, corpus_refreshed, pid, finished_at IS NOT NULL AS done "
                        "FROM analysis_runs").row(0, named=True)  # fmt: skip
        assert row == {"status": "completed", "selected": 5, "scored": 2, "messages": 9, "alerts": 1,
                       "corpus_refreshed": True, "pid": row["pid"], "done": True}  # fmt: skip
        assert row["pid"] is not None
        imported = store.start_run("import", "x.jsonl")
        store.finish_run(imported, error="boom")
        assert store.sql("SELECT kind, source, status, error FROM ingest_runs").row(0) == ("import", "x.jsonl", "failed", "boom")
        with pytest.raises(StoreError, match="unknown run kind"):
            store.start_run("export", "x")
        with pytest.raises(StoreError, match="no settable column"):
            store.start_run("analysis", analysis_version="v", incremental=True, host="elsewhere")
        with pytest.raises(StoreError, match="no run"):
            store.update_run("nope", scored=1)


def test_a_completed_run_keeps_its_note_and_a_sync_fails_its_sources_stale_runs(tmp_path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        noted = store.start_run("sync", "api")
        store.finish_run(noted, note="2 conversation(s) could not be fetched")
        failed = store.start_run("sync", "api")
        store.finish_run(failed, error="boom", note="ignored beside the error")
        stale = [store.start_run("sync", "api"), store.start_run("sync", "api")]
        other = [store.start_run("sync", "elsewhere"), store.start_run("import", "api")]
        with store.transaction() as con:
            assert runs.interrupt_stale(con, "sync", "api") == 2
            with pytest.raises(StoreError, match="have no source"):
                runs.interrupt_stale(con, "analysis", "api")
        rows = {r[0]: r[1:] for r in store.connection.execute(
            "SELECT run_id, status, error, finished_at IS NOT NULL FROM ingest_runs").fetchall()}  # fmt: skip
        assert rows[noted] == ("completed", "2 conversation(s) could not be fetched", True)
        assert rows[failed] == ("failed", "boom", True)
        assert [rows[r] for r in stale] == [("failed", "interrupted", True)] * 2
        assert [rows[r] for r in other] == [("running", None, False)] * 2


def test_a_column_differing_only_in_case_or_changing_type_is_refused_by_name(tmp_path) -> None:
    """An analyze audit: "Sentiment" beside "sentiment" died with a KeyError
    (DuckDB's names ignore case); a column whose type changed between
    versions was cast silently (fractions stored as 0 and 1); a failed write
    surfaced as "Current transaction is aborted", hiding its cause."""
    frame = pl.DataFrame({"user": ["one", "two"], "assistant": ["three", "four"]})
    upper = FunctionAnalyzer(lambda messages: messages.select(Sentiment=pl.col("content").str.len_chars() * 0.5), name="counter")
    with Store(tmp_path / "s.duckdb") as store:
        pe.import_frame(store, frame)
        with pytest.raises(AnalysisError, match="'sentiment' and 'Sentiment' differ only in case"):
            analyze(store, progress=False, analyzers=[*shipped(), upper])
        counts = FunctionAnalyzer(lambda messages: messages.select(share=pl.col("content").str.len_chars()), name="counter", version="1")
        analyze(store, progress=False, analyzers=[*shipped(), counts])
        fractions = FunctionAnalyzer(lambda messages: messages.select(share=pl.col("content").str.len_chars() / 10), name="counter", version="2")
        with pytest.raises(AnalysisError, match=r"message_scores.share holds UINTEGER, and this analysis gives DOUBLE"):
            analyze(store, progress=False, analyzers=[*shipped(), fractions])
        typeless = FunctionAnalyzer(lambda messages: messages.select(nothing=pl.repeat(None, pl.len())), name="clash")
        with pytest.raises(AnalysisError, match="every value is null"):
            analyze(store, progress=False, analyzers=[*shipped(), typeless])


def test_ctrl_c_during_analyze_is_recorded_as_interrupted(tmp_path) -> None:
    def stop(messages):
        raise KeyboardInterrupt

    frame = pl.DataFrame({"user": ["one"], "assistant": ["two"]})
    with Store(tmp_path / "s.duckdb") as store:
        pe.import_frame(store, frame)
        with pytest.raises(KeyboardInterrupt):
            analyze(store, progress=False, analyzers=[*shipped(), FunctionAnalyzer(stop, name="clash")])
        assert store.sql("SELECT status, error FROM analysis_runs").rows() == [("failed", "interrupted")]


def test_the_version_follows_set_and_frame_parameters_across_processes(tmp_path) -> None:
    import os
    import subprocess
    import sys

    def fn(messages, words, table):
        return messages.select(n=pl.col("content").str.len_chars())

    table = pl.DataFrame({"w": [f"word{i}" for i in range(100)]})
    base = FunctionAnalyzer(fn, name="counter", params={"words": {"maybe", "perhaps", "might"}, "table": table})
    edited = table.with_columns(pl.when(pl.int_range(pl.len()) == 50).then(pl.lit("changed")).otherwise(pl.col("w")).alias("w"))
    # row 50 of 100 is past what repr shows: the version must change all the same
    assert FunctionAnalyzer(fn, name="counter", params={"words": {"maybe", "perhaps", "might"}, "table": edited}).version != base.version
    # a set's order differs between processes (hash seeds): the version must not
    script = (
        "import polars as pl\n"
        "from pe_toolkit.analysis.custom import FunctionAnalyzer\n"
        "def fn(messages, words, table):\n"
        "    return messages.select(n=pl.col('content').str.len_chars())\n"
        "table = pl.DataFrame({'w': [f'word{i}' for i in range(100)]})\n"
        "print(FunctionAnalyzer(fn, name='counter', params={'words': {'maybe', 'perhaps', 'might'}, 'table': table}).version)\n"
    )
    versions = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip() for seed in (1, 2, 3)}  # fmt: skip
    assert len(versions) == 1, versions
    with pytest.raises(InputError, match="no stable representation"):
        FunctionAnalyzer(fn, name="counter", params={"words": object(), "table": table})


def test_an_analyzers_own_error_names_the_analyzer_in_one_cli_line(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from pe_toolkit.cli import cli

    def broken(messages):
        raise ZeroDivisionError("division by zero")

    cache = tmp_path / "s.duckdb"
    with Store(cache) as store:
        pe.import_frame(store, pl.DataFrame({"user": ["one"], "assistant": ["two"]}))
    register(FunctionAnalyzer(broken, name="clash"))
    result = CliRunner().invoke(cli, ["--db", str(cache), "analyze", "--no-progress"])
    assert result.exit_code == 1, result.output  # before: a traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "analyzer 'clash' failed: ZeroDivisionError: division by zero" in lines[0], result.stderr


def test_rows_for_items_outside_the_batch_or_twice_for_one_are_refused() -> None:
    """An analyze audit: a second row for one message was dropped at random
    (keep last), a row for a message outside the batch dropped without a word,
    and evidence naming another conversation was stored on it."""
    frame = _frame()
    twice = FunctionAnalyzer(
        lambda m: pl.concat([m.select("conversation_id", "idx", n=pl.lit(1)), m.head(1).select("conversation_id", "idx", n=pl.lit(2))]),
        name="counter",
    )
    with pytest.raises(AnalysisError, match=r"'counter': its message frame has 2 rows for 1 item\(s\), the first \('a', 0\)"):
        twice.score(frame)
    shifted = FunctionAnalyzer(lambda m: m.select("conversation_id", pl.col("idx") + 1, n=pl.lit(1)), name="counter")
    with pytest.raises(AnalysisError, match=r"2 message row\(s\) name items outside the batch, the first \('a', 2\)"):
        shifted.score(frame)
    per_conversation = FunctionAnalyzer(
        lambda m: {"conversations": pl.DataFrame({"conversation_id": ["a", "a"], "n": [1, 2]})}, name="counter"
    )
    with pytest.raises(AnalysisError, match="its conversation frame has 2 rows"):
        per_conversation.score(frame)
    foreign = pl.DataFrame({"conversation_id": ["zz"], "idx": [0], "category": ["x"], "start": [0], "end": [1]})
    elsewhere = FunctionAnalyzer(lambda m: {"evidence": foreign}, name="counter")
    with pytest.raises(AnalysisError, match=r"1 evidence row\(s\) name items outside the batch, the first \('zz', 0\)"):
        elsewhere.score(frame)
    # A subset is fine: the others are null; two evidence rows on one message are fine.
    subset = FunctionAnalyzer(
        lambda m: {"messages": m.head(1).select("conversation_id", "idx", n=pl.lit(1)),
                   "evidence": pl.DataFrame({"conversation_id": ["a", "a"], "idx": [0, 0], "category": ["x", "y"], "start": [0, 2], "end": [1, 4]})},
        name="counter",
    )
    out = subset.score(frame)
    assert out.messages["n"].to_list() == [1, None, None, None]
    assert out.evidence["text"].to_list() == ["I", "fe"]

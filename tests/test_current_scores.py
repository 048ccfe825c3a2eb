"""The store owns which scores are current (migration 0009): the views
``current_conversation_scores``, ``current_message_scores`` and
``current_evidence`` and ``Store.scores``, on real DuckDB files."""

from __future__ import annotations

import orjson
import pytest

from pe_toolkit import synth
from pe_toolkit.analysis import analyze, frames
from pe_toolkit.analysis.quality import QUALITY
from pe_toolkit.errors import InputError, SchemaVersionError
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store, migrate

VIEWS = ("current_conversation_scores", "current_message_scores", "current_evidence")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    synth.write(path, 60, seed=7, progress=False)
    return path


@pytest.fixture
def analyzed(tmp_path, corpus):
    path = tmp_path / "scores.duckdb"
    with Store(path) as store:
        import_file(store, corpus, progress=False)
        analyze(store, progress=False)
    return path


def _with_evidence(store: Store) -> str:
    return store.scalar("SELECT min(conversation_id) FROM evidence")


def _edit(store: Store, conversation_id: str, folder) -> None:
    """Re-import the conversation with another text in its first message."""
    changed = store.conversation(conversation_id)
    changed["messages"][0]["content"] = "I have been feeling a bit better this week, thank you."
    path = folder / f"edit_{conversation_id}.jsonl"
    path.write_bytes(orjson.dumps(changed) + b"\n")
    assert import_file(store, path, progress=False).updated == 1


def _ids(store: Store, table: str) -> set[str]:
    return set(store.sql(f"SELECT DISTINCT conversation_id FROM {table}")["conversation_id"].to_list())


def test_a_changed_conversation_leaves_the_current_views_until_rescored(analyzed, tmp_path):
    with Store(analyzed) as store:
        target = _with_evidence(store)
        assert target is not None
        for view in VIEWS:
            assert target in _ids(store, view), view
        _edit(store, target, tmp_path)
        # The tables still hold the rows computed on the old text ...
        for table in ("conversation_scores", "message_scores", "evidence"):
            assert target in _ids(store, table), table
        # ... the views (and plain SQL over them, as in the README) do not.
        alerts = store.sql("SELECT conversation_id, risk_score FROM current_conversation_scores")
        assert target not in alerts["conversation_id"].to_list()
        assert alerts.height == store.count() - 1
        for view in VIEWS:
            assert target not in _ids(store, view), view
        assert store.scores(ids=[target]).height == 0
        assert analyze(store, progress=False).scored == 1
        for view in VIEWS:
            assert target in _ids(store, view), view
        assert store.scalar("SELECT count(*) FROM current_conversation_scores") == store.count()


def test_rows_of_another_analysis_version_are_not_current(analyzed, monkeypatch):
    """The version in force is the latest run's: after a run under a new
    version stopped part-way, the rows it did not reach are outdated."""
    with Store(analyzed) as store:
        total = store.count()
        monkeypatch.setattr(QUALITY, "version", "changed-for-test")
        real = frames.score_part
        first = store.sql("SELECT min(id) FROM conversations").item()

        def stops_after_one_batch(part, analyzers):
            # By content, not by call order: batches are scored on threads.
            if part["conversation_id"].min() != first:
                raise KeyboardInterrupt
            return real(part, analyzers)

        monkeypatch.setattr(frames, "score_part", stops_after_one_batch)
        with pytest.raises(KeyboardInterrupt):
            analyze(store, batch_size=20, progress=False)
        assert store.scalar("SELECT count(*) FROM conversation_scores") == total
        current = store.sql("SELECT DISTINCT analysis_version FROM current_conversation_scores")["analysis_version"].to_list()
        assert len(current) == 1 and "quality=changed-for-test" in current[0]
        assert store.scores().height == 20
        assert store.scores("message")["conversation_id"].n_unique() == 20
        assert set(store.scores("evidence")["conversation_id"]) <= set(store.scores()["conversation_id"])

        monkeypatch.setattr(frames, "score_part", real)
        assert analyze(store, progress=False).scored == total - 20
        assert store.scores().height == total


def test_scores_written_without_a_recorded_run_count(tmp_path, corpus):
    with Store(tmp_path / "s.duckdb") as store:
        import_file(store, corpus, progress=False)
        store.connection.execute(
            "INSERT INTO conversation_scores (conversation_id, content_hash, analysis_version, analyzed_at, risk_score) "
            "SELECT id, content_hash, 'hand=1', now(), 0.5 FROM conversations"
        )
        assert store.scalar("SELECT count(*) FROM analysis_runs") == 0
        assert store.scores().height == store.count()


def test_store_scores_on_each_level(analyzed):
    with Store(analyzed) as store:
        conv = store.scores()
        assert conv.height == store.count() and conv["conversation_id"].is_sorted()
        assert conv.columns == store.sql("SELECT * FROM conversation_scores LIMIT 0").columns
        assert store.scores("conversation").equals(conv)

        messages = store.scores("message")
        assert messages.height == store.scalar("SELECT count(*) FROM messages")
        assert messages.select("conversation_id", "idx").equals(messages.select("conversation_id", "idx").sort("conversation_id", "idx"))

        evidence = store.scores("evidence")
        assert evidence.height == store.scalar("SELECT count(*) FROM evidence") > 0
        assert {"analyzer", "category", "start", "end", "text"} <= set(evidence.columns)

        some = conv["conversation_id"].head(3).to_list()
        assert store.scores(ids=some)["conversation_id"].to_list() == some
        assert set(store.scores("message", ids=some)["conversation_id"]) == set(some)
        assert set(store.scores("evidence", ids=some)["conversation_id"]) <= set(some)
        assert store.scores(ids=some[0])["conversation_id"].to_list() == some[:1]

        dataset = store.sql("SELECT min(dataset) FROM conversations").item()
        want = store.conversations(dataset=dataset)["id"].to_list()
        assert store.scores(dataset=dataset)["conversation_id"].to_list() == want
        tier = store.conversations(tier="research", min_quality=0.5)["id"].to_list()
        assert store.scores(tier="research", min_quality=0.5)["conversation_id"].to_list() == tier
        assert store.scores(limit=5, offset=2)["conversation_id"].to_list() == conv["conversation_id"].to_list()[2:7]

        with pytest.raises(InputError, match="level"):
            store.scores("messages")


def test_a_read_only_store_reads_the_views(analyzed):
    with Store(analyzed, read_only=True) as store:
        assert store.sql("SELECT count(*) AS n FROM current_conversation_scores WHERE alert IS NOT NULL")["n"][0] == store.count()
        for level in ("conversation", "message", "evidence"):
            assert store.scores(level).height > 0
        # Permanent views in the file, nothing made on this connection.
        views = store.sql("SELECT view_name, temporary FROM duckdb_views() WHERE view_name LIKE 'current_%' ORDER BY 1")
        assert views["view_name"].to_list() == sorted(VIEWS)
        assert not any(views["temporary"])


def test_the_migration_applies_to_a_cache_of_the_previous_version(tmp_path, corpus, monkeypatch):
    everything = migrate.available()
    cut = [m.name for m in everything].index("current_scores")
    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(migrate, "available", lambda: everything[:cut])
    with Store(path) as store:  # a cache as the previous release made it
        assert store.schema_version == cut
        # Today's import and analyze record their process (migrations 0010
        # and 0011, which add these columns only if missing).
        for table in ("analysis_runs", "ingest_runs"):
            store.connection.execute(f"ALTER TABLE {table} ADD COLUMN pid INTEGER")
            store.connection.execute(f"ALTER TABLE {table} ADD COLUMN host VARCHAR")
        import_file(store, corpus, progress=False)
        analyze(store, progress=False)
        assert store.scalar("SELECT count(*) FROM duckdb_views() WHERE view_name LIKE 'current_%'") == 0
        scored = store.scalar("SELECT count(*) FROM conversation_scores")
        evidence = store.scalar("SELECT count(*) FROM evidence")
    monkeypatch.setattr(migrate, "available", lambda: everything)
    with pytest.raises(SchemaVersionError, match="open it once for writing"):
        Store(path, read_only=True)
    with Store(path) as store:
        assert store.schema_version == len(everything)
        assert store.scores().height == scored == store.count()
        assert store.scores("evidence").height == evidence
    with Store(path, read_only=True) as store:
        assert store.scores("message").height == store.scalar("SELECT count(*) FROM messages")


def test_a_run_that_failed_before_writing_leaves_the_current_scores_alone(tmp_path, corpus):
    """Before migration 0013 a run whose analyzer raised at once recorded a
    new version and scored nothing: every current score and alert vanished."""
    from pe_toolkit.analysis.sentiment import SENTIMENT

    class Broken:
        name = "broken"
        version = "1"

        def score(self, messages, context=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("kaboom")

    with Store(tmp_path / "c.duckdb") as store:
        import_file(store, corpus, progress=False)
        analyze(store, progress=False)
        before = store.scores().height
        alerts = store.scalar("SELECT count(*) FROM current_conversation_scores WHERE alert")
        assert before == store.count()
        with pytest.raises(Exception, match="kaboom"):
            analyze(store, analyzers=[SENTIMENT, Broken()], progress=False)
        assert store.scalar("SELECT status FROM analysis_runs ORDER BY started_at DESC LIMIT 1") == "failed"
        assert store.scores().height == before
        assert store.scalar("SELECT count(*) FROM current_conversation_scores WHERE alert") == alerts

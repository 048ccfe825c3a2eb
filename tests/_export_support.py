"""Shared pieces of the export, feature and warehouse tests: a corpus with
awkward text, a scored store, and views of a store to compare exports with."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl

from pe_toolkit import synth
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store
from pe_toolkit.store.api_objects import api_objects_sql

# Conversations that stress every format: separators, quotes, newlines,
# non-ASCII, CSV-formula look-alikes, invisible text, missing timestamps and
# metrics, a system message, nested metadata, a long message.
AWKWARD = [
    {
        "id": "edge_quotes",
        "messages": [
            {"role": "system", "content": 'Be kind, "always"; never judge.', "timestamp": "2025-01-02T03:04:05Z"},
            {"role": "user", "content": "Line one\nline two\r\nline three\ttabbed, with commas", "timestamp": "2025-01-02T03:04:06.250Z"},
            {"role": "assistant", "content": "  leading and trailing spaces  ", "timestamp": "2025-01-02T03:05:00Z"},
        ],
        "quality_metrics": {
            "therapeutic_accuracy": 0.1,
            "conversation_coherence": 0.2,
            "emotional_authenticity": 0.3,
            "clinical_compliance": 0.4,
            "safety_score": 0.5,
            "overall_quality": 0.6,
        },
        "metadata": {"dataset": "edge", "tier": "basic", "created_at": "2025-01-02T03:04:05Z", "nested": {"list": [1, "two", None]}},
    },
    {
        "id": "edge_unicode",
        "messages": [
            {"role": "user", "content": "Ça va? 😔 Ich fühle mich schlecht… 心が痛い e\u0301 \u00a0nbsp"},
            {"role": "assistant", "content": "=SUM(A1:A3) is not a formula here; neither is +1 or @x"},
            {"role": "user", "content": "\u200b"},
            {"role": "assistant", "content": 'Backslash \\ and "quote" and \'apostrophe\''},
        ],
        "metadata": {"dataset": "edge", "tier": "research", "topic": "unicode ✓"},
    },
    {
        "id": "edge_long",
        "messages": [
            {"role": "user", "content": "I keep thinking about it. " * 400, "timestamp": "2025-02-01T00:00:00Z"},
            {"role": "assistant", "content": "Thank you for telling me.", "timestamp": "2025-02-01T00:00:01Z"},
        ],
        "quality_metrics": {"overall_quality": 0.9},
        "metadata": {"dataset": "edge", "tier": "clinical"},
    },
]


def build_corpus(folder: Path, n: int = 120, seed: int = 7) -> Path:
    """Synthetic conversations plus the awkward ones, as one JSONL file."""
    path = folder / "corpus.jsonl"
    synth.write(path, n, seed=seed, progress=False)
    with path.open("ab") as fh:
        for record in AWKWARD:
            fh.write(orjson.dumps(record) + b"\n")
    return path


def make_store(path: Path, corpus: Path) -> Store:
    store = Store(path)
    import_file(store, corpus, progress=False)
    return store


def api_lines(store: Store) -> list[str]:
    sql, params = api_objects_sql()
    return [row[1] for row in store.connection.execute(sql, params).fetchall()]


def messages_by_id(store: Store, *, timestamps: bool = True) -> dict[str, list[tuple]]:
    frame = store.messages()
    cols = ["role", "content", "timestamp"] if timestamps else ["role", "content"]
    out: dict[str, list[tuple]] = {}
    for row in frame.select("conversation_id", *cols).iter_rows():
        out.setdefault(row[0], []).append(tuple(row[1:]))
    return out


def message_lists(store: Store) -> list[list[tuple]]:
    """Every conversation's (role, content) list, sorted: for id-less formats."""
    return sorted(messages_by_id(store, timestamps=False).values())


def analyze_for_real(store: Store) -> None:
    """Scores from the real analysis (``pe_toolkit.analysis.analyze``): for
    integration checks that hold whatever the analyzers find."""
    from pe_toolkit.analysis import analyze

    analyze(store, progress=False)


def stand_in_scores(store: Store) -> None:
    """Known score values in the tables of migration 0002, derived from the
    stored data: for checks of what exports do with given scores (filters,
    freshness, columns), independent of how good the analyzers are."""
    with store.transaction() as con:
        con.execute("DELETE FROM message_scores")
        con.execute("DELETE FROM conversation_scores")
        con.execute(
            "INSERT INTO conversation_scores (conversation_id, content_hash, analysis_version, analyzed_at, "
            "risk_score, alert, crisis_categories, max_severity, sentiment_start, sentiment_end, sentiment_change, "
            "empathy_mean, tier, overall_quality) "
            "SELECT c.id, c.content_hash, 'stand-in=1', now(), c.overall_quality, c.overall_quality > 0.8, "
            "CASE WHEN c.overall_quality > 0.5 THEN ['self_harm'] ELSE []::VARCHAR[] END, (c.message_count % 5)::TINYINT, "
            "0.1, 0.4, 0.3, c.safety_score, c.tier, c.overall_quality FROM conversations c"
        )
        con.execute(
            "INSERT INTO message_scores (conversation_id, idx, role, sentiment, emotional_reactions, harmful, "
            "crisis_categories, text_hash, minhash_bands) "
            "SELECT m.conversation_id, m.idx, m.role, (length(m.content) % 7) / 7.0, (m.idx % 3)::TINYINT, "
            "CASE WHEN m.role = 'assistant' AND m.idx % 4 = 0 THEN ['advice'] ELSE []::VARCHAR[] END, "
            "CASE WHEN m.idx % 2 = 0 THEN ['suicidal_ideation_passive'] ELSE []::VARCHAR[] END, "
            "hash(m.content), [hash(m.content)] FROM messages m"
        )


def frame_rows(frame: pl.DataFrame) -> list[dict]:
    return frame.to_dicts()

"""POST /v1/search: BM25 ranking checked against an independent computation,
filters, snippets, and an index that follows the store."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from pe_toolkit.ingest import import_file
from pe_toolkit.server.search import snippet
from pe_toolkit.store import Store

from .conftest import conversation
from .server_support import Served, check_envelope, start_mirror, wait_until

TEXTS = [
    ["I feel anxious about work", "Anxiety at work is hard. What part of work worries you most?"],
    ["My sleep is awful and I feel anxious", "Poor sleep makes anxiety worse."],
    ["I can't stop worrying, anxious anxious anxious", "That sounds exhausting."],
    ["We argued about money again", "Money conflicts are common in couples."],
    ["Grief comes in waves since mum died", "I'm so sorry about your mum. Waves of grief are normal."],
    ["Work is fine, I just don't sleep", "Let's talk about your sleep routine."],
    ["Café culture isn't helping my budget", "Small budget changes add up."],
]
TIERS = ["basic", "standard", "professional", "clinical", "research", "research", "standard"]
TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def records() -> list[dict]:
    found = []
    for i, (texts, tier) in enumerate(zip(TEXTS, TIERS, strict=True)):
        rec = conversation(i, n_messages=len(texts), tier=tier, dataset="alpha" if i % 2 else "beta")
        for message, text in zip(rec["messages"], texts, strict=True):
            message["content"] = text
        rec["quality_metrics"]["overall_quality"] = round(0.5 + 0.07 * i, 3)
        found.append(rec)
    return found


def bm25(query: str, docs: dict[str, str], k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
    """Okapi BM25, written out independently of the server's SQL."""
    tokens = {cid: [t.lower() for t in TOKEN.findall(text)] for cid, text in docs.items()}
    terms = set(t.lower() for t in TOKEN.findall(query))
    n = len(tokens)
    avgdl = sum(len(t) for t in tokens.values()) / n
    scores = {}
    for cid, toks in tokens.items():
        counts = Counter(toks)
        score = 0.0
        for term in terms:
            tf = counts[term]
            if not tf:
                continue
            df = sum(1 for other in tokens.values() if term in other)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(toks) / avgdl))
        if score:
            scores[cid] = score
    return scores


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("search")
    source = folder / "small.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(r) for r in records()) + b"\n")
    with Store(folder / "search.duckdb") as store:
        import_file(store, source, progress=False)
    with start_mirror(folder / "search.duckdb") as server:
        yield server


def search(served: Served, **body) -> dict:
    with served.client() as client:
        return check_envelope(client.post("/v1/search", json=body), 200)


def corpus(served: Served) -> dict[str, str]:
    rows = served.mirror.db.rows("SELECT conversation_id, string_agg(content, ' ' ORDER BY idx) FROM messages GROUP BY 1")
    return dict(rows)


@pytest.mark.parametrize("query", ["anxious", "anxious work", "sleep", "grief waves mum", "don't", "café budget", "ANXIOUS Work!!"])
def test_ranking_is_bm25(served: Served, query: str) -> None:
    expected = bm25(query, corpus(served))
    data = search(served, query=query, limit=50)
    assert data["total_matches"] == len(expected) > 0
    got = {r["conversation_id"]: r["relevance_score"] for r in data["results"]}
    assert got == pytest.approx(expected, rel=1e-6)
    ranked = [r["conversation_id"] for r in data["results"]]
    assert ranked == sorted(expected, key=lambda cid: (-expected[cid], cid))
    assert data["query"] == query and isinstance(data["search_time_ms"], float)


def test_result_fields_snippets_and_highlights(served: Served) -> None:
    data = search(served, query="anxious", limit=2)
    first = data["results"][0]
    assert set(first) >= {"conversation_id", "relevance_score", "snippet", "quality_score", "tier", "metadata"}
    assert first["conversation_id"] == "conv_00002"  # "anxious" three times
    assert first["tier"] == "professional" and first["metadata"]["dataset"] == "beta"
    assert first["quality_score"] == pytest.approx(0.64)
    for result in data["results"]:
        assert result["highlights"]
        for start, end in result["highlights"]:
            assert result["snippet"][start:end].lower() == "anxious"


def test_filters_and_pagination(served: Served) -> None:
    everything = search(served, query="anxious work sleep", limit=50)
    ids = [r["conversation_id"] for r in everything["results"]]
    page = search(served, query="anxious work sleep", limit=2, offset=1)
    assert [r["conversation_id"] for r in page["results"]] == ids[1:3]
    assert page["total_matches"] == everything["total_matches"]
    alpha = search(served, query="anxious work sleep", filters={"dataset": "alpha"}, limit=50)
    assert [r["conversation_id"] for r in alpha["results"]] == [i for i in ids if int(i[-1]) % 2 == 1]
    assert alpha["filters_applied"] == {"dataset": "alpha"}
    good = search(served, query="anxious work sleep", filters={"min_quality": 0.6, "tier": "standard"}, limit=50)
    assert [r["conversation_id"] for r in good["results"]] == []
    research = search(served, query="sleep", filters={"tier": "research"}, limit=50)
    assert [r["conversation_id"] for r in research["results"]] == ["conv_00005"]
    nothing = search(served, query="zebra")
    assert nothing["results"] == [] and nothing["total_matches"] == 0


def test_a_query_without_words_is_refused(served: Served) -> None:
    with served.client() as client:
        error = check_envelope(client.post("/v1/search", json={"query": "!!! ???"}), 422, code="VALIDATION_ERROR")
    assert error["details"] == "query"


def test_index_follows_new_and_changed_conversations(served: Served, tmp_path: Path) -> None:
    new = conversation(50, n_messages=2, dataset="alpha")
    new["messages"][0]["content"] = "Suddenly everything feels like quicksand"
    changed = records()[4]
    changed["messages"][0]["content"] = "Loneliness since moving abroad"
    path = tmp_path / "more.jsonl"
    path.write_bytes(orjson.dumps(new) + b"\n" + orjson.dumps(changed) + b"\n")
    with Store(served.db_path) as store:
        report = import_file(store, path, progress=False)
    assert (report.inserted, report.updated) == (1, 1)
    found = wait_until(lambda: search(served, query="quicksand")["results"], what="the new conversation in the index")
    assert [r["conversation_id"] for r in found] == ["conv_00050"]
    assert [r["conversation_id"] for r in search(served, query="loneliness")["results"]] == ["conv_00004"]
    assert search(served, query="died")["total_matches"] == 0  # only in the replaced message
    expected = bm25("anxious sleep quicksand", corpus(served))
    got = {r["conversation_id"]: r["relevance_score"] for r in search(served, query="anxious sleep quicksand", limit=50)["results"]}
    assert got == pytest.approx(expected, rel=1e-6)


def test_snippet_cuts_around_the_best_message() -> None:
    long = "word " * 100 + "the anxious part is here " + "tail " * 100
    text, marks = snippet(["nothing relevant", long, "anxious once"], {"anxious"}, width=60)
    assert text.startswith("…") and text.endswith("…") and len(text) <= 62
    assert [text[a:b] for a, b in marks] == ["anxious"]
    text, marks = snippet(["Anxious, anxious!", "anxious"], {"anxious"})
    assert text == "Anxious, anxious!" and len(marks) == 2
    assert snippet(["", "no match"], {"x"}) == ("no match", [])

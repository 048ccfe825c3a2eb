"""Quality validation and the analysis jobs: answered by pe_toolkit.analysis,
checked against the same functions called directly (no fixed numbers)."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from pe_toolkit.schema import QUALITY_METRICS, TIERS
from pe_toolkit.store import ConversationFilter

from .server_support import Served, check_envelope, wait_until


def stored(served: Served, cid: str) -> dict:
    with served.client() as client:
        return check_envelope(client.get(f"/v1/conversations/{cid}"), 200)


def finished(served: Served, job_id: str) -> dict:
    with served.client() as client:
        def done() -> dict | None:
            job = check_envelope(client.get(f"/v1/processing/jobs/{job_id}"), 200)
            return job if job["status"] not in ("queued", "running") else None

        return wait_until(done, timeout=120, what=f"job {job_id}")


def test_validate_answers_what_the_analyzers_compute(mirror: Served) -> None:
    from pe_toolkit.analysis import validate_conversation

    conversation = stored(mirror, "syn7_0000003")
    with mirror.client() as client:
        data = check_envelope(client.post("/v1/quality/validate", json=conversation), 200)
    assert set(data) >= {"conversation_id", "validation_results", "recommendations", "tier_classification", "validation_timestamp"}
    assert data["conversation_id"] == "syn7_0000003"
    assert set(data["validation_results"]) == set(QUALITY_METRICS)
    assert all(0.0 <= v <= 1.0 for v in data["validation_results"].values())
    assert data["tier_classification"] in TIERS
    assert all(isinstance(r, str) for r in data["recommendations"])
    direct = validate_conversation(conversation)
    for key in ("validation_results", "recommendations", "tier_classification"):
        assert data[key] == direct[key]


def test_validate_distinguishes_conversations(mirror: Served) -> None:
    """Different conversations get different scores: nothing is a constant."""
    with mirror.client() as client:
        ids = [c["id"] for c in check_envelope(client.get("/v1/conversations", params={"limit": 12}), 200)["conversations"]]
        results = [check_envelope(client.post("/v1/quality/validate", json=stored(mirror, cid)), 200) for cid in ids]
    overall = {r["validation_results"]["overall_quality"] for r in results}
    assert len(overall) > 3


def test_validate_rejects_what_the_analyzers_reject(mirror: Served) -> None:
    bad = {"id": "c1", "messages": [{"role": "user", "content": "hi", "timestamp": "yesterday-ish"}]}
    with mirror.client() as client:
        error = check_envelope(client.post("/v1/quality/validate", json=bad), 422, code="VALIDATION_ERROR")
    assert "timestamp" in error["message"]


def test_analysis_job_scores_the_store_and_reports_moving_progress(mirror: Served) -> None:
    with mirror.client() as client:
        submitted = check_envelope(client.post("/v1/processing/submit", json={"dataset_name": "crisis_line_sim", "processing_type": "analysis"}), 201)
    job = finished(mirror, submitted["job_id"])
    assert job["status"] == "completed", job
    results = job["results"]
    selected = mirror.mirror.count(ConversationFilter(dataset="crisis_line_sim"))
    assert results["conversations_selected"] == selected == results["conversations_scored"]
    scores = pl.from_arrow(mirror.mirror.db.arrow(
        "SELECT s.* FROM conversation_scores s JOIN conversations c ON c.id = s.conversation_id WHERE c.dataset = 'crisis_line_sim'"
    ))
    assert results["risk"]["mean"] == pytest.approx(scores["risk_score"].mean(), abs=1e-4)
    assert results["risk"]["alerts"] == int(scores["alert"].sum())
    steps = [e.data["progress"] for e in list(mirror.mirror.hub._history) if e.data.get("job_id") == submitted["job_id"] and e.topic == "job.progress"]
    assert steps == sorted(steps) and len({p for p in steps if 0 < p < 100}) >= 3, steps


def test_quality_validation_job_compares_computed_and_stored_metrics(mirror: Served) -> None:
    from pe_toolkit.analysis import validate_conversation

    with mirror.client() as client:
        submitted = check_envelope(
            client.post("/v1/processing/submit", json={"dataset_name": "peer_support", "processing_type": "quality_validation", "parameters": {"tier": "basic"}}),
            201,
        )
    job = finished(mirror, submitted["job_id"])
    assert job["status"] == "completed", job
    results = job["results"]
    frame = pl.from_arrow(mirror.mirror.db.arrow(
        "SELECT c.id, c.tier AS stored_tier, s.tier, " + ", ".join(f"s.{m} AS local_{m}, c.{m} AS api_{m}" for m in QUALITY_METRICS)
        + " FROM conversations c JOIN conversation_scores s ON s.conversation_id = c.id AND s.content_hash = c.content_hash "
        "WHERE c.dataset = 'peer_support' AND c.tier = 'basic'"
    ))
    assert results["conversations_scored"] == frame.height == results["conversations_selected"]
    for m in QUALITY_METRICS:
        assert results["metrics"][m]["computed_mean"] == pytest.approx(frame[f"local_{m}"].mean(), abs=1e-4)
        assert results["metrics"][m]["stored_mean"] == pytest.approx(frame[f"api_{m}"].mean(), abs=1e-4)
    assert results["tier_agreement"] == pytest.approx((frame["tier"] == frame["stored_tier"]).mean(), abs=1e-4)
    assert sum(results["tier_classification"].values()) == frame.height
    weakest = results["weakest"]
    assert weakest and [w["conversation_id"] for w in weakest] == frame.sort(["local_overall_quality", "id"], nulls_last=True)["id"].head(len(weakest)).to_list()
    direct = validate_conversation(stored(mirror, weakest[0]["conversation_id"]))
    assert weakest[0]["recommendations"] == direct["recommendations"]
    assert orjson.dumps(results)  # a plain JSON record


def test_websocket_analysis_and_suggestions(mirror: Served) -> None:
    from websockets.sync.client import connect

    from pe_toolkit.analysis import validate_conversation

    conversation = stored(mirror, "syn7_0000011")
    url = mirror.url.replace("http://", "ws://") + "/v1/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {mirror.key}"}, open_timeout=10) as sock:
        sock.send(orjson.dumps({"type": "analyze_conversation", "request_id": "a-1", "data": {"conversation": conversation}}).decode())
        analysis = orjson.loads(sock.recv(timeout=60))
        sock.send(orjson.dumps({"type": "get_quality_suggestions", "request_id": "s-1", "data": {"conversation_id": "syn7_0000011"}}).decode())
        suggestions = orjson.loads(sock.recv(timeout=60))
    direct = validate_conversation(conversation, include_messages=True)
    assert analysis["type"] == "analysis_result" and analysis["request_id"] == "a-1" and analysis["success"] is True
    result = analysis["data"]
    assert result["validation_results"] == direct["validation_results"]
    assert result["message_scores"] == direct["message_scores"]
    assert len(result["message_scores"]) == len(conversation["messages"])
    assert [m["idx"] for m in result["message_scores"]] == list(range(len(conversation["messages"])))
    assert suggestions["type"] == "quality_suggestions" and suggestions["request_id"] == "s-1"
    tips = suggestions["data"]
    assert tips["recommendations"] == direct["recommendations"] and tips["tier_classification"] == direct["tier_classification"]
    weakest = tips["weakest_metrics"]
    metrics = direct["validation_results"]
    assert [w["score"] for w in weakest] == sorted(metrics[k] for k in QUALITY_METRICS if k != "overall_quality")[: len(weakest)]


def test_the_quality_summary_counts_a_conversation_without_a_reply_apart(tmp_path) -> None:
    # A post has no reply to rate (null metrics and tier since quality v3): it
    # was counted as an "unknown" tier, and a selection of posts listed them as
    # the weakest conversations, with recommendations about replies they lack.
    from pe_toolkit.server.db import ServerDB
    from pe_toolkit.server.tasks import quality_summary
    from pe_toolkit.store import Store

    from ._widgets_support import add_posts, build_store

    path = build_store(tmp_path, n=30, seed=8, analyze=True)
    posts = add_posts(path, 12)
    with Store(path) as store:
        db = ServerDB(store)
        everything = quality_summary(db, ConversationFilter())
        assert set(everything["tier_classification"]) <= set(TIERS) and sum(everything["tier_classification"].values()) == 30
        assert not set(everything["weakest"]) & set(posts) and len(everything["weakest"]) == 5
        assert (everything["conversations_scored"], everything["conversations_rated"], everything["conversations_unrated"]) == (42, 30, 12)
        only_posts = quality_summary(db, ConversationFilter(dataset="posts"))
        assert only_posts["tier_classification"] == {} and only_posts["weakest"] == []
        assert (only_posts["conversations_rated"], only_posts["conversations_unrated"]) == (0, 12)
        assert all(m["computed_mean"] is None for m in only_posts["metrics"].values())


def test_the_quality_summary_compares_the_stored_means_over_the_rated_conversations(tmp_path) -> None:
    # Posts the API rated (0.1) but that have no reply to rate locally: the
    # stored means took them in while the computed means could not, so the
    # two means compared different sets (stored 0.33 against computed 0.55).
    from pe_toolkit.server.db import ServerDB
    from pe_toolkit.server.tasks import quality_summary
    from pe_toolkit.store import Store

    from ._widgets_support import add_posts, build_store

    path = build_store(tmp_path, n=30, seed=8, analyze=True)
    posts = add_posts(path, 30, api_quality=0.1)
    with Store(path) as store:
        summary = quality_summary(ServerDB(store), ConversationFilter())
        rated = store.sql(
            "SELECT c.* FROM conversations c JOIN current_conversation_scores s ON s.conversation_id = c.id WHERE s.tier IS NOT NULL"
        )
    assert summary["conversations_rated"] == rated.height == 30 and not set(rated["id"]) & set(posts)
    for m in QUALITY_METRICS:
        assert summary["metrics"][m]["stored_mean"] == pytest.approx(rated[m].mean(), abs=1e-4)


def test_the_quality_summary_means_cover_the_conversations_with_both_values(tmp_path) -> None:
    # Rated dialogues imported without API metrics have a computed value and
    # no stored one; rated posts have a stored value and no computed one. The
    # computed mean took in the first and the stored mean the second, so the
    # two means were over different sets (and their difference meant little).
    from pe_toolkit import analyze as run_analysis, synth
    from pe_toolkit.ingest import import_file
    from pe_toolkit.server.db import ServerDB
    from pe_toolkit.server.tasks import quality_summary
    from pe_toolkit.store import Store

    from ._widgets_support import add_posts, build_store

    path = build_store(tmp_path, n=30, seed=8, analyze=True)
    plain = tmp_path / "plain.jsonl"
    with plain.open("wb") as fh:
        for i, conv in enumerate(synth.generate(10, seed=21)):
            turns = [{"role": m["role"], "content": m["content"]} for m in conv["messages"] if m["role"] != "system"]
            fh.write(orjson.dumps({"id": f"plain-{i}", "messages": turns}) + b"\n")
    with Store(path) as store:
        import_file(store, plain, progress=False)
        run_analysis(store, incremental=True, progress=False)
    add_posts(path, 12, api_quality=0.1)
    with Store(path) as store:
        summary = quality_summary(ServerDB(store), ConversationFilter())
        frame = store.sql(
            "SELECT c.id, " + ", ".join(f"s.{m} AS local_{m}, c.{m} AS api_{m}" for m in QUALITY_METRICS)
            + " FROM conversations c JOIN current_conversation_scores s ON s.conversation_id = c.id"
        )
    both = frame.filter(~pl.col("id").str.starts_with("plain-") & ~pl.col("id").str.starts_with("post-"))
    assert both.height == 30 and frame.filter(pl.col("id").str.starts_with("plain-"))["local_overall_quality"].null_count() == 0
    for m in QUALITY_METRICS:
        found = summary["metrics"][m]
        assert found["computed_mean"] == pytest.approx(both[f"local_{m}"].mean(), abs=1e-4)
        assert found["stored_mean"] == pytest.approx(both[f"api_{m}"].mean(), abs=1e-4)
        assert found["mean_absolute_difference"] == pytest.approx((both[f"local_{m}"] - both[f"api_{m}"]).abs().mean(), abs=1e-4)
        assert (found["n"], found["computed_only"], found["stored_only"]) == (30, 10, 12)

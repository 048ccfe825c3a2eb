"""The mirror's routes against a real uvicorn server over the sample store:
fields, types, status codes and the envelope, success and error cases. The
expected values are computed from the store itself, not written down."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from pe_toolkit.schema import QUALITY_METRICS, TIERS
from pe_toolkit.store import Store

from .server_support import Served, check_envelope, rate_headers

CONTRACT_ROUTES = {
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/v1/datasets"),
    ("GET", "/v1/datasets/{name}"),
    ("GET", "/v1/conversations"),
    ("GET", "/v1/conversations/{conversation_id}"),
    ("GET", "/v1/quality/metrics"),
    ("POST", "/v1/quality/validate"),
    ("POST", "/v1/processing/submit"),
    ("GET", "/v1/processing/jobs/{job_id}"),
    ("POST", "/v1/search"),
    ("GET", "/v1/statistics/overview"),
    ("POST", "/v1/export"),
    ("GET", "/v1/exports/{export_id}/download"),
    ("GET", "/v1/stream/updates"),
    ("WEBSOCKET", "/v1/ws"),
}


@pytest.fixture(scope="module")
def frame(mirror: Served) -> pl.DataFrame:
    """The conversations table as the test's own source of truth."""
    return mirror.mirror.store.conversations()


def test_root_lists_every_route_and_needs_no_key(mirror: Served) -> None:
    import httpx

    response = httpx.get(mirror.url + "/")
    data = check_envelope(response, 200)
    listed = {(e["method"], e["path"]) for e in data["endpoints"]}
    assert CONTRACT_ROUTES <= listed
    assert all(isinstance(e["description"], str) for e in data["endpoints"])
    assert "x-ratelimit-limit" not in response.headers  # only /v1 is budgeted


def test_health(mirror: Served) -> None:
    import httpx

    data = check_envelope(httpx.get(mirror.url + "/health"), 200)
    assert data["status"] == "healthy"
    assert data["checks"]["store"] == "ok" and data["checks"]["snapshot"] == "ready"
    assert isinstance(data["uptime_seconds"], float)


def test_datasets_match_the_store(mirror: Served, frame: pl.DataFrame) -> None:
    with mirror.client() as client:
        response = client.get("/v1/datasets")
    data = check_envelope(response, 200)
    expected = frame.group_by("dataset").agg(pl.len().alias("n"), pl.col("overall_quality").mean().alias("q"), pl.col("tier").unique())
    assert data["total"] == expected.height == len(data["datasets"])
    by_name = {d["name"]: d for d in data["datasets"]}
    for row in expected.iter_rows(named=True):
        got = by_name[row["dataset"]]
        assert got["conversations"] == row["n"]
        assert got["quality_score"] == pytest.approx(row["q"], abs=1e-4)
        assert got["tiers"] == [t for t in TIERS if t in row["tier"]]
        assert isinstance(got["description"], str) and got["description"]
    assert [d["name"] for d in data["datasets"]] == sorted(by_name)


def test_dataset_detail_and_unknown_dataset(mirror: Served, frame: pl.DataFrame) -> None:
    name = frame["dataset"][0]
    part = frame.filter(pl.col("dataset") == name)
    with mirror.client() as client:
        data = check_envelope(client.get(f"/v1/datasets/{name}"), 200)
        missing = client.get("/v1/datasets/no_such_dataset")
    stats = data["statistics"]
    assert data["name"] == name
    assert stats["total_conversations"] == part.height
    assert stats["average_quality"] == pytest.approx(part["overall_quality"].mean(), abs=1e-4)
    tiers = dict(part.group_by("tier").len().iter_rows())
    assert stats["tier_distribution"] == tiers
    assert stats["last_updated"].endswith("Z")
    assert {"id", "messages", "quality_metrics", "metadata"} <= data["schema"].keys()
    assert {"dataset", "tier", "created_at", "topic"} <= set(data["schema"]["metadata"]["observed_keys"])
    error = check_envelope(missing, 404, code="RESOURCE_NOT_FOUND")
    assert "no_such_dataset" in error["message"]


def test_conversation_pages_are_stable_complete_and_counted(mirror: Served, frame: pl.DataFrame) -> None:
    seen: list[str] = []
    with mirror.client() as client:
        offset = 0
        while True:
            response = client.get("/v1/conversations", params={"limit": 700, "offset": offset})
            data = check_envelope(response, 200)
            assert data["total"] == frame.height and data["limit"] == 700 and data["offset"] == offset
            seen += [c["id"] for c in data["conversations"]]
            if not data["has_more"]:
                break
            offset += 700
        again = check_envelope(client.get("/v1/conversations", params={"limit": 5, "offset": 700}), 200)
    assert seen == sorted(frame["id"].to_list())
    assert [c["id"] for c in again["conversations"]] == seen[700:705]


def test_summary_fields_and_types(mirror: Served, frame: pl.DataFrame) -> None:
    with mirror.client() as client:
        data = check_envelope(client.get("/v1/conversations", params={"limit": 3}), 200)
    first = data["conversations"][0]
    assert set(first) == {"id", "dataset", "tier", "quality_score", "message_count", "created_at"}
    row = frame.filter(pl.col("id") == first["id"]).row(0, named=True)
    assert first["dataset"] == row["dataset"] and first["tier"] == row["tier"]
    assert first["quality_score"] == pytest.approx(row["overall_quality"])
    assert first["message_count"] == row["message_count"] and isinstance(first["message_count"], int)
    assert first["created_at"].endswith("Z")


@pytest.mark.parametrize(
    "params",
    [
        {"dataset": "peer_support"},
        {"tier": "research"},
        {"min_quality": 0.8},
        {"dataset": "crisis_line_sim", "tier": "clinical", "min_quality": 0.7},
    ],
)
def test_filters_are_honoured(mirror: Served, frame: pl.DataFrame, params: dict) -> None:
    expected = frame
    if "dataset" in params:
        expected = expected.filter(pl.col("dataset") == params["dataset"])
    if "tier" in params:
        expected = expected.filter(pl.col("tier") == params["tier"])
    if "min_quality" in params:
        expected = expected.filter(pl.col("overall_quality") >= params["min_quality"])
    with mirror.client() as client:
        data = check_envelope(client.get("/v1/conversations", params={**params, "limit": 1000}), 200)
    assert data["total"] == expected.height > 0
    assert [c["id"] for c in data["conversations"]] == sorted(expected["id"].to_list())[:1000]


def test_one_conversation_is_the_stores_object(mirror: Served, frame: pl.DataFrame) -> None:
    cid = frame["id"][17]
    with mirror.client() as client:
        response = client.get(f"/v1/conversations/{cid}")
        missing = client.get("/v1/conversations/conv_does_not_exist")
    data = check_envelope(response, 200)
    with Store(mirror.db_path, read_only=False) as store:
        assert data == store.conversation(cid)
    assert {"id", "messages", "quality_metrics", "metadata"} <= data.keys()
    assert set(data["quality_metrics"]) == set(QUALITY_METRICS)
    assert {"dataset", "tier", "length", "created_at"} <= data["metadata"].keys()
    check_envelope(missing, 404, code="RESOURCE_NOT_FOUND")


def test_quality_metrics_by_filter(mirror: Served, frame: pl.DataFrame) -> None:
    part = frame.filter(pl.col("dataset") == "cbt_coaching")
    with mirror.client() as client:
        data = check_envelope(client.get("/v1/quality/metrics", params={"dataset": "cbt_coaching"}), 200)
        bad = client.get("/v1/quality/metrics", params={"tier": "platinum"})
    overall = data["overall_statistics"]
    assert overall["total_conversations"] == part.height
    assert overall["average_quality"] == pytest.approx(part["overall_quality"].mean(), abs=1e-4)
    q = part["overall_quality"]
    assert overall["quality_distribution"] == {
        "excellent": int((q >= 0.8).sum()),
        "good": int(((q >= 0.6) & (q < 0.8)).sum()),
        "fair": int(((q >= 0.4) & (q < 0.6)).sum()),
        "poor": int((q < 0.4).sum()),
        "unscored": 0,
    }
    for metric in QUALITY_METRICS:
        assert overall["metric_averages"][metric] == pytest.approx(part[metric].mean(), abs=1e-4)
    for tier, values in data["tier_metrics"].items():
        sub = part.filter(pl.col("tier") == tier)
        assert values == {"average_quality": pytest.approx(sub["overall_quality"].mean(), abs=1e-4), "count": sub.height}
    assert data["filters_applied"] == {"dataset": "cbt_coaching"}
    error = check_envelope(bad, 422, code="VALIDATION_ERROR")
    assert "tier" in error["message"]


def test_statistics_overview(mirror: Served, frame: pl.DataFrame) -> None:
    with mirror.client() as client:
        data = check_envelope(client.get("/v1/statistics/overview"), 200)
    assert data["total_conversations"] == frame.height
    assert data["total_datasets"] == frame["dataset"].n_unique()
    assert data["total_messages"] == frame["message_count"].sum()
    assert sum(data["quality_distribution"].values()) == frame.height
    stats = data["processing_statistics"]
    assert set(stats["jobs"]) == {"queued", "running", "completed", "failed", "cancelled"}
    assert stats["search_index"]["documents"] == frame.height
    usage = data["api_usage"]
    assert usage["requests_served"] >= 1 and usage["keys_configured"] == 2
    assert "test-key" not in orjson.dumps(data).decode()


def test_rate_headers_on_every_v1_response_and_remaining_counts_down(mirror: Served) -> None:
    with mirror.client(key="test-key-two") as client:
        first = client.get("/v1/datasets")
        second = client.get("/v1/nowhere")
        third = client.post("/v1/search", content=b"{")
    limits = [rate_headers(r) for r in (first, second, third)]
    assert [r.status_code for r in (first, second, third)] == [200, 404, 400]
    assert limits[0][1] - 1 == limits[1][1] and limits[1][1] - 1 == limits[2][1]
    assert all(limit == mirror.mirror.config.rate_limit for limit, _, _ in limits)


def test_unknown_route_and_wrong_method_use_the_envelope(mirror: Served) -> None:
    with mirror.client() as client:
        check_envelope(client.get("/v1/conversations/x/y/z"), 404, code="RESOURCE_NOT_FOUND")
        error = check_envelope(client.put("/v1/datasets"), 405, code="VALIDATION_ERROR")
        assert "GET" in error["message"]
        check_envelope(client.get("/nothing/here"), 404, code="RESOURCE_NOT_FOUND")


def test_client_request_id_is_echoed_when_sane(mirror: Served) -> None:
    with mirror.client() as client:
        mine = client.get("/v1/datasets", headers={"X-Request-ID": "nb-42.a"})
        weird = client.get("/v1/datasets", headers={"X-Request-ID": "x" * 300})
    assert mine.json()["request_id"] == "nb-42.a" == mine.headers["x-request-id"]
    assert weird.json()["request_id"].startswith("req_")


def test_before_the_snapshot_is_built_gets_ask_the_store(sample_store_template, tmp_path) -> None:
    """The first seconds after a start on a big store: same answers, from DuckDB."""
    import asyncio

    import httpx

    from pe_toolkit.config import Secret
    from pe_toolkit.server import ServerConfig, create_app

    from .server_support import KEYS, copy_store

    db = copy_store(sample_store_template, tmp_path)
    app = create_app(ServerConfig(db_path=db, keys=(Secret(KEYS[0]),), rate_limit=1000))  # no lifespan: nothing is built
    assert not app.state.mirror.snapshot.ready

    async def fetch() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mirror", headers={"Authorization": f"Bearer {KEYS[0]}"}) as client:
            return [await client.get("/v1/conversations/syn7_0000042"), await client.get("/v1/conversations/nope")]

    try:
        found, missing = asyncio.run(fetch())
        assert check_envelope(found, 200) == app.state.mirror.store.conversation("syn7_0000042")
        check_envelope(missing, 404, code="RESOURCE_NOT_FOUND")
        assert found.headers["x-ratelimit-limit"]
    finally:
        app.state.mirror.stop()

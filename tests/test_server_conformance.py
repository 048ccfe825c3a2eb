"""What the upstream project's own API suite and its published Python SDK
send and expect, replayed against the mirror as plain httpx requests (the
SDK itself is not installed: these are its requests, written out)."""

from __future__ import annotations

import httpx
import polars as pl
import pytest

from pe_toolkit.schema import TIERS
from pe_toolkit.store import ConversationFilter

from .server_support import Served, check_envelope, wait_until

EXCHANGE = [
    {"role": "user", "content": "I keep lying awake before every exam and I can't switch my thoughts off."},
    {"role": "assistant", "content": "That sounds exhausting. What goes through your mind when you're lying there?"},
]


def sdk_session(served: Served) -> httpx.Client:
    """The SDK's requests.Session: the key and a JSON content type on every request."""
    headers = {"Authorization": f"Bearer {served.key}", "Content-Type": "application/json"}
    return httpx.Client(base_url=served.url, headers=headers, timeout=30.0)


def finished(client: httpx.Client, job_id: str) -> dict:
    def done() -> dict | None:
        job = check_envelope(client.get(f"/v1/processing/jobs/{job_id}"), 200)
        return job if job["status"] not in ("queued", "running") else None

    return wait_until(done, timeout=120, what=f"job {job_id}")


def test_root_and_health_answer_the_published_servers_messages(mirror: Served) -> None:
    root = httpx.get(mirror.url + "/")
    check_envelope(root, 200)
    assert root.json()["message"] == "Welcome to Pixelated Empathy AI API"
    health = httpx.get(mirror.url + "/health")
    assert check_envelope(health, 200)["status"] == "healthy"
    assert health.json()["message"] == "API is healthy"


def test_the_sdks_health_check_path_under_v1_is_served(mirror: Served) -> None:
    # PixelatedEmpathyAPI.health_check() asks f"{base_url}/health", base_url ending in /v1.
    with sdk_session(mirror) as client:
        response = client.get("/v1/health")
    data = check_envelope(response, 200)
    assert data["status"] == "healthy" and data["checks"]["store"] == "ok"
    assert response.json()["message"] == "API is healthy"
    # Under /v1 like every route: a key is needed there.
    check_envelope(httpx.get(mirror.url + "/v1/health"), 401, code="INVALID_API_KEY")


@pytest.mark.parametrize("tier, score", [("unknown", 0.5), ("not yet classified", 7), ("research", -3.25)])
def test_validate_takes_tier_and_score_as_information(mirror: Served, tier: str, score: float) -> None:
    from pe_toolkit.analysis import validate_conversation

    body = {"id": "upstream_case_1", "messages": EXCHANGE, "tier": tier, "quality_score": score}
    with mirror.client() as client:
        data = check_envelope(client.post("/v1/quality/validate", json=body), 200)
    assert data["conversation_id"] == "upstream_case_1"
    assert data["tier_classification"] in TIERS
    assert data["submitted"] == {"tier": tier, "quality_score": score}
    direct = validate_conversation({"id": "upstream_case_1", "messages": EXCHANGE})
    assert data["validation_results"] == direct["validation_results"]
    assert data["tier_classification"] == direct["tier_classification"]


def test_validate_still_refuses_what_is_not_a_string_or_a_number(mirror: Served) -> None:
    with mirror.client() as client:
        for field, value in (("tier", 3), ("quality_score", "high"), ("quality_score", True)):
            body = {"id": "c1", "messages": EXCHANGE, field: value}
            error = check_envelope(client.post("/v1/quality/validate", json=body), 422, code="VALIDATION_ERROR")
            assert field in error["details"]


def test_export_reads_the_sdks_form_body_sent_under_a_json_content_type(mirror: Served) -> None:
    frame = mirror.mirror.store.conversations()
    dataset = frame["dataset"][0]
    with sdk_session(mirror) as client:
        # requests' data={...} with the session's Content-Type: application/json kept.
        response = client.post("/v1/export", content=f"dataset={dataset}&format=jsonl&tier=research&min_quality=0.5")
        data = check_envelope(response, 202)
        assert data["format"] == "jsonl" and data["dataset"] == dataset
        assert data["filters"] == {"tier": "research", "min_quality": 0.5, "redact": False}
        assert data["job_id"] == data["export_id"]
        job = finished(client, data["job_id"])
        assert job["download_url"] == data["download_url"]
        lines = client.get(job["download_url"]).content.splitlines()
    expected = frame.filter((pl.col("dataset") == dataset) & (pl.col("tier") == "research") & (pl.col("overall_quality") >= 0.5))
    assert len(lines) == expected.height == job["results"]["conversations"]


def test_malformed_json_is_still_a_400_on_export(mirror: Served) -> None:
    with sdk_session(mirror) as client:
        for body in ('{"dataset": "x", "format":', "dataset=x&format=jsonl&&=="):
            error = check_envelope(client.post("/v1/export", content=body), 400, code="VALIDATION_ERROR")
            assert error["details"] == "body"


def test_export_status_carries_the_job_id_too(mirror: Served) -> None:
    with mirror.client() as client:
        created = check_envelope(client.post("/v1/export", data={"format": "csv"}), 202)
        status = check_envelope(client.get(f"/v1/exports/{created['export_id']}"), 200)
    assert status["job_id"] == status["export_id"] == created["job_id"]


@pytest.mark.parametrize("processing_type", ["quality_validation", "analysis", "export"])
def test_submit_applies_a_tier_filter_and_echoes_unknown_parameters(mirror: Served, processing_type: str) -> None:
    frame = mirror.mirror.store.conversations()
    dataset = frame["dataset"][0]
    parameters = {"tier_filter": "professional", "batch_size": 50, "notify": {"email": False}}
    if processing_type == "export":
        parameters["format"] = "jsonl"
    with mirror.client() as client:
        body = {"dataset_name": dataset, "processing_type": processing_type, "parameters": parameters}
        data = check_envelope(client.post("/v1/processing/submit", json=body), 201)
        assert data["conversations"] == mirror.mirror.count(ConversationFilter(dataset=dataset, tier="professional"))
        for name, value in parameters.items():
            assert data["parameters"][name] == value
        assert data["parameters"]["tier"] == "professional"
        assert sorted(data["unapplied_parameters"]) == ["batch_size", "notify"]
        job = finished(client, data["job_id"])
    assert job["status"] == "completed", job
    assert job["parameters"]["batch_size"] == 50
    if processing_type == "export":
        assert job["download_url"] == data["download_url"]
        assert job["results"]["conversations"] == data["conversations"]


def test_submit_still_validates_the_parameters_it_knows(mirror: Served) -> None:
    dataset = mirror.mirror.store.conversations()["dataset"][0]
    with mirror.client() as client:
        for parameters in ({"tier_filter": "golden"}, {"tier": 5}, {"min_quality": 1.5}, {"format": "xlsx"}):
            kind = "export" if "format" in parameters else "analysis"
            body = {"dataset_name": dataset, "processing_type": kind, "parameters": parameters}
            error = check_envelope(client.post("/v1/processing/submit", json=body), 422, code="VALIDATION_ERROR")
            assert error["details"].startswith("parameters."), error

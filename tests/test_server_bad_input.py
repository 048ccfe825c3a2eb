"""Bad input is rejected cleanly, the server keeps serving, the store is unchanged."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from .server_support import Served, check_envelope

VALID_CONVERSATION = {"id": "c1", "messages": [{"role": "user", "content": "I feel low"}, {"role": "assistant", "content": "I'm sorry."}]}


def data_fingerprint(served: Served) -> tuple:
    db = served.mirror.db
    return (
        db.one("SELECT count(*), bit_xor(hash(id || content_hash)) FROM conversations"),
        db.one("SELECT count(*), bit_xor(hash(conversation_id || idx || content)) FROM messages"),
        db.one("SELECT count(*) FROM dead_letters"),
    )


@pytest.fixture(scope="module", autouse=True)
def store_is_unchanged(mirror: Served):
    before = data_fingerprint(mirror)
    yield
    check_envelope(httpx.get(mirror.url + "/health"), 200)
    assert data_fingerprint(mirror) == before


@pytest.mark.parametrize("path", ["/v1/quality/validate", "/v1/search", "/v1/processing/submit"])
@pytest.mark.parametrize("body", [b"{", b'{"query": "x",}', b"\xff\xfe", b"[1, 2", b"nul", b"{'single': 'quotes'}"])
def test_malformed_json_is_400(mirror: Served, path: str, body: bytes) -> None:
    with mirror.client() as client:
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    error = check_envelope(response, 400, code="VALIDATION_ERROR")
    assert error["details"] == "body" and "JSON" in error["message"]


@pytest.mark.parametrize("path", ["/v1/quality/validate", "/v1/search", "/v1/processing/submit"])
def test_empty_non_object_and_non_json_bodies(mirror: Served, path: str) -> None:
    with mirror.client() as client:
        check_envelope(client.post(path, content=b"", headers={"Content-Type": "application/json"}), 400, code="VALIDATION_ERROR")
        error = check_envelope(client.post(path, json=[1, 2, 3]), 422, code="VALIDATION_ERROR")
        assert "object" in error["message"]
        check_envelope(client.post(path, content=b"a=b", headers={"Content-Type": "text/plain"}), 400, code="VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/search", {"query": 7}, "query"),
        ("/v1/search", {"query": ""}, "query"),
        ("/v1/search", {"query": "sad", "limit": "10"}, "limit"),
        ("/v1/search", {"query": "sad", "limit": 5000}, "limit"),
        ("/v1/search", {"query": "sad", "offset": -1}, "offset"),
        ("/v1/search", {"query": "sad", "filters": {"min_quality": 1.5}}, "filters.min_quality"),
        ("/v1/search", {"query": "sad", "filters": {"tier": "gold"}}, "filters.tier"),
        ("/v1/search", {"query": "sad", "filters": "tier=research"}, "filters"),
        ("/v1/search", {"limit": 3}, "query"),
        ("/v1/processing/submit", {"dataset_name": "peer_support", "processing_type": "delete_everything"}, "processing_type"),
        ("/v1/processing/submit", {"dataset_name": 5, "processing_type": "export"}, "dataset_name"),
        ("/v1/processing/submit", {"dataset_name": "peer_support", "processing_type": "export", "parameters": {"format": "xml"}}, "parameters.format"),
        ("/v1/processing/submit", {"dataset_name": "peer_support", "processing_type": "export", "parameters": {"format": "csv", "redact": "yes"}}, "parameters.redact"),
        ("/v1/quality/validate", {"messages": VALID_CONVERSATION["messages"]}, "id"),
        ("/v1/quality/validate", {**VALID_CONVERSATION, "messages": []}, "messages"),
        ("/v1/quality/validate", {**VALID_CONVERSATION, "messages": [{"role": "doctor", "content": "x"}]}, "messages[0].role"),
        ("/v1/quality/validate", {**VALID_CONVERSATION, "messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ("/v1/quality/validate", {**VALID_CONVERSATION, "quality_score": "0.3"}, "quality_score"),
        ("/v1/quality/validate", {**VALID_CONVERSATION, "quality_metrics": {"vibes": 0.5}}, "quality_metrics"),
    ],
)
def test_wrong_types_and_values_name_the_field(mirror: Served, path: str, body: dict, field: str) -> None:
    with mirror.client() as client:
        response = client.post(path, json=body)
    error = check_envelope(response, 422, code="VALIDATION_ERROR")
    assert field in error["details"].split(", "), error
    assert error["message"].startswith(field) or f"; {field}" in error["message"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "1e3"}, "offset"),
        ({"min_quality": 1.01}, "min_quality"),
        ({"min_quality": -0.1}, "min_quality"),
        ({"min_quality": "nan"}, "min_quality"),
        ({"tier": "research' OR '1'='1"}, "tier"),
    ],
)
def test_query_parameters_out_of_range(mirror: Served, params: dict, name: str) -> None:
    with mirror.client() as client:
        error = check_envelope(client.get("/v1/conversations", params=params), 422, code="VALIDATION_ERROR")
    assert error["message"].startswith(f"{name}:") and error["details"] == name


@pytest.mark.parametrize(
    "value",
    ["x' OR '1'='1", "peer_support'; DROP TABLE conversations; --", "%", "*", "peer_support\" OR 1=1 --", "\u0000"],
)
def test_sql_looking_filter_values_match_nothing(mirror: Served, value: str) -> None:
    with mirror.client() as client:
        data = check_envelope(client.get("/v1/conversations", params={"dataset": value}), 200)
        assert data["total"] == 0 and data["conversations"] == []
        metrics = check_envelope(client.get("/v1/quality/metrics", params={"dataset": value}), 200)
        assert metrics["overall_statistics"]["total_conversations"] == 0
        check_envelope(client.get(f"/v1/datasets/{quote(value, safe='')}"), 404, code="RESOURCE_NOT_FOUND")
        check_envelope(client.get(f"/v1/conversations/{quote(value, safe='')}"), 404, code="RESOURCE_NOT_FOUND")
        found = check_envelope(client.post("/v1/search", json={"query": "feel", "filters": {"dataset": value}}), 200)
        assert found["total_matches"] == 0


def test_sql_looking_search_text_is_just_words(mirror: Served) -> None:
    with mirror.client() as client:
        data = check_envelope(client.post("/v1/search", json={"query": "'; DROP TABLE messages; --"}), 200)
    assert data["terms"] == ["drop", "messages", "table"]


def test_huge_bodies_are_refused_before_reading(mirror: Served) -> None:
    limit = mirror.mirror.config.max_body_bytes
    blob = b'{"query": "' + b"a" * (limit + 10) + b'"}'
    with mirror.client() as client:
        declared = client.post("/v1/search", content=blob, headers={"Content-Type": "application/json"})
        error = check_envelope(declared, 413, code="VALIDATION_ERROR")
        assert str(limit) in error["message"]

        def chunks():
            for _ in range(limit // 65536 + 4):
                yield b"a" * 65536

        streamed = client.post("/v1/quality/validate", content=chunks(), headers={"Content-Type": "application/json"})
        check_envelope(streamed, 413, code="VALIDATION_ERROR")
        form = client.post("/v1/export", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
        check_envelope(form, 413, code="VALIDATION_ERROR")
    with mirror.client() as client:  # a fresh connection: the server still answers
        check_envelope(client.get("/v1/datasets"), 200)


@pytest.mark.parametrize(
    "export_id",
    [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2E%2E",
        "exp_..%2F..%2Fstore.duckdb",
        "exp_%2Fetc%2Fpasswd%2Fxxxxxxxxxxxxx",
        "exp_aaaaaaaaaaaaaaaaaaaaaaaa",
        "exp_" + "a" * 300,
        "store.duckdb",
        "objects",
        "%00",
    ],
)
def test_download_ids_cannot_escape_the_export_folder(mirror: Served, export_id: str) -> None:
    with mirror.client() as client:
        response = client.get(f"/v1/exports/{export_id}/download")
    assert response.status_code == 404, response.text[:300]
    check_envelope(response, 404, code="RESOURCE_NOT_FOUND")


def test_export_form_rejects_bad_fields(mirror: Served) -> None:
    with mirror.client() as client:
        bad_format = check_envelope(client.post("/v1/export", data={"format": "exe"}), 422, code="VALIDATION_ERROR")
        assert bad_format["details"] == "format"
        bad_quality = check_envelope(client.post("/v1/export", data={"format": "csv", "min_quality": "high"}), 422)
        assert bad_quality["details"] == "min_quality"
        missing = check_envelope(client.post("/v1/export", data={"dataset": "peer_support"}), 422)
        assert missing["details"] == "format"
        unknown = check_envelope(client.post("/v1/export", data={"format": "csv", "dataset": "nope"}), 404, code="RESOURCE_NOT_FOUND")
        assert "nope" in unknown["message"]
        check_envelope(client.get("/v1/processing/jobs/job_nope"), 404, code="RESOURCE_NOT_FOUND")


def test_search_with_a_huge_offset_is_a_422_not_a_500(mirror: Served) -> None:
    with mirror.client() as client:
        for offset in (2**63, 2**64 + 5, 10**12 + 1):
            error = check_envelope(client.post("/v1/search", json={"query": "sad", "offset": offset}), 422, code="VALIDATION_ERROR")
            assert error["details"] == "offset"
        # the largest offset the list route also takes still answers
        data = check_envelope(client.post("/v1/search", json={"query": "sad", "offset": 10**12}), 200)
    assert data["results"] == [] and data["total_matches"] > 0


@pytest.fixture(scope="module")
def ready_export(mirror: Served) -> tuple[str, bytes]:
    """(download url, the whole file) of a small finished export."""
    from .server_support import wait_until

    with mirror.client() as client:
        created = check_envelope(client.post("/v1/export", data={"dataset": "peer_support", "format": "csv"}), 202)

        def done() -> bool:
            return check_envelope(client.get(f"/v1/processing/jobs/{created['export_id']}"), 200)["status"] == "completed"

        wait_until(done, timeout=120, what="the export")
        whole = client.get(created["download_url"])
    assert whole.status_code == 200
    return created["download_url"], whole.content


@pytest.mark.parametrize("header", ["bytes", "items=0-10", "bytes=-", "bytes=abc-def", "bytes=20-10"])
def test_a_bad_range_header_is_an_enveloped_400(mirror: Served, ready_export: tuple[str, bytes], header: str) -> None:
    url, _ = ready_export
    with mirror.client() as client:
        error = check_envelope(client.get(url, headers={"Range": header}), 400, code="VALIDATION_ERROR")
    assert error["details"] == "Range"


def test_a_range_past_the_end_is_an_enveloped_416(mirror: Served, ready_export: tuple[str, bytes]) -> None:
    url, whole = ready_export
    with mirror.client() as client:
        response = client.get(url, headers={"Range": f"bytes={len(whole) + 10}-"})
        check_envelope(response, 416, code="VALIDATION_ERROR")
        assert response.headers["content-range"] == f"bytes */{len(whole)}"
        part = client.get(url, headers={"Range": "bytes=0-9"})  # a good range still works
    assert part.status_code == 206 and part.content == whole[:10]


def test_head_on_a_download_answers_its_headers(mirror: Served, ready_export: tuple[str, bytes]) -> None:
    url, whole = ready_export
    with mirror.client() as client:
        head = client.head(url)
        get = client.get(url)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(whole)
    for name in ("content-type", "content-disposition", "etag"):
        assert head.headers[name] == get.headers[name]

"""The shared request core without a network: building requests, parsing
the envelope, mapping errors, routing between endpoints, configuration.

Responses here are real ``httpx.Response`` objects handed to the parser;
everything that talks HTTP is in test_client_server.py against the mirror."""

from __future__ import annotations

import httpx
import orjson
import pytest

from pe_toolkit.client import routes
from pe_toolkit.client.core import BreakerPolicy, Call, CallState, RequestCore, normalize_base_url
from pe_toolkit.client.models import Conversation, ConversationPage, summaries_frame
from pe_toolkit.client.options import resolve_options
from pe_toolkit.config import Secret
from pe_toolkit.errors import (
    ApiStatusError,
    AuthenticationError,
    CircuitOpenError,
    ConfigError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestValidationError,
    ServerError,
    TransportError,
)

KEY = "pe_test_key_4f9c2a7d1e"


def _core(urls=("http://a.test/v1",), **kw):
    return RequestCore(tuple(urls), Secret(KEY), **kw)


def _respond(core, call, status, body, headers=None):
    attempt = core.plan(call, CallState())
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = httpx.Response(status, content=content, headers=headers or {}, request=attempt.request)
    return core.complete(attempt, response)


def _envelope(data=None, *, success=True, error=None, message="ok"):
    body = {"success": success, "data": data, "message": message, "timestamp": "2026-11-24T10:00:00.000Z", "request_id": "req_1"}
    if error is not None:
        body["error"] = {"request_id": "req_1", "details": "", **error}
    return body


def test_base_urls_get_v1_when_they_have_no_path():
    assert normalize_base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalize_base_url("https://api.example.org/v1/") == "https://api.example.org/v1"
    assert normalize_base_url("https://h/custom/prefix") == "https://h/custom/prefix"
    with pytest.raises(ValueError):
        normalize_base_url("ftp://h")


def test_requests_carry_the_key_only_in_the_authorization_header():
    core = _core()
    call = routes.list_conversations(tier="research", min_quality=0.8, limit=50)
    request = core.build_request(call, core.endpoints[0])
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(request.url)
    assert dict(request.url.params) == {"tier": "research", "min_quality": "0.8", "limit": "50", "offset": "0"}
    assert KEY not in repr(request) and KEY not in repr(request.headers)


def test_export_is_form_encoded_and_json_routes_send_json():
    core = _core()
    export = core.build_request(routes.start_export(dataset="d", tier="clinical"), core.endpoints[0])
    assert export.headers["content-type"] == "application/x-www-form-urlencoded"
    assert export.read() == b"dataset=d&format=jsonl&tier=clinical"
    search = core.build_request(routes.search("anxiety", filters={"tier": "research", "dataset": None}), core.endpoints[0])
    assert orjson.loads(search.read()) == {"query": "anxiety", "filters": {"tier": "research"}, "limit": 100, "offset": 0}
    health = core.build_request(routes.health(), core.endpoints[0])
    assert str(health.url) == "http://a.test/health"
    ident = core.build_request(routes.get_conversation("a/b c"), core.endpoints[0])
    assert ident.url.raw_path == b"/v1/conversations/a%2Fb%20c"


def test_success_envelope_decodes_to_typed_results():
    core = _core()
    page = _respond(
        core,
        routes.list_conversations(limit=2),
        200,
        _envelope(
            {
                "conversations": [
                    {"id": "c1", "dataset": "d", "tier": "research", "quality_score": 0.9, "message_count": 4, "created_at": "2025-01-02T03:04:05Z"},
                    {"id": "c2", "dataset": "d", "tier": "basic", "quality_score": 0.2, "message_count": 2, "created_at": None},
                ],
                "total": 7,
                "limit": 2,
                "offset": 0,
            }
        ),
    )
    assert isinstance(page, ConversationPage) and page.total == 7 and page.has_more
    frame = page.to_polars()
    assert frame.columns == ["id", "dataset", "tier", "quality_score", "message_count", "created_at"]
    assert frame["created_at"][0].year == 2025 and frame["created_at"][1] is None


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "VALIDATION_ERROR", RequestValidationError),
        (401, "INVALID_API_KEY", AuthenticationError),
        (403, "INSUFFICIENT_PERMISSIONS", PermissionDeniedError),
        (404, "RESOURCE_NOT_FOUND", NotFoundError),
        (422, "VALIDATION_ERROR", RequestValidationError),
        (429, "RATE_LIMIT_EXCEEDED", RateLimitError),
        (500, "PROCESSING_ERROR", ServerError),
        (503, "PROCESSING_ERROR", ServerError),
        (409, "CONFLICT", ApiStatusError),
    ],
)
def test_error_envelopes_map_to_the_exception_tree(status, code, cls):
    core = _core()
    with pytest.raises(cls) as info:
        _respond(core, routes.get_conversation("c1"), status, _envelope(success=False, error={"code": code, "message": "nope"}))
    exc = info.value
    assert type(exc) is cls
    assert exc.status == status and exc.code == code and exc.request_id == "req_1"
    assert "GET /v1/conversations/c1" in str(exc) and "nope" in str(exc) and "req_1" in str(exc)


def test_rate_limit_reads_error_retry_after_then_the_header():
    core = _core()
    body = _envelope(success=False, error={"code": "RATE_LIMIT_EXCEEDED", "message": "slow", "retry_after": 7})
    with pytest.raises(RateLimitError) as info:
        _respond(core, routes.list_datasets(), 429, body, {"Retry-After": "30"})
    assert info.value.retry_after == 7
    body["error"].pop("retry_after")
    with pytest.raises(RateLimitError) as info:
        _respond(core, routes.list_datasets(), 429, body, {"Retry-After": "30"})
    assert info.value.retry_after == 30


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (200, b'{"success": true, "data": {"conversa', MalformedResponseError),  # truncated
        (200, b"<html>hello</html>", MalformedResponseError),
        (200, b'{"data": 1}', MalformedResponseError),  # no success flag
        (502, b"<html>Bad Gateway</html>", ServerError),  # a proxy's page, not an envelope
        (200, orjson.dumps(_envelope({"conversations": [{"dataset": "x"}], "total": 1})), MalformedResponseError),
    ],
)
def test_bodies_outside_the_contract_are_reported_as_such(status, body, cls):
    core = _core()
    with pytest.raises(cls) as info:
        _respond(core, routes.list_conversations(), status, body)
    assert type(info.value) is cls


def test_success_false_with_a_2xx_status_maps_by_code():
    core = _core()
    with pytest.raises(NotFoundError):
        _respond(core, routes.get_dataset("x"), 200, _envelope(success=False, error={"code": "RESOURCE_NOT_FOUND", "message": "gone"}))


def test_the_key_is_scrubbed_from_messages_a_server_echoes():
    core = _core()
    echo = _envelope(success=False, error={"code": "INVALID_API_KEY", "message": f"bad key Bearer {KEY}"})
    with pytest.raises(AuthenticationError) as info:
        _respond(core, routes.list_datasets(), 401, echo)
    assert KEY not in str(info.value) and "********" in str(info.value)


def test_a_missing_key_is_explained():
    core = RequestCore(("http://a.test/v1",), None)
    attempt = core.plan(routes.list_datasets(), CallState())
    assert "authorization" not in attempt.request.headers
    response = httpx.Response(401, content=orjson.dumps(_envelope(success=False, error={"code": "INVALID_API_KEY", "message": "missing"})), request=attempt.request)
    with pytest.raises(AuthenticationError, match="PE_API_KEY"):
        core.complete(attempt, response)


def test_transport_failures_remember_whether_the_request_left():
    core = _core()
    attempt = core.plan(routes.submit_job("d", "analysis"), CallState())
    refused = core.transport_failed(attempt, httpx.ConnectError("refused"))
    assert isinstance(refused, TransportError) and refused.request_sent is False
    attempt = core.plan(routes.submit_job("d", "analysis"), CallState())
    timed_out = core.transport_failed(attempt, httpx.ReadTimeout("slow"))
    assert timed_out.request_sent is True
    assert "POST http://a.test/v1/processing/submit" in str(timed_out)  # the server named, not only the path


def test_router_fails_over_and_fails_fast_when_every_endpoint_is_open():
    core = _core(("http://a.test/v1", "http://b.test/v1"), breaker=BreakerPolicy(failure_threshold=2, recovery_timeout=60))
    call = routes.list_datasets()
    state = CallState()
    first = core.plan(call, state)
    assert first.endpoint.url == "http://a.test/v1"
    core.transport_failed(first, httpx.ConnectError("down"))
    second = core.plan(call, state)  # the retry goes to the other mirror
    assert second.endpoint.url == "http://b.test/v1"
    core.complete(second, httpx.Response(200, content=orjson.dumps(_envelope({"datasets": [], "total": 0})), request=second.request))
    # a fresh call prefers the primary again while its breaker is closed
    assert core.plan(call, CallState()).endpoint.url == "http://a.test/v1"
    for endpoint in core.endpoints:
        endpoint.breaker.trip()
    with pytest.raises(CircuitOpenError, match="all 2 API endpoints"):
        core.plan(call, CallState())


def test_pinned_calls_never_fail_over():
    core = _core(("http://a.test/v1", "http://b.test/v1"))
    core.endpoints[1].breaker.trip()
    with pytest.raises(CircuitOpenError, match=r"b.test"):
        core.plan(routes.get_job("job_1", pin="http://b.test/v1"), CallState())


def test_4xx_answers_keep_the_breaker_closed_and_5xx_count():
    core = _core(breaker=BreakerPolicy(failure_threshold=3, recovery_timeout=60))
    endpoint = core.endpoints[0]
    for _ in range(5):
        with pytest.raises(NotFoundError):
            _respond(core, routes.get_conversation("x"), 404, _envelope(success=False, error={"code": "RESOURCE_NOT_FOUND", "message": "no"}))
    assert endpoint.breaker.consecutive_failures == 0
    for _ in range(3):
        with pytest.raises(ServerError):
            _respond(core, routes.list_datasets(), 503, _envelope(success=False, error={"code": "PROCESSING_ERROR", "message": "busy"}))
    with pytest.raises(CircuitOpenError):
        core.plan(routes.list_datasets(), CallState())


def test_conversation_model_round_trips_the_raw_object_and_frames_messages():
    raw = {
        "id": "c9",
        "messages": [
            {"role": "user", "content": "I feel low", "timestamp": "2025-03-04T10:00:00Z"},
            {"role": "assistant", "content": "That sounds hard."},
        ],
        "quality_metrics": dict.fromkeys(
            ["therapeutic_accuracy", "conversation_coherence", "emotional_authenticity", "clinical_compliance", "safety_score", "overall_quality"], 0.5
        ),
        "metadata": {"dataset": "d", "tier": "basic", "length": 2, "created_at": "2025-03-04T10:00:00Z", "topic": "x"},
    }
    conv = Conversation.from_api(raw)
    assert conv.to_dict() == raw and conv.tier == "basic" and conv.created_at.year == 2025
    frame = conv.messages_frame()
    assert frame["idx"].to_list() == [0, 1] and frame["timestamp"][1] is None
    assert summaries_frame([]).height == 0


def test_options_come_from_arguments_then_env_then_config(tmp_path, monkeypatch):
    config = tmp_path / "pe.toml"
    config.write_text('[api]\nurl = ["http://one.test", "http://two.test/v1"]\nkey = "from-file"\ntimeout = 12\nmax_retries = 2\n')
    monkeypatch.setenv("PE_CONFIG", str(config))
    opts = resolve_options()
    assert opts.urls == ("http://one.test/v1", "http://two.test/v1")
    assert opts.api_key.reveal() == "from-file" and opts.timeout == 12 and opts.retry.max_attempts == 3
    monkeypatch.setenv("PE_API_URL", "http://env.test/v1")
    monkeypatch.setenv("PE_API_KEY", "from-env")
    opts = resolve_options()
    assert opts.urls == ("http://env.test/v1",) and opts.api_key.reveal() == "from-env"
    opts = resolve_options("from-arg", "http://arg.test/v1,http://arg2.test")
    assert opts.urls == ("http://arg.test/v1", "http://arg2.test/v1") and opts.api_key.reveal() == "from-arg"
    assert "from-arg" not in repr(opts)


def test_no_url_is_a_clear_config_error():
    with pytest.raises(ConfigError, match="PE_API_URL"):
        resolve_options()


def test_call_raw_keeps_the_request_and_drops_decoding():
    call = routes.get_conversation("c1")
    raw = call.raw()
    assert isinstance(raw, Call) and raw.path == call.path and raw.decode({"x": 1}) == {"x": 1}

"""Every method of the sync Client against the real mirror on loopback:
success and error paths. Expected values come from the served store."""

from __future__ import annotations

import logging

import httpx
import orjson
import polars as pl
import pytest

from pe_toolkit.client import (
    Client,
    Conversation,
    ConversationSummary,
    ExportInfo,
    Job,
)
from pe_toolkit.client.flows import part_path
from pe_toolkit.errors import (
    ApiError,
    AuthenticationError,
    CircuitOpenError,
    NotFoundError,
    RequestValidationError,
    TransportError,
)

from .client_support import FAST_RETRY, KEY, api_objects, make_client
from .server_support import Served


@pytest.fixture(scope="module")
def client(mirror: Served):
    with make_client(mirror.url) as c:
        yield c


@pytest.fixture(scope="module")
def table(mirror: Served) -> pl.DataFrame:
    return mirror.mirror.store.conversations()


def test_service_routes(client: Client, mirror: Served) -> None:
    info = client.api_info()
    assert any(e["path"] == "/v1/conversations" for e in info.endpoints)
    assert client.health().healthy
    assert client.check_endpoints() == {mirror.url + "/v1": True}


def test_datasets(client: Client, table: pl.DataFrame) -> None:
    datasets = client.list_datasets()
    frame = datasets.to_polars()
    expected = table.group_by("dataset").len()
    assert datasets.total == expected.height == frame.height
    assert dict(zip(frame["name"], frame["conversations"])) == dict(zip(expected["dataset"], expected["len"]))
    name = frame["name"][0]
    info = client.get_dataset(name)
    assert info.name == name and info.total_conversations == dict(zip(expected["dataset"], expected["len"]))[name]
    assert sum(info.tier_distribution.values()) == info.total_conversations
    assert info.tiers_frame()["conversations"].sum() == info.total_conversations
    with pytest.raises(NotFoundError, match="RESOURCE_NOT_FOUND"):
        client.get_dataset("no_such_dataset")


def test_list_conversations_with_filters_and_frames(client: Client, table: pl.DataFrame) -> None:
    page = client.list_conversations(tier="research", min_quality=0.85, limit=7, offset=2)
    expected = table.filter((pl.col("tier") == "research") & (pl.col("overall_quality") >= 0.85)).sort("id")
    assert page.total == expected.height and len(page) == 7 and page.offset == 2
    frame = page.to_polars()
    assert frame["id"].to_list() == expected["id"][2:9].to_list()
    assert frame["quality_score"].to_list() == expected["overall_quality"][2:9].to_list()
    assert frame["message_count"].to_list() == expected["message_count"][2:9].to_list()
    assert all(isinstance(s, ConversationSummary) for s in page)


def test_list_conversations_rejects_bad_parameters(client: Client) -> None:
    with pytest.raises(RequestValidationError, match="limit"):
        client.list_conversations(limit=5000)
    with pytest.raises(RequestValidationError, match="min_quality"):
        client.list_conversations(min_quality=1.5)


def test_get_conversation_matches_the_store(client: Client, mirror: Served, table: pl.DataFrame) -> None:
    cid = table["id"][17]
    conv = client.get_conversation(cid)
    assert isinstance(conv, Conversation)
    assert conv.to_dict() == mirror.mirror.store.conversation(cid)
    assert conv.messages_frame().height == table.filter(pl.col("id") == cid)["message_count"][0]
    with pytest.raises(NotFoundError):
        client.get_conversation("conv_does_not_exist")


def test_fetch_many_with_bounded_concurrency(client: Client, mirror: Served, table: pl.DataFrame) -> None:
    ids = table["id"].sample(60, seed=1).to_list()
    convs = client.fetch_conversations(ids, concurrency=6)
    assert [c.id for c in convs] == ids
    store = mirror.mirror.store
    assert all(c.to_dict() == store.conversation(c.id) for c in convs[:10])
    with pytest.raises(NotFoundError):
        client.fetch_conversations([*ids[:3], "missing_1"])
    assert [c.id for c in client.fetch_conversations([*ids[:3], "missing_1"], skip_missing=True)] == ids[:3]
    results = dict(client.fetch_each([ids[0], "missing_2"], raw=True))
    assert isinstance(results["missing_2"], NotFoundError) and results[ids[0]]["id"] == ids[0]


def test_iterate_all_with_pagination(client: Client, table: pl.DataFrame) -> None:
    ids = [s.id for s in client.iter_conversations(page_size=300)]
    assert len(ids) == len(set(ids)) == table.height
    assert set(ids) == set(table["id"])
    frame = client.conversations_frame(tier="clinical")
    assert frame.height == table.filter(pl.col("tier") == "clinical").height
    assert frame.schema["created_at"] == pl.Datetime("us", "UTC")


def test_the_mirror_answers_keyset_pages_after_a_cursor(mirror: Served, table: pl.DataFrame) -> None:
    ids = sorted(table["id"])
    headers = {"Authorization": f"Bearer {KEY}"}
    url = mirror.url + "/v1/conversations"
    body = httpx.get(url, params={"after": ids[9], "limit": 5, "offset": 700}, headers=headers).json()["data"]
    assert [c["id"] for c in body["conversations"]] == ids[10:15]  # the offset is not used with a cursor
    assert body["after"] == ids[9] and body["offset"] == 0 and body["has_more"] and body["total"] == len(ids)
    last = httpx.get(url, params={"after": ids[-3], "limit": 2}, headers=headers).json()["data"]
    assert [c["id"] for c in last["conversations"]] == ids[-2:] and last["has_more"] is False
    plain = httpx.get(url, params={"limit": 2}, headers=headers).json()["data"]
    assert "after" not in plain and [c["id"] for c in plain["conversations"]] == ids[:2]
    assert httpx.get(url, params={"after": ""}, headers=headers).status_code == 422


def test_the_client_pages_by_cursor_where_offered(mirror: Served, table: pl.DataFrame) -> None:
    sent: list[httpx.URL] = []

    class Spy(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/conversations"):
                sent.append(request.url)
            return super().handle_request(request)

    with make_client(mirror.url, transport=Spy()) as c:
        pages = list(c.iter_pages(page_size=250, raw=True))
    ids = [d["id"] for page in pages for d in page]
    assert isinstance(pages[0][0], dict) and len(ids) == len(set(ids)) and set(ids) == set(table["id"])
    per_pass = -(-table.height // 250)
    assert len(sent) == 2 * per_pass  # one pass, then the closing check finding nothing new
    first_pass = sent[:per_pass]
    assert "after" not in first_pass[0].params
    assert [u.params["after"] for u in first_pass[1:]] == sorted(table["id"])[249 : 250 * (per_pass - 1) : 250]


def test_iterate_with_full_messages(client: Client, mirror: Served, table: pl.DataFrame) -> None:
    expected = table.filter((pl.col("tier") == "research") & (pl.col("overall_quality") >= 0.93))
    convs = list(client.iter_conversations(tier="research", min_quality=0.93, full=True, page_size=50, concurrency=4))
    assert sorted(c.id for c in convs) == sorted(expected["id"])
    served = api_objects(mirror.mirror.store.cursor())
    assert all(c.to_dict() == served[c.id] for c in convs)


def test_quality_metrics(client: Client, table: pl.DataFrame) -> None:
    overview = client.get_quality_metrics(tier="clinical")
    part = table.filter(pl.col("tier") == "clinical")
    assert overview.total_conversations == part.height
    assert overview.average_quality == pytest.approx(part["overall_quality"].mean(), abs=1e-3)
    assert overview.to_polars()["count"].sum() == part.height


def test_bad_filters_and_formats_are_request_errors(client: Client) -> None:
    with pytest.raises(RequestValidationError, match="tier"):
        client.get_quality_metrics(tier="platinum")
    with pytest.raises(RequestValidationError, match="format"):
        client.start_export(format="xlsx")


def test_validate_conversation(client: Client, mirror: Served, table: pl.DataFrame) -> None:
    conv = mirror.mirror.store.conversation(table["id"][3])
    result = client.validate_conversation(conv)
    assert result.conversation_id == conv["id"]
    assert result.metrics is not None and 0 <= result.metrics.overall_quality <= 1
    assert result.tier_classification in ("basic", "standard", "professional", "clinical", "research")


def test_validate_rejects_an_invalid_body_without_retrying(client: Client) -> None:
    with pytest.raises(RequestValidationError):
        client.validate_conversation({"id": "x"})


def test_processing_job_submit_status_wait(client: Client, table: pl.DataFrame) -> None:
    dataset = table["dataset"][0]
    job = client.submit_job(dataset, "export", {"format": "jsonl", "tier": "basic"})
    assert isinstance(job, Job) and job.status == "queued" and job.endpoint == client.urls[0]
    polled = client.get_job(job)
    assert polled.job_id == job.job_id and polled.status in ("queued", "running", "completed")
    done = client.wait_for_job(job, poll_interval=0.05, timeout=120, progress=False)
    assert done.status == "completed" and done.progress == 100 and done.done
    with pytest.raises(NotFoundError):
        client.get_job("job_unknown_0000000000000000")
    with pytest.raises(RequestValidationError, match="processing_type"):
        client.submit_job(dataset, "teleport")


def test_search(client: Client, table: pl.DataFrame) -> None:
    results = client.search("anxious sleep", tier="research", limit=5)
    assert 0 < len(results) <= 5 and results.total_matches >= len(results)
    frame = results.to_polars()
    assert set(frame["tier"]) == {"research"}
    assert frame["relevance_score"].is_sorted(descending=True)
    assert set(frame["conversation_id"]) <= set(table["id"])
    with pytest.raises(RequestValidationError):
        client.search("x", limit=0)


def test_statistics(client: Client, table: pl.DataFrame) -> None:
    stats = client.get_statistics()
    assert stats.total_conversations == table.height
    assert stats.total_datasets == table["dataset"].n_unique()


def test_export_start_wait_download(client: Client, mirror: Served, table: pl.DataFrame, tmp_path) -> None:
    info = client.start_export(tier="research", format="jsonl")
    assert isinstance(info, ExportInfo) and info.endpoint == client.urls[0]
    ready = client.wait_for_export(info, timeout=120, progress=False)
    assert ready.status == "ready"
    path = client.download_export(info, tmp_path / "research.jsonl", progress=False)
    objects = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    expected = table.filter(pl.col("tier") == "research")
    assert sorted(o["id"] for o in objects) == sorted(expected["id"])
    served = api_objects(mirror.mirror.store.cursor())
    assert all(o == served[o["id"]] for o in objects)
    assert not (tmp_path / "research.jsonl.part").exists()
    assert (path.stat().st_mode & 0o077) == 0  # conversations: readable by the owner only
    via_export = client.export(tmp_path / "all.jsonl", progress=False)
    assert len(via_export.read_bytes().splitlines()) == table.height
    bogus = ExportInfo("exp_doesnotexist0000000000", None, "jsonl", {}, None, None, "/v1/exports/exp_doesnotexist0000000000/download", None, {})
    with pytest.raises(NotFoundError):
        client.download_export(bogus, tmp_path / "none.jsonl", progress=False)


def test_a_download_resumes_from_its_part_file_even_when_the_part_is_complete(client: Client, tmp_path) -> None:
    """A download killed after its last byte but before the rename leaves a
    complete `.part`: the resume asks `bytes=SIZE-` and the mirror answers
    416 `bytes */SIZE`, which finishes the file instead of failing. A part
    longer than the file is not the file: it is discarded and the file
    fetched again from zero. A shorter one resumes with a 206."""
    info = client.start_export(tier="research", format="jsonl")
    whole = client.download_export(info, tmp_path / "whole.jsonl", timeout=120, progress=False).read_bytes()
    path = tmp_path / "again.jsonl"
    part = part_path(path)
    for leftover in (whole, whole + b'{"id": "not_in_the_export"}\n', whole[: len(whole) // 2]):
        path.unlink(missing_ok=True)
        part.write_bytes(leftover)
        assert client.download_export(info, path, timeout=120, progress=False).read_bytes() == whole
        assert not part.exists()


def test_wrong_key_is_refused_and_never_shown(mirror: Served, caplog) -> None:
    secret = "pe_wrong_key_" + "9" * 20
    caplog.set_level(logging.DEBUG)
    with make_client(mirror.url, key=secret) as bad:
        with pytest.raises(AuthenticationError) as info:
            bad.list_datasets()
        assert secret not in repr(bad) and secret not in str(bad.options)
    assert info.value.status == 401 and info.value.code == "INVALID_API_KEY"
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert caplog.records, "httpx/httpcore debug logging should have produced records"
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_the_key_stays_out_of_debug_logs_and_errors_of_a_working_client(mirror: Served, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with make_client(mirror.url) as c:
        c.list_conversations(limit=3)
        with pytest.raises(NotFoundError) as info:
            c.get_conversation("nope")
        assert KEY not in repr(c)
    assert KEY not in str(info.value)
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    assert all(KEY not in r.getMessage() and KEY not in str(r.args) for r in caplog.records)


def test_a_dead_server_fails_with_transport_errors_then_fast(tmp_path) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    from pe_toolkit.client.core import BreakerPolicy

    attempts: list[httpx.Request] = []
    transport = httpx.HTTPTransport()

    class Counting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            attempts.append(request)
            return transport.handle_request(request)

    retry = FAST_RETRY.__class__(max_attempts=4, backoff_base=0.0)
    with Client(KEY, f"http://127.0.0.1:{port}", retry=retry, breaker=BreakerPolicy(failure_threshold=100), transport=Counting()) as c:
        with pytest.raises(TransportError, match="ConnectError"):
            c.list_datasets()
    assert len(attempts) == 4  # a connect error is retried, up to max_attempts

    attempts.clear()
    with Client(KEY, f"http://127.0.0.1:{port}", retry=FAST_RETRY, breaker=BreakerPolicy(failure_threshold=3, recovery_timeout=60), transport=Counting()) as c:
        with pytest.raises(CircuitOpenError, match="ConnectError"):
            c.list_datasets()  # the breaker opens after 3 failures, in the middle of the retries
        assert len(attempts) == 3
        for _ in range(5):
            with pytest.raises(CircuitOpenError, match="failing fast"):
                c.get_conversation("x")
        assert len(attempts) == 3  # nothing more reached the network


def test_failover_skips_an_unhealthy_mirror_until_it_recovers(sample_store_template, tmp_path) -> None:
    from pe_toolkit.client.core import BreakerPolicy

    from .fault_injection import Faults
    from .server_support import copy_store, start_mirror

    with start_mirror(copy_store(sample_store_template, tmp_path / "a"), faults=Faults()) as a, start_mirror(
        copy_store(sample_store_template, tmp_path / "b")
    ) as b:
        faults_a = a.injector
        faults_a.configure(error_503=1.0, retry_after=0)
        breaker = BreakerPolicy(failure_threshold=3, recovery_timeout=0.5)
        with Client(KEY, [a.url, b.url], retry=FAST_RETRY, breaker=breaker) as c:
            for _ in range(10):
                assert c.list_conversations(limit=1).total == 2000  # answered by b
            assert faults_a.stats["503"] == 3  # a got no more requests once its circuit opened
            assert c.check_endpoints() == {a.url + "/v1": True, b.url + "/v1": True}  # /health is not faulted
            faults_a.configure(error_503=0.0)
            c.endpoints[0].breaker.trip()  # as if the health check had failed: skipped again
            before = faults_a.stats["ok"]
            c.list_conversations(limit=1)
            assert faults_a.stats["ok"] == before
            import time

            time.sleep(0.6)  # the recovery timeout: the next call is the probe
            c.list_conversations(limit=1)
            assert faults_a.stats["ok"] == before + 1 and c.endpoints[0].breaker.state.value == "closed"


def test_errors_are_one_tree(client: Client) -> None:
    with pytest.raises(ApiError):
        client.get_conversation("still_missing")

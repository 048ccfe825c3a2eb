"""Live updates: the SSE stream and the WebSocket, against a real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from .conftest import conversation
from .server_support import KEYS, Served, check_envelope, copy_store, start_mirror, wait_until


@pytest.fixture(scope="module")
def served(sample_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with start_mirror(copy_store(sample_store_template, tmp_path_factory.mktemp("live"))) as server:
        yield server


def sse_events(response: httpx.Response) -> Iterator[dict]:
    """Parse a text/event-stream into {id, event, data} dicts (comments skipped)."""
    event: dict = {}
    for line in response.iter_lines():
        if not line:
            if event:
                yield event
                event = {}
            continue
        if line.startswith(":"):
            yield {"comment": line}
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            event["data"] = orjson.loads(value)
        elif name in ("id", "event", "retry"):
            event[name] = value


def next_event(events: Iterator[dict], topic: str, match=lambda e: True, timeout: float = 30.0) -> dict:
    """The next event of ``topic``; keep-alives (every 0.5 s here) let the
    deadline be checked while nothing happens."""
    deadline = time.monotonic() + timeout
    for event in events:
        if event.get("event") == topic and match(event):
            return event
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no {topic} event")


def add_conversations(db: Path, folder: Path, *records: dict) -> None:
    path = folder / f"add_{records[0]['id']}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    with Store(db) as store:
        import_file(store, path, progress=False)


def test_sse_announces_new_and_updated_conversations(served: Served, tmp_path: Path) -> None:
    with served.client() as client, client.stream("GET", "/v1/stream/updates", params={"topics": "conversation.*"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ratelimit-limit"] and response.headers["x-request-id"]
        events = sse_events(response)
        first = next(events)
        assert first["retry"] == "3000" and first["event"] == "stream.open"
        assert first["data"]["data"]["topics"] == ["conversation.*"]
        add_conversations(served.db_path, tmp_path, conversation(9001), conversation(9002))
        created = next_event(events, "conversation.created")
        assert created["data"]["type"] == "conversation.created"
        assert created["data"]["data"] == {"ids": ["conv_09001", "conv_09002"], "count": 2, "truncated": False}
        assert int(created["id"]) == created["data"]["id"]
        changed = conversation(9001, n_messages=6)
        add_conversations(served.db_path, tmp_path, changed)
        updated = next_event(events, "conversation.updated")
        assert updated["data"]["data"]["ids"] == ["conv_09001"]
    with served.client() as client:
        got = check_envelope(client.get("/v1/conversations/conv_09001"), 200)
    assert len(got["messages"]) == 6  # the served object followed the change


def test_sse_resumes_with_last_event_id_and_reports_jobs(served: Served) -> None:
    with served.client() as client:
        with client.stream("GET", "/v1/stream/updates", params={"topics": "job.*,export.*"}) as response:
            events = sse_events(response)
            next_event(events, "stream.open")
            created = check_envelope(client.post("/v1/export", data={"format": "csv", "dataset": "peer_support"}), 202)
            mine = lambda e: e["data"]["data"].get("job_id", e["data"]["data"].get("export_id")) == created["export_id"]  # noqa: E731
            started = next_event(events, "job.progress", mine)
            ready = next_event(events, "export.ready", mine)  # the file is in place before the job completes
            completed = next_event(events, "job.completed", mine)
        assert started["data"]["data"]["processing_type"] == "export"
        assert completed["data"]["data"]["status"] == "completed" and completed["data"]["data"]["progress"] == 100.0
        assert ready["data"]["data"]["download_path"].endswith(f"{created['export_id']}/download")
        # reconnect: events after the given id are replayed from the history
        headers = {"Last-Event-ID": str(int(started["id"]))}
        with client.stream("GET", "/v1/stream/updates", params={"topics": "job.*"}, headers=headers) as response:
            replay = sse_events(response)
            next_event(replay, "stream.open")
            again = next_event(replay, "job.completed", mine)
        assert again["id"] == completed["id"]


def test_sse_needs_a_key(served: Served) -> None:
    check_envelope(httpx.get(served.url + "/v1/stream/updates"), 401, code="INVALID_API_KEY")


def ws_url(served: Served) -> str:
    return served.url.replace("http://", "ws://") + "/v1/ws"


def ws(served: Served, key: str = KEYS[0]) -> ClientConnection:
    return connect(ws_url(served), additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=10)


def ask(sock: ClientConnection, message: dict | str | bytes) -> dict:
    sock.send(message if isinstance(message, (str, bytes)) else orjson.dumps(message).decode())
    return orjson.loads(sock.recv(timeout=30))


@pytest.mark.parametrize("key", [None, "nope"])
def test_websocket_needs_a_key(served: Served, key: str | None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with pytest.raises(InvalidStatus) as caught:
        connect(ws_url(served), additional_headers=headers, open_timeout=10)
    response = caught.value.response
    assert response.status_code == 401
    assert orjson.loads(response.body)["error"]["code"] == "INVALID_API_KEY"


def test_websocket_malformed_frames_get_errors_and_the_socket_stays_open(served: Served) -> None:
    with ws(served) as sock:
        cases = [
            ("not json at all", None),
            ("[1, 2, 3]", None),
            ('{"request_id": "r1"}', "r1"),
            ('{"type": "explode", "request_id": "r2"}', "r2"),
            ('{"type": "analyze_conversation", "request_id": "r3"}', "r3"),
            ('{"type": "analyze_conversation", "request_id": "r4", "data": {"conversation": {"id": "x", "messages": "hi"}}}', "r4"),
            ('{"type": "subscribe_to_updates", "request_id": "r5", "data": {"topics": [1]}}', "r5"),
            ('{"type": "ping", "request_id": "r6", "data": [1]}', "r6"),
            (b"\x00\x01binary", None),
        ]
        for frame, rid in cases:
            answer = ask(sock, frame)
            assert answer["type"] == "error" and answer["success"] is False, (frame, answer)
            assert answer["request_id"] == rid and answer["error"]["request_id"] == rid
            assert answer["error"]["code"] == "VALIDATION_ERROR" and answer["error"]["message"]
        missing = ask(sock, {"type": "get_quality_suggestions", "request_id": 7, "data": {"conversation_id": "conv_none"}})
        assert missing["error"]["code"] == "RESOURCE_NOT_FOUND" and missing["request_id"] == 7
        pong = ask(sock, {"type": "ping", "request_id": "still-here"})
        assert pong == {"type": "pong", "request_id": "still-here", "success": True, "data": {}, "timestamp": pong["timestamp"]}


def test_websocket_subscription_pushes_updates(served: Served, tmp_path: Path) -> None:
    with ws(served) as sock:
        subscribed = ask(sock, {"type": "subscribe_to_updates", "request_id": "sub-1", "data": {"topics": ["conversation.created"]}})
        assert subscribed["type"] == "subscribed" and subscribed["request_id"] == "sub-1"
        assert subscribed["data"] == {"topics": ["conversation.created"]}
        worker = threading.Thread(target=add_conversations, args=(served.db_path, tmp_path, conversation(9100)))
        worker.start()
        update = orjson.loads(sock.recv(timeout=30))
        worker.join()
        assert update["type"] == "update" and update["event"] == "conversation.created"
        assert update["data"]["ids"] == ["conv_09100"] and isinstance(update["id"], int)
        gone = ask(sock, {"type": "unsubscribe_from_updates", "request_id": "u"})
        assert gone["type"] == "unsubscribed" and gone["data"] == {"was_subscribed": True}


def test_websocket_frames_spend_the_rate_limit(sample_store_template: Path, tmp_path: Path) -> None:
    with start_mirror(copy_store(sample_store_template, tmp_path), rate_limit=3) as served, ws(served) as sock:
        answers = [ask(sock, {"type": "ping", "request_id": n}) for n in range(3)]
        assert [a["type"] for a in answers] == ["pong", "pong", "error"]
        assert answers[2]["error"]["code"] == "RATE_LIMIT_EXCEEDED" and answers[2]["error"]["retry_after"] >= 1


def test_hub_drops_the_oldest_for_a_slow_subscriber_and_says_so() -> None:
    import asyncio

    from pe_toolkit.server.hub import EventHub, matches

    async def scenario() -> list[tuple[str, dict]]:
        hub = EventHub(history=10, queue_size=3)
        hub.attach(asyncio.get_running_loop())
        sub = hub.subscribe(["job.*"])
        other = hub.subscribe(["conversation.created"])
        publisher = threading.Thread(target=lambda: [hub.publish("job.progress", {"n": n}) for n in range(5)])
        publisher.start()
        publisher.join()
        hub.publish("conversation.updated", {"n": 99})
        await asyncio.sleep(0.05)  # let the loop deliver
        got = [await sub.next(timeout=1) for _ in range(4)]
        assert other.queue.empty()
        hub.close()
        await asyncio.sleep(0.05)
        assert await sub.next(timeout=1) is None
        return [(e.topic, e.data) for e in got]

    assert asyncio.run(scenario()) == [
        ("stream.overflow", {"dropped": 2}),
        ("job.progress", {"n": 2}),
        ("job.progress", {"n": 3}),
        ("job.progress", {"n": 4}),
    ]
    assert matches(["*"], "a.b") and matches(["job.*"], "job.failed") and not matches(["job.*"], "jobs.x")
    assert not matches(["conversation.created"], "conversation.updated")


def test_writes_that_announce_nothing_are_found_by_the_poll(served: Served, tmp_path: Path) -> None:
    from pe_toolkit.events import EventBus

    path = tmp_path / "quiet.jsonl"
    path.write_bytes(orjson.dumps(conversation(9200)) + b"\n")
    with served.client() as client, client.stream("GET", "/v1/stream/updates", params={"topics": "conversation.created"}) as response:
        events = sse_events(response)
        next_event(events, "stream.open")
        with Store(served.db_path) as store:
            import_file(store, path, progress=False, events=EventBus())  # a private bus: the server hears nothing
        created = next_event(events, "conversation.created")
    assert created["data"]["data"]["ids"] == ["conv_09200"]


def _without_pe_settings() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PE_")}


def test_a_standalone_mirror_announces_what_another_process_imports(sample_store_template: Path, tmp_path: Path) -> None:
    """`pe-toolkit serve` lets go of the cache when idle: an import run by
    another process goes through, and its changes reach SSE and WebSocket
    subscribers and the served objects."""
    import subprocess
    import sys

    db = copy_store(sample_store_template, tmp_path / "standalone")
    with start_mirror(db) as served:
        served.mirror.db.release_when_idle(0.2)
        with served.client() as client:
            changed = check_envelope(client.get("/v1/conversations/syn7_0000003"), 200)
        changed["messages"][0]["content"] += " (and the exams start next week)"
        path = tmp_path / "from_elsewhere.jsonl"
        path.write_bytes(orjson.dumps(conversation(9300)) + b"\n" + orjson.dumps(changed) + b"\n")
        with served.client() as client, client.stream("GET", "/v1/stream/updates", params={"topics": "conversation.*"}) as response, ws(served) as sock:
            events = sse_events(response)
            next_event(events, "stream.open")
            ask(sock, {"type": "subscribe_to_updates", "request_id": "s", "data": {"topics": ["conversation.*"]}})
            wait_until(lambda: not served.mirror.db.is_open, what="the mirror to let go of its cache")
            cli = Path(sys.executable).parent / "pe-toolkit"
            run = subprocess.run(
                [str(cli), "--db", str(db), "import", str(path)], capture_output=True, text=True, env=_without_pe_settings(), timeout=300
            )
            assert run.returncode == 0, run.stderr[-2000:]
            created = next_event(events, "conversation.created")
            updated = next_event(events, "conversation.updated")
            pushed = [orjson.loads(sock.recv(timeout=30)) for _ in range(2)]
            served_now = check_envelope(client.get("/v1/conversations/syn7_0000003"), 200)
            new = check_envelope(client.get("/v1/conversations/conv_09300"), 200)
    assert created["data"]["data"]["ids"] == ["conv_09300"]
    assert updated["data"]["data"]["ids"] == ["syn7_0000003"]
    assert {(p["event"], tuple(p["data"]["ids"])) for p in pushed} == {
        ("conversation.created", ("conv_09300",)),
        ("conversation.updated", ("syn7_0000003",)),
    }
    assert served_now["messages"][0]["content"].endswith("(and the exams start next week)")
    assert new["id"] == "conv_09300"


def test_while_another_process_holds_the_cache_queries_wait_then_answer_503(sample_store_template: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    db = copy_store(sample_store_template, tmp_path / "held")
    with start_mirror(db) as served:
        served.mirror.db.release_when_idle(0.2)
        served.mirror.db.lock_wait = 0.5
        wait_until(lambda: not served.mirror.db.is_open, what="the mirror to let go of its cache")
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; from pe_toolkit.store import Store; s = Store(sys.argv[1]); print('held', flush=True); sys.stdin.read()", str(db)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_without_pe_settings(),
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            with served.client() as client:
                busy = client.get("/v1/datasets")
                check_envelope(busy, 503, code="PROCESSING_ERROR")
                assert busy.headers["retry-after"] == "1"
                health = check_envelope(httpx.get(served.url + "/health"), 200)
                assert health["checks"]["store"] == "busy"
                # the objects are served from the snapshot, without the file
                check_envelope(client.get("/v1/conversations/syn7_0000003"), 200)
        finally:
            assert holder.stdin is not None and holder.stdout is not None
            holder.stdin.close()
            holder.wait(timeout=60)
            holder.stdout.close()
        with served.client() as client:
            check_envelope(client.get("/v1/datasets"), 200)

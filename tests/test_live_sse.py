"""The mirror's update stream through the client (Client.stream_updates) and
the LiveMonitor's SSE source, against a real mirror on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pe_toolkit import synth
from pe_toolkit.client import Client, RetryPolicy, StreamEvent
from pe_toolkit.config import Secret
from pe_toolkit.errors import AuthenticationError, NotFoundError, TransportError
from pe_toolkit.ingest import import_file
from pe_toolkit.server.hub import id_payload
from pe_toolkit.store import Store
from pe_toolkit.widgets import LiveMonitor, SseSource

from ._widgets_support import build_store
from .fault_injection import FaultInjector, serve_with_faults
from .server_support import KEYS, Served, copy_store, start_mirror, wait_until


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store of 30 synthetic conversations, copied per mirror."""
    return build_store(tmp_path_factory.mktemp("sse_template"), n=30, seed=5)


@pytest.fixture(scope="module")
def served(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # A long heartbeat: a read blocked on a quiet stream stays blocked
    # unless close() interrupts it (see the close test).
    with start_mirror(copy_store(template, tmp_path_factory.mktemp("sse_served")), heartbeat=60) as server:
        yield server


def client_for(url: str, key: str = KEYS[0], **kwargs) -> Client:
    return Client(base_url=url + "/v1", api_key=key, **kwargs)


def add_synthetic(db: Path, folder: Path, n: int, seed: int) -> list[str]:
    """Import ``n`` new synthetic conversations into the served store, in
    this process (the mirror's process), as a notebook beside it would."""
    path = folder / f"new_{seed}_{n}.jsonl"
    synth.write(path, n, seed=seed, progress=False)
    with Store(db) as store:
        import_file(store, path, progress=False)
    return [c["id"] for c in synth.generate(n, seed=seed)]


def follow(stream) -> tuple[list[StreamEvent], threading.Thread]:
    """Iterate ``stream`` on a thread, collecting events (and any error)."""
    seen: list = []

    def run() -> None:
        try:
            for event in stream:
                seen.append(event)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            seen.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return seen, thread


def topics(seen: list) -> list[str]:
    return [e.topic for e in seen if isinstance(e, StreamEvent)]


def test_stream_yields_the_open_event_then_conversation_changes(served: Served, tmp_path: Path) -> None:
    with client_for(served.url) as api, api.stream_updates("conversation.*") as stream:
        seen, thread = follow(stream)
        wait_until(lambda: "stream.open" in topics(seen), what="stream.open")
        opened = seen[0]
        assert opened.topic == "stream.open" and opened.id is None
        assert opened.payload["topics"] == ["conversation.*"]
        assert stream.retry == 3.0  # the server's `retry: 3000`
        ids = add_synthetic(served.db_path, tmp_path, 4, seed=41)
        wait_until(lambda: "conversation.created" in topics(seen), what="conversation.created")
        created = next(e for e in seen if isinstance(e, StreamEvent) and e.topic == "conversation.created")
        assert created.payload == {"ids": ids, "count": 4, "truncated": False}
        assert created.id is not None and created.id == str(created.data["id"]) == stream.last_event_id
        event = created.to_event()
        assert event.topic == "conversation.created" and event.payload["ids"] == ids
        assert event.at == created.timestamp and event.at.tzinfo is not None
        assert abs((datetime.now(UTC) - event.at).total_seconds()) < 3600
    thread.join(10)
    assert not thread.is_alive()
    assert not [e for e in seen if isinstance(e, Exception)]


def test_close_ends_a_read_waiting_on_a_quiet_stream(served: Served) -> None:
    api = client_for(served.url)
    stream = api.stream_updates("nothing.ever.*")
    seen, thread = follow(stream)
    wait_until(lambda: stream.connected and seen, what="the stream to open")
    # The server stays silent for 60 s (heartbeat) and the read timeout is
    # 30 s: only the interrupt can end this read within the join below.
    stream.close()
    thread.join(10)
    assert not thread.is_alive()
    assert topics(seen) == ["stream.open"] and stream.reconnects == 0
    api.close()


def test_monitor_follows_the_stream_and_resumes_after_a_stop(served: Served, tmp_path: Path) -> None:
    api = client_for(served.url)
    source = SseSource(api, topics=["conversation.*"])
    monitor = LiveMonitor(source, bucket=1, window=60, min_interval=0)
    assert source.wait_connected(30)
    assert list(monitor.fig_totals.data[0].y) == [] and not monitor.fig_rate.data

    add_synthetic(served.db_path, tmp_path, 7, seed=42)
    wait_until(lambda: list(monitor.fig_totals.data[0].y) == [7], what="the monitor to draw 7 conversations")
    assert list(monitor.fig_totals.data[0].x) == ["conversation.created"]
    (line,) = monitor.fig_rate.data
    assert line.name == "conversation.created" and sum(line.y) == 1
    assert "ids: 7" in monitor._log_html.value and "SseSource" in monitor._status.value
    assert monitor.totals == {"conversation.created": 1} and "stream.open" not in monitor.totals

    monitor.stop()
    assert not source.running
    published = served.mirror.hub.published
    add_synthetic(served.db_path, tmp_path, 3, seed=43)
    wait_until(lambda: served.mirror.hub.published > published, what="the mirror to announce the second batch")
    assert monitor.items["conversation.created"] == 7  # stopped: not following

    monitor.start()  # resumes after the last event seen: the missed batch is replayed
    wait_until(lambda: list(monitor.fig_totals.data[0].y) == [10], what="the replayed batch")
    assert monitor.totals == {"conversation.created": 2}
    monitor.stop()
    api.close()


def test_the_stream_reconnects_with_last_event_id_when_the_server_ends_it(template: Path, tmp_path: Path) -> None:
    with start_mirror(copy_store(template, tmp_path)) as server, client_for(server.url) as api:
        hub = server.mirror.hub
        stream = api.stream_updates("conversation.*")
        seen, thread = follow(stream)
        wait_until(lambda: stream.connected, what="the stream to open")
        first = hub.publish("conversation.updated", id_payload(["conv_a"]))
        wait_until(lambda: "conversation.updated" in topics(seen), what="the first event")
        hub.close()  # ends every stream, as a server shutdown does
        wait_until(lambda: not stream.connected and hub.subscribers == 0, what="the stream to end")
        # Published while nobody is subscribed: only a replay from the
        # history (Last-Event-ID) can deliver it. The client waits the
        # server's retry (3 s) before it reconnects.
        missed = hub.publish("conversation.created", id_payload(["conv_b", "conv_c"]))
        assert hub.subscribers == 0
        wait_until(lambda: "conversation.created" in topics(seen), what="the replayed event")
        stream.close()
        thread.join(10)
    events = [e for e in seen if isinstance(e, StreamEvent)]
    assert [e.topic for e in events] == ["stream.open", "conversation.updated", "stream.open", "conversation.created"]
    assert events[1].id == str(first.id) and events[3].id == str(missed.id)
    assert events[3].payload["ids"] == ["conv_b", "conv_c"]
    assert stream.reconnects == 1 and stream.last_event_id == str(missed.id)


def test_a_refused_key_raises_at_once(served: Served) -> None:
    with client_for(served.url, key="not-a-key") as api:
        stream = api.stream_updates()
        with pytest.raises(AuthenticationError) as caught:
            next(iter(stream))
    assert caught.value.status == 401 and stream.reconnects == 0
    assert "not-a-key" not in str(caught.value)


def test_a_missing_route_is_not_retried(served: Served) -> None:
    with Client(base_url=served.url + "/v1/nowhere", api_key=KEYS[0]) as api:
        stream = api.stream_updates()
        with pytest.raises(NotFoundError):
            next(iter(stream))
    assert stream.reconnects == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_failures_are_retried_then_given_up() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, max_backoff=0.05)
    api = Client(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="k", retry=policy)
    stream = api.stream_updates()
    with pytest.raises(TransportError, match="ConnectError"):
        next(iter(stream))
    assert stream.reconnects == 2  # three attempts in all

    source = SseSource(api)
    monitor = LiveMonitor(source, min_interval=0)
    wait_until(lambda: not source.running, what="the source to give up")
    assert isinstance(source.error, TransportError) and not source.wait_connected(0.1)
    assert monitor.totals == {}
    monitor.stop()
    api.close()


@contextmanager
def mirror_with_faults(db: Path) -> Iterator[tuple[str, FaultInjector]]:
    from pe_toolkit.server import ServerConfig, create_app

    config = ServerConfig(db_path=db, keys=(Secret(KEYS[0]),), rate_limit=1_000_000, poll_interval=0.1, heartbeat=0.5)
    app = create_app(config)
    try:
        with serve_with_faults(app) as (url, injector):
            wait_until(lambda: app.state.mirror.snapshot.ready, what="the mirror to be ready")
            yield url, injector
    finally:
        app.state.mirror.stop()


def test_503_and_a_dropped_connection_are_reconnected(template: Path, tmp_path: Path) -> None:
    with mirror_with_faults(copy_store(template, tmp_path)) as (url, injector):
        injector.script("503", "drop")
        policy = RetryPolicy(max_attempts=4, backoff_base=0.01, max_backoff=0.05)
        with client_for(url, retry=policy) as api, api.stream_updates("conversation.*") as stream:
            opened = next(iter(stream))  # the 503's Retry-After (1 s) is waited, then the drop, then a stream
        assert opened.topic == "stream.open"
        assert stream.reconnects == 2
        assert [kind for path, kind in injector.log if path == "/v1/stream/updates"] == ["503", "drop", "ok"]


def test_stream_event_shapes() -> None:
    mirror_like = StreamEvent("job.progress", {"id": 5, "type": "job.progress", "data": {"job_id": "j1", "progress": 40.0}, "timestamp": "2026-11-24T10:00:00.000Z"}, "5")
    assert mirror_like.payload == {"job_id": "j1", "progress": 40.0}
    assert mirror_like.timestamp == datetime(2026, 11, 24, 10, tzinfo=UTC)
    plain = StreamEvent("message", {"count": 3})
    assert plain.payload == {"count": 3} and plain.timestamp is None
    assert plain.to_event().payload == {"count": 3} and plain.to_event().at.tzinfo is not None
    text = StreamEvent("message", "hello")
    assert text.payload == {"data": "hello"}


def test_notebook_06_follows_the_stream_of_a_mirror_it_serves(tmp_path: Path) -> None:
    """The notebook's `live_source="sse"` path end to end (nbmake runs the
    default, the in-process bus): a mirror over the scratch store, the
    client's stream, the monitor counting every imported conversation."""
    import nbformat
    import papermill

    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "06_live.ipynb"
    cache = build_store(tmp_path / "cache", n=40, seed=9, analyze=True)
    out = tmp_path / "06_sse.ipynb"
    papermill.execute_notebook(
        str(notebook), str(out), cwd=str(notebook.parent), progress_bar=False, execution_timeout=300,
        parameters={"cache": str(cache), "source": "cache", "progress": False, "live_source": "sse",
                    "batches": 2, "batch_size": 10, "pause": 0.2},
    )
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert "following SseSource of http://127.0.0.1:" in text
    assert "the monitor counted 20 new conversations of 20 imported" in text
    assert "stopped: " in text  # the last cell ran: the source, the client and the mirror were closed

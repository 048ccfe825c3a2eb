"""The API client and sync against servers that misbehave (the API audit):
a listing that never advances, Ctrl-C mid-fetch, two conversations that
keep failing, no PE_API_URL, a URL given twice, redirects, data outside
the contract, invalid payloads, dot-segment ids, and retry notices in the
CLI's output. Each server is real HTTP on 127.0.0.1."""

from __future__ import annotations

import _thread
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from click.testing import CliRunner

from pe_toolkit.apisync import incremental, state as sync_state, sync
from pe_toolkit.cli import cli
from pe_toolkit.client import Client, RetryPolicy
from pe_toolkit.client.core import BreakerPolicy
from pe_toolkit.client.flows import part_path
from pe_toolkit.client.pacing import WaitNotice
from pe_toolkit.client.pagination import Listed, Paginator
from pe_toolkit.errors import ApiStatusError, ConfigError, InputError, MalformedResponseError, RequestCancelledError
from pe_toolkit.store import Store

from .conftest import child_env

KEY = "audit-key-0123456789abcdef"
QUICK = RetryPolicy(max_attempts=6, max_elapsed=30.0, backoff_base=0.001, max_backoff=0.01)
METRICS = ("therapeutic_accuracy", "conversation_coherence", "emotional_authenticity", "clinical_compliance",
           "safety_score", "overall_quality")  # fmt: skip


def _envelope(data: Any, ok: bool = True, code: str | None = None, message: str = "ok") -> dict[str, Any]:
    body: dict[str, Any] = {"success": ok, "data": data, "message": message,
                            "timestamp": datetime.now(UTC).isoformat(), "request_id": "r1"}  # fmt: skip
    if not ok:
        body["error"] = {"code": code, "message": message, "details": "", "request_id": "r1"}
    return body


def _summary(i: int) -> dict[str, Any]:
    return {"id": f"c{i:05d}", "dataset": "d1", "tier": "research", "quality_score": 0.9, "message_count": 2,
            "created_at": "2025-01-01T00:00:00Z"}  # fmt: skip


def _conversation(i: int) -> dict[str, Any]:
    return {
        "id": f"c{i:05d}",
        "messages": [{"role": "user", "content": f"hello {i}, I feel low"},
                     {"role": "assistant", "content": "That sounds hard. What happened?"}],  # fmt: skip
        "quality_metrics": dict.fromkeys(METRICS, 0.9),
        "metadata": {"dataset": "d1", "tier": "research", "length": 2, "created_at": "2025-01-01T00:00:00Z"},
    }


Reply = tuple[int, Any, dict[str, str]]


class Fake:
    """A loopback server answering through ``answer(path, query, n)``
    (``n``: the request's number); records every request's path."""

    def __init__(self, answer: Callable[[str, dict[str, str], int], Reply]) -> None:
        self.answer, self.paths, self.lock = answer, [], threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with fake.lock:
                    fake.paths.append(self.path)
                    n = len(fake.paths)
                status, body, headers = fake.answer(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}, n)
                raw = body if isinstance(body, bytes) else orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def requests(self) -> int:
        return len(self.paths)


@contextmanager
def serving(answer: Callable[[str, dict[str, str], int], Reply]) -> Iterator[Fake]:
    fake = Fake(answer)
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def corpus(total: int, *, conversation: Callable[[int], Reply] | None = None) -> Callable[[str, dict[str, str], int], Reply]:
    """A well-behaved listing of ``total`` ids; ``conversation`` answers the GETs of one."""

    def answer(path: str, query: dict[str, str], n: int) -> Reply:
        if path == "/v1/conversations":
            limit, offset = int(query.get("limit", 100)), int(query.get("offset", 0))
            rows = [_summary(i) for i in range(offset, min(offset + limit, total))]
            return 200, _envelope({"conversations": rows, "total": total, "limit": limit, "offset": offset}), {}
        if path.startswith("/v1/conversations/"):
            i = int(path.rsplit("/", 1)[1][1:])
            if conversation is not None:
                return conversation(i)
            return 200, _envelope(_conversation(i)), {}
        return 404, _envelope(None, False, "RESOURCE_NOT_FOUND", "no route"), {}

    return answer


def client_for(url: str, **kwargs: Any) -> Client:
    kwargs.setdefault("retry", QUICK)
    kwargs.setdefault("timeout", 10.0)
    return Client(KEY, url, **kwargs)


# -- 1. a listing that does not advance ------------------------------------------------


def _ignores_offset(path: str, query: dict[str, str], n: int) -> Reply:
    # Always the first five ids, whatever the offset or cursor; a huge total.
    rows = [_summary(i) for i in range(5)]
    return 200, _envelope({"conversations": rows, "total": 1_000_000, "limit": 1000, "offset": 0}), {}


def _repeats_cursor(path: str, query: dict[str, str], n: int) -> Reply:
    # Echoes `after` (a keyset server) but answers the same full page forever.
    limit = int(query.get("limit", 100))
    data: dict[str, Any] = {"conversations": [_summary(i) for i in range(limit)], "total": 10_000, "has_more": True}
    if "after" in query:
        data["after"] = query["after"]
    return 200, _envelope(data), {}


@pytest.mark.parametrize("answer", [_ignores_offset, _repeats_cursor], ids=["ignores-offset", "repeats-cursor"])
def test_a_listing_that_does_not_advance_stops_with_a_malformed_response(answer) -> None:
    with serving(answer) as fake, client_for(fake.url) as client:
        with pytest.raises(MalformedResponseError, match="does not advance"):
            for _ in client.iter_conversations(page_size=50):
                pass
        assert fake.requests <= 6  # was: thousands, until the offset reached the claimed total


def _ignores_offset_and_says_so(path: str, query: dict[str, str], n: int) -> Reply:
    # The same full page whatever the offset, answered as offset 0 (the
    # contract's list echoes the offset it answered).
    limit = int(query.get("limit", 100))
    rows = [_summary(i) for i in range(limit)]
    return 200, _envelope({"conversations": rows, "total": 10_000, "limit": limit, "offset": 0}), {}


def _ignores_offset_and_echoes_it(path: str, query: dict[str, str], n: int) -> Reply:
    # The same full page whatever the offset, echoing the offset asked for.
    limit = int(query.get("limit", 100))
    rows = [_summary(i) for i in range(limit)]
    return 200, _envelope({"conversations": rows, "total": 10_000, "limit": limit, "offset": int(query.get("offset", 0))}), {}


def test_a_server_that_answers_another_offset_with_the_same_ids_is_stopped_at_the_second_page() -> None:
    """It was stopped only at the fourth page (three without a new id). A
    page that brings no new id can be a shifted order (page_size - 1
    conversations added before the cursor: one, for pages of 2); the same
    page answered for another offset than the one asked is not."""
    with serving(_ignores_offset_and_says_so) as fake, client_for(fake.url) as client:
        with pytest.raises(MalformedResponseError, match=r"asked for offset 49, the server answered offset 0"):
            for _ in client.iter_conversations(page_size=50):
                pass
        assert fake.requests == 2
    # A server that echoes the offset it ignored gives no such sign: the
    # run of pages without a new id stops it, as before.
    with serving(_ignores_offset_and_echoes_it) as fake, client_for(fake.url) as client:
        with pytest.raises(MalformedResponseError, match="does not advance"):
            for _ in client.iter_conversations(page_size=50):
                pass
        assert fake.requests == 4


def test_a_keyset_listing_past_total_stops() -> None:
    pager = Paginator(page_size=10)
    with pytest.raises(MalformedResponseError, match="past the listing's total"):
        for page in range(100):
            request = pager.next_request()
            assert request is not None
            ids = [f"x{page}-{k}" for k in range(10)]  # new ids every time, has_more forever
            pager.take(Listed(None, ids, total=25, keyset=page > 0, has_more=True))


def test_a_sound_listing_still_settles_with_the_guard_in_place() -> None:
    with serving(corpus(137)) as fake, client_for(fake.url) as client:
        assert len(list(client.iter_conversations(page_size=10))) == 137


def test_sync_of_a_listing_that_does_not_advance_is_one_error_line(tmp_path, monkeypatch) -> None:
    with serving(_ignores_offset) as fake:
        monkeypatch.setenv("PE_API_URL", fake.url)
        monkeypatch.setenv("PE_API_KEY", KEY)
        result = CliRunner().invoke(cli, ["--db", str(tmp_path / "c.duckdb"), "sync", "--mode", "incremental", "--no-progress"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not advance" in lines[0] and KEY not in result.output


# -- 2. an interrupted fetch keeps what it fetched ---------------------------------------


def test_ctrl_c_during_the_fetch_writes_what_was_fetched(tmp_path) -> None:
    total, stop_at = 60, 30
    interrupted = threading.Event()

    def conversation(i: int) -> Reply:
        # The Nth conversation GET is answered, then Ctrl-C hits the main
        # thread (as a terminal would), well inside the first batch of 1,000.
        gets = sum(1 for p in fake.paths if p.startswith("/v1/conversations/"))
        if gets >= stop_at and not interrupted.is_set():
            interrupted.set()
            _thread.interrupt_main()
        if interrupted.is_set():
            time.sleep(0.05)  # the rest arrive slowly: the interrupt lands mid-fetch
        return 200, _envelope(_conversation(i)), {}

    with serving(corpus(total, conversation=conversation)) as fake, Store(tmp_path / "mine.duckdb") as store:
        with client_for(fake.url, concurrency=2) as client, pytest.raises(KeyboardInterrupt):
            sync(store, client, mode="incremental", page_size=100, progress=False)
        stored = store.count()
        assert stored >= stop_at - 2  # was 0: the partial batch was dropped
        source = f"api:{fake.url}"
        pending = sync_state.pending_ids(store, source, sync_state.scope_key(None, None, None))
        assert stored + len(pending) == total  # written and still queued: nothing lost, nothing twice
        interrupted.set()
        with client_for(fake.url) as client:
            report = sync(store, client, mode="incremental", page_size=100, progress=False)
        assert report.status == "completed" and store.count() == total


def _seconds_to_stop(proc: subprocess.Popen, signum: int, ready: Callable[[], object], limit: float) -> float:
    """Wait until ``ready()`` returns (the fetches are told to wait), give the
    workers a second to fall asleep on the hint, send ``signum``, and return
    how long the process took to end (it is killed if it outlives ``limit``)."""
    try:
        ready()
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signum)
        proc.wait(limit)
        return time.monotonic() - sent
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test fails
            proc.kill()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_while_the_fetches_sleep_out_a_retry_after_returns_at_once(tmp_path, signum) -> None:
    # `pe-toolkit sync` as a user runs it: the first 20 ids are served, the
    # rest answered 429 with Retry-After: 30, so every fetch worker sleeps
    # out the hint when Ctrl-C (or SIGTERM) comes. It used to return only
    # when those sleeps ended (~30 s; 37-40 s against a 40 s hint).
    served, total, hint = 20, 40, 30
    answered, told_to_wait = threading.Semaphore(0), threading.Event()

    def conversation(i: int) -> Reply:
        if i < served:
            answered.release()
            return 200, _envelope(_conversation(i)), {}
        told_to_wait.set()
        return 429, _envelope(None, False, "RATE_LIMIT_EXCEEDED", "slow down"), {"Retry-After": str(hint)}

    db = tmp_path / "mine.duckdb"
    with serving(corpus(total, conversation=conversation)) as fake:
        env = child_env(PE_API_URL=fake.url, PE_API_KEY=KEY, PE_NO_PROGRESS="1")
        command = [sys.executable, "-m", "pe_toolkit", "--db", str(db), "sync", "--mode", "incremental", "--no-progress"]
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:

            def asleep() -> None:
                for _ in range(served):
                    assert answered.acquire(timeout=60), "the first conversations were never fetched"
                assert told_to_wait.wait(60), "no fetch was told to wait"

            took = _seconds_to_stop(proc, signum, asleep, 3 * hint)
            out, err = proc.communicate()
    assert took < 10, f"took {took:.1f} s to stop after the interrupt"
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines() == ["pe-toolkit: interrupted"]
    assert KEY not in out + err
    with Store(db) as store:
        assert store.count() == served  # what was fetched before the interrupt is kept
        source = f"api:{fake.url}"
        assert len(sync_state.pending_ids(store, source, sync_state.scope_key(None, None, None))) == total - served
        status, error = store.connection.execute(
            "SELECT status, error FROM ingest_runs WHERE kind = 'sync' ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    # Recorded as stopped, not left running, and as an interrupt (it said "KeyboardInterrupt"), as imports and analyze runs are.
    assert (status, error) == ("failed", "interrupted")


def test_fetch_each_stops_at_once_while_fetches_sleep_out_a_retry_after() -> None:
    # The client's part of the above: closing fetch_each (a fatal error, a
    # break), or setting its cancel from another thread (the sync's fetch
    # thread, on Ctrl-C), wakes fetches sleeping out a Retry-After, and no
    # request is sent after it.
    def conversation(i: int) -> Reply:
        if i == 0:
            return 200, _envelope(_conversation(i)), {}
        return 429, _envelope(None, False, "RATE_LIMIT_EXCEEDED", "slow down"), {"Retry-After": "30"}

    ids = [f"c{i:05d}" for i in range(8)]
    retry = RetryPolicy(max_attempts=3, max_elapsed=120.0)
    with serving(corpus(8, conversation=conversation)) as fake, client_for(fake.url, retry=retry) as client:
        results = client.fetch_each(ids, concurrency=4, raw=True)
        assert next(results)[0] == "c00000"
        time.sleep(0.5)  # the other three are asleep on the hint
        started = time.monotonic()
        results.close()
        assert time.monotonic() - started < 5
        sent = fake.requests
        assert sent <= 4

        cancel = threading.Event()
        results = client.fetch_each(ids[1:], concurrency=4, raw=True, cancel=cancel)
        threading.Timer(0.5, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(RequestCancelledError):
            next(results)
        assert time.monotonic() - started < 5
        time.sleep(0.2)
        assert fake.requests - sent <= 4  # the first try of each running fetch, no retry


def test_ctrl_c_stops_a_script_fetching_in_its_main_thread(tmp_path) -> None:
    # A script's client.fetch_conversations(...) while every fetch sleeps out
    # a Retry-After: the main thread waits for results in fan_out, and under
    # polars' SA_RESTART SIGINT handler an untimed wait slept through Ctrl-C.
    hint = 30
    asked = threading.Event()

    def conversation(i: int) -> Reply:
        asked.set()
        return 429, _envelope(None, False, "RATE_LIMIT_EXCEEDED", "slow down"), {"Retry-After": str(hint)}

    script = tmp_path / "fetch.py"
    script.write_text(
        "import sys\nfrom pe_toolkit.client import Client, RetryPolicy\n"
        "client = Client(sys.argv[2], sys.argv[1], retry=RetryPolicy(max_attempts=3, max_elapsed=600.0))\n"
        "client.fetch_conversations([f'c{i:05d}' for i in range(8)], concurrency=4)\n"
    )
    with serving(corpus(8, conversation=conversation)) as fake:
        with subprocess.Popen([sys.executable, str(script), fake.url, KEY], env=child_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
            # the main thread waits for a result while every worker sleeps on the hint
            took = _seconds_to_stop(proc, signal.SIGINT, lambda: asked.wait(60) or pytest.fail("no fetch was sent"), 3 * hint)
            _, err = proc.communicate()
    assert took < 10, f"took {took:.1f} s to stop after Ctrl-C"
    assert "KeyboardInterrupt" in err and KEY not in err


def test_batches_are_also_written_on_a_timer(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(incremental, "FLUSH_SECONDS", 0.0)  # every result is "old enough"
    writes: list[int] = []
    with serving(corpus(20)) as fake, Store(tmp_path / "mine.duckdb") as store, client_for(fake.url) as client:
        from pe_toolkit.events import EventBus

        bus = EventBus()
        bus.subscribe("sync.progress", lambda e: writes.append(e.payload["done"]) if e.payload.get("phase") == "fetch" else None)
        sync(store, client, mode="incremental", page_size=100, progress=False, events=bus)
    assert len(writes) == 20  # not one write at the end of a batch of 1,000


def test_a_partial_batch_is_written_on_time_while_the_next_fetch_hangs(tmp_path, monkeypatch) -> None:
    # Two conversations come back at once, the third hangs (a server that
    # stalls, a fetch sleeping out a Retry-After). The two are due for a
    # write after FLUSH_SECONDS; the timer was checked only when a result
    # arrived, so they waited for the third, and a kill meanwhile lost them.
    monkeypatch.setattr(incremental, "FLUSH_SECONDS", 0.2)
    written = threading.Event()

    def conversation(i: int) -> Reply:
        if i == 2:
            written.wait(10)  # answered once the first two are written, or after 10 s
        return 200, _envelope(_conversation(i)), {}

    seen: list[tuple[int, bool]] = []
    with serving(corpus(3, conversation=conversation)) as fake, Store(tmp_path / "mine.duckdb") as store, \
            client_for(fake.url) as client:  # fmt: skip
        from pe_toolkit.events import EventBus

        def on_progress(e: Any) -> None:
            if e.payload.get("phase") == "fetch":
                seen.append((e.payload["done"], written.is_set()))
                if e.payload["done"] == 2:
                    written.set()

        bus = EventBus()
        bus.subscribe("sync.progress", on_progress)
        started = time.monotonic()
        report = sync(store, client, mode="incremental", page_size=100, progress=False, events=bus)
        took = time.monotonic() - started
        assert report.fetched == 3 and store.count() == 3
    assert seen[0] == (2, False), seen  # the two were written while the third was still out
    assert took < 8, f"{took:.1f} s: the two waited for the hanging fetch"


# -- 3. two conversations that keep failing ----------------------------------------------


def test_two_ids_that_keep_failing_leave_a_partial_run_not_an_open_circuit(tmp_path) -> None:
    def conversation(i: int) -> Reply:
        if i in (3, 7):
            return 503, _envelope(None, False, "PROCESSING_ERROR", "cannot render this one"), {}
        return 200, _envelope(_conversation(i)), {}

    with serving(corpus(40, conversation=conversation)) as fake, Store(tmp_path / "mine.duckdb") as store:
        # The production breaker (10 consecutive failures) and 6 attempts per id.
        with client_for(fake.url, breaker=BreakerPolicy()) as client:
            report = sync(store, client, mode="incremental", page_size=100, progress=False)
        assert report.status == "partial" and report.failed == 2
        assert sorted(report.failed_ids) == ["c00003", "c00007"]
        assert store.count() == 38


def test_a_server_that_is_down_still_opens_the_circuit() -> None:
    def down(path: str, query: dict[str, str], n: int) -> Reply:
        return 503, _envelope(None, False, "PROCESSING_ERROR", "down"), {}

    with serving(down) as fake, client_for(fake.url, breaker=BreakerPolicy(failure_threshold=10)) as client:
        results = dict(client.fetch_each([f"c{i:05d}" for i in range(40)], concurrency=1))
    from pe_toolkit.errors import CircuitOpenError

    assert any(isinstance(r, CircuitOpenError) for r in results.values())
    assert fake.requests < 40 * 6


# -- 4. no PE_API_URL ------------------------------------------------------------------------


@pytest.mark.parametrize("url", [None, "", "  "])
def test_sync_without_an_api_url_but_with_a_key_or_filter_is_a_config_error(tmp_path, monkeypatch, url) -> None:
    if url is not None:
        monkeypatch.setenv("PE_API_URL", url)
    monkeypatch.setenv("PE_API_KEY", "x")
    cache = tmp_path / "s.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(cache), "sync", "--tier", "research", "--no-progress"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PE_API_URL is not set" in lines[0]
    with Store(cache) as store:
        assert store.count() == 0  # the sample did not stand in for the API


def test_a_filter_alone_without_an_api_url_is_a_config_error(tmp_path) -> None:
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(ConfigError, match="PE_API_URL is not set"):
        sync(store, tier="research", progress=False)


def test_the_plain_offline_sync_still_loads_the_sample_and_says_so(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "s.duckdb"), "sync", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "bundled sample" in result.stderr and "PE_API_URL is not set" in result.stderr


# -- 5. the same URL twice ------------------------------------------------------------------


def test_the_same_base_url_twice_is_a_config_error(tmp_path, monkeypatch) -> None:
    with pytest.raises(ConfigError, match="configured twice"):
        Client(KEY, "http://127.0.0.1:1/v1,http://127.0.0.1:1")
    monkeypatch.setenv("PE_API_URL", "http://127.0.0.1:1/v1,http://127.0.0.1:1")
    monkeypatch.setenv("PE_API_KEY", KEY)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "s.duckdb"), "sync", "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "configured twice" in result.stderr


# -- 6. redirects ------------------------------------------------------------------------------


def test_a_redirect_is_reported_at_once_naming_only_the_host() -> None:
    def redirect(path: str, query: dict[str, str], n: int) -> Reply:
        return 302, b"", {"Location": "https://other.example/v1/datasets?token=SECRET123"}

    with serving(redirect) as fake, client_for(fake.url) as client:
        with pytest.raises(ApiStatusError) as caught:
            client.list_datasets()
    text = str(caught.value)
    assert caught.value.status == 302 and fake.requests == 1  # not retried
    assert "redirected to https://other.example/" in text and "fix PE_API_URL" in text
    assert "SECRET123" not in text and "invalid JSON" not in text


# -- 8. data outside the contract ------------------------------------------------------------


def test_a_complete_answer_whose_data_breaks_the_contract_is_not_retried() -> None:
    def no_total(path: str, query: dict[str, str], n: int) -> Reply:
        return 200, _envelope({"conversations": [_summary(0)]}), {}

    with serving(no_total) as fake, client_for(fake.url) as client:
        with pytest.raises(MalformedResponseError, match="missing field 'total'"):
            client.list_conversations()
    assert fake.requests == 1  # was 6


def test_a_cut_off_body_is_still_retried() -> None:
    def truncated_once(path: str, query: dict[str, str], n: int) -> Reply:
        whole = orjson.dumps(_envelope({"conversations": [_summary(0)], "total": 1, "limit": 100, "offset": 0}))
        return 200, whole[:30] if n == 1 else whole, {}

    with serving(truncated_once) as fake, client_for(fake.url) as client:
        assert client.list_conversations().total == 1
    assert fake.requests == 2


# -- 9. invalid payloads -----------------------------------------------------------------------


def test_a_sync_whose_payloads_are_all_invalid_exits_1_with_its_summary(tmp_path, monkeypatch) -> None:
    def no_messages(i: int) -> Reply:
        return 200, _envelope({"id": f"c{i:05d}"}), {}

    with serving(corpus(5, conversation=no_messages)) as fake:
        monkeypatch.setenv("PE_API_URL", fake.url)
        monkeypatch.setenv("PE_API_KEY", KEY)
        result = CliRunner().invoke(cli, ["--db", str(tmp_path / "s.duckdb"), "sync", "--mode", "incremental", "--no-progress"])
    assert result.exit_code == 1
    assert "5 invalid" in result.stdout  # the summary line is kept
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid" in lines[0]


# -- 10. dot-segment ids -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [".", ".."])
def test_dot_segment_ids_are_refused_before_any_request(bad) -> None:
    with serving(corpus(3)) as fake, client_for(fake.url) as client:
        with pytest.raises(InputError, match="another route"):
            client.get_conversation(bad)
    assert fake.requests == 0


def test_a_dot_segment_id_in_a_listing_is_set_aside_and_the_sync_goes_on(tmp_path) -> None:
    def answer(path: str, query: dict[str, str], n: int) -> Reply:
        if path == "/v1/conversations":
            rows = [_summary(0), dict(_summary(1), id=".."), _summary(2)]
            return 200, _envelope({"conversations": rows, "total": 3, "limit": 100, "offset": 0}), {}
        return 200, _envelope(_conversation(int(path.rsplit("/", 1)[1][1:]))), {}

    with serving(answer) as fake, client_for(fake.url) as client, Store(tmp_path / "s.duckdb") as store:
        report = sync(store, client, mode="incremental", page_size=100, progress=False)
        assert sorted(store.sql("SELECT id FROM conversations")["id"]) == ["c00000", "c00002"]
        letters = store.dead_letters()
        assert letters["locator"].to_list() == [".."] and "cannot be fetched" in letters["reason"][0]
        assert report.failed == 0
    assert "/v1/conversations/.." not in fake.paths and "/v1/conversations/c00002" in fake.paths


def test_ids_with_dots_inside_still_work() -> None:
    def echo(path: str, query: dict[str, str], n: int) -> Reply:
        return 200, _envelope(dict(_conversation(0), id="a..b")), {}

    with serving(echo) as fake, client_for(fake.url) as client:
        assert client.get_conversation("a..b").id == "a..b"
    assert fake.paths == ["/v1/conversations/a..b"]


# -- 7. retry notices in the CLI -----------------------------------------------------------


def test_the_cli_keeps_wait_notices_on_its_progress_bars(caplog) -> None:
    from pe_toolkit.cli.sync import _wait_notices_on_bars_only

    class Bar:
        postfix = ""

        def set_postfix_str(self, text: str, refresh: bool = False) -> None:
            self.postfix = text

    caplog.set_level(logging.WARNING, logger="pe_toolkit.client")
    bar = Bar()
    notice = WaitNotice(after=0.0)
    with _wait_notices_on_bars_only(), notice.shown_on(bar):
        notice.retry(8.0, RuntimeError("HTTP 503"), 5)
    assert "backing off" in bar.postfix  # on the bar, where a terminal shows it
    assert not [r for r in caplog.records if "before attempt 6" in r.getMessage()]  # no stderr line
    notice.succeeded()
    notice.retry(8.0, RuntimeError("HTTP 503"), 5)  # outside the CLI: a WARNING as before
    assert [r for r in caplog.records if "before attempt 6" in r.getMessage()]


# -- the key in an error body that was cut -------------------------------------------------------


def _key_pieces(text: str, width: int = 6) -> list[str]:
    return [KEY[i : i + width] for i in range(len(KEY) - width + 1) if KEY[i : i + width] in text]


@pytest.mark.parametrize("lead", [165, 40], ids=["key across the 200-character cut", "key inside it"])
def test_an_error_page_echoing_the_key_shows_none_of_it(lead: int) -> None:
    """A proxy's 500 page echoing the request headers: the body was cut to
    200 characters before the key was masked, so a key across the cut
    showed its first characters (19 of 22 in an audit)."""

    def echo(path: str, query: dict[str, str], n: int) -> Reply:
        page = "<html>" + "x" * lead + f"Authorization: Bearer {KEY}" + " more headers" * 20 + "</html>"
        return 500, page.encode(), {"Content-Type": "text/html"}

    with serving(echo) as fake, client_for(fake.url, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(ApiStatusError) as caught:
            client.list_conversations()
    assert _key_pieces(str(caught.value)) == [] and "Authorization: Bearer *" in str(caught.value)


def test_a_key_the_server_cut_itself_is_masked_from_its_start() -> None:
    def cut(path: str, query: dict[str, str], n: int) -> Reply:
        return 502, f"bad gateway; saw Authorization: Bearer {KEY[:15]}".encode(), {"Content-Type": "text/plain"}

    with serving(cut) as fake, client_for(fake.url, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(ApiStatusError) as caught:
            client.list_conversations()
    assert _key_pieces(str(caught.value)) == [] and "********" in str(caught.value)


def test_an_id_that_keeps_failing_does_not_stop_the_next_syncs_from_listing(tmp_path) -> None:
    """A partial run kept its checkpoint, so every later run resumed only the
    failing ids and never listed again: new conversations were never fetched."""
    total = {"n": 40}
    broken = {3}

    def conversation(i: int) -> Reply:
        if i in broken:
            return 503, _envelope(None, False, "PROCESSING_ERROR", "cannot render this one"), {}
        return 200, _envelope(_conversation(i)), {}

    def answer(path: str, query: dict[str, str], n: int) -> Reply:
        return corpus(total["n"], conversation=conversation)(path, query, n)

    with serving(answer) as fake, Store(tmp_path / "mine.duckdb") as store:
        with client_for(fake.url, breaker=BreakerPolicy()) as client:
            first = sync(store, client, mode="incremental", page_size=100, progress=False)
            assert first.status == "partial" and store.count() == 39
            total["n"] = 50  # ten new upstream; c00003 still fails
            second = sync(store, client, mode="auto", page_size=100, progress=False)
            assert second.status == "partial" and second.failed_ids == ["c00003"]
            assert store.count() == 49
            broken.clear()
            third = sync(store, client, mode="auto", page_size=100, progress=False)
            assert third.status == "completed" and store.count() == 50


# -- export files left beside the cache ------------------------------------------------------------


def test_a_416_naming_no_size_discards_the_part_and_downloads_again(tmp_path) -> None:
    """A resume refused with a 416 that names no size (no `Content-Range:
    bytes */SIZE`) cannot vouch for the `.part`, even one of the right
    length: it is deleted and the file fetched again, whole."""
    body = b'{"id": "c00001"}\n{"id": "c00002"}\n'

    def answer(path: str, query: dict[str, str], n: int) -> Reply:
        if n == 1:  # the resume (bytes=LEN-)
            return 416, _envelope(None, False, "VALIDATION_ERROR", "Range: starts past the end"), {}
        return 200, body, {}

    path = tmp_path / "exp1.jsonl"
    part_path(path).write_bytes(b"x" * len(body))
    with serving(answer) as fake, client_for(fake.url) as client:
        assert client.download_export("/v1/exports/exp1/download", path, progress=False).read_bytes() == body
        assert fake.requests == 2
    assert not part_path(path).exists()


def test_an_abandoned_bulk_export_file_is_deleted_with_its_checkpoint(tmp_path) -> None:
    """An interrupted bulk sync leaves its download (every conversation) in
    `.NAME.sync/`; a later run of the other mode replaced the checkpoint but
    left the file on disk."""
    with serving(corpus(5)) as fake, Store(tmp_path / "mine.duckdb") as store:
        with client_for(fake.url) as client:
            source = fake.url
            scope = sync_state.scope_key(None, None, None)
            folder = sync_state.work_dir(store.path)
            folder.mkdir()
            (folder / "exp1.jsonl").write_text('{"id": "c00001"}\n')
            (folder / "exp1.jsonl.part").write_text("{")
            sync_state.save_checkpoint(store, source, scope, "run-0", "bulk", "load", {"export_id": "exp1"})
            report = sync(store, client, mode="incremental", page_size=100, progress=False, source=source)
        assert report.status == "completed" and store.count() == 5
    assert not (folder / "exp1.jsonl").exists() and not (folder / "exp1.jsonl.part").exists()


def test_a_failed_first_sync_removes_its_download_folder_with_the_new_cache(tmp_path, monkeypatch) -> None:
    def refused(path: str, query: dict[str, str], n: int) -> Reply:
        return 401, _envelope(None, False, "AUTHENTICATION_FAILED", "bad key"), {}

    cache = tmp_path / "new.duckdb"
    with serving(refused) as fake:
        monkeypatch.setenv("PE_API_URL", fake.url)
        monkeypatch.setenv("PE_API_KEY", KEY)
        r = CliRunner().invoke(cli, ["--db", str(cache), "sync", "--no-progress"])
    assert r.exit_code == 1, r.output
    assert not cache.exists() and not sync_state.work_dir(cache).exists()


def test_a_rounded_quality_score_in_the_listing_is_not_a_change(tmp_path) -> None:
    """A server that rounds the summary's quality_score (0.91 for 0.9123)
    had every conversation planned as changed on every run."""

    def answer(path: str, query: dict[str, str], n: int) -> Reply:
        status, body, headers = corpus(20)(path, query, n)
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict) and "conversations" in data:
            for row in data["conversations"]:
                row["quality_score"] = 0.91
        elif isinstance(data, dict) and "quality_metrics" in data:
            data["quality_metrics"]["overall_quality"] = 0.9123
        return status, body, headers

    with serving(answer) as fake, Store(tmp_path / "mine.duckdb") as store, client_for(fake.url) as client:
        first = sync(store, client, mode="incremental", page_size=100, progress=False)
        assert first.status == "completed" and store.count() == 20
        again = sync(store, client, mode="incremental", page_size=100, progress=False)
        assert again.planned.get("changed", 0) == 0, again.planned


def test_one_summary_with_an_unreadable_date_does_not_fail_the_listing(tmp_path) -> None:
    """A month 13 in one summary's created_at failed the whole listing, and
    so every incremental sync; that conversation is now fetched and checked
    whole (its full object is fine here, so it is stored)."""

    def answer(path: str, query: dict[str, str], n: int) -> Reply:
        status, body, headers = corpus(10)(path, query, n)
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict) and "conversations" in data:
            for row in data["conversations"]:
                if row["id"] == "c00004":
                    row["created_at"] = "2025-13-45T99:00:00Z"
        return status, body, headers

    with serving(answer) as fake, Store(tmp_path / "mine.duckdb") as store, client_for(fake.url) as client:
        report = sync(store, client, mode="incremental", page_size=100, progress=False)
        assert report.status == "completed" and store.count() == 10

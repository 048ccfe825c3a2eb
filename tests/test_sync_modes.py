"""Sync modes against the mirror: auto's choice, incremental deltas (new,
changed, stale), offset drift during the listing, events, the offline
sample, failover between mirrors and pacing under a small rate limit."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import orjson
import pytest
from click.testing import CliRunner

from pe_toolkit.analysis.auto_analyze import auto_analyze
from pe_toolkit.apisync import sync
from pe_toolkit.cli import cli
from pe_toolkit.errors import AuthenticationError, InputError, ServerError
from pe_toolkit.events import EventBus
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from .client_support import KEY, assert_equal_to_source, build_source, make_client
from .conftest import SAMPLE
from .server_support import copy_store, start_mirror, wait_until

N = 1200


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path, _ = build_source(tmp_path_factory.mktemp("modes_source"), N, seed=41)
    return path


@pytest.fixture
def served(source, tmp_path):
    with start_mirror(copy_store(source, tmp_path / "served")) as served:
        yield served


def _record(bus: EventBus) -> list:
    events: list = []
    bus.subscribe("*", events.append)
    return events


def _change_at_source(served, folder, objects: list[dict]) -> None:
    """Write conversations into the served store, as upstream would, and
    wait until the mirror serves them."""
    path = folder / "upstream.jsonl"
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in objects))
    import_file(served.mirror.store, path, progress=False)
    def texts(messages: list[dict]) -> list[tuple[str, str]]:
        return [(m["role"], m["content"]) for m in messages]

    def served_now() -> bool:
        found = [served.mirror.snapshot.get(o["id"]) for o in objects]
        return all(f and texts(orjson.loads(f)["messages"]) == texts(o["messages"]) for f, o in zip(found, objects))

    wait_until(served_now, what="the mirror to serve the change")


def _move_and_delete_upstream(served, folder, store: Store, moved_id: str, deleted_id: str) -> None:
    """Upstream, ``moved_id`` changes tier to research (as the cache holds
    it, otherwise unchanged) and ``deleted_id`` is deleted."""
    moved = {**store.conversation(moved_id)}
    moved["metadata"] = {**moved["metadata"], "tier": "research"}
    _change_at_source(served, folder, [moved])
    served.mirror.store.connection.execute("DELETE FROM conversations WHERE id = ?", [deleted_id])
    wait_until(lambda: served.mirror.snapshot.get(deleted_id) is None, what="the mirror to drop the conversation")


def _new_conversation(cid: str, tier: str = "basic") -> dict:
    return {
        "id": cid,
        "messages": [{"role": "user", "content": f"I can't sleep ({cid})"}, {"role": "assistant", "content": "That sounds exhausting."}],
        "metadata": {"dataset": "late_additions", "tier": tier, "created_at": "2026-01-01T00:00:00Z"},
    }


def test_auto_picks_bulk_then_incremental_deltas(served, tmp_path) -> None:
    bus = EventBus()
    events = _record(bus)
    with make_client(served.url) as client, Store(tmp_path / "mine.duckdb") as store:
        first = sync(store, client, progress=False, events=bus)
        assert first.mode == "bulk" and "nothing synced" in first.reason and first.inserted == N
        topics = [e.topic for e in events]
        assert "sync.completed" in topics and "conversation.created" in topics
        assert sum(len(e.payload["ids"]) for e in events if e.topic == "conversation.created") == N
        assert any(e.topic == "sync.progress" and e.payload["phase"] == "load" for e in events)

        # Nothing changed: auto lists (one page per 1000) and fetches nothing.
        events.clear()
        quiet = sync(store, client, progress=False, events=bus)
        assert quiet.mode == "incremental" and quiet.planned == {} and quiet.fetched == 0 and quiet.listed == N

        # Upstream adds two and changes one (a new tier, so the summary differs).
        cid = store.conversations(limit=1, offset=7)["id"][0]
        changed = {**store.conversation(cid)}
        changed["metadata"] = {**changed["metadata"], "tier": "research" if changed["metadata"]["tier"] != "research" else "basic"}
        changed["messages"] = [*changed["messages"], {"role": "user", "content": "one more thing"}]
        _change_at_source(served, tmp_path, [_new_conversation("zz_new_1"), _new_conversation("aa_new_2"), changed])
        events.clear()
        delta = sync(store, client, progress=False, events=bus)
        assert delta.mode == "incremental"
        assert delta.planned == {"new": 2, "changed": 1} and delta.fetched == 3
        assert (delta.inserted, delta.updated) == (2, 1)
        assert [e.payload["ids"] for e in events if e.topic == "conversation.updated"] == [[cid]]
        assert store.conversation(cid)["metadata"]["tier"] == changed["metadata"]["tier"]
        completed = next(e for e in events if e.topic == "sync.completed").payload
        assert completed["mode"] == "incremental" and completed["inserted"] == 2

        # A change the summary cannot show is picked up once the copy is older than the TTL.
        assert sync(store, client, progress=False, mode="incremental").fetched == 0
        stale = sync(store, client, progress=False, mode="incremental", ttl=timedelta(0))
        assert stale.planned == {"stale": N + 2} and stale.unchanged == N + 2
        assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / "check")

        # With everything stale, auto prefers one export to N + 2 requests.
        assert sync(store, client, progress=False, ttl=0).mode == "bulk"


class ListingHook(httpx.HTTPTransport):
    """Counts the listing's page requests, runs ``change`` after the
    ``at``-th, and with ``keyset=False`` plays a server without the keyset
    extension (the cursor never reaches the mirror)."""

    def __init__(self, change, at: int, keyset: bool) -> None:
        super().__init__()
        self.change, self.at, self.keyset, self.pages = change, at, keyset, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        listing = request.url.path.endswith("/conversations") and request.url.params.get("limit") != "1"
        if listing and not self.keyset:
            request.url = request.url.copy_remove_param("after")
        response = super().handle_request(request)
        if listing:
            self.pages += 1
            if self.pages == self.at:
                self.change()
        return response


@pytest.mark.parametrize("keyset", [True, False], ids=["keyset", "offset-only server"])
def test_offset_drift_during_the_listing_is_reconciled_by_id(served, tmp_path, keyset) -> None:
    """Conversations land upstream, sorted before the current position,
    while the incremental listing pages through: every id ends up synced
    once. Keyset pages do not drift; offset pages drift and are re-walked."""
    late = [_new_conversation(f"a_late_{i}") for i in range(5)]
    hook = ListingHook(lambda: _change_at_source(served, tmp_path, late), 2, keyset)
    with make_client(served.url, transport=hook) as client, Store(tmp_path / "mine.duckdb") as store:
        report = sync(store, client, mode="incremental", page_size=100, progress=False)
        assert report.drift is (not keyset) and report.gaps == 0
        assert report.listed == report.inserted == N + len(late)
        assert hook.pages > N // 100 + 1  # a second pass ran
        assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / "check")


def test_a_page_shifted_by_a_whole_page_of_additions_does_not_stop_the_listing(served, tmp_path) -> None:
    """Nine conversations added before the cursor between the first two
    pages of 10 (offset pages): the second page holds only ids the first
    one had. That alone is a shifted order, not a server ignoring offset:
    the listing goes on, drifts and is reconciled."""
    late = [_new_conversation(f"a_late_{i}") for i in range(9)]
    hook = ListingHook(lambda: _change_at_source(served, tmp_path, late), 1, keyset=False)
    with make_client(served.url, transport=hook) as client, Store(tmp_path / "mine.duckdb") as store:
        report = sync(store, client, mode="incremental", page_size=10, progress=False)
        assert report.drift and report.gaps == 0 and report.inserted == N + len(late)


@pytest.mark.parametrize("keyset", [True, False], ids=["keyset", "offset-only server"])
def test_an_addition_and_a_removal_before_the_cursor_do_not_hide_a_conversation(served, tmp_path, keyset) -> None:
    """Issue 15: one conversation added and another removed before the
    cursor between two pages leave the page boundary and the count as they
    were; the closing pass still finds the added one."""
    first = served.mirror.store.conversations(limit=1)["id"][0]

    def change() -> None:
        served.mirror.store.connection.execute("DELETE FROM conversations WHERE id = ?", [first])
        _change_at_source(served, tmp_path, [_new_conversation("a_late_0")])

    hook = ListingHook(change, 1, keyset)
    with make_client(served.url, transport=hook) as client, Store(tmp_path / "mine.duckdb") as store:
        report = sync(store, client, mode="incremental", page_size=100, progress=False)
        assert not report.drift and report.gaps == 0
        assert store.conversation("a_late_0") is not None
        assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / "check")


class Overcount(httpx.HTTPTransport):
    """A server whose listings claim three more conversations than it has;
    ``probe_too``: also the one-item probe of the total (what a bulk sync
    compares its export with), else only the listing pages."""

    def __init__(self, *, probe_too: bool) -> None:
        super().__init__()
        self.probe_too = probe_too

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        probe = request.url.params.get("limit") == "1"
        if request.url.path.endswith("/conversations") and (self.probe_too or not probe):
            body = orjson.loads(response.read())
            body["data"]["total"] += 3
            return httpx.Response(response.status_code, headers={"content-type": "application/json"}, content=orjson.dumps(body))
        return response


def test_a_listing_that_does_not_settle_is_reported_as_gaps_and_a_dead_letter(served, tmp_path) -> None:
    """A server whose listing never reaches its own ``total`` (three more
    claimed than listed): the pull says so, in the report and in
    dead_letters; a later sync that settles resolves the dead letter."""

    with Store(tmp_path / "mine.duckdb") as store:
        with make_client(served.url, transport=Overcount(probe_too=False)) as client:
            report = sync(store, client, mode="incremental", page_size=500, progress=False)
        assert report.gaps == 3 and "never seen" in str(report)
        dead = store.connection.execute("SELECT locator, reason FROM dead_letters WHERE resolved_at IS NULL").fetchall()
        assert len(dead) == 1 and dead[0][0].startswith("listing:") and "3 conversation(s)" in dead[0][1]
        with make_client(served.url) as client:
            assert sync(store, client, mode="incremental", page_size=500, progress=False).gaps == 0
        assert store.connection.execute("SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL").fetchone() == (0,)


def test_offline_sync_loads_the_bundled_sample(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "offline.duckdb"
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(cache), "sync", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "sample" in result.output
    info = runner.invoke(cli, ["--db", str(cache), "info"])
    assert info.exit_code == 0 and "conversations" in info.output.lower()
    with Store(cache) as store:
        expected = sum(1 for _ in __import__("gzip").open(SAMPLE, "rb"))
        assert store.count() == expected
        assert sync(store, progress=False).mode == "sample"  # again: nothing changes
        assert store.count() == expected


def test_failover_to_a_second_mirror(source, tmp_path) -> None:
    with start_mirror(copy_store(source, tmp_path / "a")) as primary, start_mirror(copy_store(source, tmp_path / "b")) as secondary:
        primary.stop()  # the first mirror is down before the sync starts
        with make_client([primary.url, secondary.url]) as client, Store(tmp_path / "mine.duckdb") as store:
            report = sync(store, client, progress=False)
            assert report.status == "completed" and report.inserted == N
            assert report.source == f"api:{primary.url}/v1"  # the API's name does not change with the mirror
            assert client.check_endpoints() == {primary.url + "/v1": False, secondary.url + "/v1": True}
            assert_equal_to_source(store, secondary.mirror.store.cursor(), tmp_path / "check")


def test_pacing_keeps_a_small_rate_limit_from_ever_answering_429(source, tmp_path) -> None:
    small = tmp_path / "small"
    path, _ = build_source(small, 90, seed=43)
    with start_mirror(path, rate_limit=40, rate_window=2.0) as served:
        # Start 0.27 s before a window ends (windows are aligned to the epoch):
        # there the first window is spent in a burst and requests paced past
        # its end land in the next one, which let two requests too many
        # through in about half the runs before the pacer took the requests
        # still pending off the server's figures.
        time.sleep((1.73 - time.time() % 2.0) % 2.0)
        with make_client(served.url, concurrency=4) as client, Store(tmp_path / "mine.duckdb") as store:
            report = sync(store, client, mode="incremental", page_size=50, progress=False)
            assert report.inserted == 90
        assert served.mirror.usage.rejected_rate == 0  # slowed down before the limit, never ran into it
        assert served.mirror.usage.requests > 40  # ...while needing more than one window's budget


def test_auto_analyze_scores_new_conversations_in_batches(served, tmp_path) -> None:
    bus = EventBus()
    with make_client(served.url) as client, Store(tmp_path / "mine.duckdb") as store:
        stop = auto_analyze(store, bus=bus, min_batch=500)
        try:
            sync(store, client, progress=False, events=bus, chunk_bytes=256 * 1024)
        finally:
            stop()
        runs = stop.batcher.runs  # type: ignore[attr-defined]  # auto_analyze hangs its batcher on the stop function for tests
        assert 2 <= runs < 10  # batched: once per >= 500 conversations, plus the rest at the end
        scored = store.scalar("SELECT count(DISTINCT conversation_id) FROM conversation_scores")
        assert scored == N
        # Unsubscribed: a later sync does not analyze.
        _change_at_source(served, tmp_path, [_new_conversation("zz_after")])
        sync(store, client, progress=False, events=bus)
        assert store.scalar("SELECT count(DISTINCT conversation_id) FROM conversation_scores") == N


def test_cli_sync_with_analyze(served, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PE_API_URL", served.url)
    monkeypatch.setenv("PE_API_KEY", KEY)
    cache = tmp_path / "cli.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(cache), "sync", "--analyze", "--no-progress", "--tier", "research"])
    assert result.exit_code == 0, result.output
    assert "bulk" in result.output and KEY not in result.output
    with Store(cache) as store:
        research = served.mirror.store.count(tier="research")
        assert store.count() == research > 0
        assert store.scalar("SELECT count(DISTINCT conversation_id) FROM conversation_scores") == research
    for part in tmp_path.glob("cli.duckdb*"):  # the key is nowhere in the cache (nor its WAL)
        if part.is_file():
            assert KEY.encode() not in part.read_bytes()


def test_failures_are_events_and_clear_errors(served, tmp_path) -> None:
    bus = EventBus()
    events = _record(bus)
    with make_client(served.url, key="wrong-key") as client, Store(tmp_path / "mine.duckdb") as store:
        with pytest.raises(AuthenticationError):
            sync(store, client, progress=False, events=bus)
        failed = [e for e in events if e.topic == "sync.failed"]
        assert len(failed) == 1 and "INVALID_API_KEY" in failed[0].payload["error"]
        assert store.scalar("SELECT status FROM ingest_runs") == "failed"
        with pytest.raises(InputError, match="mode"):
            sync(store, client, mode="sideways")  # type: ignore[arg-type]  # a mode outside the Literal: the run-time check is under test
        with pytest.raises(InputError, match="tier"):
            sync(store, client, tier="platinum")


def test_a_sync_that_could_not_fetch_some_conversations_completes_with_a_note(served, tmp_path) -> None:
    """Conversations whose every retry failed are queued for the next sync;
    the run completes and says so in its row."""
    broken = served.mirror.store.conversations(limit=1)["id"][0]

    class Broken(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith(f"/conversations/{broken}"):
                return httpx.Response(500, json={"error": {"code": "internal", "message": "down"}})
            return super().handle_request(request)

    with make_client(served.url, transport=Broken()) as client, Store(tmp_path / "mine.duckdb") as store:
        report = sync(store, client, mode="incremental", page_size=500, progress=False)
        assert report.failed == 1
        status, error = store.connection.execute("SELECT status, error FROM ingest_runs WHERE kind = 'sync'").fetchall()[0]
        assert status == "completed" and error == "1 conversation(s) could not be fetched; queued for the next sync"


def test_doctor_online_says_whether_the_api_answers_and_takes_the_key(served, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PE_API_URL", served.url)
    runner = CliRunner()
    cache = str(tmp_path / "none.duckdb")
    monkeypatch.setenv("PE_API_KEY", KEY)
    r = runner.invoke(cli, ["--db", cache, "doctor", "--online"])
    assert r.exit_code == 0, r.output
    assert "[ok  ] api online:" in r.output and "reachable, key accepted" in r.output
    monkeypatch.setenv("PE_API_KEY", "not-the-right-key-9")
    r = runner.invoke(cli, ["--db", cache, "doctor", "--online"])
    assert r.exit_code == 1 and "the key was refused (HTTP 401)" in r.output, r.output
    assert "not-the-right-key-9" not in r.output
    r = runner.invoke(cli, ["--db", cache, "doctor"])  # without --online, nothing is sent
    assert r.exit_code == 0 and "api online" not in r.output
    served.stop()
    monkeypatch.setenv("PE_API_KEY", KEY)
    r = runner.invoke(cli, ["--db", cache, "doctor", "--online"])
    assert r.exit_code == 1 and "[FAIL] api online:" in r.output and KEY not in r.output, r.output


def test_doctor_online_reports_a_malformed_url_and_goes_on(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PE_API_URL", "notaurl")
    monkeypatch.setenv("PE_API_KEY", KEY)
    r = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.duckdb"), "doctor", "--online"])
    assert r.exit_code == 1 and "[FAIL] api online: notaurl:" in r.output and "[ok  ] cache:" in r.output, r.output


def test_cli_sync_with_analyze_says_when_the_analysis_failed(served, tmp_path, monkeypatch) -> None:
    """Before, the bus logged the analysis's traceback and the sync exited 0
    with nothing scored."""
    from pe_toolkit.analysis.custom import FunctionAnalyzer
    from pe_toolkit.analysis.registry import register, unregister

    def broken(messages):
        raise RuntimeError("kaboom")

    monkeypatch.setenv("PE_API_URL", served.url)
    monkeypatch.setenv("PE_API_KEY", KEY)
    register(FunctionAnalyzer(broken, name="broken_in_sync"))
    try:
        result = CliRunner().invoke(cli, ["--db", str(tmp_path / "c.duckdb"), "sync", "--analyze", "--no-progress", "--tier", "research"])
    finally:
        unregister("broken_in_sync")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "analysis of what was synced failed (analyzer 'broken_in_sync' failed: RuntimeError: kaboom)" in lines[0], result.stderr


def test_a_bulk_export_short_of_the_listing_leaves_a_dead_letter_too(served, tmp_path) -> None:
    """A bulk export holding fewer conversations than the server lists was
    reported as gaps only in the summary line: no dead letter for doctor."""

    with Store(tmp_path / "mine.duckdb") as store:
        with make_client(served.url, transport=Overcount(probe_too=True)) as client:
            report = sync(store, client, mode="bulk", progress=False)
        assert report.gaps == 3
        dead = store.connection.execute("SELECT locator, reason FROM dead_letters WHERE resolved_at IS NULL").fetchall()
        assert len(dead) == 1 and dead[0][0].startswith("listing:") and "the export held fewer distinct conversations" in dead[0][1]
        with make_client(served.url) as client:
            assert sync(store, client, mode="bulk", progress=False).gaps == 0
        assert store.connection.execute("SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL").fetchone() == (0,)


def test_a_conversation_that_left_the_filter_or_vanished_upstream_is_brought_up_to_date(served, tmp_path) -> None:
    """A conversation whose tier changed upstream is absent from the
    filtered listing: before, the cache kept its old tier, so filtering the
    cache by that tier still counted it. It is now fetched as 'unlisted'.
    One deleted upstream is asked for once (404), kept in the cache, and not
    asked for again."""
    with make_client(served.url) as client, Store(tmp_path / "mine.duckdb") as store:
        assert sync(store, client, progress=False, mode="bulk").inserted == N
        tier = "clinical"
        ids = store.conversations(tier=tier, limit=3)["id"].to_list()
        assert len(ids) == 3
        assert sync(store, client, progress=False, mode="incremental", tier=tier).planned == {}

        _move_and_delete_upstream(served, tmp_path, store, ids[0], ids[1])

        report = sync(store, client, progress=False, mode="incremental", tier=tier)
        assert report.planned == {"unlisted": 2}
        assert (report.fetched, report.vanished, report.updated) == (1, 1, 1)
        assert store.conversation(ids[0])["metadata"]["tier"] == "research"
        assert store.conversation(ids[1]) is not None  # what was fetched is kept
        assert ids[0] not in store.conversations(tier=tier)["id"].to_list()
        again = sync(store, client, progress=False, mode="incremental", tier=tier)
        assert again.planned == {} and again.fetched == 0 and again.vanished == 0


def test_sync_with_analyze_scores_what_an_interrupted_run_left_unscored(served, tmp_path) -> None:
    # A sync --analyze stopped after its writes but before scoring: the rerun
    # fetches nothing new, and used to exit 0 with nothing scored.
    bus = EventBus()
    with make_client(served.url) as client, Store(tmp_path / "mine.duckdb") as store:
        sync(store, client, progress=False, events=bus)  # the interrupted run's writes, unscored
        assert store.scalar("SELECT count(*) FROM conversation_scores") == 0
        stop = auto_analyze(store, bus=bus)
        try:
            again = sync(store, client, progress=False, events=bus)
        finally:
            stop()
        assert again.fetched == 0 and again.inserted == 0
        assert store.scalar("SELECT count(*) FROM current_conversation_scores") == N
        assert stop.batcher.error is None  # type: ignore[attr-defined]


def test_no_empty_download_folder_stays_beside_the_cache(served, tmp_path) -> None:
    from pe_toolkit.apisync.state import work_dir

    with make_client(served.url) as client, Store(tmp_path / "mine.duckdb") as store:
        assert sync(store, client, progress=False, mode="bulk").status == "completed"
        assert not work_dir(store.path).exists()  # an empty .mine.duckdb.sync stayed after every sync
        assert sync(store, client, progress=False, mode="incremental").status == "completed"
        assert not work_dir(store.path).exists()


def test_an_interrupted_sync_starts_no_analysis_and_a_failed_one_no_catch_up(tmp_path) -> None:
    # The catch-up above runs at a completed sync's end only: a failed sync's
    # end is published from its exception path, and an interrupted one must
    # stop at once (Ctrl-C looked ignored while the whole cache was scored).
    bus = EventBus()
    with Store(tmp_path / "mine.duckdb") as store:
        import_file(store, SAMPLE, progress=False)
        stop = auto_analyze(store, bus=bus)
        try:
            bus.publish("sync.failed", source="api:x", error="HTTP 401")  # nothing written: no catch-up here
            bus.publish("conversation.created", ids=["a", "b"])
            bus.publish("sync.failed", source="api:x", error="interrupted")  # written, but stop now
            assert stop.batcher.runs == 0  # type: ignore[attr-defined]
            assert store.scalar("SELECT count(*) FROM conversation_scores") == 0
            bus.publish("sync.completed", source="api:x")
            assert stop.batcher.runs == 1  # type: ignore[attr-defined]
        finally:
            stop()
        assert store.scalar("SELECT count(*) FROM current_conversation_scores") == store.count()


class _CountedBody(httpx.SyncByteStream):
    """A body that counts, in ``owner.downloads``, the times it is read
    (the wait for an export asks for the file without reading it)."""

    def __init__(self, body: bytes, owner: RewrittenDownload) -> None:
        self.body, self.owner = body, owner

    def __iter__(self):
        self.owner.downloads += 1
        yield self.body


class RewrittenDownload(httpx.HTTPTransport):
    """Serves every export file with its lines as :meth:`rewrite` makes them
    (whole lines, a matching Content-Length); ``downloads`` counts the
    files read."""

    downloads = 0

    def rewrite(self, lines: list[bytes]) -> list[bytes]:
        raise NotImplementedError

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.endswith("/download") or response.status_code != 200:
            return response
        body = b"".join(line + b"\n" for line in self.rewrite(response.read().splitlines()))
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")}
        # Given as a stream: a body given as bytes counts as read already,
        # and the client streams the download.
        return httpx.Response(200, headers={**headers, "content-length": str(len(body))}, stream=_CountedBody(body, self))


class RepeatingExport(RewrittenDownload):
    """Serves every export file with some of its lines written twice: each
    repeat the same conversation with one more message (an upstream that
    re-exported rows it touched), far enough down the file to fall in a
    later chunk of the load."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.repeated: dict[str, dict] = {}  # id -> the last copy in the file

    def rewrite(self, lines: list[bytes]) -> list[bytes]:
        again = []
        for line in lines[:: self.every]:
            obj = orjson.loads(line)
            obj["messages"] = [*obj["messages"], {"role": "user", "content": "one more thing"}]
            self.repeated[obj["id"]] = obj
            again.append(orjson.dumps(obj))
        return [*lines, *again]


def test_an_export_with_repeated_lines_counts_each_conversation_once(served, tmp_path) -> None:
    """An export holding the same id twice (in chunks loaded apart) was
    reported as two conversations: created, then updated (or unchanged)
    again, in the report and in the events. The last copy in the file is
    the one stored, as for repeats within one chunk."""
    hook = RepeatingExport(every=100)
    bus = EventBus()
    events = _record(bus)
    with make_client(served.url, transport=hook) as client, Store(tmp_path / "mine.duckdb") as store:
        report = sync(store, client, mode="bulk", progress=False, events=bus, chunk_bytes=64 * 1024)
        assert len(hook.repeated) == N // 100
        assert (report.inserted, report.updated, report.unchanged) == (N, 0, 0), report
        assert report.repeated == N // 100 and "12 repeated lines" in str(report)
        created = [cid for e in events if e.topic == "conversation.created" for cid in e.payload["ids"]]
        assert sorted(created) == sorted(set(created)) and len(created) == N
        # Each later copy changed its conversation: announced, so that what
        # rescores on these events (sync --analyze, the live stream) sees it.
        updated = [cid for e in events if e.topic == "conversation.updated" for cid in e.payload["ids"]]
        assert sorted(updated) == sorted(hook.repeated)
        for cid, last in hook.repeated.items():
            assert store.conversation(cid)["messages"][-1]["content"] == "one more thing"
            assert len(store.conversation(cid)["messages"]) == len(last["messages"])


class RestoringExport(RewrittenDownload):
    """Serves every export file with some of its lines changed (one more
    message) and, far down the file (a later chunk of the load), the line
    as it was again: the export's last copy of each is the one the source
    holds."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.restored: list[str] = []

    def rewrite(self, lines: list[bytes]) -> list[bytes]:
        changed, originals = list(lines), lines[:: self.every]
        for i in range(0, len(lines), self.every):
            obj = orjson.loads(lines[i])
            obj["messages"] = [*obj["messages"], {"role": "user", "content": "one more thing"}]
            changed[i] = orjson.dumps(obj)
        self.restored = [orjson.loads(line)["id"] for line in originals]
        return [*changed, *originals]


def test_an_export_whose_later_copies_restore_the_cache_counts_them_unchanged(served, tmp_path) -> None:
    """A bulk sync into a cache that holds the export's conversations, whose
    export changes some of them and, in a later chunk, brings them back as
    the cache held them: they counted as updated, though a load in one
    chunk (which keeps the last copy only) says unchanged. The counts are
    against each id's content hash before the load, whatever the chunks;
    each change is still announced."""
    hook = RestoringExport(every=100)
    with Store(tmp_path / "chunks.duckdb") as chunked, Store(tmp_path / "whole.duckdb") as whole:
        with make_client(served.url) as client:
            assert sync(chunked, client, mode="bulk", progress=False).inserted == N
            assert sync(whole, client, mode="bulk", progress=False).inserted == N
        bus = EventBus()
        events = _record(bus)
        with make_client(served.url, transport=hook) as client:
            small = sync(chunked, client, mode="bulk", progress=False, events=bus, chunk_bytes=64 * 1024)
            one = sync(whole, client, mode="bulk", progress=False)
        assert len(hook.restored) == N // 100 and hook.downloads == 2
        counts = [(r.inserted, r.updated, r.unchanged, r.repeated, r.gaps) for r in (small, one)]
        assert counts == [(0, 0, N, len(hook.restored), 0)] * 2, (small, one)
        updated = [cid for e in events if e.topic == "conversation.updated" for cid in e.payload["ids"]]
        assert sorted(updated) == sorted(hook.restored * 2)  # changed, then changed back
        for store in (chunked, whole):
            assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / f"check_{store.path.stem}")


def test_each_id_of_a_load_counts_once_as_what_it_did_to_the_cache() -> None:
    """The per-id rule behind the counts above: an id absent before the
    load counts as inserted; one present counts as unchanged when the last
    copy has the hash it had before the load, else as updated. Every change
    is announced. Repeats are counted once for the whole load, not per
    write (which missed a resumed load's). A result built without hashes
    counts a change as one."""
    import pyarrow as pa

    from pe_toolkit.store import UpsertResult
    from pe_toolkit.store.loaded import LoadedIds

    loaded = LoadedIds()
    try:
        first = loaded.settle(pa.array(["kept", "same"]), UpsertResult(unchanged=2))
        assert (first.inserted, first.updated, first.unchanged, first.repeated) == (0, 0, 2, 0)
        second = loaded.settle(pa.array(["kept", "new"]), UpsertResult(inserted=1, updated=1, created_ids=["new"], updated_ids=["kept"]))
        assert (second.inserted, second.updated, second.unchanged, second.repeated) == (1, 1, -1, 0)
        assert (second.created_ids, second.updated_ids) == (["new"], ["kept"])
        third = loaded.settle(pa.array(["kept", "same", "new"]), UpsertResult(updated=2, unchanged=1, updated_ids=["kept", "new"]))
        assert (third.inserted, third.updated, third.unchanged, third.repeated) == (0, 0, 0, 0)
        assert third.updated_ids == ["kept", "new"]  # counted once, but every change is announced
        assert (loaded.repeated(), loaded.distinct()) == (4, 3)  # 7 lines, 3 ids
    finally:
        loaded.close()

    def hashes(*rows: tuple[str, str, str]) -> pa.Table:
        return pa.table({k: [r[i] for r in rows] for i, k in enumerate(("id", "previous_hash", "content_hash"))})

    def changed(*rows: tuple[str, str, str]) -> UpsertResult:
        return UpsertResult(updated=len(rows), updated_ids=[r[0] for r in rows], updated_hashes=hashes(*rows))

    loaded = LoadedIds()
    try:
        # "a" and "b" held hash 0 before the load; "c" held 5.
        steps = [
            (["a", "b", "c"], changed(("a", "0", "1")), (0, 1, 2)),  # b, c unchanged
            (["a", "b"], changed(("a", "1", "0"), ("b", "0", "2")), (0, 0, 0)),  # a back to 0; b changed
            (["a", "c"], changed(("a", "0", "3"), ("c", "5", "6")), (0, 2, -2)),
            (["a", "b", "c"], changed(("a", "3", "0"), ("b", "2", "0"), ("c", "6", "7")), (0, -2, 2)),  # a, b back
        ]
        total = [0, 0, 0]
        for ids, result, expected in steps:
            result.unchanged = len(ids) - result.updated
            got = loaded.settle(pa.array(ids), result)
            assert (got.inserted, got.updated, got.unchanged) == expected, (ids, got)
            total = [t + g for t, g in zip(total, (got.inserted, got.updated, got.unchanged))]
        assert total == [0, 1, 2]  # c changed (7 against 5); a and b as before the load
    finally:
        loaded.close()


def test_a_bulk_sync_brings_conversations_that_left_the_filter_up_to_date(served, tmp_path) -> None:
    """The bulk path's 'unlisted': a conversation cached under the filter
    that the export no longer holds (its tier changed upstream) kept its old
    tier after a bulk sync, so filtering the cache by that tier still
    counted it. It is now fetched after the load; one deleted upstream is
    asked for once (404), kept, and not asked for again."""
    with make_client(served.url) as client, Store(tmp_path / "mine.duckdb") as store:
        assert sync(store, client, progress=False, mode="bulk").inserted == N
        tier = "clinical"
        ids = store.conversations(tier=tier, limit=3)["id"].to_list()
        assert len(ids) == 3

        _move_and_delete_upstream(served, tmp_path, store, ids[0], ids[1])

        report = sync(store, client, progress=False, mode="bulk", tier=tier)
        assert report.planned == {"unlisted": 2}
        assert (report.fetched, report.vanished, report.updated) == (1, 1, 1), report
        assert store.conversation(ids[0])["metadata"]["tier"] == "research"
        assert store.conversation(ids[1]) is not None  # what was fetched is kept
        assert ids[0] not in store.conversations(tier=tier)["id"].to_list()
        assert store.count(tier=tier) == served.mirror.store.count(tier=tier) + 1  # the deleted one stays
        again = sync(store, client, progress=False, mode="bulk", tier=tier)
        assert again.planned == {} and again.fetched == 0 and again.vanished == 0


def test_a_resumed_bulk_load_plans_no_conversation_it_loaded_before_as_unlisted(served, tmp_path) -> None:
    """The unlisted ones are those not synced since the bulk run started,
    a start the checkpoint keeps: what the interrupted load wrote counts as
    in the export, and is not fetched again one by one."""
    bus = EventBus()

    def interrupt_the_load(event) -> None:
        if event.payload.get("phase") == "load" and event.payload.get("done"):
            raise KeyboardInterrupt  # Ctrl-C after the first chunk

    with make_client(served.url) as client, Store(tmp_path / "mine.duckdb") as store:
        assert sync(store, client, progress=False, mode="bulk").inserted == N
        stop = bus.subscribe("sync.progress", interrupt_the_load)
        with pytest.raises(KeyboardInterrupt):
            sync(store, client, progress=False, mode="bulk", events=bus, chunk_bytes=64 * 1024)
        stop()
        resumed = sync(store, client, progress=False, mode="bulk", events=bus, chunk_bytes=64 * 1024)
        assert resumed.resumed and resumed.planned == {} and resumed.fetched == 0, resumed


class GoneTwice(Overcount):
    """Overcount (the export short of the probe's total by three), and the
    export is gone when fetched after the first and the second request for
    one: it is asked for as an id the server never made, so the server's own
    404 answers. (The mirror answers the same filters with the same export.)"""

    def __init__(self) -> None:
        super().__init__(probe_too=True)
        self.requested = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/export"):
            self.requested += 1
        elif "/exports/" in request.url.path and self.requested < 3:
            eid = request.url.path.split("/exports/")[1].split("/")[0]
            request.url = request.url.copy_with(path=request.url.path.replace(eid, "exp_never_made"))
        return super().handle_request(request)


def test_a_short_export_on_the_last_attempt_is_loaded_with_its_gaps(served, tmp_path) -> None:
    """Two exports gone from the server, then a short one: the short file
    was deleted to be downloaded again although no attempt was left, and the
    load then failed on the missing file. The last export is loaded as a
    second short download would be, its gaps recorded."""
    transport = GoneTwice()
    with Store(tmp_path / "mine.duckdb") as store:
        with make_client(served.url, transport=transport) as client:
            report = sync(store, client, mode="bulk", progress=False)
        assert transport.requested == 3
        assert report.status == "completed" and report.gaps == 3
        assert report.inserted == store.count() == N


class DropsLastLines(RewrittenDownload):
    """Every download of the export lacks its last ``k`` lines: an export
    short of the listing."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def rewrite(self, lines: list[bytes]) -> list[bytes]:
        return lines[: -self.k]


def test_a_short_bulk_export_fetches_no_conversation_one_by_one(served, tmp_path) -> None:
    """A short export (gaps) planned every cached conversation it lacked as
    'unlisted' and fetched each with its own request: 400 requests for 400
    missing lines, 1.6 M for an export capped at 1 M of 2.6 M. The gaps are
    reported and left to the next incremental sync, as before."""
    with Store(tmp_path / "mine.duckdb") as store:
        with make_client(served.url) as client:
            assert sync(store, client, mode="bulk", progress=False).inserted == N
        short = DropsLastLines(400)
        with make_client(served.url, transport=short) as client:
            report = sync(store, client, mode="bulk", progress=False)
        assert report.gaps == 400 and report.status == "completed"
        assert short.downloads == 2  # the one fresh download of a short file
        assert report.planned == {} and report.fetched == 0
        with make_client(served.url) as client:
            after = sync(store, client, mode="incremental", progress=False)
        assert after.planned == {} and store.count() == N


class RepeatsInPlaceOfDropped(RewrittenDownload):
    """Every download of the export has its last ``k`` lines replaced by
    copies of its first ``k``: as many lines as the listing, ``k``
    conversations fewer. The copies fall in the load's last chunk, far
    from their first lines."""

    def __init__(self, k: int, *, first_twice: bool = False) -> None:
        super().__init__()
        self.k = k
        self.first_twice = first_twice  # the first line again right after it: a repeat inside the first chunk
        self.dropped: list[str] = []

    def rewrite(self, lines: list[bytes]) -> list[bytes]:
        self.dropped = [orjson.loads(line)["id"] for line in lines[-self.k :]]
        return [*lines[:1], *lines[:1] * self.first_twice, *lines[1 : -self.k], *lines[: self.k]]


def test_an_export_repeating_ids_in_place_of_others_reports_them_as_gaps(served, tmp_path) -> None:
    """The completeness check counted the export's lines: five ids written
    twice in place of five others made as many lines as the server lists,
    so the export passed as complete (gaps 0, no dead letter), and the five
    cached conversations it lacked were planned as 'unlisted' and fetched
    one by one, the cost a short export is spared. Gaps now count the
    distinct conversations the export held. The file is not downloaded
    again for them: the same export's file holds the same repeats (a fresh
    download is for a short file, one the transfer may have cut)."""
    k = 5
    hook = RepeatsInPlaceOfDropped(k)
    with Store(tmp_path / "mine.duckdb") as store:
        with make_client(served.url) as client:
            assert sync(store, client, mode="bulk", progress=False).inserted == N
        with make_client(served.url, transport=hook) as client:
            report = sync(store, client, mode="bulk", progress=False, chunk_bytes=64 * 1024)
        assert len(hook.dropped) == k and report.repeated == k and hook.downloads == 1
        assert report.status == "completed" and report.gaps == k, report
        assert report.planned == {} and report.fetched == 0  # left to the next incremental sync, as a short export's
        dead = store.connection.execute("SELECT locator, reason FROM dead_letters WHERE resolved_at IS NULL").fetchall()
        assert len(dead) == 1 and dead[0][0].startswith("listing:") and f"{k} conversation(s)" in dead[0][1], dead
        with make_client(served.url) as client:
            after = sync(store, client, mode="incremental", progress=False)
        assert after.gaps == 0 and store.count() == N
        assert store.connection.execute("SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL").fetchone() == (0,)


def test_a_resumed_load_counts_the_ids_an_earlier_process_loaded_once(served, tmp_path) -> None:
    """The distinct count survives an interrupted load: the ids loaded
    before the interruption are read again from the export file (the
    checkpoint keeps only the last line merged), so the copies after it
    count once, and the ids before it are not missed. Into an empty cache:
    the five dropped conversations are the gaps, and the incremental sync
    after fetches them as new. ``repeated`` is the whole export's too, as
    an uninterrupted load counts it: it counted only the repeats the
    resumed process wrote (0 here: the copies after the resume point
    repeat ids merged before it, and the repeat inside the first chunk
    was counted by the process that was interrupted)."""
    k = 5
    hook = RepeatsInPlaceOfDropped(k, first_twice=True)
    with make_client(served.url, transport=hook) as client, Store(tmp_path / "whole.duckdb") as whole:
        uninterrupted = sync(whole, client, progress=False, mode="bulk", chunk_bytes=64 * 1024)
    assert (uninterrupted.repeated, uninterrupted.gaps) == (k + 1, k), uninterrupted
    bus = EventBus()

    def interrupt_the_load(event) -> None:
        if event.payload.get("phase") == "load" and event.payload.get("done"):
            raise KeyboardInterrupt  # Ctrl-C after the first chunk, which holds the first copies

    with Store(tmp_path / "mine.duckdb") as store:
        with make_client(served.url, transport=hook) as client:
            stop = bus.subscribe("sync.progress", interrupt_the_load)
            with pytest.raises(KeyboardInterrupt):
                sync(store, client, progress=False, mode="bulk", events=bus, chunk_bytes=64 * 1024)
            stop()
            loaded_before = store.count()
            assert 0 < loaded_before < N - k
            resumed = sync(store, client, progress=False, mode="bulk", events=bus, chunk_bytes=64 * 1024)
        assert resumed.resumed and resumed.status == "completed"
        assert resumed.inserted == N - k - loaded_before and store.count() == N - k
        assert resumed.gaps == k and resumed.repeated == k + 1, resumed
        assert not any(store.conversation(cid) for cid in hook.dropped)
        with make_client(served.url) as client:
            after = sync(store, client, mode="incremental", progress=False)
        assert after.planned == {"new": k} and after.gaps == 0 and store.count() == N


def test_a_resumed_load_reads_the_part_it_skips_once(served, tmp_path, monkeypatch) -> None:
    """A resumed load read the chunks merged before the interruption twice:
    once to count their ids, once more to skip them. They are read once,
    their ids counted as they are skipped."""
    from pe_toolkit.apisync import bulk, state as sync_state

    bus = EventBus()

    def interrupt_the_load(event) -> None:
        if event.payload.get("phase") == "load" and (event.payload.get("done") or 0) > 200 * 1024:
            raise KeyboardInterrupt  # Ctrl-C after a few chunks

    with make_client(served.url) as client, Store(tmp_path / "mine.duckdb") as store:
        stop = bus.subscribe("sync.progress", interrupt_the_load)
        with pytest.raises(KeyboardInterrupt):
            sync(store, client, progress=False, mode="bulk", events=bus, chunk_bytes=64 * 1024)
        stop()
        loaded_before = store.count()
        (export,) = sync_state.work_dir(store.path).glob("*.jsonl")
        whole = sum(1 for _ in bulk.read_line_chunks(export, 64 * 1024))

        read: list[int] = []
        real = bulk.read_line_chunks

        def counted(*args, **kwargs):
            for chunk in real(*args, **kwargs):
                read.append(chunk.position)
                yield chunk

        monkeypatch.setattr(bulk, "read_line_chunks", counted)
        resumed = sync(store, client, progress=False, mode="bulk", chunk_bytes=64 * 1024)
    assert resumed.resumed and 0 < loaded_before < N and resumed.inserted == N - loaded_before
    assert resumed.gaps == 0 and resumed.repeated == 0, resumed
    assert len(read) == whole > 4, (len(read), whole)  # each chunk once


def test_a_bulk_sync_resumed_in_its_fetching_phase_reports_the_exports_repeats(served, tmp_path) -> None:
    """A bulk sync interrupted while it fetched the unlisted conversations
    reported, resumed, the repeats of no export line (the load was done):
    ``repeated`` is the export's, whichever phase the run resumed in."""
    hook = RepeatingExport(every=100)
    bus = EventBus()

    def interrupt_the_fetch(event) -> None:
        if event.payload.get("phase") == "fetch" and event.payload.get("done"):
            raise KeyboardInterrupt  # Ctrl-C after the first fetched conversation

    tier = "clinical"
    with Store(tmp_path / "mine.duckdb") as store:
        with make_client(served.url) as client:
            assert sync(store, client, progress=False, mode="bulk").inserted == N
        ids = store.conversations(tier=tier, limit=2)["id"].to_list()
        _move_and_delete_upstream(served, tmp_path, store, ids[0], ids[1])
        with make_client(served.url, transport=hook) as client:
            stop = bus.subscribe("sync.progress", interrupt_the_fetch)
            with pytest.raises(KeyboardInterrupt):
                sync(store, client, progress=False, mode="bulk", tier=tier, events=bus, batch_size=1)
            stop()
            resumed = sync(store, client, progress=False, mode="bulk", tier=tier, batch_size=1)
        repeats = len(hook.repeated)
        # Usually the other of the two; 0 when both fetches ended before the
        # interrupt reached the run, 2 when the finished one was not yet
        # stored (a known limit: a fetch finished in a worker at cancel is
        # fetched again). The run resumed in its fetch phase either way, and
        # the repeats are what this test is about. It failed once on "== 1".
        assert repeats > 0 and resumed.resumed and resumed.fetched + resumed.vanished <= 2, resumed
        assert resumed.repeated == repeats, resumed


def test_a_bulk_sync_whose_export_failed_on_the_server_does_not_resume_it(served, tmp_path) -> None:
    """The server's export job fails (its download URL answers 500
    EXPORT_ERROR). Before, the checkpoint kept the failed export's id, and
    every later run resumed it and failed the same way until the export
    expired (a day on the mirror), even once the server was well again.
    A failed export is requested again, as a vanished one is; when every
    attempt fails, the checkpoint forgets it, so the next run asks anew."""
    exports = served.mirror.jobs.runners
    working = exports["export"]
    asked: list[str] = []

    def failing(ctx) -> None:
        asked.append(ctx.job.job_id)
        raise RuntimeError("disk trouble")

    exports["export"] = failing
    try:
        with Store(tmp_path / "mine.duckdb") as store, make_client(served.url) as client:
            with pytest.raises(ServerError, match="EXPORT_ERROR"):
                sync(store, client, mode="bulk", progress=False)
            assert len(set(asked)) == 3  # the first export and two more (MAX_EXPORTS)
            exports["export"] = working
            report = sync(store, client, mode="bulk", progress=False)
            assert report.status == "completed" and report.inserted == N
            assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / "check")
    finally:
        exports["export"] = working


def test_a_failed_export_is_forgotten_even_when_asking_for_the_next_fails(served, tmp_path) -> None:
    """The first export fails on the server, and asking for the next one
    fails too (the network, a quota). The checkpoint must already have
    forgotten the failed export: a review found it saved only once the next
    export was granted, so the next run resumed the failed one."""
    from pe_toolkit.apisync.state import load_checkpoint
    from pe_toolkit.errors import TransportError

    exports = served.mirror.jobs.runners
    working = exports["export"]

    def failing(ctx) -> None:
        raise RuntimeError("disk trouble")

    exports["export"] = failing
    try:
        with Store(tmp_path / "mine.duckdb") as store, make_client(served.url) as client:
            real_start = client.start_export
            calls: list[str] = []

            def start_once(**kw):
                calls.append("start")
                if len(calls) > 1:
                    raise TransportError("the network went away")
                return real_start(**kw)

            client.start_export = start_once  # type: ignore[method-assign]
            with pytest.raises(TransportError):
                sync(store, client, mode="bulk", progress=False)
            [checkpoint] = [load_checkpoint(store, s, sc) for s, sc in store.connection.execute("SELECT source, scope FROM sync_checkpoints").fetchall()]
            assert checkpoint is not None and "export_id" not in checkpoint.state, checkpoint
    finally:
        exports["export"] = working

"""Mirror fixes from a conformance audit: ids and dataset names holding a
"/", a trailing slash, an odd Last-Event-ID, the cancel message. Real
mirror on loopback."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pe_toolkit.apisync import sync
from pe_toolkit.client import Client
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from .conftest import child_env
from .server_support import KEYS, Served, check_envelope, copy_store, start_mirror, wait_until


def _store(folder: Path) -> Path:
    data = folder / "odd.jsonl"
    rows = [
        {"id": f"plain-{i}", "metadata": {"dataset": "org/team"},
         "messages": [{"role": "user", "content": f"hello {i}"}, {"role": "assistant", "content": "hi, how are you?"}]}
        for i in range(3)
    ] + [{"id": "weird/slash", "messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]}]  # fmt: skip
    data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    path = folder / "odd.duckdb"
    with Store(path) as store:
        import_file(store, data, progress=False)
    return path


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory):
    with start_mirror(_store(tmp_path_factory.mktemp("odd"))) as served:
        yield served


def test_an_id_or_a_dataset_with_a_slash_is_served(odd: Served) -> None:
    with odd.client() as http:
        got = check_envelope(http.get("/v1/conversations/weird%2Fslash"), 200)
        assert got["id"] == "weird/slash"
        assert check_envelope(http.get("/v1/datasets/org%2Fteam"), 200)["name"] == "org/team"
    with Client(KEYS[0], odd.url) as client:
        assert client.get_conversation("weird/slash").id == "weird/slash"


def test_a_sync_from_the_mirror_gets_every_conversation(odd: Served, tmp_path: Path) -> None:
    with Client(KEYS[0], odd.url) as client, Store(tmp_path / "copy.duckdb") as store:
        report = sync(store, client, mode="incremental", progress=False)
        assert report.vanished == 0 and report.failed == 0
        assert sorted(store.sql("SELECT id FROM conversations")["id"]) == ["plain-0", "plain-1", "plain-2", "weird/slash"]


def test_a_trailing_slash_is_an_enveloped_404_not_a_redirect(odd: Served) -> None:
    with odd.client() as http:
        for path in ("/v1/datasets/", "/v1/search/", "/v1/processing/jobs/"):
            check_envelope(http.get(path), 404, code="RESOURCE_NOT_FOUND")


def test_a_non_ascii_digit_last_event_id_starts_the_stream_afresh(odd: Served) -> None:
    with odd.client() as http, http.stream("GET", "/v1/stream/updates", headers={"Last-Event-ID": b"\xb2"}) as r:
        assert r.status_code == 200
        first = next(r.iter_lines())
        assert first.startswith("retry:")


def test_a_cancelled_analysis_job_stops_and_says_so(tmp_path: Path, sample_store_template: Path, caplog) -> None:
    # A store big enough that the first analysis is still running when the
    # second job, queued behind it (one job worker), is cancelled.
    with start_mirror(copy_store(sample_store_template, tmp_path)) as served, served.client() as http:

        def submit() -> str:
            body = {"dataset_name": "peer_support", "processing_type": "analysis", "parameters": {}}
            return check_envelope(http.post("/v1/processing/submit", json=body), 201)["job_id"]

        def status(job: str) -> dict:
            return check_envelope(http.get(f"/v1/processing/jobs/{job}"), 200)

        running = submit()
        wait_until(lambda: status(running)["status"] == "running", what="the job to run")
        queued = submit()
        # the queued one is cancelled by this call, not "already cancelled" (before the fix)
        assert http.delete(f"/v1/processing/jobs/{queued}").json()["message"] == "Cancellation requested"
        assert http.delete(f"/v1/processing/jobs/{running}").json()["message"] == "Cancellation requested"
        done = wait_until(lambda: (j := status(running))["status"] != "running" and j, what="the job to stop")
        again = http.delete(f"/v1/processing/jobs/{running}").json()["message"]
        assert status(queued)["status"] == "cancelled"
    assert done["status"] == "cancelled", done  # it ran to completion before the fix
    assert again == "Job already cancelled"
    assert not [r for r in caplog.records if "event handler" in r.getMessage()]  # the bus no longer swallows it

def test_steady_traffic_lets_an_import_from_another_process_in(sample_store_template: Path, tmp_path: Path) -> None:
    import subprocess
    import sys
    import threading

    db = copy_store(sample_store_template, tmp_path / "busy")
    data = tmp_path / "more.jsonl"
    data.write_bytes(orjson.dumps({"id": "from-elsewhere", "messages": [{"role": "user", "content": "hello"}]}) + b"\n")
    stop, answered = threading.Event(), []
    with start_mirror(db) as served:
        # Released only after a minute idle: the requests below never leave it idle,
        # and three clients overlap, so hardly a moment passes with no query running.
        served.mirror.db.release_when_idle(60.0)

        def traffic() -> None:
            with served.client() as http:
                while not stop.is_set():
                    answered.append(http.get("/v1/conversations", params={"limit": 5}).status_code)
                    stop.wait(0.01)

        pollers = [threading.Thread(target=traffic) for _ in range(3)]
        for poller in pollers:
            poller.start()
        try:
            env = child_env(PE_LOCK_WAIT="20")
            cli = Path(sys.executable).parent / "pe-toolkit"
            run = subprocess.run([str(cli), "--db", str(db), "import", str(data)], capture_output=True, text=True, env=env, timeout=120)
        finally:
            stop.set()
            for poller in pollers:
                poller.join()
        assert run.returncode == 0, run.stderr[-1000:]
        assert not list(db.parent.glob(f".{db.name}.waiting-*"))  # the waiter's marker is gone
        with served.client() as http:  # the server takes the file back and sees the import
            wait_until(lambda: http.get("/v1/conversations/from-elsewhere").status_code == 200, what="the import to show")
    # the traffic went on throughout (a request meeting the import's hold may be a 503)
    assert answered.count(200) >= 1 and set(answered) <= {200, 503}


def test_health_answers_while_queries_queue_for_a_held_cache(sample_store_template: Path, tmp_path: Path) -> None:
    import subprocess
    import sys
    import threading

    import httpx

    db = copy_store(sample_store_template, tmp_path / "held")
    with start_mirror(db) as served:
        served.mirror.db.release_when_idle(0.2)  # queries then wait LOCK_WAIT (5 s) for the file
        wait_until(lambda: not served.mirror.db.is_open, what="the mirror to let go of its cache")
        env = child_env()
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys; from pe_toolkit.store import Store; s = Store(sys.argv[1]); print('held', flush=True); sys.stdin.read()", str(db)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        done: list[int] = []
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

            def query() -> None:
                with served.client() as http:
                    done.append(http.get("/v1/datasets").status_code)

            # More than the request pool's 40 threads: the later ones queue behind the first.
            threads = [threading.Thread(target=query) for _ in range(60)]
            for t in threads:
                t.start()
            wait_until(lambda: served.mirror.db._leases >= 1, what="the queries to wait for the file")
            health = check_envelope(httpx.get(served.url + "/health", timeout=60), 200)
            finished_before_health = len(done)
            for t in threads:
                t.join()
        finally:
            assert holder.stdin is not None and holder.stdout is not None
            holder.stdin.close()
            holder.wait(timeout=60)
            holder.stdout.close()
    assert health["checks"]["store"] == "busy"
    assert finished_before_health < 40, finished_before_health  # it did not queue behind them
    assert len(done) == 60


def test_a_waiting_marker_counts_only_while_it_is_fresh_and_its_process_lives(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from pe_toolkit.store.lease import MARKER_FRESH, others_waiting

    cache = tmp_path / "c.duckdb"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        marker = tmp_path / f".c.duckdb.waiting-{sleeper.pid}-1"
        marker.touch()
        assert others_waiting(cache)
        old = time.time() - MARKER_FRESH - 5
        os.utime(marker, (old, old))  # a waiter killed long ago whose pid lives on
        assert not others_waiting(cache)
        os.utime(marker)
        (tmp_path / f".c.duckdb.waiting-{os.getpid()}-1").touch()  # our own: never a reason to let go
        assert others_waiting(cache)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not others_waiting(cache)  # its process is gone


def test_a_no_wait_lease_does_not_take_the_file_back_from_a_waiter(tmp_path: Path) -> None:
    import subprocess
    import sys

    from pe_toolkit.errors import StoreLockedError
    from pe_toolkit.server.db import ServerDB

    path = tmp_path / "c.duckdb"
    db = ServerDB(Store(path))
    db.release_when_idle(60.0)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".c.duckdb.waiting-{sleeper.pid}-1").touch()
        assert db.release_if_idle() and not db.is_open  # let go at once for the waiter
        with pytest.raises(StoreLockedError), db.lease(wait=0):  # /health, the watcher: no reopening
            pass
        assert not db.is_open
    finally:
        sleeper.kill()
        sleeper.wait()
        db.close()

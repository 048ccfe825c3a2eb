"""Background jobs and exports: real jobs, real files, records that survive a restart."""

from __future__ import annotations

import csv
import io
import tarfile
import threading
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from pe_toolkit.server.db import ServerDB
from pe_toolkit.server.hub import EventHub
from pe_toolkit.server.jobs import INTERRUPTED, JobManager
from pe_toolkit.store import ConversationFilter, Store

from .server_support import Served, check_envelope, copy_store, start_mirror, wait_until

SELECTION = {"dataset": "peer_support", "tier": "professional", "min_quality": "0.6"}


def finished_job(client, job_id: str) -> dict:
    def done() -> dict | None:
        job = check_envelope(client.get(f"/v1/processing/jobs/{job_id}"), 200)
        return job if job["status"] not in ("queued", "running") else None

    return wait_until(done, timeout=60, what=f"job {job_id}")


def expected_selection(served: Served) -> tuple[list[str], int]:
    where, params = ConversationFilter(dataset="peer_support", tier="professional", min_quality=0.6).where("c")
    ids = [r[0] for r in served.mirror.db.rows(f"SELECT id FROM conversations c WHERE {where} ORDER BY id", params)]
    messages = served.mirror.db.scalar(f"SELECT sum(message_count) FROM conversations c WHERE {where}", params)
    return ids, int(messages)


@pytest.mark.parametrize("fmt", ["jsonl", "openai", "csv", "parquet", "huggingface"])
def test_export_formats_download_what_the_store_holds(mirror: Served, fmt: str, tmp_path: Path) -> None:
    ids, messages = expected_selection(mirror)
    assert ids
    with mirror.client() as client:
        created = check_envelope(client.post("/v1/export", data={**SELECTION, "format": fmt}), 202)
        assert set(created) >= {"export_id", "dataset", "format", "filters", "status", "estimated_size", "download_url", "expires_at"}
        assert created["status"] == "processing" and created["format"] == fmt and created["dataset"] == "peer_support"
        assert created["filters"] == {"tier": "professional", "min_quality": 0.6, "redact": False}
        assert created["estimated_size"] > 0 and created["download_url"].startswith(mirror.url + "/v1/exports/")
        job = finished_job(client, created["export_id"])
        assert job["status"] == "completed" and job["progress"] == 100.0, job
        assert job["results"]["conversations"] == len(ids)
        response = client.get(created["download_url"])
    assert response.status_code == 200
    assert response.headers["x-request-id"] and "x-ratelimit-remaining" in response.headers
    assert 'filename="pe_export_peer_support_' in response.headers["content-disposition"]
    body = response.content
    assert len(body) == job["results"]["size_bytes"]
    if fmt == "jsonl":
        objects = [orjson.loads(line) for line in body.splitlines()]
        assert sorted(o["id"] for o in objects) == ids
        with Store(mirror.db_path) as store:
            assert objects[0] == store.conversation(objects[0]["id"])
    elif fmt == "openai":
        lines = [orjson.loads(line) for line in body.splitlines()]
        assert len(lines) == len(ids) and sum(len(line["messages"]) for line in lines) == messages
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        assert len(rows) == messages and {r["conversation_id"] for r in rows} == set(ids)
    elif fmt == "parquet":
        table = pq.read_table(io.BytesIO(body))
        assert table.num_rows == messages and set(table.column("conversation_id").to_pylist()) == set(ids)
    else:
        assert response.headers["content-type"] == "application/x-tar"
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            tar.extractall(tmp_path, filter="data")
        (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
        import datasets

        loaded = datasets.load_from_disk(str(folder))
        assert loaded.num_rows == len(ids) and sorted(loaded["id"]) == ids


def test_processing_submit_export_and_poll(mirror: Served) -> None:
    with mirror.client() as client:
        response = client.post(
            "/v1/processing/submit",
            json={"dataset_name": "cbt_coaching", "processing_type": "export", "parameters": {"format": "jsonl", "tier": "research"}},
        )
        data = check_envelope(response, 201)
        assert {"job_id", "dataset_name", "processing_type", "status", "submitted_at", "estimated_completion", "parameters"} <= data.keys()
        assert data["status"] == "queued" and data["processing_type"] == "export" and data["dataset_name"] == "cbt_coaching"
        assert data["parameters"] == {"format": "jsonl", "tier": "research", "redact": False}
        job = finished_job(client, data["job_id"])
        assert set(job) >= {"job_id", "status", "progress", "started_at", "completed_at", "results"}
        assert job["started_at"] <= job["completed_at"]
        lines = client.get(data["download_url"]).content.splitlines()
    expected = mirror.mirror.count(ConversationFilter(dataset="cbt_coaching", tier="research"))
    assert len(lines) == expected == job["results"]["conversations"]
    assert all(orjson.loads(line)["metadata"]["tier"] == "research" for line in lines)


def test_redacted_export_hides_planted_pii(mirror: Served) -> None:
    with mirror.client() as client:
        plain = check_envelope(client.post("/v1/export", data={"dataset": "wellbeing_chat", "format": "jsonl"}), 202)
        redacted = check_envelope(client.post("/v1/export", data={"dataset": "wellbeing_chat", "format": "jsonl", "redact": "true"}), 202)
        finished_job(client, plain["export_id"])
        finished_job(client, redacted["export_id"])
        before = client.get(plain["download_url"]).text
        after = client.get(redacted["download_url"]).text
    emails = {p["text"] for line in before.splitlines() for p in orjson.loads(line)["metadata"]["synthetic"]["pii"] if p["kind"] == "email"}
    assert emails and any(e in before for e in emails)
    assert not any(e in after for e in emails)
    # Nor does the file's name carry the dataset's (a redaction audit).
    assert "wellbeing_chat" in plain["file_name"] and "wellbeing_chat" not in redacted["file_name"]
    assert "redacted" in redacted["file_name"]


def _job_manager(tmp_path: Path, runners: dict) -> tuple[Store, ServerDB, EventHub, JobManager]:
    store = Store(tmp_path / "jobs.duckdb")
    db = ServerDB(store)
    hub = EventHub()
    return store, db, hub, JobManager(db, hub, runners)


def test_job_progress_moves_and_is_recorded(tmp_path: Path) -> None:
    steps = [threading.Event() for _ in range(3)]
    seen: list[float] = []

    def runner(ctx):
        for n, step in enumerate(steps):
            step.wait(10)
            ctx.progress((n + 1) / 4)
            seen.append(ctx.job.progress)
        return {"answer": 42}

    store, db, hub, jobs = _job_manager(tmp_path, {"analysis": runner})
    try:
        jobs.start()
        job = jobs.submit("analysis", "*", {}, size=10)
        assert job.estimated_completion is not None and job.estimated_completion >= job.submitted_at
        for n, step in enumerate(steps):
            step.set()
            wait_until(lambda n=n: len(seen) > n)
        wait_until(lambda: jobs.get(job.job_id).status == "completed")
        assert seen == [25.0, 50.0, 75.0]
        stored = db.one("SELECT status, progress, results, error FROM server_jobs WHERE job_id = ?", [job.job_id])
        assert stored[0] == "completed" and stored[1] == 100.0 and orjson.loads(stored[2]) == {"answer": 42} and stored[3] is None
        topics = [e.topic for e in hub._history]
        assert topics[0] == "job.progress" and topics[-1] == "job.completed"
        assert [e.data["progress"] for e in hub._history if e.topic == "job.progress"] == sorted(
            e.data["progress"] for e in hub._history if e.topic == "job.progress"
        )
    finally:
        jobs.stop()
        db.close()
        store.close()


def test_cancel_fail_and_stop(tmp_path: Path) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(ctx):
        started.set()
        while not release.wait(0.01):
            ctx.progress(0.1)
        ctx.progress(0.5)
        return {}

    def broken(ctx):
        raise ValueError("boom")

    from pe_toolkit.errors import InputError

    def refused(ctx):
        raise InputError("dataset is empty")

    store, db, _hub, jobs = _job_manager(tmp_path, {"analysis": slow, "export": broken, "quality_validation": refused})
    try:
        jobs.start()
        running = jobs.submit("analysis", "*", {})
        started.wait(10)
        queued = jobs.submit("export", "*", {})
        assert jobs.get(queued.job_id).status == "queued"
        assert jobs.cancel(queued.job_id).status == "cancelled"
        assert jobs.cancel(running.job_id) is not None
        wait_until(lambda: jobs.get(running.job_id).status == "cancelled")
        failing = jobs.submit("export", "*", {})
        wait_until(lambda: jobs.get(failing.job_id).status == "failed")
        assert jobs.get(failing.job_id).error == "internal error: ValueError"
        refusing = jobs.submit("quality_validation", "*", {})
        wait_until(lambda: jobs.get(refusing.job_id).status == "failed")
        assert jobs.get(refusing.job_id).error == "dataset is empty"
        started.clear()
        interrupted = jobs.submit("analysis", "*", {})
        started.wait(10)
        jobs.stop()
        assert jobs.get(interrupted.job_id).status == "failed"
        assert jobs.get(interrupted.job_id).error == INTERRUPTED
        counts = jobs.counts()
        assert counts["cancelled"] == 2 and counts["failed"] == 3
    finally:
        jobs.stop()
        db.close()
        store.close()


def test_job_records_survive_a_restart_and_interrupted_jobs_are_failed(sample_store_template: Path, tmp_path: Path) -> None:
    db_path = copy_store(sample_store_template, tmp_path)
    with start_mirror(db_path) as served, served.client() as client:
        done = check_envelope(client.post("/v1/export", data={"dataset": "peer_support", "format": "csv"}), 202)
        before = finished_job(client, done["export_id"])
        (snapshot,) = served.mirror.config.objects_dir.glob("objects-*.arrow")
        built = snapshot.stat().st_mtime_ns
    # What a server killed mid-job leaves behind: a job still "running", its
    # export "processing", and a job nobody started yet.
    with Store(db_path) as store, store.transaction() as con:
        for job_id, status in (("job_crashed_aaaaaaaaaaaaaaaa", "running"), ("exp_waitingaaaaaaaaaaaaaaaa", "queued")):
            con.execute(
                "INSERT INTO server_jobs (job_id, processing_type, dataset_name, parameters, status, progress, submitted_at, started_at) "
                "VALUES (?, 'export', 'peer_support', '{\"format\": \"jsonl\"}', ?, 40, now(), now())",
                [job_id, status],
            )
        con.execute(
            "INSERT INTO server_exports SELECT 'exp_waitingaaaaaaaaaaaaaaaa', dataset, 'jsonl', filters, "
            "'exp_waitingaaaaaaaaaaaaaaaa.jsonl', 'w.jsonl', 'application/x-ndjson', 'processing', NULL, NULL, 1, now(), NULL, "
            "now() + INTERVAL 1 HOUR, NULL, key_id, NULL FROM server_exports WHERE export_id = ?",
            [done["export_id"]],
        )
    with start_mirror(db_path) as served, served.client() as client:
        after = check_envelope(client.get(f"/v1/processing/jobs/{done['export_id']}"), 200)
        # the same record; only the server's address (in download_url) moved
        assert after.pop("download_url").startswith(served.url) and before.pop("download_url").endswith("/download")
        assert after == before
        crashed = check_envelope(client.get("/v1/processing/jobs/job_crashed_aaaaaaaaaaaaaaaa"), 200)
        assert crashed["status"] == "failed" and crashed["error"] == INTERRUPTED and crashed["completed_at"]
        resumed = finished_job(client, "exp_waitingaaaaaaaaaaaaaaaa")
        assert resumed["status"] == "completed", resumed
        assert client.get("/v1/exports/exp_waitingaaaaaaaaaaaaaaaa/download").status_code == 200
        assert client.get(f"/v1/exports/{done['export_id']}/download").status_code == 200
        assert served.mirror.recovered == {"failed": 1, "requeued": 1}
        # the conversations did not change: the served-object file is mapped again, not rebuilt
        assert [p.name for p in served.mirror.config.objects_dir.glob("objects-*.arrow")] == [snapshot.name]
        assert snapshot.stat().st_mtime_ns == built


def test_pending_then_expired_export(sample_store_template: Path, tmp_path: Path) -> None:
    db_path = copy_store(sample_store_template, tmp_path)
    with start_mirror(db_path, export_ttl=2.0, download_hold=0.1) as served, served.client() as client:
        gate = threading.Event()
        served.mirror.jobs.runners["hold"] = lambda ctx: {"held": gate.wait(30)}
        served.mirror.jobs.submit("hold", "*", {})
        created = check_envelope(client.post("/v1/export", data={"format": "jsonl", "dataset": "peer_support"}), 202)
        pending = client.get(created["download_url"])
        data = check_envelope(pending, 202)
        assert data["status"] == "processing" and pending.headers["retry-after"] == "1"
        gate.set()
        finished_job(client, created["export_id"])
        assert client.get(created["download_url"]).status_code == 200
        path = served.mirror.config.exports_dir / f"{created['export_id']}.jsonl"
        assert path.is_file() and path.stat().st_mode & 0o077 == 0
        wait_until(lambda: client.get(created["download_url"]).status_code == 404, timeout=10, what="expiry")
        error = check_envelope(client.get(created["download_url"]), 404, code="RESOURCE_NOT_FOUND")
        assert "expired" in error["message"]
        assert served.mirror.exports.sweep() == 1
        assert not path.exists()


def test_download_holds_until_a_quick_export_is_written(sample_store_template: Path, tmp_path: Path) -> None:
    """A download asked for while the export is still being written waits
    for it (up to download_hold) instead of sending the client away for a
    whole second; past the hold it answers 202 with the current progress."""
    db_path = copy_store(sample_store_template, tmp_path)
    with start_mirror(db_path, download_hold=10.0) as served, served.client() as client:
        gate = threading.Event()
        served.mirror.jobs.runners["hold"] = lambda ctx: {"held": gate.wait(30)}
        served.mirror.jobs.submit("hold", "*", {})  # the export queues behind it
        created = check_envelope(client.post("/v1/export", data={"format": "openai", "dataset": "peer_support"}), 202)
        threading.Timer(0.3, gate.set).start()
        started = time.monotonic()
        got = client.get(created["download_url"], timeout=30)
        assert got.status_code == 200, got.text  # one request: no 202, no Retry-After round
        assert time.monotonic() - started >= 0.3
        lines = [orjson.loads(line) for line in got.text.splitlines()]
        assert lines and all(set(line) == {"messages"} for line in lines)
    with start_mirror(copy_store(sample_store_template, tmp_path / "short"), download_hold=0.2) as served, served.client() as client:
        gate = threading.Event()
        served.mirror.jobs.runners["hold"] = lambda ctx: {"held": gate.wait(30)}
        served.mirror.jobs.submit("hold", "*", {})
        created = check_envelope(client.post("/v1/export", data={"format": "jsonl", "dataset": "peer_support"}), 202)
        data = check_envelope(client.get(created["download_url"]), 202)
        assert data["status"] == "processing" and data["progress"] == 0
        gate.set()
        finished_job(client, created["export_id"])
        assert client.get(created["download_url"]).status_code == 200


def test_export_progress_follows_the_bytes_written(mirror: Served, tmp_path: Path) -> None:
    """The running export's progress is its temporary output's size against
    the estimate (export() reports no progress of its own)."""
    from pe_toolkit.server.jobs import Job, JobContext

    manager = mirror.mirror.jobs
    job = Job("exp_progressaaaaaaaaaaaaaaaa", "export", "*", {})
    ctx = JobContext(job, manager)
    part = mirror.mirror.exports.folder / ".exp_progress.jsonl.123abc.part"
    stop = threading.Event()
    watcher = threading.Thread(target=mirror.mirror.exports._watch_size, args=(ctx, "exp_progress.jsonl", 1000, stop))
    watcher.start()
    try:
        for size, percent in ((250, 25.0), (600, 60.0), (2000, 95.0)):
            part.write_bytes(b"x" * size)
            wait_until(lambda percent=percent: job.progress >= percent, what=f"{percent}%")
            assert job.progress == percent
    finally:
        stop.set()
        watcher.join()
        part.unlink()


def test_cancelled_export_downloads_as_an_export_error(mirror: Served) -> None:
    gate = threading.Event()
    mirror.mirror.jobs.runners["hold"] = lambda ctx: {"held": gate.wait(30)}
    mirror.mirror.jobs.submit("hold", "*", {})
    try:
        with mirror.client() as client:
            created = check_envelope(client.post("/v1/export", data={"format": "parquet"}), 202)
            cancelled = check_envelope(client.delete(f"/v1/processing/jobs/{created['export_id']}"), 200)
            assert cancelled["status"] == "cancelled"
            error = check_envelope(client.get(created["download_url"]), 500, code="EXPORT_ERROR")
            assert "cancelled" in error["message"]
            status = check_envelope(client.get(f"/v1/exports/{created['export_id']}"), 200)
            assert status["status"] == "failed" and "cancelled" in status["error"]
            again = check_envelope(client.delete(f"/v1/processing/jobs/{created['export_id']}"), 200)
            assert again["status"] == "cancelled"
            check_envelope(client.delete("/v1/processing/jobs/job_unknown"), 404, code="RESOURCE_NOT_FOUND")
    finally:
        gate.set()


def test_what_the_server_writes_is_owner_only(sample_store_template: Path, tmp_path: Path) -> None:
    db_path = copy_store(sample_store_template, tmp_path)
    with start_mirror(db_path) as served:
        wal = Path(f"{db_path}.wal")
        # the search index was just written by the server alone
        assert wal.exists() and wal.stat().st_mode & 0o077 == 0
        with served.client() as client:
            created = check_envelope(client.post("/v1/export", data={"format": "huggingface", "dataset": "cbt_coaching"}), 202)
            finished_job(client, created["export_id"])
        state = served.mirror.config.state_dir
        found = [p for p in (state, *state.rglob("*"), wal, db_path) if p.exists()]
        assert any(p.suffix == ".tar" for p in found) and any(p.suffix == ".arrow" for p in found)
        assert {p: oct(p.stat().st_mode & 0o777) for p in found if p.stat().st_mode & 0o077} == {}

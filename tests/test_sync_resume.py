"""Interrupted syncs: the server dies mid-sync (the client fails fast once
the breaker opens, and the same command resumes after a restart), and the
syncing process is killed with SIGKILL (a re-run gives exactly the
source, nothing twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pe_toolkit.apisync import state as sync_state
from pe_toolkit.cli import cli
from pe_toolkit.client import flows
from pe_toolkit.events import bus as default_bus
from pe_toolkit.store import Store

from .client_support import KEY, assert_equal_to_source, build_source, port_of
from .server_support import copy_store, start_mirror

N = 2000


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path, _ = build_source(tmp_path_factory.mktemp("resume_source"), N, seed=31)
    return path


def test_server_stopped_mid_sync_then_the_same_command_resumes(source, tmp_path, monkeypatch) -> None:
    db = copy_store(source, tmp_path / "served")
    cache = tmp_path / "mine.duckdb"
    runner = CliRunner()
    command = ["--db", str(cache), "sync", "--mode", "incremental", "--no-progress"]
    with start_mirror(db) as served:
        url, port = served.url, port_of(served.url)
        monkeypatch.setenv("PE_API_URL", url)
        monkeypatch.setenv("PE_API_KEY", KEY)
        batches = []

        def crash_after_first_batch(event) -> None:
            if event.payload.get("phase") == "fetch":
                batches.append(event.payload["done"])
                if len(batches) == 1:
                    served.stop()  # the server dies between two batches

        stop = default_bus.subscribe("sync.progress", crash_after_first_batch)
        try:
            failed = runner.invoke(cli, command)
        finally:
            stop()
    assert failed.exit_code == 1
    assert "circuit open" in failed.output and "failing fast" in failed.output
    assert len(batches) == 1  # no further batch was attempted once the breaker opened
    with Store(cache) as store:
        checkpoint = sync_state.load_checkpoint(store, f"api:{url}/v1", sync_state.scope_key(None, None, None))
        assert checkpoint is not None and checkpoint.phase == "fetching"
        done_before = store.count()
        assert 0 < done_before < N
        assert store.scalar("SELECT status FROM ingest_runs WHERE kind = 'sync'") == "failed"

    with start_mirror(db, port=port) as served:  # restarted, same URL
        resumed = runner.invoke(cli, command)
        assert resumed.exit_code == 0, resumed.output
        assert "resumed" in resumed.output and f"{N - done_before:,} new" in resumed.output
        with Store(cache) as store:
            assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / "check")
            assert sync_state.load_checkpoint(store, f"api:{url}/v1", sync_state.scope_key(None, None, None)) is None


CHILD = textwrap.dedent(
    """
    import sys
    from pe_toolkit.client import Client
    from pe_toolkit.events import EventBus
    from pe_toolkit.apisync import sync
    from pe_toolkit.store import Store
    db, url, key, mode = sys.argv[1:5]
    bus = EventBus()
    bus.subscribe("conversation.created", lambda e: print("batch", len(e.payload["ids"]), flush=True))
    with Store(db) as store, Client(key, url) as client:
        report = sync(store, client, mode=mode, progress=False, events=bus, batch_size=200, chunk_bytes=256 * 1024)
    print("finished", report.resumed, report.inserted, report.unchanged, flush=True)
    """
)


@pytest.mark.parametrize("mode", ["bulk", "incremental"])
def test_sigkill_mid_sync_then_rerun_gives_exactly_the_source(source, tmp_path, mode) -> None:
    db = copy_store(source, tmp_path / "served")
    cache = tmp_path / "mine.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PE_")}
    with start_mirror(db) as served:
        args = [sys.executable, "-c", CHILD, str(cache), served.url, KEY, mode]
        with subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stdout is not None
            seen = 0
            for line in proc.stdout:
                if line.startswith("batch"):
                    seen += 1
                    if seen == 3:
                        os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no finally
                        break
            proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        with Store(cache) as store:
            partial = store.count()
            assert 0 < partial < N
        rerun = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        finished = rerun.stdout.strip().splitlines()[-1].split()
        assert finished[:2] == ["finished", "True"]  # resumed from the checkpoint
        assert int(finished[2]) == N - partial
        with Store(cache) as store:
            assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / "check")
            assert store.scalar("SELECT count(*) FROM ingest_runs WHERE status = 'running'") == 0


class _Downloads:
    """ASGI middleware recording each export download: (Range, status, body bytes sent)."""

    def __init__(self, app: Any) -> None:
        self.app, self.state, self.seen = app, app.state, []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/download"):
            await self.app(scope, receive, send)
            return
        asked = dict(scope["headers"]).get(b"range", b"").decode() or None
        seen = [asked, None, 0]
        self.seen.append(seen)

        async def counting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen[1] = message["status"]
            elif message["type"] == "http.response.body":
                seen[2] += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting)


def test_a_first_sync_stopped_mid_download_keeps_its_cache_and_resumes(source, tmp_path, monkeypatch) -> None:
    """Ctrl-C while the first sync into a new cache downloads its export.
    Before, the new cache was removed as one that stored nothing, and with
    it the checkpoint (the export's id) and the partial download beside it:
    the next run asked for an export again and downloaded it from byte 0
    (a first sync is the longest download there is). A checkpoint now
    counts as something stored: the cache stays and the rerun resumes the
    download at the byte where it stopped."""
    db = copy_store(source, tmp_path / "served")
    cache = tmp_path / "new.duckdb"
    command = ["--db", str(cache), "sync", "--no-progress"]
    recorders: list[_Downloads] = []
    real_open_part = flows.open_part

    class CtrlC:
        """The part's file, with a Ctrl-C once a megabyte is written (as it
        lands while the client reads the body)."""

        def __init__(self, part: Path) -> None:
            self.fh, self.written = real_open_part(part), 0

        def write(self, data: bytes) -> int:
            n = self.fh.write(data)
            self.written += n
            if self.written >= 1 << 20:
                raise KeyboardInterrupt
            return n

        def __enter__(self) -> CtrlC:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

    def wrap(app: Any) -> _Downloads:
        recorders.append(_Downloads(app))
        return recorders[0]

    with start_mirror(db, wrap=wrap) as served:
        monkeypatch.setenv("PE_API_URL", served.url)
        monkeypatch.setenv("PE_API_KEY", KEY)
        monkeypatch.setattr(flows, "open_part", CtrlC)
        stopped = CliRunner().invoke(cli, command)
        monkeypatch.setattr(flows, "open_part", real_open_part)
        assert stopped.exit_code == 130, stopped.output
        assert cache.exists(), "the new cache was removed with its checkpoint"
        [part] = sync_state.work_dir(cache).glob("*.jsonl.part")
        kept = part.stat().st_size
        assert kept >= 1 << 20
        recorders[0].seen.clear()
        resumed = CliRunner().invoke(cli, command)
        assert resumed.exit_code == 0, resumed.output
        assert "resum" in resumed.output
        [(asked, status, sent)] = [s for s in recorders[0].seen if s[0] is not None]
        whole = served.mirror.exports.resolve(part.name.removesuffix(".jsonl.part"))[0].stat().st_size
        assert (asked, status, sent) == (f"bytes={kept}-", 206, whole - kept)
        with Store(cache) as store:
            assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / "check")


def test_a_first_sync_whose_every_export_failed_leaves_no_cache(source, tmp_path, monkeypatch) -> None:
    """Every export fails on the server: the first sync into a new cache
    ends with an error and, holding no export left to resume, removes the
    cache it made, as any first run that stored nothing does (a review:
    keeping every cache with a checkpoint left this one behind, with a
    checkpoint naming no export)."""
    db = copy_store(source, tmp_path / "served")
    cache = tmp_path / "new.duckdb"
    with start_mirror(db) as served:
        runners = served.mirror.jobs.runners

        def failing(ctx: Any) -> None:
            raise RuntimeError("disk trouble")

        runners["export"] = failing
        monkeypatch.setenv("PE_API_URL", served.url)
        monkeypatch.setenv("PE_API_KEY", KEY)
        result = CliRunner().invoke(cli, ["--db", str(cache), "sync", "--no-progress", "--mode", "bulk"])
    assert result.exit_code not in (0, 130), result.output
    assert "EXPORT_ERROR" in result.output or "export" in result.output.lower(), result.output
    assert not cache.exists(), "a cache with nothing to resume was kept"
    assert not sync_state.work_dir(cache).exists()


def test_an_incremental_checkpoint_keeps_a_new_cache_and_a_bulk_one_without_export_does_not(tmp_path) -> None:
    """What a failed first run leaves: a first incremental sync stopped while
    it lists resumes from its checkpoint (no export in it), so the cache
    stays; a bulk checkpoint naming no export (every export failed) has
    nothing to resume, so the new cache goes (a review: keeping only
    checkpoints with an export dropped the incremental one)."""
    from pe_toolkit.cli._common import _remove_if_empty

    for mode, state, kept in (("incremental", {"pager": {"cursor": "abc"}}, True), ("bulk", {"since": None}, False)):
        cache = tmp_path / f"{mode}.duckdb"
        with Store(cache) as store:
            sync_state.save_checkpoint(store, "api:http://127.0.0.1:1", "dataset=*;tier=*;min_quality=*", "run-1", mode, "listing", state)
            _remove_if_empty(store, cache.resolve(), Path(f"{cache}.wal"), [], what="sync", say=False)
        assert cache.exists() is kept, mode

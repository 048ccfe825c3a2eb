"""Bulk sync of 5,000 conversations through a misbehaving server (see
sync_fault_support): the export request and every download hit faults,
the export file itself arrives cut short, as an HTML page and dropped. The
store must end equal to the source (ids and content hashes); conversations
the source serves damaged go to dead_letters, are fetched again by the
next sync, and are resolved once the source is fixed."""

from __future__ import annotations

import pytest

from pe_toolkit.apisync import sync
from pe_toolkit.events import EventBus
from pe_toolkit.store import Store

from .client_support import assert_equal_to_source, make_client
from .fault_injection import Faults
from .server_support import copy_store, start_mirror, wait_until
from .sync_fault_support import FAULTS, INVALID, N, fix_source

# Fault-injection syncs of thousands of conversations (minutes): out of `make test-fast`.
pytestmark = pytest.mark.slow


def test_bulk_then_incremental_through_faults(source, tmp_path) -> None:
    path, bad, originals = source
    db = copy_store(path, tmp_path / "served")
    bus = EventBus()
    with start_mirror(db, faults=Faults(seed=3, burst_length=2, **FAULTS)) as served:
        injector = served.injector

        scripted: list[str] = []

        def damage_the_download(event) -> None:
            # Once the export file is ready, its next downloads are cut in
            # half (with a matching Content-Length), replaced by an HTML
            # page, and dropped: all must be caught and downloaded again.
            if event.payload.get("phase") == "download" and not scripted:
                eid = event.payload["export_id"]
                wait_until(lambda: (served.mirror.exports.describe(eid, "") or {}).get("status") == "ready", what="the export")
                scripted.append(eid)
                injector.script("truncate", "invalid_json", "drop")

        bus.subscribe("sync.progress", damage_the_download)
        injector.script("503", "500", "429", "delay")  # the first requests, whatever the dice say
        with make_client(served.url, timeout=0.4) as client, Store(tmp_path / "mine.duckdb") as store:
            report = sync(store, client, progress=False, events=bus)
            assert report.mode == "bulk" and report.status == "completed"
            assert report.inserted == N - INVALID and report.invalid == INVALID
            cursor = served.mirror.store.cursor()
            assert_equal_to_source(store, cursor, tmp_path / "check1", invalid=bad)
            assert {k for k, v in injector.stats.items() if v} >= {"500", "503", "429", "delay", "truncate", "invalid_json", "drop"}

            # The next sync fetches the dead letters again: still damaged, still set aside.
            again = sync(store, client, progress=False, events=bus)
            assert again.mode == "incremental" and again.planned == {"new": INVALID}
            assert again.invalid == INVALID and again.inserted == 0
            assert store.dead_letters()["attempts"].to_list() == [2] * INVALID

            # Upstream fixes them: the next sync loads them and resolves the dead letters.
            fix_source(served, originals, tmp_path)
            fixed = sync(store, client, progress=False, events=bus)
            assert fixed.mode == "incremental" and fixed.inserted == INVALID and fixed.resolved == INVALID, (fixed, store.dead_letters().to_dicts())
            assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / "check2")
            assert store.dead_letters(include_resolved=True)["resolved_at"].null_count() == 0



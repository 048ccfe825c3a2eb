"""Incremental sync of 5,000 conversations, one GET each, through a
misbehaving server (see sync_fault_support): the store must end equal to
the source, damaged conversations in dead_letters."""

from __future__ import annotations

import pytest

from pe_toolkit.apisync import sync
from pe_toolkit.store import Store

from .client_support import api_objects, assert_equal_to_source, make_client
from .fault_injection import Faults
from .server_support import copy_store, start_mirror
from .sync_fault_support import FAULTS, INVALID, N

# Fault-injection syncs of thousands of conversations (minutes): out of `make test-fast`.
pytestmark = pytest.mark.slow


def test_incremental_fetch_of_5000_through_faults(source, tmp_path) -> None:
    path, bad, _ = source
    db = copy_store(path, tmp_path / "served")
    with start_mirror(db, faults=Faults(seed=8, **FAULTS)) as served:
        injector = served.injector
        injector.script("429")  # at least one burst, whatever the dice say
        with make_client(served.url, timeout=0.4, concurrency=32) as client, Store(tmp_path / "mine.duckdb") as store:
            report = sync(store, client, mode="incremental", progress=False)
            assert report.status == "completed" and report.failed == 0
            assert report.listed == N and report.fetched == N
            assert report.inserted == N - INVALID and report.invalid == INVALID
            assert_equal_to_source(store, served.mirror.store.cursor(), tmp_path / "check", invalid=bad)
    # Every kind of fault really happened, many times.
    assert injector.stats["500"] + injector.stats["503"] > 0.1 * N
    assert min(injector.stats[k] for k in ("delay", "429", "truncate", "invalid_json", "drop")) > 0
    with Store(tmp_path / "mine.duckdb", read_only=True) as store:
        assert len(api_objects(store)) == N - INVALID

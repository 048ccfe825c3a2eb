"""AsyncClient against the real mirror: the same core, awaited."""

from __future__ import annotations

import asyncio

import orjson
import polars as pl
import pytest

from pe_toolkit.client import AsyncClient, Conversation
from pe_toolkit.client.core import BreakerPolicy
from pe_toolkit.client.flows import part_path
from pe_toolkit.errors import AuthenticationError, CircuitOpenError, NotFoundError, RequestValidationError

from .client_support import FAST_RETRY, KEY, api_objects
from .fault_injection import Faults
from .server_support import Served, copy_store, start_mirror


def run(coro):
    return asyncio.run(coro)


def _client(url: str, **kwargs) -> AsyncClient:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("breaker", BreakerPolicy(failure_threshold=1000, recovery_timeout=1))
    return AsyncClient(kwargs.pop("key", KEY), url, **kwargs)


def test_routes_and_typed_results(mirror: Served) -> None:
    table = mirror.mirror.store.conversations()

    async def main():
        async with _client(mirror.url) as api:
            assert (await api.health()).healthy
            assert (await api.check_endpoints()) == {mirror.url + "/v1": True}
            datasets = await api.list_datasets()
            page = await api.list_conversations(tier="basic", limit=5)
            conv = await api.get_conversation(page.items[0].id)
            metrics = await api.get_quality_metrics()
            stats = await api.get_statistics()
            hits = await api.search("panic", limit=3)
            with pytest.raises(NotFoundError):
                await api.get_dataset("nope")
            with pytest.raises(RequestValidationError):
                await api.list_conversations(limit=0)
            return datasets, page, conv, metrics, stats, hits

    datasets, page, conv, metrics, stats, hits = run(main())
    assert datasets.total == table["dataset"].n_unique()
    assert page.total == table.filter(pl.col("tier") == "basic").height
    assert isinstance(conv, Conversation) and conv.to_dict() == mirror.mirror.store.conversation(conv.id)
    assert metrics.total_conversations == stats.total_conversations == table.height
    assert len(hits) <= 3


def test_fetch_many_iterate_and_frame(mirror: Served) -> None:
    table = mirror.mirror.store.conversations()
    ids = table["id"].sample(40, seed=2).to_list()

    async def main():
        async with _client(mirror.url, concurrency=5) as api:
            convs = await api.fetch_conversations(ids)
            raw = [x async for x in api.fetch_each([ids[0], "gone"], raw=True)]
            summaries = [s.id async for s in api.iter_conversations(page_size=500)]
            full = [c async for c in api.iter_conversations(tier="research", min_quality=0.95, full=True, page_size=20)]
            frame = await api.conversations_frame(dataset=table["dataset"][0])
            return convs, raw, summaries, full, frame

    convs, raw, summaries, full, frame = run(main())
    assert [c.id for c in convs] == ids
    results = dict(raw)
    assert isinstance(results["gone"], NotFoundError) and results[ids[0]]["id"] == ids[0]
    assert len(summaries) == len(set(summaries)) == table.height
    expected = table.filter((pl.col("tier") == "research") & (pl.col("overall_quality") >= 0.95))
    assert sorted(c.id for c in full) == sorted(expected["id"])
    assert frame.height == table.filter(pl.col("dataset") == table["dataset"][0]).height


def test_jobs_and_exports(mirror: Served, tmp_path) -> None:
    async def main():
        async with _client(mirror.url) as api:
            job = await api.submit_job("*", "export", {"format": "jsonl", "tier": "clinical"})
            done = await api.wait_for_job(job, poll_interval=0.05, timeout=120, progress=False)
            info = await api.start_export(tier="clinical")
            await api.wait_for_export(info, timeout=120, progress=False)
            path = await api.download_export(info, tmp_path / "clinical.jsonl", progress=False)
            with pytest.raises(NotFoundError):
                await api.get_job("job_nope_00000000000000000")
            return done, path

    done, path = run(main())
    assert done.status == "completed"
    objects = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    served = api_objects(mirror.mirror.store.cursor())
    table = mirror.mirror.store.conversations()
    assert sorted(o["id"] for o in objects) == sorted(table.filter(pl.col("tier") == "clinical")["id"])
    assert all(o == served[o["id"]] for o in objects)


def test_a_download_resumes_from_its_part_file_even_when_the_part_is_complete(mirror: Served, tmp_path) -> None:
    """The async twin of the sync test: a complete `.part` (416 `bytes
    */SIZE` to the resume) is finished, a longer one discarded and fetched
    again, a shorter one resumed."""
    path, part = tmp_path / "again.jsonl", part_path(tmp_path / "again.jsonl")

    async def main() -> list[bytes]:
        async with _client(mirror.url) as api:
            info = await api.start_export(tier="clinical")
            whole = (await api.download_export(info, tmp_path / "whole.jsonl", timeout=120, progress=False)).read_bytes()
            got = [whole]
            for leftover in (whole, whole + b'{"id": "not_in_the_export"}\n', whole[: len(whole) // 2]):
                path.unlink(missing_ok=True)
                part.write_bytes(leftover)
                got.append((await api.download_export(info, path, timeout=120, progress=False)).read_bytes())
                assert not part.exists()
            return got

    whole, *downloads = run(main())
    assert whole and downloads == [whole] * 3


def test_errors_and_the_key(mirror: Served) -> None:
    secret = "pe_async_wrong_key_77777777"

    async def main():
        async with _client(mirror.url, key=secret) as api:
            assert secret not in repr(api)
            with pytest.raises(AuthenticationError) as info:
                await api.list_datasets()
            return info.value

    exc = run(main())
    assert secret not in str(exc) and exc.status == 401


def test_retries_through_faults_and_breaker_fails_fast(sample_store_template, tmp_path) -> None:
    db = copy_store(sample_store_template, tmp_path / "faulty")
    with start_mirror(db, faults=Faults(seed=11)) as served:
        injector = served.injector
        ids = served.mirror.store.conversations(limit=30)["id"].to_list()
        injector.script("503", "500", "truncate", "invalid_json", "drop", "429")

        async def main():
            async with _client(served.url, concurrency=4) as api:
                return await api.fetch_conversations(ids)

        convs = run(main())
        assert [c.id for c in convs] == ids
        assert injector.stats["503"] == injector.stats["500"] == injector.stats["truncate"] == 1
        assert injector.stats["429"] >= 1

        injector.configure(error_503=1.0)

        async def dead():
            async with _client(served.url, breaker=BreakerPolicy(failure_threshold=4, recovery_timeout=60)) as api:
                with pytest.raises(CircuitOpenError):
                    await api.get_conversation(ids[0])
                before = sum(injector.stats.values())
                with pytest.raises(CircuitOpenError):
                    await api.get_conversation(ids[1])
                return before, sum(injector.stats.values())

        before, after = run(dead())
        assert before == after  # failing fast: no request left the client

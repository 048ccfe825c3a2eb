"""The compatibility facade: a script written for the published SDK runs
unchanged against the mirror (only the import line names pe_toolkit)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from pe_toolkit import PixelatedEmpathyAPI
from pe_toolkit.client import PixelatedEmpathyAPIError, RateLimitError

from .client_support import KEY
from .conftest import child_env
from .server_support import Served

# The published SDK's README and integration examples, condensed: list,
# iterate, validate, search, process and wait, export. Method names,
# arguments and the dict keys read are the SDK's.
SCRIPT = textwrap.dedent(
    """
    import sys
    from pe_toolkit import PixelatedEmpathyAPI

    api = PixelatedEmpathyAPI(sys.argv[2], base_url=sys.argv[1], timeout=30, max_retries=3)
    if not api.health_check():
        print("API is not available")
        sys.exit(1)

    datasets = api.list_datasets()
    print(f"datasets {len(datasets)}")
    for dataset in datasets:
        print(f"dataset {dataset['name']} {dataset['conversations']}")
    info = api.get_dataset_info(datasets[0]["name"])
    print(f"info {info['name']} {info['statistics']['total_conversations']}")

    conversations = api.get_conversations(tier="professional", limit=5)
    print(f"professional {len(conversations['conversations'])} of {conversations['total']}")
    first = api.get_conversation(conversations["conversations"][0]["id"])
    print(f"first {first['id']} {len(first['messages'])}")

    count = 0
    for conversation in api.iter_conversations(tier="research", batch_size=100):
        count += 1
    print(f"research {count}")

    result = api.validate_conversation_quality({
        "id": "test_conv_001",
        "messages": [
            {"role": "user", "content": "I'm feeling anxious about my job interview tomorrow."},
            {"role": "assistant", "content": "It's natural to feel anxious before an important interview. What worries you most?"},
        ],
    })
    print(f"validated {result['conversation_id']} {result['tier_classification']}")

    search = api.search_conversations("anxiety therapy techniques", filters={"tier": "professional", "min_quality": 0.7})
    print(f"search {search['total_matches']}")
    metrics = api.get_quality_metrics()
    print(f"metrics {metrics['overall_statistics']['total_conversations']}")

    job = api.submit_processing_job(datasets[0]["name"], "export", {"format": "jsonl"})
    status = api.get_job_status(job["job_id"])
    final = api.wait_for_job(job["job_id"], poll_interval=1, timeout=300)
    print(f"job {final['status']} {final['progress']}")

    export = api.export_data(dataset=datasets[0]["name"], format="jsonl", tier="research")
    print(f"export {export['format']} {export['download_url'].endswith('/download')}")
    stats = api.get_statistics_overview()
    print(f"stats {stats['total_conversations']}")
    """
)


def test_a_published_sdk_script_runs_unchanged(mirror: Served, tmp_path) -> None:
    script = tmp_path / "sdk_example.py"
    script.write_text(SCRIPT)
    env = child_env()
    env["PE_CACHE"] = str(tmp_path / "unused.duckdb")
    out = subprocess.run(
        [sys.executable, str(script), mirror.url + "/v1", KEY], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    table = mirror.mirror.store.conversations()
    assert lines["datasets"] == str(table["dataset"].n_unique())
    assert lines["professional"] == f"5 of {table.filter(pl.col('tier') == 'professional').height}"
    assert lines["research"] == str(table.filter(pl.col("tier") == "research").height)
    assert lines["validated"].startswith("test_conv_001 ")
    status, progress = lines["job"].split()
    assert status == "completed" and float(progress) == 100
    assert lines["export"] == "jsonl True"
    assert lines["stats"] == str(table.height)
    assert KEY not in out.stdout and KEY not in out.stderr


def test_facade_returns_plain_dicts_and_sdk_error_names(mirror: Served) -> None:
    with PixelatedEmpathyAPI(KEY, base_url=mirror.url + "/v1", timeout=10, max_retries=1) as api:
        page = api.get_conversations(limit=3)
        assert type(page) is dict and type(page["conversations"][0]) is dict
        conv = api.get_conversation(page["conversations"][0]["id"])
        assert conv == mirror.mirror.store.conversation(conv["id"])
        ids = [c["id"] for c in api.iter_conversations(batch_size=250)]
        assert len(ids) == len(set(ids)) == mirror.mirror.store.count()
        with pytest.raises(PixelatedEmpathyAPIError) as info:
            api.get_conversation("not_there")
        assert info.value.status == 404
        assert KEY not in repr(api) and KEY not in str(vars(api))
    assert issubclass(RateLimitError, PixelatedEmpathyAPIError)


def test_health_check_is_false_not_an_exception_when_down() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    api = PixelatedEmpathyAPI(KEY, base_url=f"http://127.0.0.1:{port}/v1", timeout=2, max_retries=0)
    assert api.health_check() is False


def test_errors_answer_to_the_sdks_attribute_names_too(mirror: Served) -> None:
    with PixelatedEmpathyAPI(KEY, base_url=mirror.url + "/v1", timeout=10, max_retries=0) as api:
        with pytest.raises(PixelatedEmpathyAPIError) as info:
            api.get_conversation("not_there")
    error = info.value
    assert (error.status_code, error.error_code) == (error.status, error.code) == (404, "RESOURCE_NOT_FOUND")
    down = PixelatedEmpathyAPI(KEY, base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2, max_retries=0)
    with pytest.raises(PixelatedEmpathyAPIError) as info:
        down.list_datasets()
    assert info.value.status_code is None and info.value.error_code is None  # no answer, so no status


def test_the_background_task_pattern_polls_the_exports_job_id(mirror: Served) -> None:
    """The seed's pattern: export, poll job_id until done, fetch download_url."""
    import httpx

    with PixelatedEmpathyAPI(KEY, base_url=mirror.url + "/v1", timeout=10, max_retries=1) as api:
        export_job = api.export_data(dataset="*", format="jsonl", tier="clinical")
        status = api.wait_for_job(export_job["job_id"], poll_interval=0.2, timeout=120)
    assert status["status"] == "completed"
    response = httpx.get(status["download_url"], headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    table = mirror.mirror.store.conversations()
    assert len(response.content.splitlines()) == table.filter(pl.col("tier") == "clinical").height


def test_iter_conversations_serves_for_and_async_for(mirror: Served) -> None:
    import asyncio

    expected = sorted(mirror.mirror.store.conversations().filter(pl.col("tier") == "research")["id"].to_list())
    with PixelatedEmpathyAPI(KEY, base_url=mirror.url + "/v1", timeout=10, max_retries=1) as api:
        plain = [c["id"] for c in api.iter_conversations(tier="research", batch_size=40)]

        async def pull() -> list[str]:
            return [c["id"] async for c in api.iter_conversations(tier="research", batch_size=40)]

        awaited = asyncio.run(pull())
    assert sorted(plain) == sorted(awaited) == expected
    assert len(awaited) == len(set(awaited))


def test_async_iteration_leaves_the_event_loop_free_while_pages_load(sample_store_template, tmp_path) -> None:
    """Pages answer slowly (a seeded delay on the list route); a ticker
    task must keep ticking while they load, not only between them."""
    import asyncio
    import time

    from .fault_injection import Faults
    from .server_support import copy_store, start_mirror

    faults = Faults(delay=1.0, delay_seconds=0.6, paths=r"^/v1/conversations$", seed=3)
    with start_mirror(copy_store(sample_store_template, tmp_path), faults=faults) as served:
        with PixelatedEmpathyAPI(KEY, base_url=served.url + "/v1", timeout=10, max_retries=1) as api:

            async def run() -> tuple[int, float, float]:
                ticks: list[float] = []
                done = asyncio.Event()

                async def ticker() -> None:
                    while not done.is_set():
                        ticks.append(time.monotonic())
                        await asyncio.sleep(0.01)

                task = asyncio.create_task(ticker())
                await asyncio.sleep(0)
                started = time.monotonic()
                count = 0
                async for _ in api.iter_conversations(batch_size=400):
                    count += 1
                finished = time.monotonic()
                done.set()
                await task
                marks = [started, *(t for t in ticks if started <= t <= finished), finished]
                return count, finished - started, max(b - a for a, b in itertools.pairwise(marks))

            count, elapsed, longest_gap = asyncio.run(run())
        assert count == served.mirror.store.count()
    assert elapsed > 0.5  # the delays happened
    assert longest_gap < 0.3 * elapsed, (longest_gap, elapsed)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

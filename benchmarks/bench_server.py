"""Offline mirror benchmark: the API served from a 100k-conversation store.

Measures, with one sequential httpx client on loopback (the server runs in
its own process, as `pe-toolkit serve`):

- single-conversation GETs (``/v1/conversations/{id}``, random ids over the
  whole store, so most reads are cold) through the full app: key check,
  rate-limit headers, envelope; next to a bare Starlette + orjson endpoint
  timed in the same run, rounds interleaved (the machine is noisy);
- pages of 1,000 summaries (``/v1/conversations?limit=1000&offset=...``);
- an export of every conversation through ``POST /v1/export`` (submit ->
  job completed), next to ``pe_toolkit.exports.export`` called directly on
  the same store after the server stopped, and the download.

    python benchmarks/bench_server.py                      # 100k conversations
    python benchmarks/bench_server.py --n 20000 --rounds 3 # quicker

The store is built once and cached in benchmarks/.data/ (synthetic, seed 7).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).resolve().parent / ".data"
KEY = "bench-key"
CREATED_EXPORTS: list[str] = []  # removed after the run: hundreds of MB each

BASELINE = """
import sys, orjson, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

PAD = "x" * int(sys.argv[2])  # 0: the reference's tiny body; else about a conversation's size

async def one(request):
    body = {"id": request.path_params["cid"], "pad": PAD} if PAD else {"id": request.path_params["cid"]}
    return Response(orjson.dumps(body), media_type="application/json")

app = Starlette(routes=[Route("/v1/conversations/{cid}", one)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_store(n: int) -> Path:
    from pe_toolkit import synth
    from pe_toolkit.ingest import import_file
    from pe_toolkit.store import Store

    DATA.mkdir(parents=True, exist_ok=True)
    db = DATA / f"server_{n}_seed7.duckdb"
    if db.exists():
        Store(db).close()  # apply any newer migrations
        return db
    source = DATA / f"synth_{n}_seed7.jsonl.gz"
    if not source.exists():
        synth.write(source, n, seed=7, progress=True)
    t = time.perf_counter()
    with Store(db) as store:
        import_file(store, source, progress=True)
    print(f"built {db.name} in {time.perf_counter() - t:.1f} s")
    return db


def wait_for(url: str, check, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check(httpx.get(url, timeout=2.0)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def start_app(db: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PE_SERVER_KEYS": KEY, "PE_NO_PROGRESS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pe_toolkit", "--db", str(db), "serve", "--port", str(port), "--rate-limit", "1000000000", "--no-sample"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    t = time.perf_counter()
    wait_for(url + "/health", lambda r: r.status_code == 200 and r.json()["data"]["checks"]["snapshot"] == "ready")
    print(f"mirror serving in {time.perf_counter() - t:.1f} s (conversation snapshot built or mapped)")
    # Measure nothing while the background search indexing competes for the CPU.
    wait_for(url + "/health", lambda r: r.json()["data"]["checks"]["search_index"] == "ready")
    print(f"search index ready after {time.perf_counter() - t:.1f} s")
    return proc, url


def start_baseline(pad: int = 0) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BASELINE, str(port), str(pad)])
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/v1/conversations/x", lambda r: r.status_code == 200)
    return proc, url


def timed_gets(client: httpx.Client, paths: list[str]) -> dict[str, float]:
    latencies = []
    started = time.perf_counter()
    for path in paths:
        t = time.perf_counter()
        response = client.get(path)
        latencies.append(time.perf_counter() - t)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.text[:200]}")
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(paths) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}


def bench_gets(servers: dict[str, tuple[str, dict[str, str]]], ids: list[str], requests: int, rounds: int) -> dict[str, dict[str, float]]:
    """Rounds interleaved over the servers; medians of the rounds."""
    rng = random.Random(1)
    clients = {name: httpx.Client(base_url=url, headers=headers) for name, (url, headers) in servers.items()}
    for client in clients.values():  # connection and code warm-up
        timed_gets(client, [f"/v1/conversations/{rng.choice(ids)}" for _ in range(200)])
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, client in clients.items():
            runs[name].append(timed_gets(client, [f"/v1/conversations/{rng.choice(ids)}" for _ in range(requests)]))
    return {name: median_of(r) for name, r in runs.items()}


def bench_pages(app_url: str, n: int, pages: int) -> dict[str, float]:
    rng = random.Random(2)
    app = httpx.Client(base_url=app_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    last = max(0, n // 1000 - 1)
    paths = [f"/v1/conversations?limit=1000&offset={1000 * rng.randint(0, last)}" for _ in range(pages)]
    timed_gets(app, paths[:5])
    return {k: round(v, 2) for k, v in timed_gets(app, paths).items()}


def bench_export(app_url: str, fmt: str) -> dict[str, float]:
    client = httpx.Client(base_url=app_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=600)
    t = time.perf_counter()
    created = client.post("/v1/export", data={"format": fmt}).json()["data"]
    while True:
        job = client.get(f"/v1/processing/jobs/{created['export_id']}").json()["data"]
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    done = time.perf_counter() - t
    if job["status"] != "completed":
        raise SystemExit(f"export failed: {job}")
    t = time.perf_counter()
    size = 0
    with client.stream("GET", f"/v1/exports/{created['export_id']}/download") as response:
        for chunk in response.iter_bytes(1 << 20):
            size += len(chunk)
    download = time.perf_counter() - t
    CREATED_EXPORTS.append(created["export_id"])
    return {
        "conversations": job["results"]["conversations"],
        "submit_to_completed_s": round(done, 2),
        "size_mib": round(size / 2**20, 1),
        "download_s": round(download, 2),
        "download_mib_s": round(size / 2**20 / download, 1),
    }


def asgi_cost(db: Path, ids: list[str], n: int = 20_000, rounds: int = 5) -> dict[str, float]:
    """Microseconds of server work per GET, the app called in-process with no
    network or client (steadier than req/s on a shared machine): the full
    app (key, rate limit, envelope, snapshot lookup) against a bare
    Starlette + orjson endpoint."""
    import asyncio

    import orjson
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from pe_toolkit.config import Secret
    from pe_toolkit.server import ServerConfig, create_app

    async def one(request):
        return Response(orjson.dumps({"id": request.path_params["cid"]}), media_type="application/json")

    bare = Starlette(routes=[Route("/v1/conversations/{cid}", one)])
    app = create_app(ServerConfig(db_path=db, keys=(Secret(KEY),), rate_limit=10**9))
    mirror = app.state.mirror
    mirror.snapshot.load_or_build(mirror.db.cursor())
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {KEY}".encode())]

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise SystemExit(f"status {message['status']}")

    async def run(target, paths: list[str]) -> float:
        started = time.perf_counter()
        for path in paths:
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                     "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
                     "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
            await target(scope, receive, send)
        return (time.perf_counter() - started) / len(paths) * 1e6

    async def main() -> dict[str, list[float]]:
        rng = random.Random(3)
        found: dict[str, list[float]] = {"bare_us": [], "mirror_us": []}
        for _ in range(rounds):
            paths = [f"/v1/conversations/{rng.choice(ids)}" for _ in range(n)]
            found["bare_us"].append(await run(bare, paths))
            found["mirror_us"].append(await run(app, paths))
        return found

    try:
        runs = asyncio.run(main())
    finally:
        mirror.stop()
    return {k: round(statistics.median(v), 1) for k, v in runs.items()}


def direct_export(db: Path, fmt: str) -> float:
    from pe_toolkit.exports import export
    from pe_toolkit.store import Store

    with tempfile.TemporaryDirectory() as tmp, Store(db, read_only=True) as store:
        target = Path(tmp) / ("out" if fmt == "huggingface" else f"out.{fmt}")
        t = time.perf_counter()
        export(store, target, format=fmt, progress=False)
        return round(time.perf_counter() - t, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="conversations in the store")
    parser.add_argument("--requests", type=int, default=1500, help="GETs per round and server")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--formats", default="jsonl,parquet", help="export formats to time")
    args = parser.parse_args()

    db = build_store(args.n)
    from pe_toolkit.store import Store

    with Store(db, read_only=True) as store:
        ids = [r[0] for r in store.connection.execute("SELECT id FROM conversations").fetchall()]
    results: dict[str, Any] = {"conversations": len(ids)}
    proc, app_url = start_app(db)
    size = len(httpx.get(f"{app_url}/v1/conversations/{ids[0]}", headers={"Authorization": f"Bearer {KEY}"}).content)
    base_proc, base_url = start_baseline()
    sized_proc, sized_url = start_baseline(size)
    try:
        servers = {
            "baseline": (base_url, {}),
            "baseline_same_size": (sized_url, {}),
            "mirror": (app_url, {"Authorization": f"Bearer {KEY}"}),
        }
        results["single_get"] = bench_gets(servers, ids, args.requests, args.rounds)
        results["single_get"]["body_bytes"] = size
        base_proc.terminate()
        sized_proc.terminate()
        results["page_of_1000"] = bench_pages(app_url, len(ids), args.pages)
        results["export"] = {fmt: bench_export(app_url, fmt) for fmt in args.formats.split(",") if fmt}
    finally:
        base_proc.terminate()
        sized_proc.terminate()
        proc.terminate()
        proc.wait(30)
    exports = Path(f"{db}.server") / "exports"
    for export_id in CREATED_EXPORTS:
        for path in exports.glob(f"{export_id}.*"):
            path.unlink()
    results["direct_export_s"] = {fmt: direct_export(db, fmt) for fmt in args.formats.split(",") if fmt}
    results["server_work_per_get"] = asgi_cost(db, ids)
    gets = results["single_get"]
    print(json.dumps(results, indent=2))
    ratio = gets["mirror"]["rps"] / gets["baseline"]["rps"]
    print(
        f"\nsingle GET: {gets['mirror']['rps']:.0f} req/s (p50 {gets['mirror']['p50_ms']} ms, p99 {gets['mirror']['p99_ms']} ms); "
        f"bare Starlette in the same run {gets['baseline']['rps']:.0f} req/s (ratio {ratio:.2f}), "
        f"with a body of the same size {gets['baseline_same_size']['rps']:.0f} req/s (target: 800 req/s of ~1,100)"
    )
    work = results["server_work_per_get"]
    print(f"server work per GET (in-process): mirror {work['mirror_us']} us, bare Starlette {work['bare_us']} us")


if __name__ == "__main__":
    main()

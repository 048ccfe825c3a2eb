"""Sync benchmark: pe_toolkit.sync against the offline mirror on loopback.

The mirror runs as its own process (``pe-toolkit serve``), so client and
server do not share an interpreter. Every sync runs in a child process,
whose peak RSS is reported. Three comparisons, each timed in the same run:

1. bulk sync of ``--n`` conversations into an empty store (export job,
   streamed download, batched load), conversations/s end to end and the
   phases (export + wait, download, load); for reference, the same
   export requested, downloaded and loaded with ``import_file`` (the
   foundation's importer, the same validation) step by step;
2. incremental fetch of ``--inc-n`` conversations missing from an
   otherwise complete store (list every summary, GET each missing one,
   ``concurrency`` at a time, validate, merge), against a bare sequential
   ``httpx`` GET loop over the same ids and server (parse the JSON,
   nothing else);
3. the naive pattern of the published integration examples on
   ``--naive-n`` conversations: page the summaries (limit 100), GET each
   conversation in turn with a ``requests`` session, flatten with pandas
   and ``to_sql(method="multi", chunksize=1000)`` into SQLite; against
   ``pe-toolkit sync`` (auto: bulk) of the same corpus.

    python benchmarks/bench_sync.py                          # 100k / 20k / 20k
    python benchmarks/bench_sync.py --n 20000 --inc-n 5000 --naive-n 2000 --repeat 1   # quick

Corpora (synthetic, seed 11) and their source stores are cached in
benchmarks/.data/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / ".data"
KEY = "bench-sync-key"

SYNC_CHILD = """
import json, resource, sys, time
from pe_toolkit.client import Client
from pe_toolkit.events import EventBus
from pe_toolkit.apisync import sync
from pe_toolkit.store import Store
db, url, key, mode, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
marks = {}
bus = EventBus()
def mark(event):
    phase = event.payload.get("phase")
    now = time.perf_counter()
    marks.setdefault(phase + "_first", now)
    marks[phase + "_last"] = now
bus.subscribe("sync.progress", mark)
t = time.perf_counter()
with Store(db) as store, Client(key, url, concurrency=concurrency) as client:
    report = sync(store, client, mode=mode, progress=False, events=bus, concurrency=concurrency)
elapsed = time.perf_counter() - t
rel = {k: v - t for k, v in marks.items()}
print(json.dumps({"seconds": elapsed, "mode": report.mode, "inserted": report.inserted, "fetched": report.fetched,
                  "listed": report.listed, "marks": rel,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

REFERENCE_CHILD = """
import json, sys, time
from pe_toolkit.client import Client
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store
url, key, folder = sys.argv[1], sys.argv[2], sys.argv[3]
with Client(key, url) as client:
    t0 = time.perf_counter()
    info = client.start_export(format="jsonl")
    client.wait_for_export(info, progress=False)
    t1 = time.perf_counter()
    path = client.download_export(info, folder + "/reference.jsonl", progress=False)
    t2 = time.perf_counter()
with Store(folder + "/reference.duckdb") as store:
    report = import_file(store, path, format="api", progress=False)
t3 = time.perf_counter()
print(json.dumps({"export": t1 - t0, "download": t2 - t1, "import": t3 - t2, "n": report.inserted,
                  "mib": path.stat().st_size / 2**20}))
"""

BARE_LOOP_CHILD = """
import json, sys, time
import httpx
url, key, ids_file = sys.argv[1], sys.argv[2], sys.argv[3]
ids = json.load(open(ids_file))
t = time.perf_counter()
with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
    for cid in ids:
        r = client.get(f"/v1/conversations/{cid}")
        r.raise_for_status()
        r.json()["data"]["messages"]
print(json.dumps({"seconds": time.perf_counter() - t, "n": len(ids)}))
"""

NAIVE_CHILD = """
import json, sys, time
import pandas as pd
import requests
from sqlalchemy import create_engine
url, key, sqlite_path = sys.argv[1], sys.argv[2], sys.argv[3]
t = time.perf_counter()
session = requests.Session()
session.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
summaries, offset = [], 0
while True:  # the published SDK's iter_conversations: pages of 100 until a short page
    page = session.get(f"{url}/v1/conversations", params={"limit": 100, "offset": offset}, timeout=30).json()["data"]
    summaries += page["conversations"]
    offset += len(page["conversations"])
    if len(page["conversations"]) < 100:
        break
rows, convs = [], []
for s in summaries:  # one GET per conversation, in turn
    c = session.get(f"{url}/v1/conversations/{s['id']}", timeout=30).json()["data"]
    meta = c.get("metadata") or {}
    q = c.get("quality_metrics") or {}
    convs.append({"id": c["id"], "dataset": meta.get("dataset"), "tier": meta.get("tier"), "created_at": meta.get("created_at"), **q})
    for i, m in enumerate(c["messages"]):
        rows.append({"conversation_id": c["id"], "idx": i, "role": m["role"], "content": m["content"], "timestamp": m.get("timestamp")})
engine = create_engine(f"sqlite:///{sqlite_path}")
pd.DataFrame(convs).to_sql("conversations", engine, if_exists="replace", index=False, method="multi", chunksize=1000)
pd.DataFrame(rows).to_sql("messages", engine, if_exists="replace", index=False, method="multi", chunksize=1000)
print(json.dumps({"seconds": time.perf_counter() - t, "n": len(convs), "messages": len(rows)}))
"""


def corpus(n: int) -> Path:
    from pe_toolkit import synth

    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"synth_{n}_seed11.jsonl"
    if not path.exists():
        synth.write(path, n, seed=11, progress=False)
    return path


def source_store(n: int) -> Path:
    from pe_toolkit.ingest import import_file
    from pe_toolkit.store import Store

    path = DATA / f"sync_source_{n}.duckdb"
    if not path.exists():
        tmp = path.with_suffix(".tmp.duckdb")
        tmp.unlink(missing_ok=True)
        with Store(tmp) as store:
            import_file(store, corpus(n), progress=False)
        tmp.rename(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mirror:
    """``pe-toolkit serve`` on a copy of a source store, in its own process."""

    def __init__(self, source: Path, folder: Path) -> None:
        self.db = folder / source.name
        shutil.copyfile(source, self.db)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PE_")}
        env.update(PE_SERVER_KEYS=KEY, PE_NO_PROGRESS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pe_toolkit", "serve", "--db", str(self.db), "--port", str(self.port),
             "--rate-limit", "1000000000", "--no-sample"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the mirror exited")
            try:
                checks = httpx.get(self.url + "/health", timeout=2).json()["data"]["checks"]
                if checks["snapshot"] == "ready":
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError("the mirror did not get ready")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def child(code: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PE_")}
    env["PE_NO_PROGRESS"] = "1"
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_sync(db: Path, url: str, mode: str, concurrency: int = 8) -> dict:
    return child(SYNC_CHILD, str(db), url, KEY, mode, str(concurrency))


def bulk(mirror: Mirror, n: int, repeat: int, folder: Path) -> list[dict]:
    runs = []
    for i in range(repeat):
        db = folder / f"bulk_{i}.duckdb"
        runs.append(run_sync(db, mirror.url, "bulk"))
        assert runs[-1]["inserted"] == n, runs[-1]
        if i < repeat - 1:
            for f in folder.glob(f"bulk_{i}.duckdb*"):
                f.unlink()
    return runs


def incremental(mirror: Mirror, full_db: Path, inc_n: int, repeat: int, folder: Path, concurrency: int) -> tuple[list[dict], list[dict]]:
    """Delete ``inc_n`` conversations from copies of a complete store and
    sync them back incrementally; the bare loop GETs the same ids."""
    from pe_toolkit.store import Store

    with Store(full_db) as store:
        ids = store.sql("SELECT id FROM (SELECT id FROM conversations ORDER BY hash(id) LIMIT ?) ORDER BY id", [inc_n])["id"].to_list()
    ids_file = folder / "inc_ids.json"
    ids_file.write_text(json.dumps(ids))
    ours, bare = [], []
    for i in range(repeat):
        db = folder / f"inc_{i}.duckdb"
        shutil.copyfile(full_db, db)
        with Store(db) as store, store.transaction() as con:
            con.execute("DELETE FROM messages WHERE conversation_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
            con.execute("DELETE FROM conversations WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
            con.execute("DELETE FROM sync_seen WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
        run = run_sync(db, mirror.url, "incremental", concurrency)
        assert run["fetched"] == inc_n, run
        ours.append(run)
        bare.append(child(BARE_LOOP_CHILD, mirror.url, KEY, str(ids_file)))
        for f in folder.glob(f"inc_{i}.duckdb*"):
            f.unlink()
    return ours, bare


def fetch_seconds(run: dict) -> float:
    marks = run["marks"]
    # From the end of the listing to the last fetched batch.
    return marks["fetch_last"] - marks.get("list_last", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="conversations of the bulk sync")
    parser.add_argument("--inc-n", type=int, default=20_000, help="conversations fetched incrementally")
    parser.add_argument("--naive-n", type=int, default=20_000, help="conversations of the naive-pattern comparison")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    big, small = source_store(args.n), source_store(args.naive_n)
    with tempfile.TemporaryDirectory(prefix="bench_sync_") as tmp:
        folder = Path(tmp)
        mirror = Mirror(big, folder)
        try:
            runs = bulk(mirror, args.n, args.repeat, folder)
            refs = []
            for i in range(args.repeat):
                ref_dir = folder / f"ref_{i}"
                ref_dir.mkdir()
                refs.append(child(REFERENCE_CHILD, mirror.url, KEY, str(ref_dir)))
                shutil.rmtree(ref_dir)
            full_db = folder / f"bulk_{args.repeat - 1}.duckdb"
            ours_inc, bare = incremental(mirror, full_db, args.inc_n, args.repeat, folder, args.concurrency)
        finally:
            mirror.close()
        mirror = Mirror(small, folder)
        try:
            ours_small = [run_sync(folder / f"small_{i}.duckdb", mirror.url, "auto") for i in range(args.repeat)]
            naive = child(NAIVE_CHILD, mirror.url, KEY, str(folder / "naive.sqlite"))
        finally:
            mirror.close()

    rates = [r["inserted"] / r["seconds"] for r in runs]
    med = statistics.median(r["seconds"] for r in runs)
    phase = {
        "export requested + ready": statistics.median(r["marks"]["download_first"] for r in runs),
        "download + check": statistics.median(r["marks"]["load_first"] - r["marks"]["download_first"] for r in runs),
        "load (validate + merge)": statistics.median(r["seconds"] - r["marks"]["load_first"] for r in runs),
    }
    print(f"\nbulk sync of {args.n:,} conversations (mirror in its own process, loopback):")
    print(f"  end to end   median {args.n / med:10,.0f} conversations/s  ({med:.1f} s; runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    for name, seconds in phase.items():
        print(f"    {name:<26} {seconds:6.1f} s")
    print(f"  peak RSS     max    {max(r['peak_rss_mb'] for r in runs):10,.0f} MiB")
    ref = {k: statistics.median(r[k] for r in refs) for k in ("export", "download", "import")}
    print(f"  reference, same server and file ({refs[0]['mib']:.0f} MiB of jsonl), done with the client API and import_file:")
    print(f"    server writes the export   {ref['export']:6.1f} s")
    print(f"    download                   {ref['download']:6.1f} s")
    print(f"    import_file of the file    {ref['import']:6.1f} s  ({args.n / ref['import']:,.0f} conversations/s; the sync's load = {phase['load (validate + merge)'] / ref['import']:.0%} of it)")
    print("  target: >= 30,000 conversations/s")

    inc_rates = [args.inc_n / fetch_seconds(r) for r in ours_inc]
    inc_e2e = [args.inc_n / r["seconds"] for r in ours_inc]
    bare_rates = [b["n"] / b["seconds"] for b in bare]
    ratio = statistics.median(inc_rates) / statistics.median(bare_rates)
    print(f"\nincremental fetch of {args.inc_n:,} missing conversations (of {args.n:,} listed), concurrency {args.concurrency}:")
    print(f"  fetch phase  median {statistics.median(inc_rates):10,.0f} conversations/s  (runs: {', '.join(f'{r:,.0f}' for r in inc_rates)})")
    print(f"  with listing median {statistics.median(inc_e2e):10,.0f} conversations/s  ({args.n // 1000} list pages first)")
    print(f"  bare httpx GET loop {statistics.median(bare_rates):10,.0f} conversations/s  (runs: {', '.join(f'{r:,.0f}' for r in bare_rates)})")
    print(f"  ratio: {ratio:.0%} of the bare loop (target >= 70%)")

    ours_sec = statistics.median(r["seconds"] for r in ours_small)
    print(f"\n{args.naive_n:,} conversations end to end:")
    print(f"  pe-toolkit sync (auto: {ours_small[0]['mode']}) median {ours_sec:8.1f} s  ({args.naive_n / ours_sec:,.0f} conversations/s)")
    print(f"  naive: pages of 100 + one GET each + pandas to_sql(multi) into SQLite   {naive['seconds']:8.1f} s  ({naive['n'] / naive['seconds']:,.0f} conversations/s)")
    print(f"  speed-up: {naive['seconds'] / ours_sec:.0f}x (target >= 20x)")


if __name__ == "__main__":
    main()

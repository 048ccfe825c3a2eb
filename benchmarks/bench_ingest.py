"""Ingest benchmark: import synthetic JSONL into a fresh store.

Prints conversations/s end to end and the peak RSS of the importing process,
next to two reference points timed in the same run on the same file:
DuckDB's own read_json (parse only, nothing validated or written) and a bare
Arrow insert of the same messages (write only).

    python benchmarks/bench_ingest.py                 # 200k conversations, then RSS at 1M
    python benchmarks/bench_ingest.py --n 50000 --rss-n 0 --repeat 1   # quick

Generated corpora are cached in benchmarks/.data/ (deterministic, seed 11).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / ".data"

CHILD = """
import json, resource, sys, time
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store
db, path = sys.argv[1], sys.argv[2]
t = time.perf_counter()
with Store(db) as store:
    report = import_file(store, path, progress=False)
    messages = store.scalar("SELECT count(*) FROM messages")
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "conversations": report.inserted, "messages": messages,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def corpus(n: int) -> Path:
    from pe_toolkit import synth

    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"synth_{n}_seed11.jsonl"
    if not path.exists():
        t = time.perf_counter()
        synth.write(path, n, seed=11, progress=True)
        print(f"generated {n:,} conversations in {time.perf_counter() - t:.1f} s -> {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    return path


def run_import(path: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", CHILD, f"{tmp}/bench.duckdb", str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def duckdb_parse_rate(path: Path) -> float:
    import duckdb

    con = duckdb.connect()
    t = time.perf_counter()
    n = con.sql(
        "SELECT count(*), sum(len(messages)) FROM read_json($p, format='newline_delimited', "
        "columns={id: 'VARCHAR', messages: 'STRUCT(role VARCHAR, content VARCHAR, timestamp VARCHAR)[]', metadata: 'JSON', quality_metrics: 'JSON'})",
        params={"p": str(path)},
    ).fetchall()[0][0]
    return n / (time.perf_counter() - t)


def arrow_insert_rate(path: Path) -> float:
    """Messages/s of a bare INSERT of pre-built Arrow batches into a file."""
    import duckdb

    con = duckdb.connect()
    table = con.sql(
        "SELECT id AS conversation_id, generate_subscripts(messages, 1)::INTEGER AS idx, unnest(messages, recursive := true) "
        "FROM read_json($p, format='newline_delimited', columns={id: 'VARCHAR', messages: 'STRUCT(role VARCHAR, content VARCHAR, timestamp VARCHAR)[]'})",
        params={"p": str(path)},
    ).to_arrow_table()
    with tempfile.TemporaryDirectory() as tmp:
        db = duckdb.connect(f"{tmp}/raw.duckdb")
        db.execute("CREATE TABLE m (conversation_id VARCHAR, idx INTEGER, role VARCHAR, content VARCHAR, ts VARCHAR)")
        t = time.perf_counter()
        step = 200_000
        for start in range(0, table.num_rows, step):
            db.register("b", table.slice(start, step))
            db.execute("BEGIN; INSERT INTO m SELECT * FROM b; COMMIT")
        rate = table.num_rows / (time.perf_counter() - t)
        db.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="conversations for the throughput run")
    parser.add_argument("--rss-n", type=int, default=1_000_000, help="conversations for the peak-RSS run (0: skip)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    path = corpus(args.n)
    runs = [run_import(path) for _ in range(args.repeat)]
    rates = [r["conversations"] / r["seconds"] for r in runs]
    msgs = runs[0]["messages"]
    parse = statistics.median(duckdb_parse_rate(path) for _ in range(args.repeat))
    insert = statistics.median(arrow_insert_rate(path) for _ in range(max(1, args.repeat - 1)))
    print(f"\nimport of {args.n:,} conversations ({msgs:,} messages, {path.stat().st_size / 2**20:.0f} MiB):")
    print(f"  end to end          median {statistics.median(rates):10,.0f} conversations/s  (runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    print(f"  peak RSS            max    {max(r['peak_rss_mb'] for r in runs):10,.0f} MiB")
    print(f"  reference: DuckDB read_json parse only     {parse:10,.0f} conversations/s  (import = {statistics.median(rates) / parse:.0%} of it)")
    print(f"  reference: bare Arrow insert of messages   {insert:10,.0f} messages/s = {insert * args.n / msgs:,.0f} conversations/s")
    print("  target: >= 50,000 conversations/s end to end")
    if args.rss_n:
        big = corpus(args.rss_n)
        run = run_import(big)
        print(f"\nimport of {args.rss_n:,} conversations: {run['conversations'] / run['seconds']:,.0f} conversations/s, peak RSS {run['peak_rss_mb']:,.0f} MiB (target < 1024 MiB)")


if __name__ == "__main__":
    main()

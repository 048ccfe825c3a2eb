"""Warehouse and export benchmark.

1. Warehouse: ``pe_toolkit.exports.warehouse.load`` of a store holding at least
   1 M message rows into the local PostgreSQL (fresh schema each run: the
   first load of a warehouse), then a second load with nothing changed and
   one with 1% of conversations changed. Baseline, timed in the same run:
   pandas ``DataFrame.to_sql(method="multi", chunksize=1000)`` through
   SQLAlchemy (psycopg 3) of a subset of the same message rows into a table
   with the same primary key. Target: >= 200,000 message rows/s and >= 10x
   the pandas path (compared as rows/s).
2. Exports: 100,000 conversations to each file format, each in a fresh
   process (time and peak RSS of that process).
3. ``--memory N``: peak RSS and time of a first load and of a second load
   (nothing changed) of N analyzed conversations (the real analysis, so the
   change hashes cover conversation and message scores), each load in a
   fresh process. ``--baseline-module FILE`` runs another version of
   ``pe_toolkit/exports/warehouse.py`` in the same run, alternating with the
   current one, e.g. ``git show HEAD~1:pe_toolkit/exports/warehouse.py >
   /tmp/wh_old.py``.

    python benchmarks/bench_warehouse.py
    python benchmarks/bench_warehouse.py --conversations 20000 --export-n 10000 --repeat 1   # quick
    python benchmarks/bench_warehouse.py --memory 50000 --baseline-module /tmp/wh_old.py

Needs PostgreSQL: $PE_BENCH_PG_DSN or $PE_TEST_PG_DSN, else the role set up
by .ci/run (postgresql://pe_test:pe_test@127.0.0.1:5432/pe_test).
Generated corpora and stores are cached in benchmarks/.data/ (seed 13).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

DATA = Path(__file__).resolve().parent / ".data"
SEED = 13
DEFAULT_DSN = "postgresql://pe_test:pe_test@127.0.0.1:5432/pe_test"

EXPORT_CHILD = """
import json, resource, sys, time
from pe_toolkit.exports import export
from pe_toolkit.store import Store
db, path, fmt, layout = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None
with Store(db, read_only=True) as store:
    t = time.perf_counter()
    report = export(store, path, format=fmt, layout=layout, progress=False)
    elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "conversations": report.conversations, "messages": report.messages,
                  "bytes": report.bytes, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


# One load in a fresh process. Its peak RSS is Linux's VmHWM, reset just
# before the load (clear_refs 5): ru_maxrss would also count the parent's
# peak before the fork (kept across exec), here the analysis of the store.
LOAD_CHILD = """
import importlib.util, json, sys, time
db, dsn, schema, module = sys.argv[1:5]
if module:
    spec = importlib.util.spec_from_file_location("pe_toolkit.exports._bench_warehouse_variant", module)
    variant = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = variant
    spec.loader.exec_module(variant)
    load = variant.load
else:
    from pe_toolkit.exports.warehouse import load
from pe_toolkit.store import Store

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))

with Store(db, read_only=True) as store:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status("VmRSS")
    t = time.perf_counter()
    report = load(store, dsn, schema=schema, progress=False)
    elapsed = time.perf_counter() - t
    peak = status("VmHWM")
print(json.dumps({"seconds": elapsed, "peak_rss_mb": peak, "base_mb": base, "rows_written": report.rows_written}))
"""


def store_with(n: int) -> Path:
    """A cached store of n synthetic conversations (built once)."""
    from pe_toolkit import synth
    from pe_toolkit.ingest import import_file
    from pe_toolkit.store import Store

    DATA.mkdir(parents=True, exist_ok=True)
    db = DATA / f"warehouse_{n}_seed{SEED}.duckdb"
    if db.exists():
        Store(db).close()  # brings a cached store to the current schema
        return db
    corpus = DATA / f"synth_{n}_seed{SEED}.jsonl"
    if not corpus.exists():
        t = time.perf_counter()
        synth.write(corpus, n, seed=SEED, progress=True)
        print(f"generated {n:,} conversations in {time.perf_counter() - t:.1f} s")
    tmp = db.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    with Store(tmp) as store:
        import_file(store, corpus, progress=True)
    tmp.rename(db)
    return db


def analyzed_store_with(n: int) -> Path:
    """A cached copy of :func:`store_with`'s store with the real analysis run."""
    from pe_toolkit.analysis import analyze
    from pe_toolkit.store import Store

    db = DATA / f"warehouse_{n}_seed{SEED}_analyzed.duckdb"
    if db.exists():
        Store(db).close()
        return db
    tmp = db.with_suffix(".building")
    shutil.copy(store_with(n), tmp)
    t = time.perf_counter()
    with Store(tmp) as store:
        analyze(store, progress=True)
    print(f"analyzed {n:,} conversations in {time.perf_counter() - t:.1f} s")
    tmp.rename(db)
    return db


def memory(dsn: str, db: Path, repeat: int, baseline: str | None) -> dict[str, dict[str, list[dict]]]:
    """First and second (nothing changed) load, each in a fresh process, per
    variant ("current" and, given a file, "baseline"), alternating."""
    variants = {"current": ""} | ({"baseline": baseline} if baseline else {})
    runs: dict[str, dict[str, list[dict]]] = {v: {"first": [], "second": []} for v in variants}

    def child(schema: str, module: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-c", LOAD_CHILD, str(db), dsn, schema, module],
            check=True, capture_output=True, text=True, timeout=1800,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    for i in range(repeat):
        for name, module in (variants.items() if i % 2 == 0 else reversed(variants.items())):
            schema = f"pe_bench_mem_{uuid.uuid4().hex[:8]}"
            try:
                first = child(schema, module)
                second = child(schema, module)
            finally:
                pg_execute(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            assert first["rows_written"] > 0 and second["rows_written"] == 0, (first, second)
            runs[name]["first"].append(first)
            runs[name]["second"].append(second)
            print(f"  {name} run {i + 1}: first {first['seconds']:.2f} s, peak RSS {first['peak_rss_mb']:.0f} MB; "
                  f"second {second['seconds']:.2f} s, peak RSS {second['peak_rss_mb']:.0f} MB")
    return runs


def print_memory(runs: dict[str, dict[str, list[dict]]]) -> None:
    def median(name: str, which: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name][which])

    for name, loads in runs.items():
        for which, rs in loads.items():
            rss_runs = ", ".join(f"{r['peak_rss_mb']:.0f}" for r in rs)
            time_runs = ", ".join(f"{r['seconds']:.2f}" for r in rs)
            print(
                f"  {name:8s} {which:6s} load: peak RSS median {median(name, which, 'peak_rss_mb'):6.0f} MB (runs {rss_runs}; "
                f"{median(name, which, 'base_mb'):.0f} MB before loading), time median {median(name, which, 'seconds'):6.2f} s "
                f"(runs {time_runs})"
            )
    if "baseline" in runs:
        for which in ("first", "second"):
            rss = median("current", which, "peak_rss_mb") / median("baseline", which, "peak_rss_mb")
            secs = median("current", which, "seconds") / median("baseline", which, "seconds")
            print(f"  {which} load, current / baseline: peak RSS {rss:.2f}x, time {secs:.2f}x")


def pg_execute(dsn: str, *statements: str) -> None:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(dsn) as con:
        with con.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        con.commit()


def warehouse(dsn: str, db: Path, repeat: int) -> dict:
    from pe_toolkit.exports.warehouse import load
    from pe_toolkit.store import Store

    work = Path(tempfile.mkdtemp(prefix="pe_bench_wh_"))
    try:
        copy = work / "store.duckdb"
        shutil.copy(db, copy)
        firsts, seconds, phases = [], [], []
        with Store(copy) as store:
            messages = store.scalar("SELECT count(*) FROM messages")
            conversations = store.count()
            schema = f"pe_bench_{uuid.uuid4().hex[:8]}"
            try:
                for i in range(repeat):
                    pg_execute(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    t = time.perf_counter()
                    report = load(store, dsn, schema=schema, progress=False)
                    firsts.append(time.perf_counter() - t)
                    assert report.tables["messages"].inserted == messages, report
                    phases.append({name: load.seconds for name, load in report.tables.items()})
                    detail = ", ".join(f"{name} {sec:.2f} s" for name, sec in phases[-1].items())
                    print(f"  first load {i + 1}: {firsts[-1]:.2f} s ({detail})")
                for _ in range(repeat):
                    t = time.perf_counter()
                    report = load(store, dsn, schema=schema, progress=False)
                    seconds.append(time.perf_counter() - t)
                    assert report.rows_written == 0, report
                # 1% of conversations change (a sync brought new versions)
                store.connection.execute(
                    "UPDATE conversations SET content_hash = md5(content_hash) WHERE hash(id) % 100 = 0"
                )
                changed = store.scalar("SELECT count(*) FROM conversations WHERE hash(id) % 100 = 0")
                t = time.perf_counter()
                report = load(store, dsn, schema=schema, progress=False)
                incremental = time.perf_counter() - t
                assert report.tables["conversations"].updated == changed, report
            finally:
                pg_execute(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "messages": messages,
        "conversations": conversations,
        "first_load_s": firsts,
        "phases": phases,
        "unchanged_s": seconds,
        "changed": changed,
        "incremental_s": incremental,
    }


def pandas_baseline(dsn: str, db: Path, rows: int, repeat: int) -> list[float]:
    """rows/s of pandas to_sql(method="multi", chunksize=1000) via SQLAlchemy."""
    import sqlalchemy as sa

    from pe_toolkit.store import Store

    with Store(db, read_only=True) as store:
        frame = store.sql(
            'SELECT conversation_id, idx, role, content, "timestamp" FROM messages ORDER BY conversation_id, idx LIMIT ?',
            [rows],
        ).to_pandas()
    url = "postgresql+psycopg://" + dsn.split("://", 1)[1]
    engine = sa.create_engine(url)
    table = f"pe_bench_pandas_{uuid.uuid4().hex[:8]}"
    rates = []
    try:
        for _ in range(repeat):
            with engine.begin() as con:
                con.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
                con.execute(
                    sa.text(
                        f'CREATE TABLE "{table}" (conversation_id text NOT NULL, idx integer NOT NULL, role text NOT NULL, '
                        'content text NOT NULL, "timestamp" timestamptz, PRIMARY KEY (conversation_id, idx))'
                    )
                )
            t = time.perf_counter()
            with engine.begin() as con:
                frame.to_sql(table, con, if_exists="append", index=False, method="multi", chunksize=1000)
            rates.append(len(frame) / (time.perf_counter() - t))
    finally:
        with engine.begin() as con:
            con.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()
    return rates


def exports(db: Path, repeat: int) -> list[tuple[str, dict]]:
    jobs = [
        ("jsonl", "", "out.jsonl"),
        ("openai", "", "out.openai.jsonl"),
        ("sharegpt", "", "out.sharegpt.jsonl"),
        ("csv", "", "out.csv"),
        ("parquet", "messages", "out.parquet"),
        ("parquet", "nested", "out.nested.parquet"),
        ("parquet", "tables", "out.tables"),
        ("huggingface", "", "out.hf"),
    ]
    results = []
    for fmt, layout, name in jobs:
        runs = []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="pe_bench_export_") as tmp:
                out = subprocess.run(
                    [sys.executable, "-c", EXPORT_CHILD, str(db), f"{tmp}/{name}", fmt, layout],
                    check=True, capture_output=True, text=True,
                )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        best["runs"] = [r["seconds"] for r in runs]
        label = fmt + (f" ({layout})" if layout else "")
        results.append((label, best))
        print(
            f"  {label:22s} median {best['seconds']:6.2f} s  {best['conversations'] / best['seconds']:9,.0f} conv/s  "
            f"{best['bytes'] / 2**20:7.1f} MiB  peak RSS {best['peak_rss_mb']:5.0f} MiB"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=128_000, help="store size for the warehouse load (>= 1 M messages)")
    parser.add_argument("--pandas-rows", type=int, default=50_000, help="message rows in the pandas baseline subset")
    parser.add_argument("--export-n", type=int, default=100_000, help="conversations per file export")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-exports", action="store_true")
    parser.add_argument("--skip-warehouse", action="store_true")
    parser.add_argument("--memory", type=int, metavar="N", help="only: peak RSS of a first and a second load of N analyzed conversations")
    parser.add_argument("--baseline-module", metavar="FILE", help="with --memory: another warehouse.py to compare with, same run")
    args = parser.parse_args()
    dsn = os.environ.get("PE_BENCH_PG_DSN") or os.environ.get("PE_TEST_PG_DSN") or DEFAULT_DSN

    if args.memory:
        db = analyzed_store_with(args.memory)
        from pe_toolkit.store import Store

        with Store(db, read_only=True) as store:
            sizes = [store.scalar(f"SELECT count(*) FROM {t}") for t in ("conversations", "messages", "message_scores")]
        print(f"warehouse load memory: {sizes[0]:,} conversations, {sizes[1]:,} messages, {sizes[2]:,} message-score rows; "
              f"{args.repeat} runs, each load in a fresh process")
        runs = memory(dsn, db, args.repeat, args.baseline_module)
        print()
        print_memory(runs)
        return

    if not args.skip_warehouse:
        db = store_with(args.conversations)
        print(f"warehouse load ({args.repeat} runs each)")
        wh = warehouse(dsn, db, args.repeat)
        first = statistics.median(wh["first_load_s"])
        rate = wh["messages"] / first
        print(f"pandas to_sql(method='multi', chunksize=1000), {args.pandas_rows:,} message rows")
        pandas_rates = pandas_baseline(dsn, db, args.pandas_rows, args.repeat)
        baseline = statistics.median(pandas_rates)
        print()
        print(f"store: {wh['conversations']:,} conversations, {wh['messages']:,} message rows")
        print(
            f"  first load (conversations + messages + features), median {first:.2f} s: "
            f"{rate:,.0f} message rows/s  (runs: {', '.join(f'{s:.2f}' for s in wh['first_load_s'])} s)"
        )
        msg_phase = statistics.median(p["messages"] for p in wh["phases"])
        print(
            f"  of which the messages table (COPY + primary key), median {msg_phase:.2f} s: "
            f"{wh['messages'] / msg_phase:,.0f} message rows/s"
        )
        print(f"  second load, nothing changed: median {statistics.median(wh['unchanged_s']):.2f} s")
        print(f"  load after {wh['changed']:,} conversations (1%) changed: {wh['incremental_s']:.2f} s")
        print(f"  pandas baseline: median {baseline:,.0f} message rows/s  (runs: {', '.join(f'{r:,.0f}' for r in pandas_rates)})")
        print(f"  ratio: {rate / baseline:.1f}x   target >= 200,000 rows/s: {'met' if rate >= 200_000 else 'NOT met'}; "
              f">= 10x: {'met' if rate / baseline >= 10 else 'NOT met'}")

    if not args.skip_exports:
        db = store_with(args.export_n)
        print(f"\nexports of {args.export_n:,} conversations ({args.repeat} runs each, fresh process per run)")
        exports(db, args.repeat)


if __name__ == "__main__":
    main()

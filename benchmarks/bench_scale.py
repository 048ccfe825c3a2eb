"""Benchmark: the analysis on one node against Ray Data with 1 and 2 workers, in one run.

    .venv/bin/python benchmarks/bench_scale.py [--messages 1000000] [--files 8]

Data: synthetic conversations (``pe_toolkit.synth``, seed 17, about
8 messages each) until ``--messages`` is reached, written as ``--files``
JSON-lines files (the partitions) in a temp folder.

- single node: the files imported into a store, then ``analyze(store)``
  (timed: the analysis only, batches of 20,000 conversations, threads on);
- Ray, 1 and 2 workers: ``analyze_dataset`` on a fresh local Ray of
  ``num_cpus`` 1 and 2 (timed: the whole run from the Ray start, so the
  start-up, the per-partition scoring and the corpus group-bys all count).

Reported: messages/s of each, the 2-worker/1-worker scaling ratio, the
overhead per partition (Ray 1 worker minus the single node, over the
partitions), and the messages/s per core. The default size finishes in a
few minutes on a 2-core machine; ``--messages 1000000`` is the issue's size.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def make_corpus(folder: Path, messages: int, files: int) -> tuple[int, int]:
    """(conversations, messages) written as ``files`` JSON-lines files."""
    from pe_toolkit import synth

    per_file = max(1, messages // 8 // files)
    total_conv = total_msg = 0
    for k in range(files):
        path = folder / f"part-{k:03d}.jsonl"
        synth.write(path, per_file, seed=17 + k, progress=False)
        with path.open("rb") as fh:
            import orjson

            for line in fh:
                total_msg += len(orjson.loads(line)["messages"])
                total_conv += 1
    return total_conv, total_msg


def single_node(folder: Path, work: Path) -> float:
    from pe_toolkit.analysis.pipeline import analyze
    from pe_toolkit.ingest.importer import import_file
    from pe_toolkit.store import Store

    with Store(work / "single.duckdb") as store:
        for path in sorted(folder.iterdir()):
            import_file(store, path, progress=False)
        started = time.perf_counter()
        analyze(store, progress=False)
        return time.perf_counter() - started


def on_ray(folder: Path, work: Path, cpus: int) -> tuple[float, dict]:
    import ray

    from pe_toolkit.scale import analyze_dataset

    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})  # fmt: skip
    try:
        report = analyze_dataset(folder, work / f"ray{cpus}", progress=False)
    finally:
        ray.shutdown()
    return time.perf_counter() - started, report.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=16_000)
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        folder = work / "in"
        folder.mkdir()
        conversations, messages = make_corpus(folder, args.messages, args.files)
        print(f"corpus: {conversations:,} conversations, {messages:,} messages in {args.files} files", flush=True)
        t_single = single_node(folder, work)
        print(f"single node analyze(): {t_single:.1f}s, {messages / t_single:,.0f} messages/s", flush=True)
        t1, _r1 = on_ray(folder, work, 1)
        print(f"ray, 1 worker: {t1:.1f}s, {messages / t1:,.0f} messages/s", flush=True)
        t2, _r2 = on_ray(folder, work, 2)
        print(f"ray, 2 workers: {t2:.1f}s, {messages / t2:,.0f} messages/s", flush=True)
        scored = [sum(p["seconds"] for p in json.loads((work / f"ray{c}" / "manifest.json").read_text())["partitions"].values()) for c in (1, 2)]
        result = {
            "cores": os.cpu_count(),
            "conversations": conversations,
            "messages": messages,
            "files": args.files,
            "single_node_s": round(t_single, 2),
            "single_node_msgs_per_s": round(messages / t_single),
            "ray1_s": round(t1, 2),
            "ray1_msgs_per_s": round(messages / t1),
            "ray2_s": round(t2, 2),
            "ray2_msgs_per_s": round(messages / t2),
            "scaling_2_over_1": round(t1 / t2, 2),
            "overhead_per_partition_s": round((t1 - t_single) / args.files, 2),
            "partition_task_s_sum_ray1": round(scored[0], 2),
            "partition_task_s_sum_ray2": round(scored[1], 2),
            "task_msgs_per_core_s": round(messages / scored[0]),
        }
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

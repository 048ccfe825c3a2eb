"""Benchmark: what a store that holds its file only per unit of work costs.

    .venv/bin/python benchmarks/bench_lease.py [--repeats 50]

On a cache holding the bundled sample (2,000 conversations, analyzed), one
small query (``store.count()``) and one Explorer filter change
(``ExplorerQuery.set`` + ``count`` + ``page``), each timed on:

- a store that holds its file (``hold=True``, the baseline, same run);
- a released store reopening the file for every call (``linger=0``);
- a released store with the default linger (a burst opens the file once).

Medians over ``--repeats`` calls, and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    from pe_toolkit.analysis import analyze
    from pe_toolkit.ingest.sample import ensure_sample
    from pe_toolkit.store import Store
    from pe_toolkit.widgets.explorer_query import ExplorerQuery

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.duckdb"
        with Store(path) as store:
            ensure_sample(store, progress=False)
            analyze(store, progress=False)
        rows = []
        for label, options in (
            ("held (hold=True)", {}),
            ("released, reopen per call (linger=0)", {"hold": False, "linger": 0}),
            ("released, default linger", {"hold": False}),
        ):
            store = Store(path, read_only=True, **options)
            query = ExplorerQuery(store)
            flip = [False]

            def explore(query: ExplorerQuery = query, flip: list[bool] = flip) -> None:
                flip[0] = not flip[0]
                query.set(risk=(0.5, 1.0) if flip[0] else None)
                query.count()
                query.page(0)

            rows.append((label, _median_ms(store.count, args.repeats), _median_ms(explore, args.repeats)))
            store.close()
        base_count, base_explore = rows[0][1], rows[0][2]
        print(f"{'store':40s} {'count() ms':>11s} {'ratio':>6s} {'filter change ms':>17s} {'ratio':>6s}")
        for label, count_ms, explore_ms in rows:
            print(f"{label:40s} {count_ms:11.2f} {count_ms / base_count:6.1f} {explore_ms:17.2f} {explore_ms / base_explore:6.1f}")


if __name__ == "__main__":
    main()

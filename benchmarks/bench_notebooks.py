"""Notebooks and widgets benchmark.

1. Executing the curated notebooks on the bundled sample (as `make test` and
   `pe-toolkit report` do): each notebook in a fresh kernel, in order, on a
   fresh cache (the first notebook imports and analyzes the sample), then
   again on the filled cache (analysis has nothing left to do). Budget: all
   notebooks together under 2 minutes. Reference timed in the same run: a
   one-cell notebook that only imports pe_toolkit's widget stack (the fixed
   cost of a kernel).
2. An Explorer filter change on a 100,000-conversation analyzed store
   (target < 300 ms): median over repeated changes of each kind of filter,
   next to the naive alternatives timed on the same store: the same
   aggregates over the live join of conversations and scores (no snapshot),
   and fetching the matching rows into Python (what a widget that plots
   rows would at least pay).
3. LiveAnalyzer: time from a keystroke to updated scores.

    python benchmarks/bench_notebooks.py                  # everything
    python benchmarks/bench_notebooks.py --skip-explorer  # notebooks only
    python benchmarks/bench_notebooks.py --n 20000        # smaller store

The 100k store is cached in benchmarks/.data/ (synthetic, seed 11) and
brought up to date with an incremental analysis on every run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / ".data"
BUDGET_S = 120.0
TARGET_MS = 300.0


def _execute(path: Path, cache: Path, **params: object) -> float:
    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        papermill.execute_notebook(
            str(path), f"{tmp}/out.ipynb", parameters={"cache": str(cache), "progress": False, **params},
            cwd=str(path.parent), progress_bar=False,
        )
        return time.perf_counter() - t


def kernel_baseline(repeat: int) -> float:
    import nbformat

    with tempfile.TemporaryDirectory() as tmp:
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        cell = nbformat.v4.new_code_cell("cache = None\nprogress = False")
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell, nbformat.v4.new_code_cell("import pe_toolkit, pe_toolkit.widgets.explorer, plotly.graph_objects")]
        path = Path(tmp) / "baseline.ipynb"
        nbformat.write(nb, path)
        return statistics.median(_execute(path, Path(tmp) / "c.duckdb") for _ in range(repeat))


def bench_notebooks(repeat: int) -> None:
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    base = kernel_baseline(repeat)
    print(f"\n== notebooks on the sample ({len(notebooks)} notebooks, fresh kernel each) ==")
    print(f"reference: kernel start + imports, one cell: {base:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.duckdb"
        cold = {p.stem: _execute(p, cache) for p in notebooks}
        warm: dict[str, list[float]] = {p.stem: [] for p in notebooks}
        for _ in range(repeat):
            for p in notebooks:
                warm[p.stem].append(_execute(p, cache))
    print(f"{'notebook':<22}{'fresh cache s':>15}{'filled cache s (median)':>26}")
    for name in cold:
        print(f"{name:<22}{cold[name]:>15.1f}{statistics.median(warm[name]):>26.1f}")
    total_cold = sum(cold.values())
    total_warm = sum(statistics.median(v) for v in warm.values())
    verdict = "within" if total_cold < BUDGET_S else "OVER"
    print(f"{'all':<22}{total_cold:>15.1f}{total_warm:>26.1f}   ({verdict} the {BUDGET_S:.0f} s budget on a fresh cache)")


def explorer_store(n: int) -> Path:
    from pe_toolkit import analyze, synth
    from pe_toolkit.ingest import import_file
    from pe_toolkit.store import Store

    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"explorer_{n}.duckdb"
    source = DATA / f"synth_{n}_seed11.jsonl"
    if not source.exists():
        t = time.perf_counter()
        synth.write(source, n, seed=11, progress=True)
        print(f"generated {n:,} conversations in {time.perf_counter() - t:.0f} s")
    with Store(path) as store:
        if store.count() < n:
            t = time.perf_counter()
            import_file(store, source, progress=True)
            print(f"imported in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        result = analyze(store, incremental=True, progress=True)
        print(f"analysis (incremental): {time.perf_counter() - t:.0f} s: {result}")
    return path


def _median_ms(fn, repeat: int) -> float:
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_explorer(n: int, repeat: int) -> None:
    from pe_toolkit.store import Store
    from pe_toolkit.widgets import Explorer, LiveAnalyzer

    path = explorer_store(n)
    with Store(path, read_only=True) as store:
        t = time.perf_counter()
        ex = Explorer(store)
        opened = time.perf_counter() - t
        print(f"\n== Explorer on {ex.total:,} conversations ({store.scalar('SELECT count(*) FROM messages'):,} messages) ==")
        print(f"open (snapshot + first update): {opened * 1000:.0f} ms")
        datasets, tiers = ex.datasets, ["basic", "standard", "professional", "clinical", "research"]
        cats = ex.categories
        words = ["sleep", "work", "panic", "lonely", "drink", "angry", "exam", "dad", "sister", "job"]
        changes = {
            "tier": lambda i: ex.set(tier=[tiers[i % 5]]),
            "dataset": lambda i: ex.set(dataset=[datasets[i % len(datasets)]]),
            "quality range": lambda i: ex.set(quality=(0.1 + (i % 5) / 10, 0.9)),
            "risk range": lambda i: ex.set(risk=((i % 5) / 10, 1.0)),
            **({"crisis category": lambda i: ex.set(crisis_categories=[cats[i % len(cats)]])} if cats else {}),
            "text search (new term)": lambda i: ex.set(text=words[i % len(words)]),
        }
        t = time.perf_counter()
        ex.set(text="hopeless")  # the first search also builds the in-memory text copy
        first_search = (time.perf_counter() - t) * 1000
        ex.reset()
        results = {}
        for name, change in changes.items():
            ex.reset()
            results[name] = _median_ms(change, repeat)
        ex.reset()
        ex.set(text="sleep")
        results["other filter, search kept"] = _median_ms(lambda i: ex.set(tier=[tiers[i % 5]]), repeat)
        ex.reset()  # the largest payload: nothing filtered out
        shipped = sum(len(t.x or ()) for f in ex.figures.values() for t in f.data) + ex.table_frame.height

        # Naive references on the same store and filter (a tier change).
        where = "c.tier = ?"
        scores = ex.info.conversation_scores()
        joined = (
            f"FROM conversations c LEFT JOIN {scores} s ON s.conversation_id = c.id WHERE {where}"
        )

        def live_join(i: int) -> None:
            p = [tiers[i % 5]]
            store.sql(f"SELECT count(*) {joined}", p)
            store.sql(f"SELECT c.dataset, c.tier, count(*) {joined} GROUP BY ALL", p)
            store.sql(f"SELECT floor(c.overall_quality * 20), count(*) {joined} GROUP BY 1", p)
            store.sql(f"SELECT floor(s.overall_quality * 20), count(*) {joined} GROUP BY 1", p)
            store.sql(f"SELECT unnest(s.crisis_categories) AS k, count(*) {joined} GROUP BY k", p)
            store.sql(f"SELECT c.id, c.overall_quality, s.risk_score {joined} ORDER BY hash(c.id) LIMIT 2000", p)
            store.sql(f"SELECT c.*, s.risk_score {joined} ORDER BY s.risk_score DESC NULLS LAST LIMIT 25", p)

        def fetch_rows(i: int) -> None:
            store.sql(
                f"SELECT c.id, c.dataset, c.tier, c.message_count, c.overall_quality, s.overall_quality AS local_quality, "
                f"s.empathy_mean, s.risk_score, s.crisis_categories {joined}",
                [tiers[i % 5]],
            ).rows()

        naive_join = _median_ms(live_join, repeat)
        naive_rows = _median_ms(fetch_rows, repeat)

    print(f"{'filter change':<30}{'median ms':>10}")
    for name, ms in results.items():
        flag = "" if ms < TARGET_MS else "  OVER target"
        print(f"{name:<30}{ms:>10.0f}{flag}")
    print(f"first text search (builds the lower-cased text copy): {first_search:.0f} ms")
    print(f"values shipped to the browser per update: {shipped:,} (points, bars, table rows)")
    print(f"reference, same aggregates on the live join (no snapshot): {naive_join:.0f} ms per change")
    print(f"reference, fetching the matching rows into Python: {naive_rows:.0f} ms per change")

    analyzer = LiveAnalyzer(user="I haven't slept properly in weeks and I feel hopeless.")
    texts = ["That sounds", "That sounds really hard.", "That sounds really hard. What keeps you up at night?"]
    ms = _median_ms(lambda i: setattr(analyzer.reply, "value", texts[i % 3] + " " * (i // 3)), repeat)
    print(f"\nLiveAnalyzer: keystroke to updated scores: {ms:.0f} ms (median)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="conversations in the Explorer store")
    parser.add_argument("--repeat", type=int, default=15, help="repeats of each Explorer change")
    parser.add_argument("--notebook-repeat", type=int, default=2, help="runs of the notebooks on the filled cache")
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--skip-explorer", action="store_true")
    args = parser.parse_args()
    os.environ.pop("PE_CACHE", None)
    os.environ["PE_NO_PROGRESS"] = "1"
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    if not args.skip_notebooks:
        bench_notebooks(args.notebook_repeat)
    if not args.skip_explorer:
        bench_explorer(args.n, args.repeat)


if __name__ == "__main__":
    main()

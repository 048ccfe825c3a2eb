"""Stores for the widget, notebook and report tests: synthetic conversations
(pe_toolkit.ingest.synth) imported into a real DuckDB file, analyzed when asked."""

from __future__ import annotations

import shutil
from pathlib import Path

from pe_toolkit.ingest import import_file, synth
from pe_toolkit.store import Store


def build_store(folder: Path, n: int = 300, *, seed: int = 3, analyze: bool = False) -> Path:
    """A cache file with ``n`` synthetic conversations; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"synth_{n}_{seed}.jsonl"
    synth.write(data, n, seed=seed, progress=False)
    path = folder / "cache.duckdb"
    with Store(path) as store:
        import_file(store, data, progress=False)
        if analyze:
            from pe_toolkit import analyze as run_analysis

            run_analysis(store, incremental=True, progress=False)
    return path


def copy_store(source: Path, target_dir: Path) -> Path:
    """A private copy, for tests that write (labels) or hold the write lock."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    shutil.copy(source, target)
    return target

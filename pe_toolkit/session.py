"""The first cell after a notebook's parameters: open the cache, fill it
from the configured source, bring the analysis up to date, and hand back
a store to explore (``pe.open_for_notebook``, also ``pe_toolkit.widgets``'
``open_for_notebook``, the name the notebooks use).

It imports, syncs and analyzes, so it sits above ``ingest``, ``analysis``
and ``widgets``, not inside any of them.

DuckDB lets one process open a file for writing, with no other process
beside it, and JupyterLab runs each notebook in its own process. So no
notebook holds the cache longer than a unit of work: the writing part
(import, sync, analysis) holds it, waiting first (and saying so) while
another process has it, and the store handed back does not hold the file
(``hold=False``, :mod:`pe_toolkit.store.lease`): each query, and each
label the review queue saves, opens it for that moment. Several notebooks,
a script and the CLI can so work on one cache at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError
from .store import Store
from .store.lease import lock_wait

SOURCES = ("sample", "file", "api", "cache")


def open_for_notebook(
    cache: str | os.PathLike[str] | None = None,
    *,
    source: str = "sample",
    path: str | os.PathLike[str] | None = None,
    analyze: bool = True,
    writable: bool = False,
    progress: bool = True,
) -> Store:
    """Open ``cache`` (None: ``$PE_CACHE`` / ``pe_toolkit.toml`` /
    ``data/pe_cache.duckdb``) and prepare it:

    - ``source="sample"``: load the bundled sample if the cache is empty;
    - ``source="file"``: import ``path`` (idempotent);
    - ``source="api"``: sync from the configured API (``PE_API_URL``);
    - ``source="cache"``: load nothing (with ``analyze``, what is new or
      changed is still scored, and the scores written into the cache).

    Then, with ``analyze``, score what is new or changed (incremental).
    Prints one line per step, and one saying what the corpus lacks (an
    imported corpus: no tier, API scores or dates; see
    :class:`~pe_toolkit.widgets.corpus.Corpus`). Returns the store,
    read-only unless ``writable``, holding the file only while it is used;
    notebook SQL reads the current scores from the store's views
    ``current_conversation_scores``, ``current_message_scores`` and
    ``current_evidence`` (see :class:`pe_toolkit.store.Store`).
    """
    if source not in SOURCES:
        raise InputError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "file" and not path:
        raise InputError("source='file' needs path= (the file to import)")
    store = Store(cache, lock_wait=lock_wait())
    try:
        if source == "sample":
            from .ingest.sample import ensure_sample

            report = ensure_sample(store, progress=progress)
            print(f"loaded the bundled sample: {report}" if report else f"using the {store.count():,} conversations already in {store.path}")
        elif source == "file":
            from .ingest import import_file

            assert path is not None  # checked on entry
            print(import_file(store, Path(path), progress=progress))
        elif source == "api":
            from .apisync import sync

            print(sync(store, progress=progress))
        if analyze:
            from .analysis import analyze as run_analysis

            result = run_analysis(store, incremental=True, progress=progress)
            print(f"analysis: {result}")
        from .widgets.corpus import Corpus

        corpus = Corpus.of(store)
        if corpus.notes():
            print(f"this corpus: {corpus}")
    except BaseException:
        store.close()
        raise
    location = store.path
    store.close()
    return Store(location, read_only=not writable, hold=False)

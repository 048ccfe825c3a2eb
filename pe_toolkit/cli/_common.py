"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import click

from ..store import Store, cache_path
from ..store.lease import lock_wait


def cache_option(ctx: click.Context) -> Path | None:
    """The cache the global --db or $PE_CACHE names (None: neither; the
    config's is used then). A folder is refused, naming the one that named it."""
    db = ctx.obj.get("db") if ctx.obj else None
    return None if db is None else not_a_folder(db, ctx.obj.get("db_option", "--db"))


def not_a_folder(path: str | os.PathLike[str], option: str) -> Path:
    """``path`` as a cache file; a ConfigError when it is a folder (DuckDB
    would fail opening it with a message naming neither option nor fix)."""
    from ..errors import ConfigError

    if Path(path).is_dir():
        raise ConfigError(f"{option} names a folder, not a cache file: {path} (name a file, e.g. {Path(path) / 'pe_cache.duckdb'})")
    return Path(path)


def cli_cache(ctx: click.Context, *, read_only: bool = False) -> Path:
    """The cache named by --db / $PE_CACHE / config (the same choice, and
    warning, as ``Store``'s own)."""
    return cache_path(cache_option(ctx), read_only=read_only)


def open_cli_store(ctx: click.Context, *, read_only: bool = False, path: Path | None = None) -> Store:
    """The cache at ``path``, already resolved by :func:`cli_cache`, or else
    the one :func:`cli_cache` names."""
    # Waits (saying so) while a notebook or another command holds the cache.
    return Store(path if path is not None else cli_cache(ctx, read_only=read_only), read_only=read_only, lock_wait=lock_wait())


def progress_enabled(no_progress: bool) -> bool:
    """Progress bars on a terminal unless switched off (never in pipes/CI logs)."""
    if no_progress or os.environ.get("PE_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


@contextlib.contextmanager
def filling_store(ctx: click.Context, what: str) -> Iterator[Store]:
    """The cache for a command that fills it (import, sync). A first run
    that fails (a malformed file, no API URL) leaves no new, empty cache
    behind: removed while this command still holds it, so a command waiting
    for the file creates its own instead of losing what it writes. A sync
    checkpoint that names an export to resume is not empty (see
    :func:`_remove_if_empty`)."""
    from ..store import NewCacheWarning

    # Whether a NewCacheWarning announces the cache: only then does its
    # removal need saying (an expected failure is one line).
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always", NewCacheWarning)
        cache = cli_cache(ctx)
    for w in shown:  # shown as they would have been
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    created = not cache.exists()
    # A link to a file not there yet is the user's and stays; only the file
    # made at its target goes (DuckDB's .wal sits beside the link).
    new_folders = [p for p in (cache.parent, *cache.parent.parents) if not p.exists()] if created else []
    with open_cli_store(ctx, path=cache) as store:
        try:
            yield store
        except BaseException:
            if created:
                announced = any(issubclass(w.category, NewCacheWarning) for w in shown)
                _remove_if_empty(store, cache.resolve(), Path(f"{cache}.wal"), new_folders, what=what, say=announced)
            raise


def _remove_if_empty(store: Store, cache: Path, wal: Path, new_folders: list[Path], *, what: str, say: bool) -> None:
    """A cache holding anything stays; so does one the check cannot read
    (the command's own error is what gets reported). A sync checkpoint
    that names an export is something: a first sync stopped before it
    stored a conversation (Ctrl-C during its export's download) resumes
    from it, and from the partial download beside the cache; removing both
    made the next run ask for the export again and download it from byte
    0. A bulk checkpoint with no export left to resume (every export
    failed) is not; an incremental one (its listing) is."""
    import duckdb

    from ..errors import PeToolkitError

    try:
        empty = store.scalar(
            "SELECT (SELECT count(*) FROM conversations) + (SELECT count(*) FROM dead_letters)"
            " + (SELECT count(*) FROM sync_checkpoints WHERE mode <> 'bulk' OR json_extract_string(state, '$.export_id') IS NOT NULL)"
        ) == 0
    except (duckdb.Error, PeToolkitError):
        return
    if not empty:
        return
    for leftover in (cache, wal):
        leftover.unlink(missing_ok=True)
    # A sync's downloads beside it (an export of conversations that were never stored).
    from ..apisync.state import work_dir

    shutil.rmtree(work_dir(cache), ignore_errors=True)
    if say:  # a NewCacheWarning announced the file
        click.echo(f"pe-toolkit: the {what} stored nothing; the new cache {cache} was removed", err=True)
    for folder in new_folders:  # innermost first; only folders this command made, and only empty ones
        try:
            folder.rmdir()
        except OSError:
            break

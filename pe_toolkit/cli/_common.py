"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..store import Store, cache_path
from ..store.lease import lock_wait


def cli_cache(ctx: click.Context, *, read_only: bool = False) -> Path:
    """The cache named by --db / $PE_CACHE / config (the same choice, and
    warning, as ``Store``'s own)."""
    return cache_path(ctx.obj.get("db") if ctx.obj else None, read_only=read_only)


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

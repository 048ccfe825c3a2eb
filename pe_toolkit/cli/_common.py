"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import os
import sys

import click

from ..store import Store
from ..store.lease import LOCK_WAIT


def open_cli_store(ctx: click.Context, *, read_only: bool = False) -> Store:
    """The cache named by --db / $PE_CACHE / config."""
    # Waits (saying so) while a notebook or another command holds the cache.
    return Store(ctx.obj.get("db") if ctx.obj else None, read_only=read_only, lock_wait=LOCK_WAIT)


def progress_enabled(no_progress: bool) -> bool:
    """Progress bars on a terminal unless switched off (never in pipes/CI logs)."""
    if no_progress or os.environ.get("PE_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()

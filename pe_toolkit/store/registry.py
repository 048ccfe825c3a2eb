"""The stores open in this process, by cache file.

DuckDB keeps one database instance per file and process, with the settings
it was opened with, and refuses a second one with other settings ("Can't
open a connection to same database file with a different configuration").
A read-only store is sandboxed (no file access, configuration locked) and
a writable one is not, so the two cannot hold their own connections to one
file at the same time. Re-running a notebook does exactly that: the
previous run's read-only store is still open when the settings cell opens
the cache for writing. So :class:`~pe_toolkit.store.Store` registers here
and the modes are reconciled instead of failing:

- a writable store opening while read-only stores of the file are open:
  their connections are closed first, and once the writer is connected
  they continue on cursors of it (they still refuse writes through the
  Store API); temporary tables they made are gone;
- a read-only store opening while a writable one is open: it borrows a
  cursor of the writer;
- a writer closing: the stores that borrowed from it move to another open
  writer of the file, or back onto a sandboxed connection of their own.

Only stores opened through :class:`Store` are known here. This module
reads three attributes of them (:class:`Registered`) and stays below
``core``, which casts what it gets back to ``Store``.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import Protocol


class Registered(Protocol):
    """What the registry reads of a store (``core.Store`` is the only kind
    registered)."""

    @property
    def path(self) -> Path: ...

    @property
    def connected(self) -> bool: ...

    @property
    def read_only(self) -> bool: ...


# Held while a store opens, closes or changes connection, so two threads
# opening the same file cannot interleave.
LOCK = threading.RLock()
_OPEN: dict[str, weakref.WeakSet[Registered]] = {}


def key(path: Path) -> str:
    return os.path.realpath(path)


def add(store: Registered) -> None:
    _OPEN.setdefault(key(store.path), weakref.WeakSet()).add(store)


def remove(store: Registered) -> None:
    stores = _OPEN.get(key(store.path))
    if stores is not None:
        stores.discard(store)
        if not stores:
            del _OPEN[key(store.path)]


def open_stores(path: Path) -> list[Registered]:
    """The stores of this file still open (connected) in this process."""
    return [s for s in list(_OPEN.get(key(path), ())) if s.connected]


def writer(path: Path, *, besides: Registered | None = None) -> Registered | None:
    """An open writable store of the file (other than ``besides``)."""
    for store in open_stores(path):
        if not store.read_only and store is not besides:
            return store
    return None


def readers(path: Path) -> list[Registered]:
    return [s for s in open_stores(path) if s.read_only]

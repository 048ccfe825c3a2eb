"""The API conversation objects, ready to send, for ``GET /v1/conversations/{id}``.

Why not ask DuckDB per request: a DuckDB query costs about 0.25 ms before
it does anything and a point lookup here 3-10 ms (DuckDB scans; it has no
cheap key lookup without an ART index, which would slow every upsert of
the store), while the contract's single-conversation GET has to answer in
well under a millisecond (benchmarks/RESULTS.md). So the server keeps every
conversation's JSON, built once by the store's own ``api_objects_sql``
(byte-identical to ``Store.conversation``), in an Arrow IPC file under the
server's state folder, memory-mapped: the operating system pages in what is
read, the process holds only an id -> row dict, and a restart over an
unchanged store reuses the file (named by a fingerprint of every
``(id, content_hash)``). Conversations changed since the build live in a
small overlay until the next rebuild.

The build runs in partitions of ids so DuckDB's per-conversation list
aggregation never holds more than ``PARTITION`` conversations at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from ..store import ConversationFilter
from ..store.api_objects import api_objects_sql

log = logging.getLogger("pe_toolkit.server")

PARTITION = 100_000
FINGERPRINT_SQL = (
    "SELECT count(*), coalesce(bit_xor(hash(id || chr(31) || content_hash)), 0)::UBIGINT FROM conversations"
)
_SCHEMA = pa.schema([("id", pa.string()), ("content_hash", pa.string()), ("json", pa.string())])


class NotReady(Exception):
    """The snapshot is still being built; ask the store directly."""


@dataclass(frozen=True)
class _Chunk:
    offsets: np.ndarray
    data: memoryview


@dataclass(frozen=True)
class _View:
    """One consistent state: a base file plus changes made since it was built.
    Swapped as a whole, so a reader on another thread never sees half an
    update."""

    index: dict[str, int]
    chunks: tuple[_Chunk, ...]
    overlay: dict[str, bytes | None] = field(default_factory=dict)  # None: deleted
    table: pa.Table | None = None  # keeps the mapped buffers alive

    def get(self, conversation_id: str) -> bytes | None:
        if conversation_id in self.overlay:
            return self.overlay[conversation_id]
        pos = self.index.get(conversation_id)
        if pos is None:
            return None
        chunk = self.chunks[pos >> 32]
        row = pos & 0xFFFFFFFF
        return bytes(chunk.data[chunk.offsets[row] : chunk.offsets[row + 1]])


def fingerprint(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    count, digest = con.execute(FINGERPRINT_SQL).fetchall()[0]
    return int(count), int(digest)


def _chunk_of(array: pa.Array) -> _Chunk:
    kind = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=kind)[array.offset : array.offset + len(array) + 1]
    data = array.buffers()[2]
    return _Chunk(offsets, memoryview(data) if data is not None else memoryview(b""))


def _view_of(table: pa.Table) -> tuple[_View, pa.Table]:
    ids = table.column("id")
    texts = table.column("json")
    index: dict[str, int] = {}
    chunks: list[_Chunk] = []
    # One pass per Arrow chunk (tens of chunks), not per row: zip builds the
    # dict in C.
    for number, (id_chunk, text_chunk) in enumerate(zip(ids.chunks, texts.chunks, strict=True)):
        base = number << 32
        index.update(zip(id_chunk.to_pylist(), range(base, base + len(id_chunk))))
        chunks.append(_chunk_of(text_chunk))
    keys = table.select(["id", "content_hash"])
    return _View(index, tuple(chunks), {}, table), keys


class ObjectSnapshot:
    """Thread-safe reads (:meth:`get`); builds and updates come from one
    thread (the store watcher)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._view: _View | None = None
        self._build_lock = threading.Lock()
        self.base_size = 0

    @property
    def ready(self) -> bool:
        return self._view is not None

    def get(self, conversation_id: str) -> bytes | None:
        """The object's JSON, None if unknown; :class:`NotReady` before the
        first build."""
        view = self._view
        if view is None:
            raise NotReady
        return view.get(conversation_id)

    @property
    def overlay_size(self) -> int:
        view = self._view
        return len(view.overlay) if view else 0

    def _path(self, print_: tuple[int, int]) -> Path:
        return self.folder / f"objects-{print_[0]}-{print_[1]:016x}.arrow"

    def load_or_build(self, con: duckdb.DuckDBPyConnection) -> pa.Table:
        """Map the file for the store's current fingerprint, building it if
        needed; returns the ``(id, content_hash)`` pairs it holds."""
        with self._build_lock:
            print_ = fingerprint(con)
            path = self._path(print_)
            if not path.is_file():
                self._build(con, path)
            view, keys = _view_of(pa.ipc.open_file(pa.memory_map(str(path))).read_all())
            self._view = view
            self.base_size = len(view.index)
            for old in self.folder.glob("objects-*.arrow"):
                if old != path:
                    with contextlib.suppress(OSError):
                        old.unlink()
            return keys

    def _build(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.folder.glob("objects-*.part"):  # from a build that was killed
            with contextlib.suppress(OSError):
                leftover.unlink()
        ids = [r[0] for r in con.execute("SELECT id FROM conversations ORDER BY id").fetchall()]
        tmp = path.with_suffix(f".{os.getpid()}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with open(fd, "wb", closefd=True) as sink, pa.ipc.new_file(sink, _SCHEMA) as writer:
                for start in range(0, max(len(ids), 1), PARTITION):
                    part = ids[start : start + PARTITION]
                    if not part:
                        break
                    for batch in self._objects(con, part):
                        writer.write_batch(batch)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    @staticmethod
    def _objects(con: duckdb.DuckDBPyConnection, ids: list[str]) -> list[pa.RecordBatch]:
        sql, params = api_objects_sql(ConversationFilter(ids=ids), order=False)
        query = (
            f"SELECT o.id, c.content_hash, o.json::VARCHAR AS json FROM ({sql}) o "
            "JOIN conversations c ON c.id = o.id"
        )
        reader = con.sql(query, params=params).to_arrow_reader(20_000)
        return [batch.cast(_SCHEMA) for batch in reader]

    def fetch(self, con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, tuple[str, bytes]]:
        """Current ``{id: (content_hash, json)}`` of some conversations."""
        found: dict[str, tuple[str, bytes]] = {}
        for batch in self._objects(con, ids):
            for cid, digest, text in zip(
                batch.column(0).to_pylist(), batch.column(1).to_pylist(), batch.column(2).to_pylist(), strict=True
            ):
                found[cid] = (digest, text.encode())
        return found

    def apply(self, changed: dict[str, bytes], deleted: list[str]) -> None:
        """Record changes made since the base was built (copy-on-write)."""
        view = self._view
        if view is None:
            return
        overlay = dict(view.overlay)
        overlay.update(changed)
        overlay.update(dict.fromkeys(deleted))
        self._view = _View(view.index, view.chunks, overlay, view.table)

"""One partition of a distributed analysis: one input file, read, scored and
written by one Ray task.

The task reads the file with the importer's readers (every importer format),
turns each batch of conversations into the messages frame ``analyze()``
scores, runs :func:`~pe_toolkit.analysis.frames.analyze_frame` on it
without the corpus-level shares (those need the whole corpus: see
:mod:`.corpus`), and writes, per table, one Parquet file per batch:

- ``conversations``: the conversations as read (nested messages), plus
  ``message_count``, ``content_hash`` (the store's) and ``fetched_at``;
- ``message_scores``, ``evidence``: as ``analyze_frame`` returns them;
- ``_conversation_base``: ``conversation_scores`` before the corpus shares;
- ``dead_letters``: the records the reader rejected, with their reason.

Everything goes to a private temporary folder first and is moved into
``TABLE/part=KEY`` only when the whole file is done, so a killed task
leaves no half partition behind: the manifest marks a partition complete
only after the move, and a re-run recomputes anything not marked.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..analysis.frames import analyze_frame
from ..analysis.registry import shipped, version_of
from ..errors import AnalysisError, PeToolkitError
from ..exports.atomic import private_file
from ..ingest import esconv
from ..ingest.columns import ColumnMap
from ..ingest.importer import BATCH_ROWS, _json_batches, _strip_gz, _table_batches, detect_format
from ..ingest.loading import ImportReport
from ..ingest.reader import DEFAULT_CHUNK_BYTES
from ..store.core import CONTENT_HASH_SQL
from ..store.normalize import JSON_FORMATS
from .inputs import local_copy

PARTITION_TABLES = ("conversations", "message_scores", "_conversation_base", "evidence", "dead_letters")
DEAD_LETTER_SCHEMA = pa.schema(
    [("source", pa.string()), ("line", pa.int64()), ("reason", pa.string()), ("raw", pa.string())]
)
SUMMARY_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("uri", pa.string()),
        ("fingerprint", pa.string()),
        ("conversations", pa.int64()),
        ("messages", pa.int64()),
        ("evidence", pa.int64()),
        ("dead_letters", pa.int64()),
        ("seconds", pa.float64()),
        ("worker", pa.string()),
        # The version of the analyzers this worker ran (its own install), and
        # an expected failure (an unreadable file, another version) that
        # kept the partition from being written: the driver reports it.
        ("analysis_version", pa.string()),
        ("error", pa.string()),
    ]
)


def batches_of(path: Path, *, batch_rows: int = BATCH_ROWS) -> Iterator[tuple[pa.Table, list[tuple[int, str, str]]]]:
    """(conversations, bad records) per batch of ``path``, as the importer reads it."""
    fmt = detect_format(path)
    dataset = Path(_strip_gz(path.name)).stem
    label = f"file:{path.name}"
    if fmt in JSON_FORMATS:
        yield from _json_batches(path, fmt, dataset, label, False, batch_rows, DEFAULT_CHUNK_BYTES)
    elif fmt == "esconv":
        yield from esconv.esconv_batches(path, dataset, label, batch_rows)
    else:
        yield from _table_batches(str(path), path, fmt, ColumnMap(), dataset, label, False, batch_rows, ImportReport())


def messages_of(conversations: pa.Table) -> pa.Table:
    """The messages frame ``analyze()`` reads from the store
    (conversation_id, idx from 0, role, content, timestamp), in conversation order."""
    lists = conversations.column("messages").combine_chunks()
    flat = pc.list_flatten(lists)
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    idx = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    return pa.table(
        {
            "conversation_id": conversations.column("id").take(pa.array(owner)),
            "idx": pa.array(idx.astype(np.int32)),
            "role": flat.field("role"),
            "content": flat.field("content"),
            "timestamp": flat.field("timestamp"),
        }
    )


def _in_store_order(messages: pa.Table) -> pl.DataFrame:
    """The messages in (conversation_id, idx) order, as ``store.messages()``
    hands them to ``analyze()``: sorted by Arrow, so the frame carries no
    polars "sorted" flag. Polars picks its group-by algorithm by that flag,
    and the two sum a conversation's floats in different orders: sorting
    with polars here made empathy_mean differ in the last bit from the
    single-node result."""
    ordered = messages.sort_by([("conversation_id", "ascending"), ("idx", "ascending")])
    frame = pl.from_arrow(ordered, rechunk=True)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _with_store_columns(conversations: pa.Table, fetched_at: datetime) -> pa.Table:
    """The columns the store adds on upsert: message_count, content_hash, fetched_at."""
    con = duckdb.connect()
    try:
        con.register("_incoming", conversations)
        extra = con.sql(
            f"SELECT len(messages)::INTEGER AS message_count, {CONTENT_HASH_SQL} AS content_hash FROM _incoming"
        ).to_arrow_table()
    finally:
        con.close()
    out = conversations.append_column("message_count", extra.column("message_count"))
    out = out.append_column("content_hash", extra.column("content_hash"))
    stamp = pa.array([fetched_at] * conversations.num_rows, pa.timestamp("us", tz="UTC"))
    return out.append_column("fetched_at", stamp)


class _SeenIds:
    """Ids already read from this file. The store keeps the last record of
    an id; a task writes each batch as it goes, so a later repeat cannot
    replace an earlier one: it is set aside as a bad record instead (the
    first wins here, and the dead letter says so)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def split(self, table: pa.Table, label: str) -> tuple[pa.Table, list[tuple[int, str, str]]]:
        # A Python pass over the batch's ids (a set lookup each): the set must
        # span the whole file, which no columnar kernel holds across batches.
        ids = table.column("id").to_pylist()
        keep = np.ones(len(ids), dtype=bool)
        rejected: list[tuple[int, str, str]] = []
        for i, cid in enumerate(ids):
            if cid in self.ids:
                keep[i] = False
                rejected.append((0, f"{label}: conversation id {cid!r} occurs more than once; the first record was kept", ""))
            self.ids.add(cid)
        return (table if keep.all() else table.filter(pa.array(keep))), rejected


def _write(folder: Path, table: str, n: int, data: pa.Table) -> None:
    target = folder / table
    target.mkdir(0o700, parents=True, exist_ok=True)
    # The conversations and their scores: mode 600 as every export's files
    # (pyarrow truncates the empty file and keeps its mode).
    pq.write_table(data, str(private_file(target / f"part-{n:05d}.parquet")))


def analyze_file(uri: str, key: str, output: str, fingerprint: str, *, version: str | None = None,
                 batch_rows: int = BATCH_ROWS) -> dict[str, Any]:  # fmt: skip
    """Score one input file into ``output``'s partition ``key``; the summary row.
    ``version``: the analysis version the driver records in the manifest; a
    worker whose analyzers are another version (another install, a model
    file replaced mid-run) refuses rather than write scores the manifest
    would attribute to the wrong version."""
    started = time.perf_counter()
    own = version_of(shipped())
    if version is not None and own != version:
        raise AnalysisError(
            f"worker {os.uname().nodename}:{os.getpid()} runs analysis version {own!r}, the run records {version!r}: "
            "install the same pe-toolkit (and models) on every node"
        )
    out = Path(output)
    tmp = out / "_tmp" / f"{key}-{uuid.uuid4().hex[:8]}"
    tmp.parent.mkdir(0o700, parents=True, exist_ok=True)  # parents=True alone makes it with the umask's mode
    tmp.mkdir(0o700)
    counts = {"conversations": 0, "messages": 0, "evidence": 0, "dead_letters": 0}
    fetched_at = datetime.now(UTC)
    seen = _SeenIds()
    try:
        with local_copy(uri) as path:
            bad: list[tuple[int, str, str]] = []
            n = 0
            for good, errors in batches_of(path, batch_rows=batch_rows):
                bad += errors
                good, repeats = seen.split(good, path.name)
                bad += repeats
                if not good.num_rows:
                    continue
                conversations = _with_store_columns(good, fetched_at)
                # The shipped analyzers, whose version the manifest records
                # (scale.run.analysis_version): a worker's own config must not
                # add models the version does not name.
                scores = analyze_frame(_in_store_order(messages_of(good)), corpus=False, analyzers=shipped())
                _write(tmp, "conversations", n, conversations)
                _write(tmp, "message_scores", n, scores.messages.to_arrow())
                _write(tmp, "_conversation_base", n, scores.conversations.to_arrow())
                _write(tmp, "evidence", n, scores.evidence.to_arrow())
                counts["conversations"] += scores.conversations.height
                counts["messages"] += scores.messages.height
                counts["evidence"] += scores.evidence.height
                n += 1
        dead = pa.table(
            {
                "source": pa.array([uri] * len(bad), pa.string()),
                "line": pa.array([line for line, _, _ in bad], pa.int64()),
                "reason": pa.array([reason for _, reason, _ in bad], pa.string()),
                "raw": pa.array([raw for _, _, raw in bad], pa.string()),
            },
            schema=DEAD_LETTER_SCHEMA,
        )
        _write(tmp, "dead_letters", 0, dead)
        counts["dead_letters"] = len(bad)
        _publish(tmp, out, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "key": key,
        "uri": uri,
        "fingerprint": fingerprint,
        **counts,
        "seconds": time.perf_counter() - started,
        "worker": f"{os.uname().nodename}:{os.getpid()}",
        "analysis_version": own,
        "error": None,
    }


def partition_dir(output: str | os.PathLike[str], table: str, key: str) -> Path:
    return Path(output) / table / f"part={key}"


def _publish(tmp: Path, out: Path, key: str) -> None:
    """Move each table's files into place (an old copy of the partition goes first)."""
    for table in PARTITION_TABLES:
        source = tmp / table
        if not source.exists():  # a file with no good record: empty tables, no files
            source.mkdir(0o700, parents=True)
        target = partition_dir(out, table, key)
        target.parent.mkdir(0o700, parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(source, target)


def run_batch(batch: dict[str, Any], output: str, version: str | None = None) -> pa.Table:
    """``map_batches`` entry: one summary row per input file of the batch.

    An expected failure of one file (a :class:`PeToolkitError`: a format
    the readers cannot tell, another analysis version) comes back as the
    row's ``error``, not as a raised exception: Ray would abort every other
    task and the CLI would print Ray's traceback instead of one line. The
    driver records the files that succeeded and then reports the others."""
    rows = []
    for uri, key, fp in zip(batch["uri"], batch["key"], batch["fingerprint"], strict=True):
        try:
            rows.append(analyze_file(str(uri), str(key), output, str(fp), version=version))
        except PeToolkitError as exc:
            rows.append({"key": str(key), "uri": str(uri), "fingerprint": str(fp), "error": " ".join(str(exc).split())})
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)

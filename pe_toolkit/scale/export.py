"""``export_dataset``: the training formats from a distributed analysis
output, one shard per partition, written by Ray tasks.

Each task loads one partition (one input file's conversations and scores)
into an in-memory DuckDB laid out as a store (``conversations``,
``messages``, the score tables and their ``current_*`` views) and runs the
single-node :func:`pe_toolkit.exports.export` on it, so the formats, the
filters (dataset, tier, quality, dates, risk, crisis categories, ids) and
the redaction are exactly the store export's. Shards are named by
partition (``KEY.jsonl``, ``KEY.parquet``, ``KEY/`` for Hugging Face);
``manifest.json`` lists them with their counts. Annotation labels live in a
store, not in such an output, so there is no label filter here.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..durable import check_parent
from ..errors import ExportError, InputError, PeToolkitError
from ..exports.atomic import private_file
from ..report_table import HtmlReport
from ..schema import STORED_CONVERSATION_COLUMNS
from ..store.normalize import sql_str
from .manifest import MANIFEST, Manifest
from .run import rate_text

_SUFFIX = {"jsonl": ".jsonl", "openai": ".jsonl", "sharegpt": ".jsonl", "csv": ".csv", "parquet": ".parquet", "huggingface": ""}


@dataclass
class ScaleExportReport(HtmlReport):
    path: str
    format: str
    shards: int = 0
    conversations: int = 0
    messages: int = 0
    seconds: float = 0.0
    workers: int = 0
    files: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"wrote {self.conversations:,} conversations ({self.messages:,} messages) as {self.format} to {self.path} "
            f"in {self.shards:,} shards: {self.seconds:.1f}s{rate_text(self.conversations, self.seconds, 'conversation')} "
            f"on {self.workers} workers"
        )


def _glob(root: Path, table: str, key: str) -> str:
    return (root / table / f"part={key}" / "*.parquet").as_posix()


def partition_store(output: str | os.PathLike[str], key: str) -> duckdb.DuckDBPyConnection:
    """One partition as an in-memory store (the tables exports read)."""
    root = Path(output)
    con = duckdb.connect()
    columns = ", ".join("metadata::JSON AS metadata" if c == "metadata" else c for c in STORED_CONVERSATION_COLUMNS)
    conversations = f"read_parquet({sql_str(_glob(root, 'conversations', key))}, hive_partitioning = false)"
    con.execute(f"CREATE TABLE conversations AS SELECT {columns} FROM {conversations}")
    con.execute(
        "CREATE TABLE messages AS SELECT id AS conversation_id, unnest(range(len(messages)))::INTEGER AS idx, "
        "unnest(messages).role AS role, unnest(messages).content AS content, unnest(messages).timestamp AS timestamp "
        f"FROM {conversations}"
    )
    for table in ("conversation_scores", "message_scores"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet({sql_str(_glob(root, table, key))}, hive_partitioning = false)")
    con.execute("CREATE VIEW current_conversation_scores AS SELECT * FROM conversation_scores")
    con.execute("CREATE VIEW current_message_scores AS SELECT * FROM message_scores")
    return con


_SHARD_SCHEMA = pa.schema(
    [("key", pa.string()), ("file", pa.string()), ("conversations", pa.int64()), ("messages", pa.int64()), ("error", pa.string())]
)


def export_partition(batch: dict[str, Any], output: str, target: str, options: dict[str, Any]) -> pa.Table:
    """``map_batches`` entry: one shard per partition of the batch. An
    expected failure (an unreadable partition, an export error) comes back
    as the row's ``error`` for the driver to report in one line, not as an
    exception Ray would print as a traceback."""
    from ..exports import export

    rows = []
    for key in batch["key"]:
        key = str(key)
        shard = Path(target) / f"{key}{_SUFFIX[options['format']]}"
        try:
            try:
                con = partition_store(output, key)
            except duckdb.Error as exc:
                raise InputError(f"partition {key} of {output}: cannot read it: {str(exc).splitlines()[0]}") from None
            try:
                result = export(con, shard, progress=False, **options)
            finally:
                con.close()
        except PeToolkitError as exc:
            rows.append({"key": key, "file": shard.name, "conversations": 0, "messages": 0, "error": " ".join(str(exc).split())})
            continue
        rows.append({"key": key, "file": shard.name, "conversations": result.conversations, "messages": result.messages, "error": None})
    return pa.Table.from_pylist(rows, schema=_SHARD_SCHEMA)


def export_dataset(
    output: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    format: str,
    address: str | None = None,
    progress: bool = True,
    **options: Any,
) -> ScaleExportReport:
    """Write the conversations of the analysis output ``output`` to the
    folder ``path``, one ``format`` shard per partition. ``options``: the
    keyword arguments of :func:`pe_toolkit.exports.export` (filters,
    ``redact``, ``include_scores``, ``layout``) except ``labels``."""
    from ..exports.core import check_options

    started = time.perf_counter()
    if format not in _SUFFIX:
        raise InputError(f"unknown format {format!r}; expected one of {', '.join(_SUFFIX)}")
    if options.get("labels"):
        raise InputError("an analysis output has no annotations: the label filter needs a store")
    options.pop("labels", None)
    # The store export's own option checks (layout, openai with scores), here
    # in the driver: in a task they would fail once per shard, as Ray tracebacks.
    check_options(format, Path(f"shard{_SUFFIX[format]}"), options.get("layout"), bool(options.get("include_scores")))
    root = Path(output)
    manifest = Manifest.load(root)
    if not manifest.partitions or not manifest.corpus_complete:
        raise InputError(f"{root}: not a complete analysis output; run `pe-toolkit analyze --engine ray` first")
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder")
    if target.exists() and any(target.iterdir()):
        raise InputError(f"{target}: exists and is not empty")
    check_parent(target, ExportError)  # not created, as the store export does not create it: a typo fails
    # A partition of a file with no good record has no Parquet file to read:
    # it has no shard (its conversations, none, are in no format).
    keys = sorted(k for k, entry in manifest.partitions.items() if int(entry.get("conversations") or 0) > 0)
    report = ScaleExportReport(str(target), format)
    # The shards go to a hidden sibling folder that becomes ``target`` only
    # when every shard and the manifest are written: a killed or failed
    # export leaves no folder that looks like a (partial) result, and the
    # same command can simply be run again.
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir(0o700)  # as a store export's folder: it becomes the export
    try:
        rows = _export_shards(root, staging, keys, format, options, address, progress, report) if keys else []
        failed = [r for r in rows if r["error"]]
        if failed:
            raise ExportError(
                f"{len(failed)} of {len(rows)} shards failed ({failed[0]['key']}: {failed[0]['error']}); nothing was written to {target}"
            )
        rows.sort(key=lambda r: r["key"])
        for row in rows:
            del row["error"]
        report.shards = len(rows)
        report.conversations = sum(r["conversations"] for r in rows)
        report.messages = sum(r["messages"] for r in rows)
        report.files = [r["file"] for r in rows]
        write_manifest(staging, {"format": format, "analysis_version": manifest.analysis_version, "shards": rows,
                                 "conversations": report.conversations, "messages": report.messages})  # fmt: skip
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


def write_manifest(folder: Path, fields: dict[str, Any]) -> Path:
    """The export's ``manifest.json``: readable by its owner only (mode
    600), as the shards and every store export's files are."""
    path = private_file(folder / MANIFEST)
    path.write_text(json.dumps(fields, indent=1), "utf-8")
    return path


def _export_shards(root: Path, staging: Path, keys: list[str], format: str, options: dict[str, Any], address: str | None,
                   progress: bool, report: ScaleExportReport) -> list[dict[str, Any]]:  # fmt: skip
    from .run import _start_ray

    owns_ray, report.workers = _start_ray(address, None)
    import ray
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = progress
    try:
        shards = ray.data.from_items([{"key": k} for k in keys], override_num_blocks=len(keys)).map_batches(
            export_partition,  # type: ignore[arg-type]  # Ray types fn as one-argument; the rest come through fn_kwargs
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={"output": str(root), "target": str(staging), "options": {"format": format, **options}},
            num_cpus=1,
        )
        return [row for batch in shards.iter_batches(batch_size=None, batch_format="pyarrow") for row in batch.to_pylist()]  # type: ignore[union-attr]  # batch_format="pyarrow": each batch is a pyarrow Table
    finally:
        if owns_ray:
            ray.shutdown()

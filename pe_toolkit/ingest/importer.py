"""Import conversation files into the store: streaming, batched, idempotent.

Formats: ``api`` (the API's conversation objects), ``openai`` (chat
fine-tuning JSONL), ``sharegpt``, as JSON lines or one JSON array (``.json``);
``csv`` and ``parquet`` with a :class:`ColumnMap`. ``.gz`` is accepted for
all text formats.

Guarantees:
- each batch is written in one transaction, so a conversation is never
  half-written and a killed import loses only the batch in flight;
- re-importing a file changes nothing (conversations are keyed by id and
  content hash; id-less formats derive the id from the content);
- when an id occurs several times, the last occurrence in the file wins;
- a bad record stops the import with ``file:line: reason`` before its batch
  is written, or, with ``skip_invalid``, goes to ``dead_letters`` with its
  reason while the rest is imported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa

from ..errors import InputError, RecordError, UnknownFormatError
from ..events import EventBus, bus as default_bus
from ..store import Store, UpsertResult
from .normalize import JSON_FORMATS, normalize_lines, parse_connection
from .prefetch import prefetch
from .reader import DEFAULT_CHUNK_BYTES, LineChunk, peek_first_record, read_line_chunks
from .tabular import ColumnMap, read_tabular

FORMATS = ("auto", *JSON_FORMATS, "csv", "parquet")
BATCH_ROWS = 10_000


@dataclass
class ImportReport(UpsertResult):
    """An :class:`UpsertResult` plus what was set aside."""

    path: str = ""
    format: str = ""
    invalid: int = 0

    def __str__(self) -> str:
        text = (
            f"{self.path} ({self.format}): {self.inserted:,} new, {self.updated:,} updated, "
            f"{self.unchanged:,} unchanged"
        )
        if self.invalid:
            text += f", {self.invalid:,} invalid (in dead_letters)"
        return text


def _strip_gz(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def _format_of_record(record: bytes) -> str | None:
    try:
        obj = orjson.loads(record)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, list):
        obj = obj[0] if obj and isinstance(obj[0], dict) else None
    if not isinstance(obj, dict):
        return None
    if "conversations" in obj:
        return "sharegpt"
    if "messages" in obj:
        if {"id", "metadata", "quality_metrics"} & obj.keys():
            return "api"
        return "openai"
    return None


def detect_format(path: Path) -> str:
    """Guess the format from the name, then from the first record."""
    suffix = Path(_strip_gz(path.name)).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    head = peek_first_record(path)
    if head.startswith(b"["):
        con = duckdb.connect()
        try:
            rows = con.sql(
                "SELECT json::VARCHAR FROM read_json_objects($path, format = 'array') LIMIT 1",
                params={"path": str(path)},
            ).fetchall()
        except duckdb.Error as exc:
            raise InputError(f"{path}: not a valid JSON array: {str(exc).splitlines()[0]}") from None
        finally:
            con.close()
        head = rows[0][0].encode() if rows else b""
    fmt = _format_of_record(head)
    if fmt is None:
        if suffix in (".jsonl", ".ndjson", ".json"):
            # Let the normal path report file:line for the first bad record.
            return "api"
        raise UnknownFormatError(
            f"{path}: cannot tell the format; pass --format ({', '.join(FORMATS[1:])})"
        )
    return fmt


def _is_json_array(path: Path) -> bool:
    return peek_first_record(path).startswith(b"[")


def _array_chunks(path: Path, batch_rows: int) -> Iterator[LineChunk]:
    """A JSON array file streamed element by element by DuckDB; the record
    number (1-based) stands in for the line number."""
    con = parse_connection()
    try:
        reader = con.sql(
            "SELECT json::VARCHAR AS raw FROM read_json_objects($path, format = 'array')",
            params={"path": str(path)},
        ).to_arrow_reader(batch_rows)
        first = 1
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (duckdb.Error, pa.ArrowInvalid) as exc:
                raise RecordError(str(path), first, f"invalid JSON array: {str(exc).splitlines()[0]}") from None
            n = batch.num_rows
            table = pa.table({"line_no": pa.array(range(first, first + n), pa.int64()), "raw": batch.column(0)})
            first += n
            yield LineChunk(table, 0)
    finally:
        con.close()


def _progress(total: int | None, unit: str, desc: str, enabled: bool):  # type: ignore[no-untyped-def]
    from tqdm.auto import tqdm

    scale = unit == "B"
    return tqdm(total=total, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000, desc=desc, disable=not enabled, leave=False)


def _json_batches(path: Path, fmt: str, dataset: str, source: str, progress: bool, batch_rows: int, chunk_bytes: int):  # type: ignore[no-untyped-def]
    con = parse_connection()
    array = _is_json_array(path)
    chunks = _array_chunks(path, batch_rows) if array else read_line_chunks(path, chunk_bytes)
    bar = _progress(None if array else os.path.getsize(path), "rec" if array else "B", path.name, progress)
    try:
        with bar:
            for chunk in chunks:
                good, errors = normalize_lines(con, chunk.lines, fmt, dataset=dataset, source=source)
                errors = sorted(chunk.bad_lines + errors)
                yield good, errors
                if array:
                    bar.update(chunk.lines.num_rows)
                else:
                    bar.update(chunk.position - bar.n)
    finally:
        con.close()


def _tabular_batches(path: Path, fmt: str, cmap: ColumnMap, dataset: str, source: str, progress: bool, batch_rows: int):  # type: ignore[no-untyped-def]
    con = parse_connection()
    try:
        total, batches = read_tabular(con, path, fmt, cmap, dataset=dataset, source=source, batch_rows=batch_rows)
        with _progress(total, "conv", path.name, progress) as bar:
            for good, errors in batches:
                yield good, errors
                bar.update(good.num_rows + len(errors))
    finally:
        con.close()


def import_file(
    store: Store,
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    dataset: str | None = None,
    columns: ColumnMap | None = None,
    skip_invalid: bool = False,
    progress: bool = True,
    batch_rows: int = BATCH_ROWS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    events: EventBus | None = None,
) -> ImportReport:
    """Import one file into ``store``; see the module docstring for guarantees.

    ``dataset`` names the dataset of records that do not carry one (default:
    the file name without extensions). A batch is ``chunk_bytes`` of JSON
    lines, or ``batch_rows`` records of a JSON array or table.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if format == "auto" else format
    if columns is not None and fmt not in ("csv", "parquet"):
        raise InputError("a column mapping applies only to csv and parquet files")
    dataset = dataset or Path(_strip_gz(path.name)).stem
    source = str(path.resolve())
    events = events or default_bus
    report = ImportReport(path=str(path), format=fmt)
    if fmt in JSON_FORMATS:
        batches = _json_batches(path, fmt, dataset, f"file:{path.name}", progress, batch_rows, chunk_bytes)
    else:
        batches = _tabular_batches(path, fmt, columns or ColumnMap(), dataset, f"file:{path.name}", progress, batch_rows)

    run_id = store.start_run("import", source)
    try:
        with store.bulk_writes(), contextlib.closing(prefetch(batches)) as prefetched:
            for good, errors in prefetched:
                if errors and not skip_invalid:
                    line, reason, _ = errors[0]
                    more = f" (and {len(errors) - 1} more in this batch)" if len(errors) > 1 else ""
                    raise RecordError(str(path), line, reason + more)
                if errors:
                    store.add_dead_letters([(source, str(line), reason, raw) for line, reason, raw in errors])
                    report.invalid += len(errors)
                result = store.upsert(good)
                report.add(result, keep_ids=False)
                _announce(events, result, source)
        _resolve_fixed(store, source, run_id)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            store.finish_run(run_id, report, invalid=report.invalid, error=str(exc) or type(exc).__name__)
        raise
    store.finish_run(run_id, report, invalid=report.invalid)
    events.publish("import.completed", path=str(path), inserted=report.inserted, updated=report.updated, unchanged=report.unchanged, invalid=report.invalid)
    return report


def _announce(events: EventBus, result: UpsertResult, source: str) -> None:
    if result.created_ids:
        events.publish("conversation.created", ids=result.created_ids, source=source)
    if result.updated_ids:
        events.publish("conversation.updated", ids=result.updated_ids, source=source)


def _resolve_fixed(store: Store, source: str, run_id: str) -> None:
    """Dead letters of this file that this complete run did not report again
    were fixed in the file: mark them resolved."""
    with store.transaction() as con:
        con.execute(
            "UPDATE dead_letters SET resolved_at = now() WHERE source = ? AND resolved_at IS NULL "
            "AND last_seen < (SELECT started_at FROM ingest_runs WHERE run_id = ?)",
            [source, run_id],
        )

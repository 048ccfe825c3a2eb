"""Import conversation files into the store: streaming, batched, idempotent.

Formats: ``api`` (the API's conversation objects), ``openai`` (chat
fine-tuning JSONL), ``sharegpt``, as JSON lines or one JSON array (``.json``);
``esconv`` (ESConv-style dialogues, :mod:`.esconv`); ``csv``, ``parquet``
and ``rows`` (JSON lines of flat records such as ``Context``/``Response``)
mapped by a :class:`ColumnMap`; a folder holding a Hugging Face dataset
(``save_to_disk``, or its Parquet/JSON shards; :mod:`.hf`). ``.gz`` is
accepted for all text formats.

Guarantees:
- each batch is written in one transaction, so a conversation is never
  half-written and a killed import loses only the batch in flight;
- re-importing a file changes nothing (conversations are keyed by id and
  content hash; id-less formats derive the id from the content);
- when an id occurs several times, the last occurrence in the file wins,
  and the other copies count as ``repeated`` whatever batch they are in
  (:mod:`pe_toolkit.store.loaded`);
- a bad record stops the import with ``file:line: reason`` before its batch
  is written, or, with ``skip_invalid``, goes to ``dead_letters`` with its
  reason while the rest is imported.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import orjson

from ..errors import InputError, UnknownFormatError
from ..events import EventBus, bus as default_bus
from ..progress import progress_bar
from ..store import Store
from ..store.normalize import JSON_FORMATS, normalize_lines, parse_connection
from . import esconv, hf, tables_export
from .columns import ColumnMap
from .csvlines import CsvLines
from .frames import relation_batches
from .loading import Batch, ImportReport, write_batches
from .reader import DEFAULT_CHUNK_BYTES, peek_first_record, record_chunks
from .tabular import TABULAR_FORMATS, relation_of

__all__ = ["BATCH_ROWS", "FORMATS", "ImportReport", "detect_format", "import_file"]

FORMATS = ("auto", *JSON_FORMATS, "esconv", *TABULAR_FORMATS)
BATCH_ROWS = 10_000


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
    if esconv.is_esconv(obj):
        return "esconv"
    try:
        ColumnMap().resolve(list(obj), "record")
    except InputError:
        return None
    return "rows"


def detect_format(path: Path) -> str:
    """Guess the format from the name, then from the first record."""
    if path.is_dir():
        return "hf"
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


def _json_batches(path: Path, fmt: str, dataset: str, source: str, progress: bool, batch_rows: int, chunk_bytes: int) -> Iterator[Batch]:
    con = parse_connection()
    array, chunks = record_chunks(path, batch_rows, chunk_bytes)
    size = None if array else os.path.getsize(path)
    try:
        with progress_bar(size, path.name, "rec" if array else "B", enabled=progress) as bar:
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


def _table_batches(where: str, paths: list[Path] | Path, fmt: str, cmap: ColumnMap, dataset: str, source: str, progress: bool,
                   batch_rows: int, report: ImportReport) -> Iterator[Batch]:  # fmt: skip
    con = parse_connection()
    try:
        value = [str(p) for p in paths] if isinstance(paths, list) else str(paths)
        lines, total, batches = relation_batches(
            con, relation_of(fmt), {"path": value}, cmap, where=where, what=fmt, label=fmt, dataset=dataset, source=source,
            text=fmt == "csv", header=1 if fmt == "csv" else 0, batch_rows=batch_rows,
            line_of=CsvLines(value) if fmt == "csv" and isinstance(value, str) else None,
        )  # fmt: skip
        report.mapping = lines
        yield from _counted(batches, total, Path(where).name, progress)
    finally:
        con.close()


def _counted(batches: Iterator[Batch], total: int, desc: str, progress: bool) -> Iterator[Batch]:
    with progress_bar(total, desc, "conv", enabled=progress) as bar:
        for good, errors in batches:
            yield good, errors
            bar.update(good.num_rows + len(errors))


def _primed(batches: Iterator[Batch]) -> Iterator[Batch]:
    """Run a generator up to its first batch now, so that its setup (reading
    the columns, planning the mapping) fails before the import run is recorded."""
    first = next(batches, None)
    return iter(()) if first is None else itertools.chain([first], batches)


def local_source(path: str | os.PathLike[str]) -> Path:
    """``path`` as a local file or folder that exists; :class:`InputError`
    for a Hugging Face Hub name or a missing path."""
    hf.check_local(str(path))
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    return path


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
    """Import one file (or a Hugging Face dataset folder) into ``store``;
    see the module docstring for guarantees.

    ``dataset`` names the dataset of records that do not carry one (default:
    the file name without extensions). A batch is ``chunk_bytes`` of JSON
    lines, or ``batch_rows`` records of a JSON array or table. The report's
    ``mapping`` says what each column or field became.
    """
    path = local_source(path)
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if format == "auto" or path.is_dir() else format
    if columns is not None and fmt not in (*TABULAR_FORMATS, "hf"):
        raise InputError(f"a column mapping applies to csv, parquet, rows and Hugging Face data, not to {fmt}")
    dataset = dataset or Path(_strip_gz(path.name)).stem
    source = str(path.resolve())
    label = f"file:{path.name}"
    events = events or default_bus
    cmap = columns or ColumnMap()
    if fmt == "hf":
        return _import_folder(store, path, dataset=dataset, source=source, columns=cmap, skip_invalid=skip_invalid,
                              progress=progress, batch_rows=batch_rows, events=events)  # fmt: skip
    report = ImportReport(path=str(path), format=fmt)
    if fmt in JSON_FORMATS:
        batches = _json_batches(path, fmt, dataset, label, progress, batch_rows, chunk_bytes)
        report.mapping = [f"{'conversations' if fmt == 'sharegpt' else 'messages'} -> messages ({fmt} shape); metadata kept"]
    elif fmt == "esconv":
        batches = esconv.esconv_batches(path, dataset, label, batch_rows, chunk_bytes)
        report.mapping = list(esconv.DESCRIPTION)
    else:
        batches = _primed(_table_batches(str(path), path, fmt, cmap, dataset, label, progress, batch_rows, report))
    write_batches(store, batches, where=str(path), source=source, report=report, skip_invalid=skip_invalid, events=events)
    return report


def _import_folder(store: Store, path: Path, *, dataset: str, source: str, columns: ColumnMap, skip_invalid: bool,
                   progress: bool, batch_rows: int, events: EventBus) -> ImportReport:  # fmt: skip
    if tables_export.is_tables_export(path):
        report = ImportReport(path=str(path), format="parquet (a tables export: conversations.parquet + messages.parquet)")
        with tempfile.TemporaryDirectory(prefix="pe-import-") as scratch:
            nested = tables_export.nested_copy(path, Path(scratch))
            batches = _primed(_table_batches(str(path), nested, "parquet", columns, dataset, f"file:{path.name}", progress, batch_rows, report))
            write_batches(store, batches, where=str(path), source=source, report=report, skip_invalid=skip_invalid, events=events)
        return report
    if hf.is_saved_dataset(path):
        report = hf.import_splits(store, hf.saved_splits(path), name=str(path), dataset=dataset, source=source, columns=columns,
                                  skip_invalid=skip_invalid, progress=progress, batch_rows=batch_rows, events=events)  # fmt: skip
        report.format = "hf (save_to_disk)"
        return report
    fmt, files = hf.shard_files(path)
    report = ImportReport(path=str(path), format=f"hf ({len(files)} {fmt} shard{'s' if len(files) > 1 else ''})")
    batches = _primed(_table_batches(str(path), files, fmt, columns, dataset, f"file:{path.name}", progress, batch_rows, report))
    write_batches(store, batches, where=str(path), source=source, report=report, skip_invalid=skip_invalid, events=events)
    return report

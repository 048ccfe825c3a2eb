"""``export()``: stream a selection of the store into a file or folder.

Safe to call from a background thread (the mirror server does): pass the
Store and every call reads through its own new DuckDB connection
(``store.cursor()``), closed when the export ends; or pass a DuckDB
connection that no other thread uses while the export runs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ExportError, InputError
from ..events import bus
from ..progress import progress_bar
from ..report_table import HtmlReport
from ..store import ConversationFilter, Store
from . import source
from .atomic import FIRST_LINE_LIMIT, atomic_dir, atomic_file
from .redact import Pseudonyms, load_redactor, redact_batch
from .scores import ScoreColumns
from .writers import MANIFEST, ParquetWriter, Writer, make_writer, write_manifest

FORMATS: tuple[str, ...] = ("jsonl", "openai", "sharegpt", "csv", "parquet", "huggingface")
BATCH_ROWS = 5_000  # conversations per batch: about 40k messages, a few MB


@dataclass
class ExportReport(HtmlReport):
    path: str
    format: str
    conversations: int = 0
    messages: int = 0
    bytes: int = 0
    layout: str | None = None
    redacted: bool = False
    scores: bool = False  # score columns were written
    seconds: float = 0.0

    def __str__(self) -> str:
        what = self.format + (f", {self.layout}" if self.layout else "")
        extras = "".join(
            f", {word}" for word, on in (("redacted", self.redacted), ("with scores", self.scores)) if on
        )
        return (
            f"{self.path} ({what}{extras}): {self.conversations:,} conversations, "
            f"{self.messages:,} messages, {_human_bytes(self.bytes)}"
        )


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@contextlib.contextmanager
def reading(store: Store | duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection of this call's own (see the module docstring)."""
    if isinstance(store, Store):
        # A session: a store opened with hold=False keeps its file for the export only.
        with store.session():
            con = store.cursor()
            try:
                yield con
            finally:
                con.close()
    elif isinstance(store, duckdb.DuckDBPyConnection):
        store.execute("SET TimeZone = 'UTC'")
        yield store
    else:
        raise InputError(f"expected a Store or a DuckDB connection, got {type(store).__name__}")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _json_object_with(*keys: str, first: str) -> Callable[[bytes], bool]:
    def check(line: bytes) -> bool:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            # a first line longer than the limit is cut: it must open with the
            # key this format's writer puts first
            return len(line) >= FIRST_LINE_LIMIT and line.startswith(b'{"%s":' % first.encode())
        return isinstance(obj, dict) and all(k in obj for k in keys)

    return check


# What the first line of each format's output is: an existing file whose
# first line is so is taken for a previous export and may be replaced
# without --force. A bare "{" is not enough: settings.json starts so too.
_PREVIOUS: dict[str, Callable[[bytes], bool]] = {
    "jsonl": _json_object_with("id", "messages", first="id"),
    "openai": _json_object_with("messages", first="messages"),
    "sharegpt": _json_object_with("conversations", first="id"),
    "csv": lambda line: line.startswith(b"conversation_id,"),
    "parquet": lambda line: line.startswith(b"PAR1"),
}


def _store_files(store: Store | duckdb.DuckDBPyConnection) -> list[Path]:
    if isinstance(store, Store):
        files = [Path(store.path)]
    elif isinstance(store, duckdb.DuckDBPyConnection):
        rows = store.execute("SELECT path FROM duckdb_databases() WHERE path IS NOT NULL").fetchall()
        files = [Path(row[0]) for row in rows]
    else:
        return []
    return [f for db in files for f in (db, db.with_name(db.name + ".wal"))]


def _refuse_store_file(store: Store | duckdb.DuckDBPyConnection, path: Path) -> None:
    """Never write over the cache being read (or its WAL), even with force:
    the export would replace the very data it came from."""
    for file in _store_files(store):
        same = file.exists() and path.exists() and os.path.samefile(file, path)
        if same or path.resolve() == file.resolve():
            raise ExportError(f"{path} is the cache being exported from; choose another path")


def _refuse_import_source(store: Store | duckdb.DuckDBPyConnection, path: Path, force: bool) -> None:
    """Without force, never write over a file this cache was imported from:
    it may look like a previous export (a JSON lines file starts with "{"),
    but it is the researcher's own data."""
    if force or not isinstance(store, Store) or not path.exists():
        return
    rows = store.sql("SELECT 1 FROM ingest_runs WHERE kind = 'import' AND source = ? LIMIT 1", [str(path.resolve())])
    if rows.height:
        raise ExportError(f"{path} is a file this cache was imported from; choose another path, or replace it with --force (force=True)")


def check_options(fmt: str, path: Path, layout: str | None, include_scores: bool) -> tuple[str | None, bool]:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        layout = layout or "messages"
        if layout not in ParquetWriter.LAYOUTS:
            raise InputError(f"unknown parquet layout {layout!r}; expected one of {', '.join(ParquetWriter.LAYOUTS)}")
    elif layout is not None:
        raise InputError("layout applies only to the parquet format")
    if fmt == "openai" and include_scores:
        raise InputError("the openai format holds only messages; use jsonl, sharegpt, csv, parquet or huggingface for scores")
    gz = path.name.lower().endswith(".gz")
    if gz and fmt not in ("jsonl", "openai", "sharegpt", "csv"):
        raise InputError(f"{fmt} is not gzipped as a whole (parquet compresses inside); drop the .gz")
    _check_suffix(fmt, path)
    return layout, gz


# What a file name's extension says it holds: JSON Lines (the jsonl, openai
# and sharegpt formats), csv or parquet.
_SUFFIX_HOLDS = {".jsonl": "JSON Lines", ".ndjson": "JSON Lines", ".json": "JSON Lines", ".csv": "csv", ".parquet": "parquet"}
_FORMAT_WRITES = {"jsonl": "JSON Lines", "openai": "JSON Lines", "sharegpt": "JSON Lines", "csv": "csv", "parquet": "parquet",
                  "huggingface": "a folder"}  # fmt: skip


def _check_suffix(fmt: str, path: Path) -> None:
    """Refuse a name whose extension names another format than the one
    written: ``export x.csv --format jsonl`` wrote JSON Lines under a .csv
    name without a word, and a reader that trusts the extension fails on
    it. A name without a known extension (``ds``, ``out.txt``) is the
    caller's choice."""
    suffix = Path(path.name.lower().removesuffix(".gz")).suffix
    holds = _SUFFIX_HOLDS.get(suffix)
    writes = _FORMAT_WRITES[fmt]
    if holds is not None and holds != writes:
        fitting = sorted(s for s, h in _SUFFIX_HOLDS.items() if h == writes)
        named = f"a name ending in {' or '.join(fitting)}" if fitting else "a folder name without an extension"
        formats = [f for f, w in _FORMAT_WRITES.items() if w == holds]
        choice = " or ".join(formats) if len(formats) < 3 else f"{', '.join(formats[:-1])} or {formats[-1]}"
        raise InputError(f"{path.name!r} names a {holds} file, but the {fmt} format writes {writes}: give {named}, "
                         f"or the format {choice}")  # fmt: skip


def export(
    store: Store | duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    *,
    format: str,
    filter: ConversationFilter | None = None,
    redact: bool = False,
    include_scores: bool = False,
    progress: bool = True,
    layout: str | None = None,
    batch_rows: int = BATCH_ROWS,
    force: bool = False,
    **filters: Any,
) -> ExportReport:
    """Write the selected conversations to ``path`` in ``format``.

    Formats: ``jsonl`` (the API's conversation objects), ``openai`` (chat
    fine-tuning lines), ``sharegpt``, ``csv`` (one row per message),
    ``parquet`` (``layout`` ``messages``, ``nested`` or ``tables``),
    ``huggingface`` (a folder for ``datasets.load_from_disk``). Text formats
    are gzipped when ``path`` ends in ``.gz``.

    Selection: ``filter`` (a :class:`ConversationFilter`) and keyword
    filters of the one vocabulary (``dataset``, ``tier``, ``ids``,
    ``min_quality``, ``max_quality``, ``created_after``, ``created_before``,
    ``min_risk``, ``max_risk``, ``alert``, ``crisis_categories``,
    ``labels``; see :mod:`pe_toolkit.store.filters`). ``redact`` replaces PII in message contents and
    metadata strings; ``include_scores`` adds the current analysis scores
    (absent, with ``report.scores`` False, if the store was never analyzed).

    The output appears under ``path`` only when complete (temporary name,
    then rename). An existing file is replaced only if it looks like a
    previous export of the same format (or is empty), or with ``force``; the
    store's own file is never replaced. See docs/export.md for what each
    format keeps.
    """
    started = time.perf_counter()
    path = Path(path)
    layout, gz = check_options(format, path, layout, include_scores)
    _refuse_store_file(store, path)
    _refuse_import_source(store, path, force)
    if batch_rows < 1:
        raise InputError("batch_rows must be at least 1")
    selection = ConversationFilter.build(filter, **filters)
    redactor = load_redactor() if redact else None
    writer = make_writer(format, layout=layout, include_scores=include_scores, gz=gz)
    report = ExportReport(path=str(path), format=format, layout=layout, redacted=redact)
    # The one boundary where file-system and DuckDB failures become ExportError.
    try:
        _run(store, path, format, layout, selection, writer, report, redactor, include_scores, progress, batch_rows, force)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    except duckdb.Error as exc:
        raise ExportError(f"reading the store for {path} failed: {str(exc).splitlines()[0]}") from None
    report.bytes = _size(path)
    report.seconds = time.perf_counter() - started
    bus.publish(
        "export.completed",
        path=str(path),
        format=format,
        conversations=report.conversations,
        messages=report.messages,
    )
    return report


def _run(
    store: Store | duckdb.DuckDBPyConnection,
    path: Path,
    format: str,
    layout: str | None,
    selection: ConversationFilter,
    writer: Writer,
    report: ExportReport,
    redactor: Any,
    include_scores: bool,
    progress: bool,
    batch_rows: int,
    force: bool,
) -> None:
    redact = redactor is not None
    pseudonyms = Pseudonyms()  # one key per export: ids join within it, not across exports
    with reading(store) as con:
        selection.check(con, ExportError)
        scores = ScoreColumns.of(con) if include_scores else ScoreColumns()
        report.scores = bool(scores.conversation) if writer.source == "api" else bool(scores)
        query = source.api_sql if writer.source == "api" else source.nested_sql
        selected = source.selected_ids(con, selection)
        total = selected.num_rows
        absent = selection.absent_values(con) if total == 0 else []
        if absent:
            # Nothing matched and the filter names what the cache does not
            # hold: a typo, not an empty selection worth an empty file.
            raise ExportError(f"no conversation matched: the cache holds no {', '.join(absent)}; nothing was written")
        empty_sql, empty_params = query(ConversationFilter(ids=[]), scores)
        empty = pa.RecordBatch.from_pylist([], schema=con.sql(empty_sql, params=empty_params).to_arrow_reader(1).schema)
        if writer.directory:
            target = atomic_dir(path, marker=MANIFEST)
        else:
            target = atomic_file(path, previous=_PREVIOUS.get(format), gz=writer.gz, force=force)
        with target as tmp, progress_bar(total, path.name, "conv", enabled=progress) as bar:
            writer.open(tmp, empty)
            try:
                for batch in source.chunked(con, selected, query, scores, batch_rows):
                    if redactor is not None:
                        batch = redact_batch(batch, writer.source, redactor, pseudonyms)
                    report.messages += writer.write(batch)
                    report.conversations += batch.num_rows
                    bar.update(batch.num_rows)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            if writer.source == "api":
                report.messages = int(pc.sum(selected.column("message_count")).as_py() or 0)
            if writer.directory:
                write_manifest(
                    tmp,
                    format=format,
                    layout=layout,
                    conversations=report.conversations,
                    messages=report.messages,
                    redacted=redact,
                    scores=report.scores,
                )


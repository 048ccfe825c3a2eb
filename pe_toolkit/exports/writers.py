"""One writer per file format, fed batch by batch.

A writer receives Arrow record batches from ``source`` (API objects for
``jsonl``, nested conversations for the rest), already filtered and
redacted, and appends them to a file or folder that ``atomic`` renames into
place when the writer is closed successfully. Each writer holds at most one
batch in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ExportError
from . import shape
from .atomic import private_file

MANIFEST = "pe_toolkit_export.json"
HF_SHARD_BYTES = 500 << 20  # datasets' own default max_shard_size


def normal_type(t: pa.DataType) -> pa.DataType:
    """Plain 32-bit-offset types (what DuckDB and ``datasets`` expect) for the
    large and view types polars hands out."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_list(t):
        return pa.list_(pa.field("item", normal_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, normal_type(f.type), f.nullable) for f in t])
    return t


def normal_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, normal_type(f.type)) for f in schema])


class Writer:
    """Base: ``open(target, empty)`` once, ``write(batch)`` per batch (returns
    the messages written), ``close()`` on success."""

    source: ClassVar[str] = "nested"  # or "api"
    directory: ClassVar[bool] = False
    compressible: ClassVar[bool] = False  # may be gzipped (.gz)

    def __init__(self, *, layout: str | None, include_scores: bool, gz: bool) -> None:
        self.layout, self.include_scores, self.gz = layout, include_scores, gz

    def open(self, target: Path, empty: pa.RecordBatch) -> None:
        raise NotImplementedError

    def write(self, batch: pa.RecordBatch) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Release handles after a failure (the temporary output is discarded)."""
        with contextlib.suppress(Exception):  # the original failure matters, not this one
            self.close()


def _messages_in(batch: pa.RecordBatch) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(pc.list_value_length(batch.column("messages"))).as_py() or 0)


class _TextWriter(Writer):
    compressible = True

    def open(self, target: Path, empty: pa.RecordBatch) -> None:
        self._out = pa.output_stream(str(target), compression="gzip" if self.gz else None)

    def close(self) -> None:
        self._out.close()


class ApiLinesWriter(_TextWriter):
    """``jsonl``: the API's conversation objects, one per line."""

    source = "api"

    def write(self, batch: pa.RecordBatch) -> int:
        self._out.write(shape.join_lines(batch.column("json")))
        return 0  # the caller counts messages from the store for this format


class ChatLinesWriter(_TextWriter):
    """``openai`` / ``sharegpt`` chat JSON lines."""

    def __init__(self, fmt: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fmt = fmt

    def open(self, target: Path, empty: pa.RecordBatch) -> None:
        super().open(target, empty)
        self._con = duckdb.connect()

    def write(self, batch: pa.RecordBatch) -> int:
        lines = shape.json_lines(self._con, batch, self.fmt, with_scores=self.include_scores)
        self._out.write(shape.join_lines(lines))
        return _messages_in(batch)

    def close(self) -> None:
        self._con.close()
        super().close()


class CsvWriter(_TextWriter):
    """``csv``: one row per message (see ``shape.flat_messages``)."""

    def open(self, target: Path, empty: pa.RecordBatch) -> None:
        super().open(target, empty)
        self._header = True
        self._write_frame(empty)

    def _write_frame(self, batch: pa.RecordBatch) -> int:
        frame = shape.json_text_columns(shape.flat_messages(batch))
        if frame.height or self._header:
            frame.write_csv(self._out, include_header=self._header, datetime_format="%Y-%m-%dT%H:%M:%S%.fZ")
            self._header = False
        return frame.height

    def write(self, batch: pa.RecordBatch) -> int:
        return self._write_frame(batch)


class _ParquetFile:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = normal_schema(schema)
        # The tables layout's files are created here, inside the export's folder: private as the others.
        self.writer = pq.ParquetWriter(str(path if path.exists() else private_file(path)), self.schema, compression="zstd")

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.writer.write_table(table.cast(self.schema))

    def close(self) -> None:
        self.writer.close()


class ParquetWriter(Writer):
    """``parquet``: layout ``messages`` (one row per message, like csv),
    ``nested`` (one row per conversation, messages as a list) or ``tables``
    (a folder with conversations.parquet and messages.parquet)."""

    LAYOUTS: ClassVar[tuple[str, ...]] = ("messages", "nested", "tables")

    @property
    def directory(self) -> bool:  # type: ignore[override]  # a property here (it depends on the layout), a class constant on the other writers
        return self.layout == "tables"

    def _tables(self, batch: pa.RecordBatch) -> list[pa.Table]:
        if self.layout == "messages":
            return [shape.flat_messages(batch).to_arrow()]
        if self.layout == "nested":
            return [shape.conversation_rows(batch, shape.NESTED_COLUMNS, shape.nested_message_fields(batch))]
        return [shape.conversation_rows(batch, shape.TABLE_COLUMNS, None), shape.message_table(batch)]

    def open(self, target: Path, empty: pa.RecordBatch) -> None:
        tables = self._tables(empty)
        if self.layout == "tables":
            paths = [target / "conversations.parquet", target / "messages.parquet"]
        else:
            paths = [target]
        self._files = [_ParquetFile(p, t.schema) for p, t in zip(paths, tables)]

    def write(self, batch: pa.RecordBatch) -> int:
        for file, table in zip(self._files, self._tables(batch)):
            file.write(table)
        return _messages_in(batch)

    def close(self) -> None:
        for file in self._files:
            file.close()


class HuggingFaceWriter(Writer):
    """``huggingface``: a folder ``datasets.load_from_disk`` opens (Arrow IPC
    stream shards + ``state.json`` + ``dataset_info.json``), one row per
    conversation like parquet's nested layout. Written with pyarrow alone;
    features are left for ``datasets`` to infer from the Arrow schema, which
    keeps the folder readable by every ``datasets`` version."""

    directory = True

    def __init__(self, *, shard_bytes: int = HF_SHARD_BYTES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard_bytes = shard_bytes

    def _table(self, batch: pa.RecordBatch) -> pa.Table:
        return shape.conversation_rows(batch, shape.NESTED_COLUMNS, shape.nested_message_fields(batch))

    def open(self, target: Path, empty: pa.RecordBatch) -> None:
        self._target = target
        self._schema = normal_schema(self._table(empty).schema)
        self._shards: list[Path] = []
        self._sink: Any = None
        self._stream: Any = None
        self._fingerprint = hashlib.sha256()
        self._new_shard()

    def _new_shard(self) -> None:
        self._close_shard()
        path = self._target / f".shard-{len(self._shards):05d}.arrow"
        self._shards.append(path)
        self._sink = pa.OSFile(str(private_file(path)), "wb")
        self._stream = pa.ipc.new_stream(self._sink, self._schema)

    def _close_shard(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._sink.close()
            self._stream = self._sink = None

    def write(self, batch: pa.RecordBatch) -> int:
        table = self._table(batch).cast(self._schema)
        if self._sink.tell() >= self.shard_bytes:
            self._new_shard()
        self._stream.write_table(table)
        self._fingerprint.update(shape.join_lines(batch.column("content_hash")))
        return _messages_in(batch)

    def close(self) -> None:
        self._close_shard()
        n = len(self._shards)
        files = []
        for i, path in enumerate(self._shards):
            final = path.with_name(f"data-{i:05d}-of-{n:05d}.arrow")
            os.rename(path, final)
            files.append({"filename": final.name})
        state: dict[str, Any] = {
            "_data_files": files,
            "_fingerprint": self._fingerprint.hexdigest()[:16],
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": None,
        }
        info = {
            "builder_name": None,
            "citation": "",
            "config_name": None,
            "dataset_name": None,
            "description": "Conversations exported by pe_toolkit (one row per conversation; "
            "messages as a list of {role, content, timestamp}).",
            "features": None,
            "homepage": "",
            "license": "",
        }
        private_file(self._target / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        private_file(self._target / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")

    def abort(self) -> None:
        self._close_shard()


def make_writer(fmt: str, *, layout: str | None, include_scores: bool, gz: bool) -> Writer:
    kwargs: dict[str, Any] = {"layout": layout, "include_scores": include_scores, "gz": gz}
    if fmt == "jsonl":
        return ApiLinesWriter(**kwargs)
    if fmt in ("openai", "sharegpt"):
        return ChatLinesWriter(fmt, **kwargs)
    if fmt == "csv":
        return CsvWriter(**kwargs)
    if fmt == "parquet":
        return ParquetWriter(**kwargs)
    if fmt == "huggingface":
        return HuggingFaceWriter(**kwargs)
    raise ExportError(f"unknown export format {fmt!r}")


def write_manifest(folder: Path, **fields: Any) -> None:
    """A small record of what the folder holds; also marks it as ours, so a
    later export may replace it."""
    fields["exported_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    private_file(folder / MANIFEST).write_text(json.dumps(fields, indent=2, default=str) + "\n")

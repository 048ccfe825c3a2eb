"""Read a (possibly gzipped) JSON-lines file in chunks of whole lines.

Memory stays bounded by the chunk size whatever the file size. Lines are
split with Arrow (no Python object per line) and keep their 1-based line
numbers, so every later error can say ``file:line``.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa

from ..errors import InputError, RecordError, is_interrupt

DEFAULT_CHUNK_BYTES = 16 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


@dataclass
class LineChunk:
    lines: pa.Table  # line_no: int64, raw: large_string with its newline (valid UTF-8 only)
    position: int  # bytes of the file on disk consumed so far (for progress)
    bad_lines: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw)


def is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def open_maybe_gzip(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(stream of decompressed bytes, underlying file for progress)."""
    raw = path.open("rb")
    if raw.read(2) == _GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]  # a binary stream; typeshed does not declare GzipFile a BinaryIO
    raw.seek(0)
    return raw, raw


def _split_lines(buf: bytes) -> pa.Array:
    """Lines of ``buf`` as one binary array, each keeping its ``\n``.

    Offsets come from numpy's scan for newlines over the buffer, which the
    array then shares without copying: 6x faster than Arrow's split_pattern
    here. Keeping the newline lets the lines stay one contiguous buffer; it
    is JSON whitespace, and the normalizer treats newline-only lines as blank.
    """
    data = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(data == 10) + 1
    if not len(ends) or ends[-1] != len(buf):
        ends = np.append(ends, len(buf))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(buf)])


def _to_text(line_no: pa.Array, raw: pa.Array) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    try:
        text = raw.cast(pa.large_string())
        return pa.table({"line_no": line_no, "raw": text}), []
    except pa.ArrowInvalid:
        pass
    # Error path only: find the lines that are not UTF-8, one by one.
    keep_no: list[int] = []
    keep_raw: list[str] = []
    bad: list[tuple[int, str, str]] = []
    for number, blob in zip(line_no.to_pylist(), raw.to_pylist()):
        try:
            keep_raw.append(blob.decode("utf-8"))
            keep_no.append(number)
        except UnicodeDecodeError as exc:
            bad.append((number, f"invalid UTF-8 at byte {exc.start}", blob.decode("utf-8", "replace").rstrip("\r\n")))
    return pa.table({"line_no": pa.array(keep_no, pa.int64()), "raw": pa.array(keep_raw, pa.large_string())}), bad


_BROKEN = (EOFError, zlib.error, gzip.BadGzipFile)


def _read_chunk(stream: BinaryIO, size: int) -> tuple[bytes, BaseException | None]:
    """About ``size`` bytes ending at a line end, and the error that cut the
    stream short (a truncated or corrupt gzip), if one did.

    Read in pieces (``read1``) rather than one ``read(size)``: a gzip
    stream that breaks makes ``read`` drop everything it decompressed in
    that call, so the break could only be reported at the chunk's first
    line; the pieces read before the break are kept, and the line where
    it broke is known. A piece is up to a megabyte: a few dozen calls per
    chunk.
    """
    parts: list[bytes] = []
    got = 0
    try:
        while got < size:
            piece = stream.read1(min(size - got, 1 << 20))  # type: ignore[attr-defined]  # both streams given here (buffered file, GzipFile) have read1; BinaryIO does not declare it
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        if parts and not parts[-1].endswith(b"\n"):
            parts.append(stream.readline())
    except _BROKEN as exc:
        return b"".join(parts), exc
    return b"".join(parts), None


def read_line_chunks(path: str | Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[LineChunk]:
    path = Path(path)
    try:
        stream, underlying = open_maybe_gzip(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from None
    next_line = 1
    first = True
    with stream, underlying:
        while True:
            buf, broken = _read_chunk(stream, chunk_bytes)
            if broken is not None:
                # Keep the complete lines before the break (the last line
                # is cut short): they are read like any other; the error
                # names the line the stream broke in.
                buf = buf[: buf.rfind(b"\n") + 1]
            if not buf and broken is None:
                return
            if first and buf:
                buf = buf.removeprefix(_BOM)
                first = False
            if buf:
                raw = _split_lines(buf)
                count = len(raw)
                # From numpy: pa.array(range(...)) converts the numbers one by one, 15 ms
                # per 200,000 lines against 0.06 ms (benchmarks/RESULTS.md, 2026-12-04).
                line_no = pa.array(np.arange(next_line, next_line + count, dtype=np.int64))
                table, bad = _to_text(line_no, raw)
                next_line += count
                yield LineChunk(table, underlying.tell(), bad)
            if broken is not None:
                what = (
                    "truncated gzip: the file ends inside compressed data"
                    if isinstance(broken, EOFError)
                    else f"corrupt gzip data ({broken})"
                )
                raise RecordError(str(path), next_line, f"{what}; the {next_line - 1:,} lines before it were read")


def peek_first_record(path: Path, limit: int = 1 << 20) -> bytes:
    """The first non-blank line (or leading bytes) of a file, for format detection."""
    stream, underlying = open_maybe_gzip(path)
    with stream, underlying:
        try:
            head = stream.read(limit)
        except _BROKEN:
            return b""
    head = head.removeprefix(_BOM)
    for line in io.BytesIO(head):
        if line.strip():
            return line.strip()
    return b""


def read_array_chunks(path: Path, batch_rows: int) -> Iterator[LineChunk]:
    """A JSON array file streamed element by element by DuckDB; the record
    number (1-based) stands in for the line number."""
    from ..store.normalize import parse_connection

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
            except (duckdb.Error, pa.ArrowInvalid, OSError) as exc:
                # OSError: DuckDB's error as pyarrow's stream reader hands it on.
                if is_interrupt(exc):
                    raise
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise RecordError(str(path), first, f"invalid JSON array: {reason}") from None
            n = batch.num_rows
            table = pa.table({"line_no": pa.array(np.arange(first, first + n, dtype=np.int64)), "raw": batch.column(0)})
            first += n
            yield LineChunk(table, 0)
    finally:
        con.close()


def is_json_array(path: Path) -> bool:
    return peek_first_record(path).startswith(b"[")


def record_chunks(path: Path, batch_rows: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> tuple[bool, Iterator[LineChunk]]:
    """(is an array, chunks of records) of a JSON-lines file or a JSON array file."""
    array = is_json_array(path)
    return array, (read_array_chunks(path, batch_rows) if array else read_line_chunks(path, chunk_bytes))

"""The line of a CSV file a record starts on, for error messages.

DuckDB numbers a CSV file's records, not its lines: a quoted cell holding
a newline makes the two differ, and a user looks for the bad row in an
editor, by line. Python's ``csv`` module counts lines as it reads
(``line_num``), so the file is read again with it, on the error path only:
an import without errors never pays for it.
"""

from __future__ import annotations

import csv
import gzip
import sys
from collections.abc import Generator
from typing import IO, Any

import duckdb

# A message may be longer than csv's default 128 KiB field. The limit is
# process-wide and a C long (32 bits on Windows, where sys.maxsize overflows
# it), so it is only ever raised, to at most this, once.
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


def _allow_long_fields() -> None:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)


class CsvLines:
    """``lines(record)``: the line (1-based) data record ``record`` (1-based,
    the header excluded) of the CSV file ``path`` starts on. Records are
    asked in increasing order, so the file is read once however many errors
    there are; asking for an earlier one reads it again from the start.
    ``close()`` closes the file (it is opened again if asked once more)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._rows: Generator[int] | None = None
        self._at = 0  # records read so far
        self._line = 0  # the line the last record read starts on

    def _open(self) -> IO[str]:
        if self.path.lower().endswith(".gz"):
            return gzip.open(self.path, "rt", encoding="utf-8-sig", errors="replace", newline="")
        return open(self.path, encoding="utf-8-sig", errors="replace", newline="")

    def _dialect(self) -> dict[str, Any]:
        """The delimiter, quote and escape DuckDB detected, so that both read the same records."""
        con = duckdb.connect()
        try:
            delimiter, quote, escape = con.execute("SELECT Delimiter, Quote, Escape FROM sniff_csv(?)", [self.path]).fetchall()[0]
        except duckdb.Error:
            return {}
        finally:
            con.close()
        out: dict[str, Any] = {"delimiter": delimiter or ",", "quotechar": quote if quote and len(quote) == 1 else '"'}
        if escape and len(escape) == 1 and escape != out["quotechar"]:
            out |= {"escapechar": escape, "doublequote": False}
        return out

    def _starts(self) -> Generator[int]:
        """The first line of each data record; blank lines are no records (DuckDB skips them)."""
        _allow_long_fields()
        with self._open() as fh:
            reader = csv.reader(fh, **self._dialect())
            end = 0  # the line the previous record ended on
            first = True
            for row in reader:
                start, end = end + 1, reader.line_num
                if not row:
                    continue
                if first:  # the header
                    first = False
                    continue
                yield start

    def close(self) -> None:
        """Close the file: finishing the generator leaves its with-statement."""
        if self._rows is not None:
            self._rows.close()
        self._rows = None

    def __call__(self, record: int) -> int:
        if self._rows is None or record < self._at:
            self.close()
            self._rows, self._at, self._line = self._starts(), 0, 0
        try:
            while self._at < record:
                self._line = next(self._rows)
                self._at += 1
        except (StopIteration, csv.Error, OSError):
            # Unreadable by csv where DuckDB read it: the record number
            # (plus the header), exact when no cell spans lines.
            self.close()
            return record + 1
        return self._line

"""Write a file or a directory under a temporary name, then rename it into place.

A crash (or a kill) at any moment leaves either the previous file or the
complete new one at the target path, plus at worst a hidden ``.NAME.*.part``
leftover, which the next successful write to that path removes
(:mod:`pe_toolkit.durable`): never a half-written file under the real name. Exports hold
conversations of people in distress, so what is created here is readable by
its owner only (mode 600 / 700), like the cache itself; the mode is given
at creation rather than through the process umask, which other threads
share.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..durable import check_parent, fsync_dir, fsync_file, sweep, temp_name
from ..errors import ExportError

PART_SUFFIX = ".part"


OLD_SUFFIX = ".old"


def _temp_name(path: Path) -> Path:
    return temp_name(path, PART_SUFFIX)


def _first_line(path: Path, gz: bool) -> bytes | None:
    """The file's first line (at most ``FIRST_LINE_LIMIT`` bytes, decompressed
    if ``gz``), or None if it cannot be read as such."""
    try:
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            return f.readline(FIRST_LINE_LIMIT)
    except (OSError, EOFError, zlib.error):  # gzip.BadGzipFile is an OSError
        return None


# How much of a file's first line is read to recognise a previous export.
FIRST_LINE_LIMIT = 1 << 20


def _looks_like_previous_file(path: Path, previous: Callable[[bytes], bool] | None, gz: bool) -> bool:
    """An empty file, or one whose first line is what this format writes:
    replacing it loses at most an earlier export, never someone's other data."""
    if previous is None:
        return False
    if path.stat().st_size == 0:
        return True
    line = _first_line(path, gz)
    # b"": an empty export, compressed (a gzip stream of nothing is 20 bytes)
    return line is not None and (line == b"" or previous(line))


@contextmanager
def atomic_file(
    path: str | os.PathLike[str],
    *,
    previous: Callable[[bytes], bool] | None = None,
    gz: bool = False,
    force: bool = False,
) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (created empty, mode 600); on
    success it is flushed to disk and renamed to ``path``; on failure it is
    removed. An existing file at ``path`` is replaced only if it is empty,
    if ``previous`` accepts its first line (decompressed when ``gz``: a
    previous export of the same kind), or with ``force``: an unrelated file
    is never replaced silently."""
    path = Path(path)
    check_parent(path, ExportError)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give a file name")
    if path.exists() and not force and not _looks_like_previous_file(path, previous, gz):
        raise ExportError(
            f"{path} exists and does not look like a previous export of this format; "
            "choose another path, or replace it with --force (force=True)"
        )
    tmp = private_file(_temp_name(path))
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
    sweep(path, (PART_SUFFIX,))  # what killed writers of this target left (conversation text)


def private_file(path: Path) -> Path:
    """Create ``path`` empty, readable by its owner only (mode 600, given
    at creation: see the module docstring), and return it. A writer that
    opens it afterwards (pyarrow, ``write_text``) truncates it and keeps
    the mode; a file of a folder export is created so too, as its folder
    (mode 700) may be copied or moved elsewhere whole."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def _looks_like_previous_export(path: Path, marker: str) -> bool:
    return (path / marker).is_file()


@contextmanager
def atomic_dir(path: str | os.PathLike[str], *, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` (mode 700); on success it is
    renamed to ``path``. An existing folder at ``path`` is replaced only if it
    holds ``marker`` (a previous export of the same kind): a folder of other
    files is never deleted."""
    path = Path(path)
    check_parent(path, ExportError)
    if path.exists() and not path.is_dir():
        raise ExportError(f"{path} is a file; this format writes a folder")
    if path.is_dir() and any(path.iterdir()) and not _looks_like_previous_export(path, marker):
        raise ExportError(f"{path} is a folder that does not hold a previous export; choose another path")
    tmp = _temp_name(path)
    os.mkdir(tmp, 0o700)
    try:
        yield tmp
        for child in tmp.iterdir():
            fsync_file(child)
        fsync_dir(tmp)
        if path.is_dir():
            # Two renames: a folder cannot replace a non-empty folder in one
            # step. Between them the old export sits under a hidden name.
            old = temp_name(path, OLD_SUFFIX)
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(path.parent)
    sweep(path, (PART_SUFFIX, OLD_SUFFIX))

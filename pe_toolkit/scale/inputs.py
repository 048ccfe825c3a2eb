"""The input files of a distributed analysis, and reading one of them.

The input is a file, a folder (every file under it), a glob, or an
object-store URL (``s3://bucket/prefix``, ``gs://...``, ``file:///...``)
reached through pyarrow's filesystems, the ones Ray Data uses. Each file is
one *partition*: read whole by one task with the importer's own readers, so
every format the importer knows is accepted and a conversation never
straddles two tasks (an importer record is one whole conversation; a
tabular file's rows are grouped into conversations within the file).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from ..errors import InputError

# Files in an input folder that are not conversations.
_IGNORED_SUFFIXES = (".tmp", ".crc", ".md", ".txt")


@dataclass(frozen=True)
class InputFile:
    """One input file: where it is, and what identifies its content."""

    uri: str  # a local path or an object-store URL
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        """The partition name: stable for the same location."""
        return hashlib.sha1(self.uri.encode()).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        return f"{self.uri}|{self.size}|{self.mtime_ns}"

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


def _is_url(text: str) -> bool:
    return "://" in text


def _wanted(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith((".", "_")) and not base.lower().endswith(_IGNORED_SUFFIXES)


def list_inputs(source: str | os.PathLike[str]) -> list[InputFile]:
    """The files of ``source`` in name order; :class:`InputError` when none."""
    text = os.fspath(source)
    if _is_url(text):
        files = _remote_files(text)
    else:
        files = _local_files(text)
    if not files:
        raise InputError(f"{text}: no input files found")
    return sorted(files, key=lambda f: f.uri)


def _local_files(text: str) -> list[InputFile]:
    path = Path(text)
    if path.is_dir():
        names = [p for p in path.rglob("*") if p.is_file() and _wanted(p.relative_to(path).as_posix())]
    elif path.is_file():
        names = [path]
    else:
        names = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
        if not names and not glob.has_magic(text):
            raise InputError(f"{text}: no such file or folder")
    out = []
    for p in names:
        st = p.stat()
        out.append(InputFile(str(p.resolve()), st.st_size, st.st_mtime_ns))
    return out


def _remote_files(url: str) -> list[InputFile]:
    try:
        fs, root = pafs.FileSystem.from_uri(url)
        info = fs.get_file_info(root)
        infos = [info]
        if info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except (OSError, ValueError) as exc:  # pyarrow: ArrowIOError, ArrowInvalid (bad URL)
        raise InputError(f"{url}: cannot list: {exc}") from None
    if info.type not in (pafs.FileType.File, pafs.FileType.Directory):
        raise InputError(f"{url}: no such file or folder")
    scheme = url.split("://", 1)[0]
    out = []
    for i in infos:
        if i.type != pafs.FileType.File or not _wanted(i.path[len(root) :].lstrip("/") or i.base_name):
            continue
        mtime = i.mtime_ns or 0
        out.append(InputFile(f"{scheme}://{i.path}" if scheme != "file" else f"file://{i.path}", i.size or 0, mtime))
    return out


def fingerprint(files: list[InputFile]) -> str:
    """One hash over every file's location, size and modification time."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.fingerprint.encode() + b"\n")
    return digest.hexdigest()


@contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local path to read ``uri`` from: the file itself, or a temporary
    copy of an object-store file (the importer's readers take local files)."""
    if not _is_url(uri):
        yield Path(uri)
        return
    fs, path = pafs.FileSystem.from_uri(uri)
    folder = tempfile.mkdtemp(prefix="pe-scale-")
    try:
        local = Path(folder) / path.rsplit("/", 1)[-1]
        with fs.open_input_stream(path) as src, local.open("wb") as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""Hidden temporary names beside a file being written, and the removal of
those a killed writer left behind.

A file (or folder) is written as ``.NAME.<pid>-<random><suffix>`` beside
``NAME`` and renamed into place when complete (``exports.atomic``, model
files). A SIGKILL, an out-of-memory kill or a power cut leaves the hidden
copy: an export's is conversation text, a model's holds its vocabulary.
The pid in the name tells a later write to the same target whether the
writer is gone; :func:`sweep` removes the copies of writers that are.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from pathlib import Path


def temp_name(path: Path, suffix: str) -> Path:
    """A fresh hidden name beside ``path`` for this process's writer."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}{suffix}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another writer of this process (a thread): not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, run by someone else (EPERM)
        return True
    return True


def sweep(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Remove the hidden copies beside ``path`` (with one of ``suffixes``)
    whose writer process is gone; returns what was removed. Called after a
    write to ``path`` succeeded, so that nothing is removed by a write that
    then fails (a crash between the two renames of a folder leaves the
    previous export only under its hidden ``.old`` name). A writer on
    another machine sharing the folder is not told apart: its pid is not
    of this machine."""
    names = "|".join(re.escape(s) for s in suffixes)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[0-9a-f]{{12}}(?:{names})")
    removed = []
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            found = pattern.fullmatch(entry.name)
            if found is None or _alive(int(found.group(1))):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
    return removed

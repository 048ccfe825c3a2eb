"""Writing a file so that a crash never leaves half of it under its name.

A file (or folder) is written under a hidden name beside its target,
``.NAME.<pid>-<random><suffix>``, flushed to disk and renamed into place
when complete (``exports.atomic``, model files). A SIGKILL, an
out-of-memory kill or a power cut leaves the hidden copy: an export's is
conversation text, a model's holds its vocabulary. :func:`sweep`, called
after a later write to the same target succeeded, removes the copies whose
writer is gone, and those of versions before 2026-12-06, which named them
without the writer's pid (``.NAME.<random><suffix>``; a model's also
``NAME.pemodel.tmp``), once nothing touched them for a day.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

# A copy untouched this long whose writer is not running is a leftover. The
# age guards a writer this machine cannot see (another container sharing
# the folder, whose pid means nothing here): a live one keeps writing.
STALE_AFTER = 600.0

# A copy named by a version before 2026-12-06 has no pid: its writer, an
# older pe_toolkit still running (a kernel started before an upgrade,
# another environment sharing the folder), cannot be asked about, so only
# its age can say it is gone. A live writer touches its copy as it goes (an
# export writes a chunk of 20,000 conversations at a time, seconds apart; a
# model is written in one go, and the .old folder lives between two renames),
# so a day untouched is far beyond any pause of one; and were it ever wrong,
# that writer fails with an error at its flush, before its rename, and its
# target keeps what it held.
LEGACY_STALE_AFTER = 24 * 3600.0


def temp_name(path: Path, suffix: str) -> Path:
    """A fresh hidden name beside ``path`` for this process's writer."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}{suffix}")


def parent_problem(path: Path) -> str | None:
    """Why nothing can be written at ``path`` because of its folder, or None
    when the folder is there. Every writer (export, the Ray engine's analyze
    and export, a model's save, synth) says it in these words, and none
    creates a missing folder: a typo in a path fails instead of making one."""
    if path.parent.is_dir():
        return None
    # A file where a folder should be: "does not exist" sent people looking
    # for a folder they could see was there, as a file.
    blocker = next((a for a in path.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    return f"the folder {path.parent} does not exist"


def check_parent(path: Path, error: type[Exception]) -> None:
    """Raise ``error("PATH: why")`` when :func:`parent_problem` finds one."""
    why = parent_problem(path)
    if why is not None:
        raise error(f"{path}: {why}")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """The folder's entries on disk (a rename is not durable before)."""
    with contextlib.suppress(OSError):
        fsync_file(folder)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process: a copy of ours untouched for STALE_AFTER is not being written
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # someone else's (EPERM), or no pid of this machine
        return True
    return True


def _last_touched(entry: Path) -> float:
    """The newest modification time of a file, or of a folder and its files."""
    newest = entry.lstat().st_mtime
    if entry.is_dir() and not entry.is_symlink():
        for child in entry.iterdir():
            with contextlib.suppress(OSError):
                newest = max(newest, child.lstat().st_mtime)
    return newest


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


def sweep(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Remove the hidden copies beside ``path`` (with one of ``suffixes``)
    untouched for :data:`STALE_AFTER` seconds whose writer process is not
    running, and those named without a pid by older versions untouched for
    :data:`LEGACY_STALE_AFTER`; returns what was removed. Called after a
    write to ``path`` succeeded, so that a write that then fails removes
    nothing (a crash between the two renames of a folder leaves the previous
    export only under its hidden ``.old`` name). Never raises: the write it
    follows has succeeded."""
    names = "|".join(re.escape(s) for s in suffixes)
    # The pid is optional: versions before 2026-12-06 wrote .NAME.<random><suffix>.
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)-)?[0-9a-f]{{12}}(?:{names})")
    removed = []
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            found = pattern.fullmatch(entry.name)
            if found is None:
                continue
            with contextlib.suppress(OSError):
                pid = found.group(1)
                if pid is None:
                    if now - _last_touched(entry) < LEGACY_STALE_AFTER:
                        continue
                elif now - _last_touched(entry) < STALE_AFTER or _running(int(pid)):
                    continue
                _remove(entry)
                removed.append(entry)
    return removed


def sweep_legacy_file(entry: Path, ours: Callable[[Path], bool]) -> bool:
    """Remove ``entry``, a copy an older version wrote under a visible name
    without a pid, if it is a file untouched for :data:`LEGACY_STALE_AFTER`
    and ``ours`` recognises it (such a name could also be a researcher's own
    file); whether it was removed. Never raises."""
    with contextlib.suppress(OSError):
        info = entry.lstat()
        if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < LEGACY_STALE_AFTER:
            return False
        if ours(entry):
            entry.unlink()
            return True
    return False

"""A writer killed mid-write (SIGKILL, out of memory) leaves its hidden
copy beside the target: an export's is conversation text, a model's holds
its vocabulary. The next successful write to that target removes the
copies of writers that are gone and that nothing touched for a while, and
only those (from a crash audit: no command ever removed them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pe_toolkit.durable import STALE_AFTER, temp_name
from pe_toolkit.exports.atomic import atomic_dir, atomic_file
from pe_toolkit.learn import fit, save
from pe_toolkit.learn.features import FeatureSpec

from .conftest import child_env
from .test_learn import toy

KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from pe_toolkit.exports.atomic import atomic_dir, atomic_file
target = Path(sys.argv[1])
with (atomic_dir(target, marker="m") if sys.argv[2] == "dir" else atomic_file(target)) as tmp:
    if sys.argv[2] == "dir":
        (tmp / "shard.jsonl").write_text("I can't sleep and I feel hopeless\\n")
    else:
        tmp.write_text("I can't sleep and I feel hopeless\\n")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _run_killed(target: Path, kind: str) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target), kind], env=child_env(), timeout=120)
    assert done.returncode == -signal.SIGKILL


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _age(entry: Path, seconds: float = 2 * STALE_AFTER) -> None:
    """Date ``entry`` (and a folder's files) back: untouched for a while."""
    for p in [entry, *(entry.iterdir() if entry.is_dir() else ())]:
        then = p.stat().st_mtime - seconds
        os.utime(p, (then, then))


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_killed_writers_copy_goes_with_the_next_write_and_a_live_ones_stays(tmp_path, kind):
    target = tmp_path / ("out.jsonl" if kind == "file" else "out_hf")
    _run_killed(target, kind)
    left = _hidden(tmp_path)
    assert len(left) == 1 and left[0].endswith(".part")  # the killed writer's copy

    def write() -> None:
        with atomic_file(target, force=True) if kind == "file" else atomic_dir(target, marker="m") as tmp:
            (tmp / "m").write_text("") if kind == "dir" else tmp.write_text("done\n")

    write()
    assert _hidden(tmp_path) == left  # just killed: a writer this machine cannot see would look the same
    _age(tmp_path / left[0])
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            alive = target.with_name(f".{target.name}.{other.pid}-{'a' * 12}.part")  # a writer still at work
            alive.write_text("")
            _age(alive)
            write()
            assert _hidden(tmp_path) == [alive.name]
        finally:
            other.kill()


def test_a_killed_model_saves_copy_goes_with_the_next_save(tmp_path):
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    target = tmp_path / "m.pemodel"
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        gone.wait()
    stale = target.with_name(temp_name(target, ".tmp").name.replace(f".{os.getpid()}-", f".{gone.pid}-"))
    stale.write_bytes(b"vocabulary of the training texts")
    _age(stale)
    save(model, target)
    assert _hidden(tmp_path) == []


DAY = 24 * 3600.0  # how long a copy named without a pid must lie untouched (durable.LEGACY_STALE_AFTER)


def _legacy(folder: Path, name: str, data: bytes | None = b"I can't sleep and I feel hopeless\n") -> Path:
    """A leftover as versions before 2026-12-06 named it (no pid): a file,
    or a folder of one shard when ``data`` is None."""
    entry = folder / name
    if data is None:
        entry.mkdir()
        (entry / "shard.jsonl").write_text("I can't sleep and I feel hopeless\n")
    else:
        entry.write_bytes(data)
    return entry


def test_leftovers_named_without_a_pid_go_after_a_day_untouched_and_nothing_else(tmp_path):
    # Older versions named them .NAME.<random>.part (atomic_file, atomic_dir),
    # .NAME.<random>.old (atomic_dir between its renames) and .NAME.<random>.tmp
    # (a model's save): their writer cannot be asked whether it still runs.
    file_target, dir_target = tmp_path / "out.jsonl", tmp_path / "out_hf"
    old_part = _legacy(tmp_path, f".out.jsonl.{'0' * 12}.part")
    old_dir_part = _legacy(tmp_path, f".out_hf.{'1' * 12}.part", None)
    old_dir_old = _legacy(tmp_path, f".out_hf.{'2' * 12}.old", None)
    recent = _legacy(tmp_path, f".out.jsonl.{'3' * 12}.part")  # an older writer may still be at work
    others = [  # not copies of ours: another target's, another suffix, not 12 hex digits
        _legacy(tmp_path, f".other.jsonl.{'4' * 12}.part"),
        _legacy(tmp_path, f".out.jsonl.{'5' * 12}.bak"),
        _legacy(tmp_path, ".out.jsonl.notes.part"),
        _legacy(tmp_path, "out.jsonl.tmp"),
    ]
    for entry in [old_part, old_dir_part, old_dir_old, *others]:
        _age(entry, 2 * DAY)
    _age(recent, DAY / 2)  # far older than STALE_AFTER, yet not a day
    with atomic_file(file_target) as tmp:
        tmp.write_text("done\n")
    with atomic_dir(dir_target, marker="m") as tmp:
        (tmp / "m").write_text("")
    with atomic_dir(dir_target, marker="m") as tmp:  # over the previous export: the two renames
        (tmp / "m").write_text("")
    assert _hidden(tmp_path) == sorted(p.name for p in [recent, *others] if p.name.startswith("."))
    assert all(p.exists() for p in others)


def test_a_model_saves_copy_named_without_a_pid_goes_after_a_day_untouched(tmp_path):
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    target = tmp_path / "m.pemodel"
    begun = save(model, tmp_path / "whole.pemodel").read_bytes()[:500]  # what a killed save leaves: the zip's start
    hidden = _legacy(tmp_path, f".m.pemodel.{'a' * 12}.tmp", begun)
    visible = _legacy(tmp_path, "m.pemodel.tmp", begun)  # saves before 82ab36f: visible, one name for all
    for entry in (hidden, visible):
        _age(entry, 2 * DAY)
    save(model, target)
    assert not hidden.exists() and not visible.exists()
    # The visible name could be a researcher's own file: only the start of a model goes, and only after a day.
    empty_but_new = _legacy(tmp_path, "m.pemodel.tmp", b"")
    save(model, target)
    assert empty_but_new.exists()
    _age(empty_but_new, 2 * DAY)
    other = _legacy(tmp_path, "n.pemodel.tmp", b"PK\x03\x04 notes of mine, zipped by hand")
    backup = _legacy(tmp_path, "b.pemodel.tmp", (tmp_path / "whole.pemodel").read_bytes())  # a complete model
    for entry in (other, backup):
        _age(entry, 2 * DAY)
    for name in ("m", "n", "b"):
        save(model, tmp_path / f"{name}.pemodel")
    assert not empty_but_new.exists() and other.exists() and backup.exists()

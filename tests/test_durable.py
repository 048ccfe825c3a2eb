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

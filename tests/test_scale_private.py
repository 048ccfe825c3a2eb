"""The distributed analysis output and its exports are private (mode 600
files, 700 folders), as the cache and every store export are: they hold
conversations of people in distress. The writers run here without Ray
(they are plain functions a Ray task calls)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pe_toolkit.scale.corpus import join_partition
from pe_toolkit.scale.manifest import MANIFEST, Manifest
from pe_toolkit.scale.partition import analyze_file


@pytest.fixture
def open_umask():
    """The common umask 022, under which a file made without a mode is world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_analysis_manifest_is_private_even_over_a_leftover(tmp_path, open_umask) -> None:
    (tmp_path / "manifest.json.tmp").write_text("left by a killed run")
    Manifest(analysis_version="v", partitions={"a": {"conversations": 3}}).save(tmp_path)
    assert _mode(tmp_path / MANIFEST) == 0o600
    assert Manifest.load(tmp_path).partitions == {"a": {"conversations": 3}}
    Manifest(analysis_version="v").save(tmp_path)  # rewritten after every partition
    assert _mode(tmp_path / MANIFEST) == 0o600
    assert not (tmp_path / "manifest.json.tmp").exists()


def test_the_shard_export_manifest_is_private(tmp_path, open_umask) -> None:
    from pe_toolkit.scale.export import write_manifest  # export_dataset's writer (before: write_text, mode 644)

    path = write_manifest(tmp_path, {"format": "jsonl", "shards": []})
    assert path == tmp_path / MANIFEST and _mode(path) == 0o600
    assert '"format": "jsonl"' in path.read_text()


def test_a_partition_and_its_conversation_scores_are_private(tmp_path, open_umask) -> None:
    from pe_toolkit import synth

    source = tmp_path / "a.jsonl"
    synth.write(source, 5, seed=3, progress=False)
    out = tmp_path / "out"
    out.mkdir(0o700)
    row = analyze_file(str(source), "a", str(out), "fp")
    assert row["conversations"] == 5
    scores = tmp_path / "scores"
    join_partition({"key": ["a"]}, str(out), str(tmp_path / "flags"), str(scores))
    files = [p for p in [*out.rglob("*"), *scores.rglob("*")] if p.is_file()]
    assert any(p.parent.parent.name == "conversations" for p in files)
    assert any(p.parent.parent == scores for p in files)
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}
    folders = [p for p in out.rglob("*") if p.is_dir() and p.name.startswith("part=")]
    assert folders and all(_mode(p) == 0o700 for p in folders)
    # The folders join_partition makes, and the partitions' scratch folder, too.
    made = [scores, *scores.glob("part=*"), out / "_tmp"]
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in made if _mode(p) != 0o700} == {}
    # A retried task (a worker that died, the same key again) writes over its own file.
    join_partition({"key": ["a"]}, str(out), str(tmp_path / "flags"), str(scores))
    assert _mode(scores / "part=a" / "part-00000.parquet") == 0o600

"""The scale path's failure handling (an audit's fixes): empty partitions,
failed tasks, interrupted runs, versions, addresses and export options.

Tiny corpora on the local Ray of tests/test_scale.py (reused when that
module started it; started and stopped here otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
import pytest

from ._ray_support import RAY_MARKS

ray = pytest.importorskip("ray", reason="the Ray engine needs `pip install 'pe-toolkit[ray]'`")

pytestmark = RAY_MARKS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ray_session():
    if ray.is_initialized():  # tests/test_scale.py's session-wide Ray
        yield
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two small files, an empty one, one with only bad records (both
    partitions without a conversation) and, outside ``*.jsonl``, a file no
    reader can tell the format of."""
    from pe_toolkit import synth

    folder = tmp_path_factory.mktemp("audit_in")
    synth.write(folder / "a.jsonl", 4, seed=21, progress=False)
    synth.write(folder / "b.jsonl", 4, seed=22, progress=False)
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "only_bad.jsonl").write_bytes(b"{not json\n" + orjson.dumps({"id": "x", "messages": "no"}) + b"\n")
    (folder / "z.dat").write_bytes(b"hello, this is not a conversation\n")
    return folder


@pytest.fixture(scope="module")
def scored(inputs, tmp_path_factory, ray_session):
    from pe_toolkit.scale import analyze_dataset

    output = tmp_path_factory.mktemp("audit_out") / "out"
    analyze_dataset(f"{inputs}/*.jsonl", output, progress=False)
    return output


def _cli(args: list[str]):
    from click.testing import CliRunner

    from pe_toolkit.cli import cli

    return CliRunner().invoke(cli, args)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("pe-toolkit: error: "), stderr
    return lines[0]


def test_export_skips_partitions_without_conversations(scored, tmp_path):
    from pe_toolkit.scale import attach_scores
    from pe_toolkit.scale.export import export_dataset
    from pe_toolkit.scale.manifest import Manifest

    manifest = Manifest.load(scored)
    empty = [k for k, p in manifest.partitions.items() if p["conversations"] == 0]
    assert len(empty) == 2 and len(manifest.partitions) == 4
    report = export_dataset(scored, tmp_path / "shards", format="jsonl", progress=False)
    expected = attach_scores(scored).sql("SELECT id FROM conversations").pl()["id"].sort().to_list()
    got = sorted(orjson.loads(line)["id"] for f in (tmp_path / "shards").glob("*.jsonl") for line in f.read_bytes().splitlines())
    assert got == expected
    assert report.shards == len(manifest.partitions) - len(empty)
    written = json.loads((tmp_path / "shards" / "manifest.json").read_text("utf-8"))
    assert written["conversations"] == len(expected) == report.conversations


def test_a_failed_shard_leaves_no_partial_export(scored, tmp_path):
    from pe_toolkit.scale.manifest import Manifest

    output = tmp_path / "out"
    shutil.copytree(scored, output)
    keys = sorted(k for k, p in Manifest.load(output).partitions.items() if p["conversations"])
    # A damaged file on the shared folder (truncated by a full disk, say).
    (victim,) = (output / "conversation_scores" / f"part={keys[-1]}").glob("*.parquet")
    victim.write_bytes(victim.read_bytes()[:40])
    shards = tmp_path / "shards"
    result = _cli(["export", "--engine", "ray", "--scores", str(output), str(shards), "--format", "jsonl", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert keys[-1] in _one_error_line(result.stderr)
    assert not shards.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left either
    # Repaired, the same command runs.
    shutil.copy2(next((scored / "conversation_scores" / f"part={keys[-1]}").glob("*.parquet")), victim)
    result = _cli(["export", "--engine", "ray", "--scores", str(output), str(shards), "--format", "jsonl", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in shards.iterdir()) == sorted([*(f"{k}.jsonl" for k in keys), "manifest.json"])


@pytest.mark.parametrize(
    "extra",
    [
        ["--format", "jsonl", "--layout", "nested"],
        ["--format", "openai", "--include-scores"],
    ],
)
def test_export_options_are_refused_in_one_line(scored, tmp_path, extra, ray_session):
    shards = tmp_path / "shards"
    result = _cli(["export", "--engine", "ray", "--scores", str(scored), str(shards), *extra, "--no-progress"])
    assert result.exit_code == 1, result.output
    _one_error_line(result.stderr)
    assert not shards.exists()


def test_export_refuses_a_file_target_and_a_damaged_manifest_in_one_line(scored, tmp_path):
    from pe_toolkit.errors import InputError
    from pe_toolkit.scale import attach_scores

    target = tmp_path / "taken"
    target.write_text("mine", "utf-8")
    result = _cli(["export", "--engine", "ray", "--scores", str(scored), str(target), "--format", "jsonl"])
    assert result.exit_code == 1 and "not a folder" in _one_error_line(result.stderr)
    assert target.read_text("utf-8") == "mine"
    output = tmp_path / "out"
    shutil.copytree(scored, output)
    (output / "manifest.json").write_text('{"format": 1, "partit', "utf-8")  # a write cut off
    result = _cli(["export", "--engine", "ray", "--scores", str(output), str(tmp_path / "s"), "--format", "jsonl"])
    assert result.exit_code == 1 and "manifest" in _one_error_line(result.stderr)
    with pytest.raises(InputError, match="manifest"):
        attach_scores(output)


def test_export_refuses_a_missing_folder_as_the_store_export_does(scored, tmp_path):
    # The Ray export created PATH's missing parents where the store export
    # (and learn fit --out) refuse them: a typo made a folder.
    result = _cli(["export", "--engine", "ray", "--scores", str(scored), str(tmp_path / "no" / "shards"), "--format", "jsonl"])
    assert result.exit_code == 1 and "no does not exist" in _one_error_line(result.stderr)
    assert not (tmp_path / "no").exists()


def test_export_calls_a_file_in_the_path_a_file(scored, tmp_path):
    # It said "the folder .../notes.txt does not exist" of a file anyone can
    # see; now it says what every writer says (pe_toolkit.durable.parent_problem).
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine", "utf-8")
    for target in (blocker / "shards", blocker / "deeper" / "shards"):
        result = _cli(["export", "--engine", "ray", "--scores", str(scored), str(target), "--format", "jsonl", "--no-progress"])
        assert result.exit_code == 1, result.output
        line = _one_error_line(result.stderr)
        assert line.endswith(f"{blocker} is a file, not a folder") and "does not exist" not in line
    assert blocker.read_text("utf-8") == "mine" and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_unreadable_file_fails_in_one_line_keeps_the_rest_and_is_never_attached(scored, inputs, tmp_path):
    from pe_toolkit.errors import InputError
    from pe_toolkit.scale import analyze_dataset, attach_scores
    from pe_toolkit.scale.manifest import Manifest

    output = tmp_path / "out"
    shutil.copytree(scored, output)
    before = Manifest.load(output)
    result = _cli(["analyze", "--engine", "ray", "--input", f"{inputs}/*", "--output", str(output), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "z.dat" in _one_error_line(result.stderr)
    after = Manifest.load(output)
    assert after.partitions.keys() == before.partitions.keys()  # the others kept, the failed one not recorded
    assert not after.corpus_complete
    # The output is a mix now (a partition the corpus stage never saw could be
    # among them): attaching it is refused, not served as complete.
    with pytest.raises(InputError, match="unfinished"):
        attach_scores(output)
    # Without the file, the rerun scores nothing again and completes the corpus stage.
    report = analyze_dataset(f"{inputs}/*.jsonl", output, progress=False)
    assert report.computed == [] and report.skipped == 4
    got = attach_scores(output).sql("SELECT * FROM conversation_scores").pl().sort("conversation_id")
    expected = attach_scores(scored).sql("SELECT * FROM conversation_scores").pl().sort("conversation_id")
    assert got.equals(expected)


def test_partitions_record_the_version_their_worker_ran_and_another_is_refused(scored, inputs, tmp_path):
    from pe_toolkit.errors import AnalysisError
    from pe_toolkit.scale.inputs import list_inputs
    from pe_toolkit.scale.manifest import Manifest
    from pe_toolkit.scale.partition import PARTITION_TABLES, analyze_file, run_batch

    manifest = Manifest.load(scored)
    assert {p["analysis_version"] for p in manifest.partitions.values()} == {manifest.analysis_version}
    (file,) = list_inputs(inputs / "a.jsonl")
    output = tmp_path / "out"
    # A worker whose install differs from the driver's (another model file, an
    # older release on one node): its scores would be recorded under the
    # driver's version. It refuses instead, and writes nothing.
    other = manifest.analysis_version + ";extra=1"
    with pytest.raises(AnalysisError, match="analysis version"):
        analyze_file(file.uri, file.key, str(output), file.fingerprint, version=other)
    assert not any((output / table).exists() for table in PARTITION_TABLES)
    rows = run_batch({"uri": [file.uri], "key": [file.key], "fingerprint": [file.fingerprint]}, str(output), version=other).to_pylist()
    assert rows[0]["error"] and "analysis version" in rows[0]["error"] and rows[0]["messages"] is None
    # The driver's version: scored and recorded as such.
    ok = analyze_file(file.uri, file.key, str(output), file.fingerprint, version=manifest.analysis_version)
    assert ok["analysis_version"] == manifest.analysis_version and ok["error"] is None
    written = pl.read_parquet(output / "message_scores" / f"part={file.key}" / "*.parquet")
    assert written.height == ok["messages"] > 0


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "no-port-here"])
def test_a_bad_address_is_one_line(inputs, tmp_path, address):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    cmd = [sys.executable, "-m", "pe_toolkit", "analyze", "--engine", "ray", "--input", str(inputs / "a.jsonl"),
           "--output", str(tmp_path / "out"), "--address", address, "--no-progress"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert address in _one_error_line(done.stderr)


def test_an_output_in_a_folder_with_a_quote_is_attached_and_exported(scored, tmp_path):
    """A quote in a path ("O'Brien's study") was refused: the paths are now
    quoted as SQL literals where DuckDB reads them."""
    from pe_toolkit.scale import attach_scores
    from pe_toolkit.scale.export import export_dataset

    quoted = tmp_path / "O'Brien's study" / "out"
    shutil.copytree(scored, quoted)
    expected = attach_scores(scored).sql("SELECT id FROM conversations ORDER BY id").pl()["id"].to_list()
    con = attach_scores(quoted)
    assert con.sql("SELECT id FROM conversations ORDER BY id").pl()["id"].to_list() == expected
    assert con.sql("SELECT count(*) FROM conversation_scores").fetchall()[0][0] == len(expected)
    export_dataset(quoted, tmp_path / "it's shards", format="jsonl", progress=False)
    got = sorted(orjson.loads(line)["id"] for f in (tmp_path / "it's shards").glob("*.jsonl") for line in f.read_bytes().splitlines())
    assert got == expected

"""The distributed analysis (pe_toolkit.scale) on a local Ray of 2 CPUs.

Ray starts once for the session (the fixture below) and only when a test
marked ``ray`` runs. The reference everywhere is the single-node path: the
same files imported into a store and scored by ``analyze_frame``.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import orjson
import polars as pl
import pytest

from ._ray_support import RAY_MARKS

ray = pytest.importorskip("ray", reason="the Ray engine needs `pip install 'pe-toolkit[ray]'`")

pytestmark = RAY_MARKS

KEYS = {
    "message_scores": ["conversation_id", "idx"],
    "conversation_scores": ["conversation_id"],
    "evidence": ["conversation_id", "idx", "analyzer", "category", "start", "end"],
}
BAD_LINES = [b"{not json", orjson.dumps({"id": "bad-1", "messages": "not a list"})]


@pytest.fixture(scope="session")
def local_ray():
    root = str(Path(__file__).resolve().parent.parent)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": root}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three files; the third repeats conversations of the first under new
    ids with a word added to each message (near-duplicates across files:
    same shingles mostly, another text) and has bad lines."""
    from pe_toolkit import synth

    folder = tmp_path_factory.mktemp("scale_in")
    synth.write(folder / "a.jsonl", 30, seed=11, progress=False)
    synth.write(folder / "b.jsonl", 30, seed=12, progress=False)
    lines = (folder / "a.jsonl").read_bytes().splitlines()[:6]
    copies = []
    for line in lines:
        record = orjson.loads(line)
        record["id"] = "copy-" + record["id"]
        for message in record["messages"]:
            message["content"] += " Truly."
        copies.append(orjson.dumps(record))
    synth.write(folder / "c.jsonl", 20, seed=13, progress=False)
    with (folder / "c.jsonl").open("ab") as fh:
        fh.write(b"\n".join([*copies, *BAD_LINES]) + b"\n")
    return folder


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    from pe_toolkit.analysis.frames import analyze_frame
    from pe_toolkit.ingest.importer import import_file
    from pe_toolkit.store import Store

    with Store(tmp_path_factory.mktemp("ref") / "ref.duckdb") as store:
        for path in sorted(corpus.iterdir()):
            import_file(store, path, skip_invalid=True, progress=False)
        return analyze_frame(store.messages())


def _read(output: Path, table: str) -> pl.DataFrame:
    from pe_toolkit.scale import attach_scores

    return attach_scores(output).sql(f"SELECT * FROM {table}").pl()


def assert_same_as_reference(output: Path, reference) -> None:
    for table, keys in KEYS.items():
        got = _read(output, table).sort(keys)
        expected = reference[table].sort(keys)
        assert got.columns == expected.columns, table
        assert got.height == expected.height, table
        assert got.equals(expected), f"{table} differs from analyze_frame"


@pytest.fixture(scope="module")
def first_run(corpus, tmp_path_factory, local_ray):
    from pe_toolkit.scale import analyze_dataset

    output = tmp_path_factory.mktemp("scale_out") / "out"
    report = analyze_dataset(corpus, output, progress=False)
    return output, report


def test_same_rows_as_single_node(first_run, reference):
    output, report = first_run
    assert report.files == 3 and len(report.computed) == 3 and report.skipped == 0
    assert report.messages == reference.messages.height
    assert_same_as_reference(output, reference)
    # The corpus shares were exercised across files, not per file.
    shares = reference.conversations.filter(pl.col("conversation_id").str.starts_with("copy-"))
    assert (shares["near_duplicate_share"] > 0).sum() >= 3
    assert (reference.conversations["boilerplate_share"] > 0).any()
    assert "messages/s) on 2 workers" in str(report)


def test_bad_records_in_dead_letters(first_run):
    output, report = first_run
    dead = _read(output, "dead_letters")
    assert report.dead_letters == 2 == dead.height
    assert dead["source"].str.ends_with("c.jsonl").all()
    assert dead["raw"].to_list() == [line.decode() for line in BAD_LINES]
    assert all(reason for reason in dead["reason"])
    assert dead.filter(pl.col("raw").str.contains("not a list"))["reason"].str.contains("messages").all()


def test_rerun_recomputes_only_the_deleted_partition(first_run, corpus, reference, tmp_path):
    from pe_toolkit.scale import analyze_dataset

    output = tmp_path / "out"
    shutil.copytree(first_run[0], output)
    again = analyze_dataset(corpus, output, progress=False)
    assert again.computed == [] and again.skipped == 3
    victim = sorted((output / "message_scores").iterdir())[1]
    shutil.rmtree(victim)
    report = analyze_dataset(corpus, output, progress=False)
    assert report.computed == [victim.name.removeprefix("part=")]
    assert report.skipped == 2
    assert_same_as_reference(output, reference)


def test_a_killed_worker_is_retried(corpus, reference, tmp_path, local_ray):
    import psutil

    from pe_toolkit.scale import analyze_dataset

    output = tmp_path / "out"
    killed: list[int] = []

    def kill_one_scoring_worker() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for proc in psutil.process_iter(["cmdline"]):
                if "run_batch" in " ".join(proc.info["cmdline"] or []):
                    time.sleep(0.5)  # let it start scoring
                    proc.kill()
                    killed.append(proc.pid)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_scoring_worker)
    killer.start()
    try:
        report = analyze_dataset(corpus, output, progress=False)
    finally:
        killer.join()
    assert killed, "no scoring worker was seen"
    assert len(report.computed) == 3
    assert_same_as_reference(output, reference)


def test_cli_export_matches_the_store_export(first_run, corpus, tmp_path):
    from click.testing import CliRunner

    from pe_toolkit.analysis.pipeline import analyze
    from pe_toolkit.cli import cli
    from pe_toolkit.exports import export
    from pe_toolkit.ingest.importer import import_file
    from pe_toolkit.store import Store

    output, _ = first_run
    shards = tmp_path / "shards"
    args = ["export", "--engine", "ray", "--scores", str(output), str(shards), "--format", "openai", "--min-risk", "0.3", "--redact"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "conversations" in result.output and "shards" in result.output
    got = sorted(line for f in sorted(shards.glob("*.jsonl")) for line in f.read_text("utf-8").splitlines())
    with Store(tmp_path / "ref.duckdb") as store:
        for path in sorted(corpus.iterdir()):
            import_file(store, path, skip_invalid=True, progress=False)
        analyze(store, progress=False)
        export(store, tmp_path / "ref.jsonl", format="openai", min_risk=0.3, redact=True, progress=False)
    expected = sorted((tmp_path / "ref.jsonl").read_text("utf-8").splitlines())
    assert got and got == expected


def test_cli_analyze_engine_ray_needs_its_paths():
    from click.testing import CliRunner

    from pe_toolkit.cli import cli

    result = CliRunner().invoke(cli, ["analyze", "--engine", "ray", "--input", "x"])
    assert result.exit_code == 2 and "--output" in result.output


def test_cli_analyze_engine_ray_reruns_nothing_on_a_complete_output(first_run, corpus, tmp_path, local_ray):
    from click.testing import CliRunner

    from pe_toolkit.cli import cli

    output = tmp_path / "out"
    shutil.copytree(first_run[0], output)
    result = CliRunner().invoke(cli, ["analyze", "--engine", "ray", "--input", str(corpus), "--output", str(output), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "0 partitions scored, 3 up to date" in result.output


def test_object_store_urls_are_listed_and_read_through_pyarrow(corpus):
    from pe_toolkit.scale.inputs import list_inputs, local_copy

    local = list_inputs(corpus)
    remote = list_inputs(f"file://{corpus}")
    assert [f.name for f in remote] == [f.name for f in local] == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert all(f.uri.startswith("file://") for f in remote)
    with local_copy(remote[0].uri) as path:
        assert path.read_bytes() == (corpus / "a.jsonl").read_bytes()
        assert path != corpus / "a.jsonl"

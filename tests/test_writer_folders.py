"""Every writer treats the folder of its target alike: a missing folder is
refused, not created, and a file where a folder should be is called a file,
in one line and before any work (pe_toolkit.durable.parent_problem).

``analyze --engine ray`` refuses before it lists its input or starts Ray, so
these run through the real CLI without Ray."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pe_toolkit import synth
from pe_toolkit.cli import cli
from pe_toolkit.errors import ExportError
from pe_toolkit.exports import export
from pe_toolkit.store import Store

from .cli_support import one_error_line


def _analyze_ray(input_: object, output: object):
    return CliRunner().invoke(cli, ["analyze", "--engine", "ray", "--input", str(input_), "--output", str(output), "--no-progress"])


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "in" / "a.jsonl"
    path.parent.mkdir()
    synth.write(path, 3, seed=5, progress=False)
    return path


def test_analyze_ray_refuses_a_missing_folder_and_creates_nothing(tmp_path, corpus):
    # It made every missing parent of --output (mkdir(parents=True)) and
    # scored into them, where export and learn fit --out refuse a typo.
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    line = one_error_line(_analyze_ray(corpus, tmp_path / "no" / "such" / "scores"))
    assert f"the folder {tmp_path / 'no' / 'such'} does not exist" in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_analyze_ray_refuses_before_it_reads_its_input(tmp_path):
    # An input that does not exist would fail in list_inputs, after which
    # Ray starts: the output's folder is the first thing checked.
    line = one_error_line(_analyze_ray(tmp_path / "no_input", tmp_path / "no" / "scores"))
    assert "does not exist" in line and str(tmp_path / "no") in line and "no_input" not in line
    assert not (tmp_path / "no").exists()


def test_analyze_ray_calls_a_file_in_the_path_a_file(tmp_path, corpus):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    line = one_error_line(_analyze_ray(corpus, blocker / "scores"))
    assert f"{blocker} is a file, not a folder" in line and "does not exist" not in line
    line = one_error_line(_analyze_ray(corpus, blocker / "deeper" / "scores"))
    assert f"{blocker} is a file, not a folder" in line
    assert blocker.read_text() == "mine"


def test_the_store_export_calls_a_file_in_the_path_a_file(tmp_path):
    # It said "the folder .../notes.txt does not exist" of a file anyone can see.
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    cache = tmp_path / "c.duckdb"
    with Store(cache) as store:
        with pytest.raises(ExportError, match=r"notes\.txt is a file, not a folder") as caught:
            export(store, blocker / "x.jsonl", format="jsonl", progress=False)
        assert "does not exist" not in str(caught.value)
        with pytest.raises(ExportError, match=r"notes\.txt is a file, not a folder"):
            export(store, blocker / "hf", format="huggingface", progress=False)  # a folder format (atomic_dir)
        with pytest.raises(ExportError, match=r"the folder .*no does not exist"):
            export(store, tmp_path / "no" / "x.jsonl", format="jsonl", progress=False)
    line = one_error_line(CliRunner().invoke(cli, ["--db", str(cache), "export", str(blocker / "x.jsonl"), "--no-progress"]))
    assert f"{blocker} is a file, not a folder" in line
    assert blocker.read_text() == "mine"


def test_every_writer_says_it_in_the_same_words(tmp_path, corpus):
    # One helper words it for all: the CLI lines differ only in their prefix.
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    missing = tmp_path / "no"
    cache = tmp_path / "c.duckdb"
    Store(cache).close()
    for parent, why in ((blocker, f"{blocker} is a file, not a folder"), (missing, f"the folder {missing} does not exist")):
        lines = [
            one_error_line(_analyze_ray(corpus, parent / "scores")),
            one_error_line(CliRunner().invoke(cli, ["--db", str(cache), "export", str(parent / "x.jsonl"), "--no-progress"])),
            one_error_line(CliRunner().invoke(cli, ["synth", "3", "--out", str(parent / "x.jsonl")])),
        ]
        assert all(line.endswith(why) for line in lines), lines
    assert not missing.exists()

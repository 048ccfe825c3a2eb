"""Audit of the CLI as a new user meets it (2026-12-07): what it got wrong,
through the real CLI on real DuckDB files."""

from __future__ import annotations

import gzip

import orjson
import pytest
from click.testing import CliRunner

from pe_toolkit import synth
from pe_toolkit.cli import cli
from pe_toolkit.store import Store

from .cli_support import one_error_line


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "c.duckdb"
    data = tmp_path / "s.jsonl"
    synth.write(data, 6, seed=3, progress=False)
    assert CliRunner().invoke(cli, ["--db", str(path), "import", str(data)]).exit_code == 0
    return path


def _ids(cache):
    with Store(cache, read_only=True) as store:
        return store.conversations()["id"].to_list()


def _exported_ids(path):
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def test_export_empty_ids_file_selects_no_conversation(tmp_path, cache):
    # Before: an ids file listing no id read as "no id filter", and the
    # export held every conversation in the cache.
    empty = tmp_path / "ids.txt"
    empty.write_text("\n  \n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["--db", str(cache), "export", str(out), "--ids-file", str(empty)])
    assert result.exit_code == 0, result.output
    assert _exported_ids(out) == []
    # --id beside it still selects that one
    first = _ids(cache)[0]
    result = CliRunner().invoke(cli, ["--db", str(cache), "export", str(out), "--id", first, "--ids-file", str(empty)])
    assert result.exit_code == 0, result.output
    assert _exported_ids(out) == [first]


def test_export_ids_file_with_byte_order_mark_keeps_its_first_id(tmp_path, cache):
    wanted = _ids(cache)[:2]
    ids = tmp_path / "ids.txt"
    ids.write_text("\r\n".join(wanted) + "\r\n", encoding="utf-8-sig")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["--db", str(cache), "export", str(out), "--ids-file", str(ids)])
    assert result.exit_code == 0, result.output
    assert sorted(_exported_ids(out)) == sorted(wanted)


def test_export_ids_file_not_text_is_one_line(tmp_path, cache):
    # Before: a UnicodeDecodeError traceback.
    binary = tmp_path / "ids.gz"
    binary.write_bytes(gzip.compress(b"a\nb\n"))
    out = tmp_path / "out.jsonl"
    line = one_error_line(CliRunner().invoke(cli, ["--db", str(cache), "export", str(out), "--ids-file", str(binary)]))
    assert "--ids-file" in line and "UTF-8" in line
    assert not out.exists()

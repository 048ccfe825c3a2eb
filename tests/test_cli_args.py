"""Where the global options may go, and one-line errors for bad arguments."""

from __future__ import annotations

from click.testing import CliRunner

from pe_toolkit.cli import cli, hoist_db
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store


def _cache(tmp_path, write_jsonl):
    from .conftest import conversation

    path = tmp_path / "given.duckdb"
    with Store(path) as s:
        import_file(s, write_jsonl([conversation(i) for i in range(3)]), progress=False)
    return path


def test_db_after_the_subcommand_names_the_same_cache(tmp_path, write_jsonl):
    path = _cache(tmp_path, write_jsonl)
    before = CliRunner().invoke(cli, ["--db", str(path), "info"])
    after = CliRunner().invoke(cli, ["info", "--db", str(path)])
    equals = CliRunner().invoke(cli, ["info", f"--db={path}"])
    assert before.exit_code == after.exit_code == equals.exit_code == 0, after.output
    assert after.output == before.output == equals.output
    assert "3" in after.output
    rows = CliRunner().invoke(cli, ["sql", "SELECT count(*) AS n FROM conversations", "--db", str(path), "--format", "csv"])
    assert rows.exit_code == 0 and rows.output.split() == ["n", "3"], rows.output


def test_hoisting_leaves_values_and_separators_alone():
    assert hoist_db(["sql", "SELECT '--db'", "--db", "x"], cli) == ["--db", "x", "sql", "SELECT '--db'"]
    assert hoist_db(["info", "--", "--db", "x"], cli) == ["info", "--", "--db", "x"]
    assert hoist_db(["--db", "a", "info", "--db", "b"], cli) == ["--db", "a", "--db", "b", "info"]
    # serve has its own --db: left where it is.
    assert hoist_db(["serve", "--db", "x"], cli) == ["serve", "--db", "x"]
    assert hoist_db(["nonsense", "--db", "x"], cli) == ["nonsense", "--db", "x"]


def test_db_without_a_value_is_a_usage_error():
    result = CliRunner().invoke(cli, ["info", "--db"])
    assert result.exit_code == 2 and "--db" in result.output and "Missing command" not in result.output


def test_an_export_path_of_unknown_kind_is_one_line(tmp_path, write_jsonl):
    path = _cache(tmp_path, write_jsonl)
    result = CliRunner().invoke(cli, ["--db", str(path), "export", str(tmp_path / "out.xlsx")])
    assert result.exit_code == 1, result.output
    assert result.output.strip().count("\n") == 0
    assert "out.xlsx" in result.output and "--format" in result.output and "Usage" not in result.output
    assert not (tmp_path / "out.xlsx").exists()

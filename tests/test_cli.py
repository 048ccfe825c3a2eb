"""The CLI layer: every command has help, is documented in the README, and
the CLI works without importing optional extras."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pe_toolkit.cli import COMMANDS, cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_and_is_documented(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) > 3
    assert f"pe-toolkit {name}" in README, f"README does not document `pe-toolkit {name}`"


def test_help_runs_in_a_fresh_interpreter_without_extras():
    code = (
        "import sys\n"
        "from pe_toolkit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = [m for m in ('fastapi', 'uvicorn', 'plotly', 'ipywidgets', 'adbc_driver_postgresql', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "pe_toolkit", "--help"], check=True, capture_output=True, text=True)
    assert "Commands:" in out.stdout


def test_unknown_command_exits_nonzero():
    result = CliRunner().invoke(cli, ["nope"])
    assert result.exit_code != 0


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [("fastapi", ["serve", "--port", "0", "--no-sample"], "server"), ("papermill", ["report", "--notebook", "01"], "notebooks")],
)
def test_a_command_needing_a_missing_extra_says_which_in_one_line(tmp_path, blocked, args, extra):
    """A new user audit: after `make demo` (no server extra), `serve` ended in
    a 25-line traceback (ModuleNotFoundError: fastapi)."""
    cache = tmp_path / "c.duckdb"
    code = (
        "import sys\n"
        f"sys.modules[{blocked!r}] = None  # as if not installed: importing it raises ModuleNotFoundError\n"
        "from pe_toolkit.cli import main\n"
        f"main({['--db', str(cache), *args]!r})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"pe-toolkit: error: {args[0]} needs {blocked!r}, in the {extra} extra: pip install 'pe-toolkit[{extra}]'"
    ]

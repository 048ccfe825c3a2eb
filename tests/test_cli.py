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

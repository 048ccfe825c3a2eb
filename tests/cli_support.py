"""Checks shared by the CLI tests."""

from __future__ import annotations


def one_error_line(result) -> str:
    """The one ``pe-toolkit: error:`` line of a CliRunner result that failed
    as an expected failure does (exit 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pe-toolkit: error:"), result.stderr
    return lines[0]

"""Which notebooks `pe-toolkit report` renders."""

from __future__ import annotations

import pytest

from pe_toolkit.errors import ConfigError
from pe_toolkit.report import find_notebooks

from .conftest import ROOT


def test_notebook_paths_need_no_notebooks_folder(tmp_path, monkeypatch):
    # Outside the project, the error's own advice (pass notebook paths) works.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    given = ROOT / "notebooks" / "04_safety.ipynb"
    assert find_notebooks([given]) == [given]
    with pytest.raises(ConfigError, match="pass notebook paths"):
        find_notebooks(["04"])

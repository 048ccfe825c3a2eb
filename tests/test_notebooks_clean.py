"""Committed notebooks carry no outputs (conversations are sensitive, outputs
bloat diffs) and start with a papermill ``parameters`` cell whose defaults
run offline on the default cache and the bundled sample."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
REQUIRED_DEFAULTS = {"cache": None, "source": "sample", "static_report": False}


def problems(path: Path) -> list[str]:
    """Everything that keeps a notebook from being committed as it is."""
    nb = nbformat.read(path, as_version=4)
    found = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        found.append(f"invalid notebook: {exc.message}")
    if "widgets" in nb.metadata:
        found.append("saved widget state in the metadata")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            if cell.outputs:
                found.append(f"cell {i} has outputs")
            if cell.execution_count is not None:
                found.append(f"cell {i} has an execution count")
            if "execution" in cell.metadata:
                found.append(f"cell {i} has execution timing metadata")
        if cell.get("attachments"):
            found.append(f"cell {i} carries attachments")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or "parameters" not in code[0].metadata.get("tags", []):
        found.append("the first code cell is not tagged 'parameters'")
        return found
    if sum("parameters" in c.metadata.get("tags", []) for c in code) != 1:
        found.append("more than one parameters cell")
    values = {}
    for node in ast.parse(code[0].source).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            found.append("the parameters cell must hold plain assignments only")
            continue
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            found.append(f"parameter {node.targets[0].id} is not a literal")
    for name, default in REQUIRED_DEFAULTS.items():
        if values.get(name, ...) != default:
            found.append(f"parameter {name} must default to {default!r}")
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        found.append("kernelspec must be python3")
    return found


def test_the_curated_notebooks_are_there():
    stems = [p.stem for p in NOTEBOOKS]
    for expected in ("01_getting_started", "02_quality", "03_empathy", "04_safety", "05_pipelines", "06_live"):
        assert expected in stems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean(path):
    assert problems(path) == []


def test_the_check_catches_outputs_and_a_missing_parameters_cell(tmp_path):
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    last_code = [c for c in nb.cells if c.cell_type == "code"][-1]
    last_code.execution_count = 3
    last_code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="I feel hopeless\n")]
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(nb, dirty)
    assert any("has outputs" in p for p in problems(dirty))
    assert any("execution count" in p for p in problems(dirty))
    first_code.metadata["tags"] = []
    nbformat.write(nb, dirty)
    assert "the first code cell is not tagged 'parameters'" in problems(dirty)

"""The notebooks and ``pe-toolkit report`` on an imported corpus.

Published corpora carry no API tier, no API scores and often no creation
date. Every notebook that reads the cache must still run on them, draw its
figures grouped by what exists, and say in one line why a figure is
skipped: no empty plot without a word, and no plot of zeros either. The
corpus is built with the importer as a user would (a counsel-chat-like CSV
in the pairs layout, multi-turn JSONL dialogues and ESConv-style dialogues
with ``--format esconv``) and ``pe-toolkit report`` runs once on it and once
on the ESConv dialogues alone: published text, where no user discloses a
crisis, no reply is templated and no conversation reaches the export's
quality bound of 0.8.
"""

from __future__ import annotations

import ast
import base64
import html
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli

from ._widgets_support import build_imported_store

# Executes six notebooks through `pe-toolkit report` (minutes): out of `make test-fast`.
pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
_CACHE_NAMES = {"cache", "open_for_notebook", "open_store", "load_settings"}


def uses_cache(path: Path) -> bool:
    """Whether a notebook reads the cache: a code cell after the parameters
    names the ``cache`` parameter or opens a store."""
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"][1:]
    for cell in code:
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
            if name in _CACHE_NAMES:
                return True
    return False


READING = [p for p in NOTEBOOKS if uses_cache(p)]


def _report(folder: Path, **sizes: int) -> dict:
    """``pe-toolkit report`` on an imported cache, as a user runs it."""
    cache = build_imported_store(folder, **sizes)
    chosen = [arg for p in READING for arg in ("--notebook", str(p))]
    result = CliRunner().invoke(cli, ["--db", str(cache), "report", "--out", str(folder / "reports"), "--no-progress", *chosen])
    pages = {p.stem: (folder / "reports" / f"{p.stem}.html").read_text(encoding="utf-8") for p in READING}
    return {"exit_code": result.exit_code, "output": result.output, "pages": pages}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """On counsel-chat-like pairs, JSONL dialogues and ESConv dialogues."""
    return _report(tmp_path_factory.mktemp("imported"))


@pytest.fixture(scope="module")
def published_reports(tmp_path_factory):
    """On the ESConv dialogues alone (published text, nothing synthetic)."""
    return _report(tmp_path_factory.mktemp("published"), dialogues=0, pairs=0)


CORPORA = ("reports", "published_reports")


def _values(array) -> list:
    """A plotly data array as a list (plotly writes numeric arrays as base64)."""
    if isinstance(array, dict) and "bdata" in array:
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
        return flat.tolist()
    if isinstance(array, list):
        return [v for item in array for v in (_values(item) if isinstance(item, (list, dict)) else [item])]
    return []


def _draws_something(trace: dict) -> bool:
    if trace.get("mode") == "lines" and trace.get("line", {}).get("dash") == "dash":
        return False  # a reference line (the diagonal), not data
    keys = {"heatmap": ("z",), "box": ("median",)}.get(trace.get("type", ""), ("y", "x"))
    if trace.get("type") == "bar":
        keys = ("x",) if trace.get("orientation") == "h" else ("y",)
    return any(isinstance(v, (int, float)) and v == v and v != 0 for k in keys for v in _values(trace.get(k)))


def plots(page: str) -> list[tuple[str, bool]]:
    """(title, draws data) of every plot on a report page."""
    decoder = json.JSONDecoder()
    found = []
    for match in re.finditer(r"Plotly\.newPlot\(\s*", page):
        _, end = decoder.raw_decode(page, match.end())
        data, end = decoder.raw_decode(page, page.index("[", end))
        layout, _ = decoder.raw_decode(page, page.index("{", end))
        title = layout.get("title", {})
        found.append((title.get("text", "") if isinstance(title, dict) else str(title), any(map(_draws_something, data))))
    return found


def skipped(page: str) -> list[str]:
    """The one-line notes of figures not drawn (pe_toolkit.widgets.figures.Skipped)."""
    return [html.unescape(m) for m in re.findall(r'class="pe-note pe-skipped"[^>]*>(.*?)</p>', page, re.S)]


def test_only_the_validity_notebook_leaves_the_cache_alone():
    assert [p.stem for p in NOTEBOOKS if p not in READING] == ["07_validity"]


@pytest.mark.parametrize("corpus", CORPORA)
def test_the_report_runs_on_an_imported_corpus(request, corpus):
    reports = request.getfixturevalue(corpus)
    assert reports["exit_code"] == 0, reports["output"]
    assert all(f"{p.stem}.html" in reports["output"] for p in READING)


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("name", [p.stem for p in READING])
def test_no_plot_is_empty_without_a_word(request, corpus, name):
    page = request.getfixturevalue(corpus)["pages"][name]
    empty = [title for title, drawn in plots(page) if not drawn]  # no data, or every value 0
    assert empty == []
    for note in skipped(page):  # each skip names the figure and why
        title, sep, reason = note.partition(": skipped, ")
        assert title and sep and len(reason) > 10, note


def test_figures_group_by_what_exists(reports):
    titles = {name: [t for t, drawn in plots(page) if drawn] for name, page in reports["pages"].items()}
    assert any("Conversations by dataset" in t for t in titles["01_getting_started"])
    assert any("by dataset" in t for t in titles["02_quality"])
    assert any("n-th reply" in t for t in titles["03_empathy"])
    assert any("at each of their turns" in t for t in titles["03_empathy"])
    assert any("Share of conversations with a disclosure" in t for t in titles["04_safety"])
    assert any("reply length" in t for t in titles["05_pipelines"])


def test_what_is_missing_is_said_once_per_figure(reports):
    pages = reports["pages"]
    first = skipped(pages["01_getting_started"])
    assert any(n.startswith("Conversations per month") and "creation date" in n for n in first)
    assert any("API" in n and "quality" in n for n in skipped(pages["02_quality"]))
    assert "no API tier" in pages["01_getting_started"]


@pytest.mark.parametrize("corpus", CORPORA)
def test_the_default_export_selection_selects_something(request, corpus):
    page = html.unescape(request.getfixturevalue(corpus)["pages"]["05_pipelines"])
    found = re.search(r"selected: ([\d,]+) of ([\d,]+) conversations \((.*)\)", page)
    assert found, "the selection line is missing"
    assert int(found.group(1).replace(",", "")) > 0
    # Published text stays under the bound: the line says what stood in for it.
    if corpus == "published_reports":
        assert int(found.group(1)) < int(found.group(2)) == 8
        assert "its top quarter (none reaches 0.8; no API scores in this corpus)" in found.group(3)


def test_figures_of_zeros_on_published_text_say_so(published_reports):
    notes = {name: skipped(page) for name, page in published_reports["pages"].items()}
    assert "Crisis categories (conversations): skipped, no matching conversation has a crisis disclosure" in notes["01_getting_started"]
    assert (
        "Mean share of templated replies by dataset: skipped, no reply is boilerplate or a near-duplicate of another"
        in notes["02_quality"]
    )
    assert "Share of conversations with a disclosure: skipped, no user message discloses a crisis: 0% everywhere" in notes["04_safety"]

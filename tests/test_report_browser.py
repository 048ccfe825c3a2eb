"""HTML reports: built by executing a notebook, then opened in a real
headless Chromium (Debian's package) to check that every plot renders,
nothing is fetched from the network and no JavaScript error occurs."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError, PeToolkitError
from pe_toolkit.report import WIDGET_VIEW, _strip_live_outputs, build_reports

from ._widgets_support import build_store

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if Path(CHROMIUM).exists() or shutil.which("chromium"):
        return
    if os.environ.get("PE_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium is required here (PE_REQUIRE_BROWSER=1): apt-get install -y chromium")
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    cache = build_store(folder, n=150, analyze=True)
    (built,) = build_reports(
        folder / "out", notebooks=["01_getting_started"], cache=cache, parameters={"source": "cache"}, progress=False
    )
    return built


def render(path: Path) -> dict:
    """Open a file in headless Chromium; what rendered and what went wrong."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with tempfile.TemporaryDirectory(prefix="pe-chromium-") as profile, sync_playwright() as p:
        # A fresh profile per run (Playwright passes it as --user-data-dir).
        browser = p.chromium.launch_persistent_context(profile, executable_path=executable, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:")) else requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "Array.from(document.querySelectorAll('.js-plotly-plot')).every(d => d.querySelector('svg.main-svg'))",
                timeout=30_000,
            )
            found = page.evaluate(
                """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => ({
                    svg: !!d.querySelector('svg.main-svg'),
                    marks: d.querySelectorAll('.trace path, .trace .point, .bars path, .box path').length,
                    title: (d.querySelector('.gtitle') || {}).textContent || ''}))"""
            )
        finally:
            browser.close()
    return {"plots": found, "errors": errors, "requests": requests}


@pytest.mark.browser
def test_report_renders_plots_without_errors(report):
    require_chromium()
    result = render(report.html)
    assert result["errors"] == []
    assert result["requests"] == [], "the report must not load anything from the network"
    plots = result["plots"]
    titles = {p["title"] for p in plots}
    assert {"Conversations by dataset and tier", "Messages per conversation", "API overall quality by tier"} <= titles
    assert len(plots) >= 8  # four corpus charts + the Explorer's four
    assert all(p["svg"] for p in plots)
    assert all(p["marks"] > 0 for p in plots), [p["title"] for p in plots if not p["marks"]]


def test_report_is_self_contained_and_private(report):
    text = report.html.read_text()
    assert stat.S_IMODE(report.html.stat().st_mode) == 0o600
    assert "<script src=" not in text  # no require.js, MathJax or widget manager from a CDN
    assert text.count("plotly.js v") == 1  # the library once, inlined
    assert WIDGET_VIEW not in text
    assert "Traceback" not in text and report.error is None


def test_strip_live_outputs():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("w")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "x"}, "text/plain": "HBox()"}),
        nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "y"}, "text/html": "<b>kept</b>"}),
        nbformat.v4.new_output("stream", name="stdout", text="kept too"),
    ]
    nb.cells.append(cell)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    _strip_live_outputs(nb)
    assert "widgets" not in nb.metadata
    assert [o.get("data", {}).get("text/html") or o.get("text") for o in cell.outputs] == ["<b>kept</b>", "kept too"]


def test_unknown_parameter_is_refused_before_running(tmp_path):
    with pytest.raises(InputError, match="colour"):
        build_reports(tmp_path / "out", notebooks=["01"], parameters={"colour": "red"}, progress=False)
    assert not list((tmp_path / "out").glob("*.html"))
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "out"), "-p", "colour=red", "--notebook", "01"])
    assert result.exit_code == 1 and result.output.startswith("pe-toolkit: error:")
    result = CliRunner().invoke(cli, ["report", "--notebook", "99_nothing"])
    assert result.exit_code == 1 and "no single notebook" in result.output


def test_failing_notebook_still_gets_a_report(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    params = nbformat.v4.new_code_cell("cache = None\nstatic_report = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise RuntimeError('boom ' + str(static_report))")]
    path = tmp_path / "09_broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(PeToolkitError, match=r"09_broken.ipynb failed at cell \d+: RuntimeError: boom True"):
        build_reports(tmp_path / "out", notebooks=[path], progress=False)
    assert "boom True" in (tmp_path / "out" / "09_broken.html").read_text()

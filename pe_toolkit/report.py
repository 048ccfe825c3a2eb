"""HTML reports: execute the curated notebooks and keep what they show.

Each notebook runs top to bottom in a fresh kernel (papermill injects the
parameters: the cache to read, ``static_report=True`` and any overrides),
then nbconvert turns the executed notebook into one self-contained HTML
file. In static mode the views render as plain HTML with plotly.js inlined
once per page, and the page template drops everything nbconvert would
otherwise fetch from a CDN (require.js, MathJax, mermaid, the widget
manager), so a report opens offline, years later.

Reports show conversations of people in distress: they are written readable
by their owner only, like the cache. A parameter that is a PostgreSQL
connection string (a warehouse DSN) is shown with its password masked
everywhere on the page and in the failure message (:func:`_secret_scrubber`).

>>> build_reports("reports/")                     # every notebook, default cache
>>> build_reports("reports/", notebooks=["04_safety"], parameters={"min_risk": 0.9})
>>> build_reports("shared/", redact=True)        # personal data replaced in the conversations shown
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape as html_escape
from pathlib import Path
from typing import Any

from .config import load_settings
from .errors import ConfigError, InputError, ReportError

log = logging.getLogger(__name__)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# Extends nbconvert's JupyterLab page. Every block emptied here would load a
# script from a CDN; with no network that is a console error and, for
# require.js, plotly.js registering itself as an AMD module instead of
# window.Plotly.
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style>.jp-Notebook { max-width: 1200px; margin: 0 auto; }
.pe-report-footer { color: #777; font-size: 12px; margin: 24px 0; }</style>
{%- endblock extra_css -%}
{%- block body_footer -%}
<p class="pe-report-footer">{{ resources.pe_footer | e }}</p>
</main>
</body>
{%- endblock body_footer -%}
"""


@dataclass(frozen=True)
class Report:
    notebook: Path
    html: Path
    seconds: float
    error: str | None = None

    def __str__(self) -> str:
        state = f"FAILED: {self.error}" if self.error else "ok"
        return f"{self.html} ({self.seconds:.1f} s, {state})"


def notebooks_dir() -> Path:
    """The curated notebooks: ``notebooks/`` beside the project's config file,
    else in the current folder or one of its parents."""
    settings = load_settings()
    here = Path.cwd().resolve()
    roots = [settings.config_file.parent] if settings.config_file else []
    for root in (*roots, here, *here.parents):
        if (root / "notebooks").is_dir():
            return root / "notebooks"
    raise ConfigError("no notebooks folder found; run from the project folder or pass notebook paths (--notebook PATH)")


def find_notebooks(names: Sequence[str | os.PathLike[str]] | None = None, folder: Path | None = None) -> list[Path]:
    """Notebook paths for names (``04_safety``, ``04``, a path), in order;
    all curated notebooks when ``names`` is empty."""
    paths = [Path(n) for n in names or ()]
    if paths and all(p.suffix == ".ipynb" and p.is_file() for p in paths):
        return paths  # notebook files given: no notebooks folder needed
    folder = folder or notebooks_dir()
    available = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        if not available:
            raise ConfigError(f"no notebooks in {folder}")
        return available
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path)
            continue
        matches = [p for p in available if p.stem == str(name) or p.stem.startswith(f"{name}_")]
        if len(matches) != 1:
            raise InputError(f"no single notebook matches {name!r}; available: {', '.join(p.stem for p in available)}")
        chosen.append(matches[0])
    return chosen


def declared_parameters(path: Path) -> dict[str, Any]:
    """The names and defaults of a notebook's ``parameters`` cell."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def _private_kernels(folder: Path) -> type:
    """A kernel manager whose kernel talks over Unix sockets in ``folder``
    (a private temporary directory) instead of TCP on loopback: the kernel
    carries conversation text, and ipykernel warns, rightly, that TCP sends
    it unencrypted. (Windows has no such sockets: TCP there.)"""
    from jupyter_client.manager import AsyncKernelManager

    if os.name != "posix":
        return AsyncKernelManager

    class PrivateKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(folder / "kernel")

    return PrivateKernelManager


def _strip_live_outputs(nb: Any) -> None:
    """Drop what only a live kernel can draw (widget views, widget state);
    an output that also has HTML or text keeps those."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if set(data) <= {"text/plain"}:
                    continue  # "HBox(children=...)" helps no reader
            kept.append(output)
        cell["outputs"] = kept


def _exporter(include_code: bool) -> Any:
    import jinja2
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="lab",
        template_file="pe_report.html.j2",
        extra_loaders=[jinja2.DictLoader({"pe_report.html.j2": _TEMPLATE})],
        exclude_input=not include_code,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


def _write_private(path: Path, text: str) -> None:
    """Write atomically, readable by the owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _secret_scrubber(params: Mapping[str, Any]) -> Callable[[str], str]:
    """A function masking, in any text, the password of every parameter
    that is a PostgreSQL connection string (plain, URL-encoded and
    HTML-escaped forms)."""
    from .exports.dsn import MASK, Dsn

    dsns = []
    for value in params.values():
        if isinstance(value, str) and (value.lower().startswith(("postgresql://", "postgres://")) or "password" in value.lower()):
            try:
                dsns.append(Dsn.parse(value))
            except InputError:
                continue  # not a connection string after all
    dsns = [d for d in dsns if d.password]

    def scrub(text: str) -> str:
        for dsn in dsns:
            text = dsn.scrub(text).replace(html_escape(dsn.password or ""), MASK)
        return text

    return scrub


def build_reports(
    out: str | os.PathLike[str] = "reports",
    *,
    notebooks: Sequence[str | os.PathLike[str]] | None = None,
    cache: str | os.PathLike[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    include_code: bool = False,
    progress: bool = True,
    timeout: float = 900,
    redact: bool = False,
) -> list[Report]:
    """Execute notebooks (all curated ones by default) on ``cache`` (default:
    the configured cache) and write ``OUT/<notebook>.html`` for each.

    ``parameters`` override notebook parameters by name; a name no selected
    notebook declares is an error. A notebook that fails still gets its
    report (showing the failing cell); a :class:`ReportError` listing the
    failures is raised after all have run. ``redact=True`` replaces personal
    data (names, e-mails, phone numbers...) in the conversations the
    notebooks show (their ``redact_views`` parameter), for a report that
    leaves the team; aggregate figures are unchanged.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    paths = find_notebooks(notebooks)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cache_path = Path(cache) if cache is not None else load_settings().cache_path
    overrides = dict(parameters or {})
    declared = {p: declared_parameters(p) for p in paths}
    unknown = sorted(set(overrides) - set().union(*(d.keys() for d in declared.values())))
    if unknown:
        raise InputError(f"no selected notebook has a parameter named {', '.join(unknown)}")
    # A notebook that cannot redact would show raw text in a report its
    # reader believes redacted: refused before anything runs.
    unredacted = [p.stem for p in paths if redact and "redact_views" not in declared[p]]
    if unredacted:
        raise InputError(f"--redact: {', '.join(unredacted)} has no redact_views parameter, so its conversations would show as stored")
    exporter = _exporter(include_code)
    reports: list[Report] = []
    with tempfile.TemporaryDirectory(prefix="pe-report-") as scratch:
        for path in paths:  # one kernel at a time: the cache has one writer
            wanted = {"cache": str(cache_path.resolve()), "static_report": True, "progress": False, **overrides}
            if redact:
                wanted["redact_views"] = True
            params = {k: v for k, v in wanted.items() if k in declared[path]}
            scrub = _secret_scrubber(params)
            executed = Path(scratch) / path.name
            started = time.perf_counter()
            error = None
            try:
                papermill.execute_notebook(
                    str(path),
                    str(executed),
                    parameters=params,
                    cwd=str(path.parent),
                    progress_bar=progress,
                    execution_timeout=timeout,
                    kernel_manager_class=_private_kernels(Path(scratch)),
                )
            except PapermillExecutionError as exc:
                error = scrub(f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}")
            if not executed.exists():
                raise ReportError(f"{path.name}: the notebook did not run ({error or 'no output'})")
            nb = nbformat.read(executed, as_version=4)
            _strip_live_outputs(nb)
            seconds = time.perf_counter() - started
            footer = f"pe_toolkit report of {path.name} on {cache_path.name}; parameters: " + ", ".join(
                f"{k}={v!r}" for k, v in sorted(params.items()) if k != "cache"
            )
            html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}, "pe_footer": footer})
            # The whole page: the footer, papermill's injected parameters
            # cell and any output that printed the value.
            html = scrub(html)
            target = out_dir / f"{path.stem}.html"
            _write_private(target, html)
            reports.append(Report(path, target, seconds, error))
            log.info("report %s", reports[-1])
    failed = [r for r in reports if r.error]
    if failed:
        raise ReportError(
            "; ".join(f"{r.notebook.name} failed at {r.error} (see {r.html})" for r in failed)
        )
    return reports

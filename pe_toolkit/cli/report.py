"""``pe-toolkit report``: the curated notebooks as self-contained HTML."""

from __future__ import annotations

import ast
import logging

import click

from ..errors import InputError
from ._common import cache_option, progress_enabled


def _parse_params(pairs: tuple[str, ...]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            # One line and exit 1 like every expected failure (a click usage error prints three lines).
            raise InputError(f"-p/--param {pair!r}: expected NAME=VALUE, e.g. -p alert_threshold=0.9")
        try:
            value: object = ast.literal_eval(raw)  # numbers, True/False/None, quoted text, lists
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            value = raw  # anything else is text (deeply nested brackets too)
        params[name.strip()] = value
    return params


@click.command("report")
# No click.Path(file_okay=False): its usage error is three lines; build_reports refuses an unusable folder in one.
@click.option("--out", default="reports", show_default=True, help="Folder for the HTML files.")
@click.option("--notebook", "names", multiple=True, metavar="NAME", help="Only this notebook (e.g. 04_safety or 04; repeatable). Default: all.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a notebook parameter (repeatable), e.g. -p alert_threshold=0.9 (04_safety).")
@click.option("--code", "include_code", is_flag=True, help="Show the code cells too (default: text and results only).")
@click.option("--redact", is_flag=True, help="Replace personal data (names, e-mails, phones...) in the conversations shown; pseudonymise ids holding any.")
@click.option("--timeout", type=float, default=900, show_default=True, metavar="SECONDS",
              help="Longest a notebook cell may run; a notebook past it gets a report marked failed.")
@click.option("--no-progress", is_flag=True, help="Do not show progress bars.")
@click.pass_context
def report_cmd(
    ctx: click.Context, out: str, names: tuple[str, ...], params: tuple[str, ...], include_code: bool, redact: bool,
    timeout: float, no_progress: bool,
) -> None:
    """Execute the notebooks on the cache and write one self-contained HTML
    report per notebook (plots included; opens offline).

    The cache is --db / $PE_CACHE / the config's. Reports contain
    conversation text: they are written readable by you only. With
    --redact the conversations shown have personal data replaced, and ids
    holding any are pseudonymised. Each report's line is printed as it is
    written; a failed notebook still gets its report, and the command then
    exits 1 naming it.
    """
    from ..report import build_reports

    # nbclient logs a timeout or a dead kernel through papermill's logger,
    # which has no handler, so Python printed the lines on stderr: the
    # failure is already in the one error line (and in the report).
    papermill_log = logging.getLogger("papermill")
    if not papermill_log.handlers:
        papermill_log.addHandler(logging.NullHandler())
    # Each line as its notebook finishes: a run takes minutes, and a
    # failure (raised after all have run) must not hide what was written.
    reports = build_reports(
        out,
        notebooks=list(names) or None,
        cache=cache_option(ctx),
        parameters=_parse_params(params),
        include_code=include_code,
        progress=progress_enabled(no_progress),
        redact=redact,
        timeout=timeout,
        on_report=lambda report: click.echo(str(report)),
    )
    click.echo(f"reports written to {click.format_filename(str(reports[0].html.parent.resolve()))}")

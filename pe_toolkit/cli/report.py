"""``pe-toolkit report``: the curated notebooks as self-contained HTML."""

from __future__ import annotations

import ast

import click

from ._common import progress_enabled


def _parse_params(pairs: tuple[str, ...]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--param")
        try:
            value: object = ast.literal_eval(raw)  # numbers, True/False/None, quoted text, lists
        except (ValueError, SyntaxError):
            value = raw  # anything else is text
        params[name.strip()] = value
    return params


@click.command("report")
@click.option("--out", default="reports", show_default=True, type=click.Path(file_okay=False), help="Folder for the HTML files.")
@click.option("--notebook", "names", multiple=True, metavar="NAME", help="Only this notebook (e.g. 04_safety or 04; repeatable). Default: all.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a notebook parameter (repeatable), e.g. -p alert_threshold=0.9 (04_safety).")
@click.option("--code", "include_code", is_flag=True, help="Show the code cells too (default: text and results only).")
@click.option("--redact", is_flag=True, help="Replace personal data (names, e-mails, phones...) in the conversations shown.")
@click.option("--no-progress", is_flag=True, help="Do not show progress bars.")
@click.pass_context
def report_cmd(
    ctx: click.Context, out: str, names: tuple[str, ...], params: tuple[str, ...], include_code: bool, redact: bool, no_progress: bool
) -> None:
    """Execute the notebooks on the cache and write one self-contained HTML
    report per notebook (plots included; opens offline).

    The cache is --db / $PE_CACHE / the config's. Reports contain
    conversation text: they are written readable by you only. With
    --redact the conversations shown have personal data replaced.
    """
    from ..report import build_reports

    reports = build_reports(
        out,
        notebooks=list(names) or None,
        cache=ctx.obj.get("db") if ctx.obj else None,
        parameters=_parse_params(params),
        include_code=include_code,
        progress=progress_enabled(no_progress),
        redact=redact,
    )
    for report in reports:
        click.echo(str(report))
    click.echo(f"reports written to {click.format_filename(str(reports[0].html.parent.resolve()))}")

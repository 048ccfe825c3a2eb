"""``pe-toolkit analyze``: score the cache (new, changed or outdated conversations)."""

from __future__ import annotations

import click

from ._common import open_cli_store, progress_enabled


@click.command("analyze")
@click.option("--full", is_flag=True, help="Score every conversation again, not only new, changed or outdated ones.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Conversations per transaction (default 20,000).")
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@click.pass_context
def analyze_cmd(ctx: click.Context, full: bool, batch_size: int | None, no_progress: bool) -> None:
    """Score sentiment, empathy, safety and quality into the cache.

    Only conversations that are new, changed since they were scored, or
    scored by an older analyzer version are scored, unless --full. Each
    batch commits on its own: an interrupted run keeps what it finished and
    the next run continues. Prints what was scored and how many alerts
    (conversations whose risk score is above the alert threshold) there are.
    """
    from ..analysis.pipeline import DEFAULT_BATCH_SIZE, analyze

    with open_cli_store(ctx) as store:
        report = analyze(
            store,
            incremental=not full,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            progress=progress_enabled(no_progress),
        )
    click.echo(str(report))

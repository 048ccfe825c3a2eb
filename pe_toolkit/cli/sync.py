"""``pe-toolkit sync``: pull conversations from the API into the cache."""

from __future__ import annotations

import click

from ._common import open_cli_store, progress_enabled


@click.command("sync")
@click.option("--dataset", help="Only this dataset (default: all).")
@click.option("--tier", type=click.Choice(["basic", "standard", "professional", "clinical", "research"]), help="Only this quality tier.")
@click.option("--min-quality", type=click.FloatRange(0.0, 1.0), help="Only conversations with overall quality at least this.")
@click.option(
    "--mode",
    type=click.Choice(["auto", "bulk", "incremental"]),
    default="auto",
    show_default=True,
    help="bulk: one export job and download; incremental: fetch only new, changed or stale ids; auto: choose by the size of the delta.",
)
@click.option("--ttl-hours", type=click.FloatRange(min=0), default=24 * 7, show_default=True, help="Fetch a conversation again when its copy is older than this (incremental).")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Most parallel requests of the incremental path (default 8; fewer when that is faster).")
@click.option("--analyze", is_flag=True, help="Score new and changed conversations as they land (incremental analysis).")
@click.option("--no-progress", is_flag=True, help="Do not show progress bars.")
@click.pass_context
def sync_cmd(
    ctx: click.Context,
    dataset: str | None,
    tier: str | None,
    min_quality: float | None,
    mode: str,
    ttl_hours: float,
    concurrency: int | None,
    analyze: bool,
    no_progress: bool,
) -> None:
    """Sync conversations from the Pixelated Empathy API into the cache.

    Uses PE_API_URL (several comma-separated URLs fail over) and PE_API_KEY,
    or [api] in pe_toolkit.toml. An interrupted sync resumes where it
    stopped when run again; invalid payloads go to dead_letters and are
    retried by the next sync. Exit status 1 when conversations could not be
    fetched (they are queued for the next run). With no API configured,
    loads the bundled sample instead.
    """
    from datetime import timedelta

    from ..apisync import sync

    with open_cli_store(ctx) as store:
        stop = None
        if analyze:
            from ..analysis.auto_analyze import auto_analyze

            stop = auto_analyze(store)
        try:
            report = sync(
                store,
                dataset=dataset,
                tier=tier,
                min_quality=min_quality,
                mode=mode,  # type: ignore[arg-type]  # a str to mypy; click.Choice admits only the mode names
                ttl=timedelta(hours=ttl_hours),
                concurrency=concurrency,
                progress=progress_enabled(no_progress),
            )
        finally:
            if stop is not None:
                stop()
    click.echo(str(report))
    if report.status == "partial":
        # Some fetches kept failing: a cron job must notice; they are queued
        # and the next run picks them up.
        click.echo(f"pe-toolkit: error: {report.failed:,} conversation(s) could not be fetched; run sync again", err=True)
        ctx.exit(1)

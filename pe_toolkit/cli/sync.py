"""``pe-toolkit sync``: pull conversations from the API into the cache."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import click

from ._common import filling_store, progress_enabled


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
@click.option("--analyze", is_flag=True, help="Score new and changed conversations as they land; at the end also any an interrupted run left unscored, or outdated by an analyzer's upgrade (incremental analysis).")
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
    or [api] in pe_toolkit.toml. An interrupted sync (Ctrl-C, SIGTERM)
    writes what it fetched and resumes where it stopped when run again;
    invalid payloads go to dead_letters and are retried by the next sync.
    Exit status 1 when conversations could not be fetched (they are queued
    for the next run) or when any payload was invalid. With no API
    configured and no key, filter or --mode given, loads the bundled
    sample instead (and says so on stderr); otherwise a missing PE_API_URL
    is an error.
    """
    from datetime import timedelta

    from ..apisync import sync

    with filling_store(ctx, "sync") as store:
        stop = None
        if analyze:
            from ..analysis.auto_analyze import auto_analyze

            stop = auto_analyze(store)
        try:
            with _wait_notices_on_bars_only():  # SIGTERM stops it as Ctrl-C does (the command group's terminate_as_interrupt)
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
    if report.status == "sample":
        # Not the API: say so where a person (or a cron log) will see it.
        click.echo("pe-toolkit: note: PE_API_URL is not set: loaded the bundled sample, not the API", err=True)
    problems = []
    if report.status == "partial":
        # Some fetches kept failing: a cron job must notice; they are queued
        # and the next run picks them up.
        problems.append(f"{report.failed:,} conversation(s) could not be fetched")
    if report.gaps:
        # Listed by the server but never received: as much "not synced" (a
        # dead letter names them for doctor; the next sync looks again).
        problems.append(f"{report.gaps:,} conversation(s) listed by the server were not received")
    if report.invalid:
        # Invalid payloads are as much "not synced" as failed fetches (they
        # wait in dead_letters for the next run): a run with any is not a
        # success, even when nothing else went wrong.
        problems.append(f"{report.invalid:,} payload(s) were invalid (kept in dead_letters)")
    failed_analysis = getattr(getattr(stop, "batcher", None), "error", None)
    if failed_analysis is not None:
        problems.append(f"the analysis of what was synced failed ({failed_analysis}); fix it and run analyze")
    if problems:
        click.echo(f"pe-toolkit: error: {'; '.join(problems)}; run sync again", err=True)
        ctx.exit(1)


@contextlib.contextmanager
def _wait_notices_on_bars_only() -> Iterator[None]:
    """The client's long-wait announcements ("waiting 8 s before attempt 6:
    ...") go to the progress bar only, not as log lines on stderr: on a
    terminal the bar shows them while they matter and they go away with
    it, and an expected failure stays the one error line the CLI prints
    (cron mail, scripts reading stderr). Library users keep the WARNING."""
    from ..client.pacing import is_wait_notice

    logger = logging.getLogger("pe_toolkit.client")

    def keep(record: logging.LogRecord) -> bool:
        return not is_wait_notice(record)

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)

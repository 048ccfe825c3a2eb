"""``pe-toolkit analyze``: score the cache (new, changed or outdated
conversations), or, with ``--engine ray``, a corpus of files on Ray Data."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import StoreError
from ._common import cli_cache, open_cli_store, progress_enabled


@click.command("analyze")
@click.option("--full", is_flag=True, help="Score every conversation again, not only new, changed or outdated ones.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Conversations per transaction (default 14,000; three batches are held at a time).")
@click.option("--engine", type=click.Choice(["store", "ray"]), default="store", show_default=True, help="store: the cache; ray: --input files to an --output Parquet dataset on Ray.")
@click.option("--input", "input_", metavar="PATH", help="--engine ray: a file, folder, glob or object-store URL of conversations (any import format).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), help="--engine ray: the output folder, created in a folder that must exist (re-runs skip the partitions it completed).")
@click.option("--address", metavar="ADDRESS", help="--engine ray: a Ray cluster (ray://HOST:10001 or auto; default: a local Ray on this machine's cores).")
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@click.pass_context
def analyze_cmd(ctx: click.Context, full: bool, batch_size: int | None, engine: str, input_: str | None,
                output: Path | None, address: str | None, no_progress: bool) -> None:  # fmt: skip
    """Score sentiment, empathy, safety and quality into the cache (and the
    project's models listed under [[analysis.models]] in pe_toolkit.toml).

    Only conversations that are new, changed since they were scored, or
    scored by an older analyzer version are scored, unless --full. Each
    batch commits on its own: an interrupted run keeps what it finished and
    the next run continues. Prints what was scored and how many alerts
    (conversations whose risk score is above the alert threshold) there are.

    \b
    With --engine ray (pip install 'pe-toolkit[ray]'), the files of --input
    are scored on Ray Data into the Parquet dataset --output (the same score
    tables, partitioned by input file, with a manifest); see docs/scale.md:
    pe-toolkit analyze --engine ray --input corpus/ --output scores/
    """
    if engine == "ray":
        if not input_ or output is None:
            raise click.UsageError("--engine ray needs --input PATH and --output DIR")
        if full or batch_size:
            raise click.UsageError("--full and --batch-size apply to the store engine; delete --output to score again")
        from ..scale import analyze_dataset

        click.echo(str(analyze_dataset(input_, output, address=address, progress=progress_enabled(no_progress))))
        return
    if input_ or output is not None or address:
        raise click.UsageError("--input, --output and --address need --engine ray")
    from ..analysis.pipeline import DEFAULT_BATCH_SIZE, analyze

    # Like info and export: nothing to score without a cache, and a mistyped
    # --db must not leave a new folder and an empty cache behind.
    cache = cli_cache(ctx, read_only=True)
    if not cache.exists():
        raise StoreError(f"no cache at {cache}; import or sync something first")
    with open_cli_store(ctx, path=cache) as store:
        report = analyze(
            store,
            incremental=not full,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            progress=progress_enabled(no_progress),
        )
    click.echo(str(report))

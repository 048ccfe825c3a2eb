"""``pe-toolkit export``: files in the usual formats, or a PostgreSQL warehouse."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..errors import ExportError, InputError
from ..schema import CRISIS_CATEGORIES
from ._common import open_cli_store, progress_enabled

_FORMATS = ("jsonl", "openai", "sharegpt", "csv", "parquet", "huggingface")
_BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def _format_from(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    fmt = _BY_SUFFIX.get(Path(name).suffix)
    if fmt is None:
        # An expected failure (one line, exit 1), not a usage error that prints the whole usage.
        raise ExportError(f"cannot tell the format from {path.name!r}; pass --format ({', '.join(_FORMATS)})")
    return fmt


def _read_ids(ids: tuple[str, ...], ids_file: str | None) -> list[str] | None:
    """The ids selected, or None when neither --id nor --ids-file is given.
    An --ids-file that lists none selects none (as ``ids=[]`` does in
    Python): before, its empty list read as "no id filter", and an empty
    list of, say, consented conversations exported every conversation."""
    if ids_file is None:
        return list(ids) or None
    try:
        # utf-8-sig: a byte order mark (a Windows editor's) is not part of the first id.
        text = Path(ids_file).read_text("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"--ids-file {ids_file}: not UTF-8 text (byte {exc.start}); give a text file of conversation ids, one per line") from None
    except OSError as exc:
        raise InputError(f"--ids-file {ids_file}: cannot read it ({exc.strerror or exc})") from None
    return [*ids, *(line.strip() for line in text.splitlines() if line.strip())]


@click.command("export")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(_FORMATS), help="Output format (default: from PATH's extension).")
@click.option("--layout", type=click.Choice(["messages", "nested", "tables"]), help="parquet: one row per message (default), per conversation, or a folder with both tables.")
@click.option("--to", "to", metavar="DSN", help="Load into PostgreSQL instead of writing a file (postgresql://user@host/db; default $PE_WAREHOUSE_DSN when no PATH).")
@click.option("--schema", default="pe_toolkit", show_default=True, help="PostgreSQL schema for --to.")
@click.option("--dataset", multiple=True, help="Only this dataset (repeatable).")
@click.option("--tier", multiple=True, help="Only this tier (repeatable).")
@click.option("--min-quality", type=float, help="Lowest overall_quality (0-1).")
@click.option("--max-quality", type=float, help="Highest overall_quality (0-1).")
@click.option("--created-after", type=click.DateTime(), help="Created at or after this time (UTC).")
@click.option("--created-before", type=click.DateTime(), help="Created before this time (UTC).")
@click.option("--min-risk", type=float, help="Lowest risk_score (0-1; needs `pe-toolkit analyze`).")
@click.option("--max-risk", type=float, help="Highest risk_score (0-1; needs `pe-toolkit analyze`).")
@click.option("--alert/--no-alert", "alert", default=None, help="Only conversations whose current scores alert (or, --no-alert, analyzed ones that do not; needs `pe-toolkit analyze`).")
@click.option("--crisis-category", "crisis_categories", multiple=True, help="Has this crisis category (repeatable; needs `pe-toolkit analyze`): " + ", ".join(CRISIS_CATEGORIES) + ".")
@click.option("--crisis", "crisis", multiple=True, hidden=True, help="Deprecated: --crisis-category.")
@click.option("--label", "labels", multiple=True, help="Has an annotation with this label (repeatable).")
@click.option("--id", "ids", multiple=True, help="Only this conversation id (repeatable).")
@click.option("--ids-file", type=click.Path(exists=True, dir_okay=False), help="A file of conversation ids, one per line.")
@click.option("--redact", is_flag=True, help="Replace PII in message contents and metadata.")
@click.option("--include-scores", is_flag=True, help="Add the current analysis scores.")
@click.option("--no-features", is_flag=True, help="--to: do not load the feature table.")
@click.option("--engine", type=click.Choice(["store", "ray"]), default="store", show_default=True, help="ray: export the analysis output --scores DIR to the folder PATH, one shard per partition, on Ray.")
@click.option("--scores", "scores_dir", type=click.Path(file_okay=False, path_type=Path), help="--engine ray: the output folder of `analyze --engine ray`.")
@click.option("--address", metavar="ADDRESS", help="--engine ray: a Ray cluster (default: a local Ray).")
@click.option("--force", is_flag=True, help="Replace an existing file at PATH even if it is not a previous export (never the cache itself).")
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@click.pass_context
def export_cmd(
    ctx: click.Context,
    path: Path | None,
    fmt: str | None,
    layout: str | None,
    to: str | None,
    schema: str,
    dataset: tuple[str, ...],
    tier: tuple[str, ...],
    min_quality: float | None,
    max_quality: float | None,
    created_after: datetime | None,
    created_before: datetime | None,
    min_risk: float | None,
    max_risk: float | None,
    alert: bool | None,
    crisis_categories: tuple[str, ...],
    crisis: tuple[str, ...],
    labels: tuple[str, ...],
    ids: tuple[str, ...],
    ids_file: str | None,
    redact: bool,
    include_scores: bool,
    no_features: bool,
    engine: str,
    scores_dir: Path | None,
    address: str | None,
    force: bool,
    no_progress: bool,
) -> None:
    """Export conversations to PATH, or load them into PostgreSQL with --to.

    \b
    pe-toolkit export out.jsonl                        # the API's objects
    pe-toolkit export train.jsonl --format openai --tier research
    pe-toolkit export msgs.parquet --include-scores --min-risk 0.8
    pe-toolkit export ds/ --format huggingface --redact
    pe-toolkit export --to postgresql://etl@db.example/research
    pe-toolkit export --engine ray --scores scores/ shards/ --format openai

    Files appear only when complete. An existing file is replaced only if it
    is a previous export of the same format, or with --force. The warehouse
    load writes only what changed since the last load, in one transaction. Keep passwords out of
    the command line: use PGPASSWORD or ~/.pgpass (read by libpq), or
    $PE_WAREHOUSE_DSN.
    """
    if path is not None and to:
        raise click.UsageError("give either PATH (a file export) or --to (a warehouse load), not both")
    if path is None:
        to = to or os.environ.get("PE_WAREHOUSE_DSN")
        if not to:
            raise click.UsageError("give PATH to write a file, or --to postgresql://... to load a warehouse")
    if force and (to or engine == "ray"):
        # A warehouse load and Ray shards never replace a file: say so
        # rather than accept a flag that does nothing.
        raise click.UsageError("--force applies to a file export (PATH), not to --to or --engine ray")
    schema_given = ctx.get_parameter_source("schema") not in (None, click.core.ParameterSource.DEFAULT)
    if not to and (schema_given or no_features):
        raise click.UsageError("--schema and --no-features apply to --to (a warehouse load), not to a file export")
    if crisis:
        click.echo("pe-toolkit: warning: --crisis is deprecated; use --crisis-category", err=True)
    # The one filter vocabulary (pe_toolkit.store.filters): each option is its name.
    selection: dict[str, Any] = dict(
        dataset=dataset or None,
        tier=tier or None,
        min_quality=min_quality,
        max_quality=max_quality,
        created_after=created_after,
        created_before=created_before,
        min_risk=min_risk,
        max_risk=max_risk,
        alert=alert,
        crisis_categories=(crisis_categories + crisis) or None,
        labels=labels or None,
        ids=_read_ids(ids, ids_file),
    )
    selection = {name: value for name, value in selection.items() if value is not None}
    progress = progress_enabled(no_progress)
    if engine == "ray":
        _export_ray(path, scores_dir, address, fmt, layout, redact, include_scores, labels, selection, progress)
        return
    if scores_dir is not None or address:
        raise click.UsageError("--scores and --address need --engine ray")
    with open_cli_store(ctx, read_only=True) as store:
        if to:
            if fmt or layout or redact:
                raise click.UsageError("--format, --layout and --redact apply to file exports, not --to")
            from ..exports.warehouse import load

            report = load(store, to, schema=schema, progress=progress, include_features=not no_features, **selection)
            click.echo(str(report))
            return
        from ..exports import export

        assert path is not None
        result = export(
            store,
            path,
            format=fmt or _format_from(path),
            layout=layout,
            redact=redact,
            include_scores=include_scores,
            progress=progress,
            force=force,
            **selection,
        )
    click.echo(str(result))
    if include_scores and not result.scores:
        click.echo("note: this store has no analysis scores; run `pe-toolkit analyze` to include them", err=True)


def _export_ray(path: Path | None, scores_dir: Path | None, address: str | None, fmt: str | None, layout: str | None,
                redact: bool, include_scores: bool, labels: tuple[str, ...], selection: dict, progress: bool) -> None:  # fmt: skip
    """--engine ray: shards of the analysis output (pe_toolkit.scale.export; Ray imported only here)."""
    if path is None or scores_dir is None or not fmt:
        raise click.UsageError("--engine ray needs PATH (a folder for the shards), --scores DIR and --format")
    if labels:
        raise click.UsageError("--label needs a store (an analysis output has no annotations)")
    from ..scale.export import export_dataset

    options = {k: v for k, v in selection.items() if k != "labels"}
    report = export_dataset(scores_dir, path, format=fmt, address=address, progress=progress, layout=layout,
                            redact=redact, include_scores=include_scores, **options)  # fmt: skip
    click.echo(str(report))

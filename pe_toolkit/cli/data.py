"""Cache commands: import, synth, info, sql, doctor."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._common import cache_option, cli_cache, filling_store, open_cli_store, progress_enabled

if TYPE_CHECKING:
    import polars as pl


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "api", "openai", "sharegpt", "esconv", "csv", "parquet", "rows"]),
    default="auto",
    show_default=True,
    help="Input format; auto decides from the name and the first record (rows: JSON lines of flat records).",
)
@click.option("--dataset", help="Dataset name for records that carry none (default: the file name).")
@click.option("--skip-invalid", is_flag=True, help="Record bad records in dead_letters and import the rest.")
@click.option(
    "--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
    help="Table column mapping (repeatable), e.g. --map content=text, --map metadata.rating=upvotes.",
)  # fmt: skip
@click.option("--layout", type=click.Choice(["messages", "pairs"]), help="Tables: one row per message, or per user/assistant pair.")
@click.option("--drop", multiple=True, metavar="COLUMN", help="Tables: a column not to keep in metadata (repeatable).")
@click.option("--group-by", "group_by", metavar="COLUMN", help="Pairs layout: thread the rows sharing COLUMN into one conversation.")
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@click.pass_context
def import_cmd(ctx: click.Context, paths: tuple[str, ...], fmt: str, dataset: str | None, skip_invalid: bool, mapping: tuple[str, ...],
               layout: str | None, drop: tuple[str, ...], group_by: str | None, no_progress: bool) -> None:  # fmt: skip
    """Import conversation files (JSONL/JSON, OpenAI, ShareGPT, ESConv, CSV, Parquet, JSON rows; .gz too)
    or a Hugging Face dataset folder (save_to_disk, or its Parquet/JSON shards).

    Table columns that are not part of the conversation go into its metadata
    (typed); the import prints what went where. Re-importing a file changes
    nothing. A bad record stops the import with FILE:LINE: REASON before its
    batch is written, unless --skip-invalid.
    """
    from ..ingest import ColumnMap, import_file
    from ..ingest.importer import local_source

    columns = ColumnMap.parse(mapping, layout, drop=drop, group_by=group_by) if (mapping or layout or drop or group_by) else None
    for path in paths:  # a mistyped name fails before a cache is created for it
        local_source(path)
    with filling_store(ctx, "import") as store:
        for path in paths:
            report = import_file(
                store,
                path,
                format=fmt,
                dataset=dataset,
                columns=columns,
                skip_invalid=skip_invalid,
                progress=progress_enabled(no_progress),
            )
            click.echo(str(report))
            for line in report.mapping:
                click.echo(f"  {line}")


@click.command("synth")
@click.argument("n", type=click.IntRange(min=1))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output file (.jsonl or .jsonl.gz).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same conversations.")
@click.option("--force", is_flag=True, help="Replace an existing file at --out.")
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@click.pass_context
def synth_cmd(ctx: click.Context, n: int, out: str, seed: int, force: bool, no_progress: bool) -> None:
    """Write N synthetic conversations in the API's format, with ground truth in metadata.

    The file appears only when complete; an existing file is replaced only
    with --force, and the cache never.
    """
    from .. import synth
    from ..errors import ExportError

    cache = cli_cache(ctx, read_only=True)
    if cache.exists() and Path(out).exists() and Path(out).samefile(cache):
        raise ExportError(f"{out} is the cache; choose another path")
    count = synth.write(out, n, seed=seed, progress=progress_enabled(no_progress), force=force)
    click.echo(f"wrote {count:,} conversations to {out}")


@click.command("info")
@click.pass_context
def info_cmd(ctx: click.Context) -> None:
    """Conversations and messages per dataset and tier."""
    with open_cli_store(ctx, read_only=True) as store:
        click.echo(str(store.summary()))


@click.command("sql")
@click.argument("query")
@click.option("--param", "params", multiple=True, help="A value for a ? placeholder (repeatable, in order; passed as text).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
    help="json: one object per line. csv and json: BLOBs as hex; csv: lists, structs and maps as JSON text.",
)  # fmt: skip
@click.option("--write", is_flag=True, help="Open the cache for writing, with file access (COPY ... TO, read_csv, ATTACH).")
@click.pass_context
def sql_cmd(ctx: click.Context, query: str, params: tuple[str, ...], fmt: str, write: bool) -> None:
    """Run QUERY against the cache and print the result.

    Without --write the cache is read-only and so is the disk: the query
    can neither write a file (COPY ... TO) nor read one (read_text,
    read_csv, ATTACH), and cannot change that.

    Example: pe-toolkit sql "SELECT tier, count(*) FROM conversations GROUP BY tier"
    """
    import polars as pl

    from ..errors import StoreError

    cache = cli_cache(ctx, read_only=True)
    if write and not cache.exists():
        # A mistyped --db must not become a new, empty cache the query "succeeds" on.
        raise StoreError(f"no cache at {cache}; import or sync something first")
    with open_cli_store(ctx, read_only=not write, path=cache) as store:
        # Ctrl-C (or SIGTERM) stops even a long operator: see pe_toolkit.store.access.interruptible.
        frame = store.sql(query, list(params) or None)
    if fmt == "csv":
        sys.stdout.write(_csv_ready(frame).write_csv())
    elif fmt == "json":
        sys.stdout.write(_ndjson(frame))
    else:
        with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60, tbl_width_chars=160):
            click.echo(str(frame))


def _awkward(dtype: object) -> bool:
    """Whether polars' JSON writer fails on ``dtype``: it panics on BLOBs
    and refuses maps with keys other than text, at any depth."""
    import polars as pl

    if isinstance(dtype, (pl.Binary, pl.Map)):
        return True
    if isinstance(dtype, (pl.List, pl.Array)):
        return _awkward(dtype.inner)
    return isinstance(dtype, pl.Struct) and any(_awkward(f.dtype) for f in dtype.fields)


def _json_default(value: object) -> str:
    # BLOBs as hex, as in CSV; Decimal (exact) and anything else orjson lacks as text.
    return value.hex() if isinstance(value, bytes) else str(value)


def _ndjson(frame: pl.DataFrame) -> str:
    """One JSON object per row: polars' writer, or row by row with orjson
    for the few types that writer cannot take."""
    import orjson

    if not any(_awkward(dtype) for dtype in frame.dtypes):
        return frame.write_ndjson()
    option = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(row, default=_json_default, option=option) for row in frame.iter_rows(named=True)).decode()


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` as CSV can hold it: CSV has no nesting, so lists, structs
    and maps become JSON text, and BLOBs hex (polars refuses both)."""
    import orjson
    import polars as pl

    def text(value: object) -> str | None:
        return None if value is None else orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()

    columns: list[pl.Expr | pl.Series] = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Binary):
            columns.append(pl.col(name).bin.encode("hex"))
        elif dtype.is_nested():
            columns.append(pl.Series(name, [text(v) for v in frame[name].to_list()], dtype=pl.String))
        else:
            columns.append(pl.col(name))
    return frame.select(columns)


@click.command("doctor")
@click.option("--online", is_flag=True, help="Also send one request to each API URL: reachable, key accepted?")
@click.pass_context
def doctor_cmd(ctx: click.Context, online: bool) -> None:
    """Check configuration, cache file, schema version and lock holder
    (and with --online, that the API answers and accepts the key)."""
    from ..doctor import diagnose

    problems = 0
    for check in diagnose(cache_option(ctx), online=online):
        mark = "ok  " if check.ok else "FAIL"
        problems += not check.ok
        click.echo(f"[{mark}] {check.name}: {check.detail}")
    if problems:
        click.echo(f"pe-toolkit: error: {problems} problem(s) found", err=True)
        ctx.exit(1)

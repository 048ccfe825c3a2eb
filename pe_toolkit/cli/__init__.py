"""``pe-toolkit``: a thin command line over the library.

Commands live in small modules and are imported only when used, so
``pe-toolkit --help`` is quick and works without the optional extras. Every
expected failure (a :class:`PeToolkitError`) becomes one line on stderr and
exit status 1; only bugs show a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

import click

from ..errors import PeToolkitError, is_interrupt

# name -> (module, attribute, one-line help shown by --help without importing)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "import": ("pe_toolkit.cli.data", "import_cmd", "Import conversation files into the cache."),
    "synth": ("pe_toolkit.cli.data", "synth_cmd", "Generate synthetic conversations (deterministic)."),
    "info": ("pe_toolkit.cli.data", "info_cmd", "Summarize what is in the cache."),
    "sql": ("pe_toolkit.cli.data", "sql_cmd", "Run a SQL query against the cache."),
    "doctor": ("pe_toolkit.cli.data", "doctor_cmd", "Check configuration, cache and lock."),
    "analyze": ("pe_toolkit.cli.analyze", "analyze_cmd", "Score sentiment, empathy, safety and quality (new or changed conversations)."),
    "sync": ("pe_toolkit.cli.sync", "sync_cmd", "Sync conversations from the Pixelated Empathy API into the cache."),
    "serve": ("pe_toolkit.cli.serve", "serve_cmd", "Serve the cache as the Pixelated Empathy API v1 (offline mirror)."),
    "report": ("pe_toolkit.cli.report", "report_cmd", "Execute the notebooks and write self-contained HTML reports."),
    "export": ("pe_toolkit.cli.export", "export_cmd", "Export to files (jsonl, openai, sharegpt, csv, parquet, huggingface) or PostgreSQL."),
    "learn": ("pe_toolkit.cli.learn", "learn_cmd", "Train, evaluate and list text classifiers on human labels."),
}


def hoist_db(args: list[str], group: click.Group) -> list[str]:
    """Move ``--db PATH`` given after the subcommand to before it, so
    ``pe-toolkit info --db X`` works like ``pe-toolkit --db X info`` (unless
    the subcommand has a ``--db`` of its own, as ``serve`` does). Stops at
    ``--``; several ``--db``: the last one wins, as click does."""
    i = 0
    while i < len(args):  # past the group's own options to the subcommand's name
        if args[i] == "--db":
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            break
    if i >= len(args) or args[i] not in COMMANDS:
        return args
    command = group.get_command(click.Context(group), args[i])
    if command is None or any("--db" in p.opts for p in command.params):
        return args
    head, tail, moved = args[: i], [], []
    rest = iter(args[i:])
    for token in rest:
        if token == "--":
            tail += [token, *rest]
            break
        if token == "--db":
            value = next(rest, None)
            if value is None:  # a dangling --db stays where it is: click then names the option
                tail.append(token)
            else:
                moved += [token, value]
        elif token.startswith("--db="):
            moved.append(token)
        else:
            tail.append(token)
    return head + moved + tail


def _abandoned_work(record: logging.LogRecord) -> bool:
    """False for asyncio's report of a task or future the interrupt left
    behind: when it is collected (often at exit), its exception (the kernel
    a report was running, shut down) "was never retrieved", and asyncio
    printed that with a traceback after the one ``interrupted`` line."""
    return not str(record.msg).startswith(_ABANDONED)


_ABANDONED = ("Task exception was never retrieved", "Future exception was never retrieved", "Task was destroyed but it is pending")


def _interrupted(ctx: click.Context) -> NoReturn:
    """Ctrl-C or SIGTERM: the one line, exit 130. What the interrupt
    abandoned (an asyncio task) fails quietly from here to the exit (the
    filter stays on the "asyncio" logger: the process is exiting)."""
    logging.getLogger("asyncio").addFilter(_abandoned_work)
    click.echo("pe-toolkit: interrupted", err=True)
    ctx.exit(130)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:  # fmt: skip
    """Warnings as one line, like errors: not a source path and line number."""
    click.echo(f"pe-toolkit: warning: {message}", file=file, err=file is None)


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            # hoist_db imports the subcommand's module (polars, DuckDB: about
            # a second): Ctrl-C there was click's "Aborted!" and exit 1, the
            # status of an expected failure, not the 130 of every interrupt.
            return super().parse_args(ctx, hoist_db(args, self))
        except KeyboardInterrupt:
            _interrupted(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            # One-line warnings for this command only: the hook is restored on
            # return, so a notebook or script calling the CLI keeps its own.
            with warnings.catch_warnings(), terminate_as_interrupt():
                warnings.showwarning = _one_line_warning
                return super().invoke(ctx)
        except (KeyboardInterrupt, Exception) as exc:
            # Ctrl-C inside a DuckDB query arrives as a RuntimeError (or as an
            # error wrapping one): still an interrupt, not a failure or a bug.
            if is_interrupt(exc):
                _interrupted(ctx)
            extra = _missing_extra(exc)
            if extra:
                click.echo(f"pe-toolkit: error: {ctx.invoked_subcommand or ctx.info_name} needs {extra[0]!r}, in the {extra[1]} extra: "
                           f"pip install 'pe-toolkit[{extra[1]}]'", err=True)  # fmt: skip
                ctx.exit(1)
            if not isinstance(exc, PeToolkitError):
                raise
            # Notes (e.g. what a failed import already committed) on the same line.
            line = "; ".join([str(exc), *getattr(exc, "__notes__", [])])
            click.echo(f"pe-toolkit: error: {' '.join(line.split())}", err=True)
            ctx.exit(1)


# The optional packages (pyproject's extras) by their import name: a command
# that needs one not installed is an expected failure, one line naming the
# extra, not a traceback ending in ModuleNotFoundError.
_EXTRAS = {
    **dict.fromkeys(("fastapi", "uvicorn", "multipart", "python_multipart"), "server"),
    **dict.fromkeys(("papermill", "nbformat", "nbconvert", "nbclient", "ipykernel", "ipywidgets", "anywidget", "jupyterlab"), "notebooks"),
    **dict.fromkeys(("adbc_driver_postgresql", "adbc_driver_manager"), "warehouse"),
    "datasets": "hf",
    **dict.fromkeys(("ray", "aiohttp"), "ray"),
    **dict.fromkeys(("presidio_analyzer", "spacy"), "presidio"),
}


def _missing_extra(exc: BaseException) -> tuple[str, str] | None:
    """(module, extra) when ``exc`` is the import of an optional package that is not installed."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    return (top, _EXTRAS[top]) if top in _EXTRAS else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db",
    # No dir_okay=False: click would call a PE_CACHE folder "Invalid value
    # for '--db'", a usage error, when no --db was typed; the commands that
    # open the cache refuse a folder instead, naming what named it
    # (_common.cache_option).
    envvar="PE_CACHE",
    help="Cache file (default: $PE_CACHE, the config file, or data/pe_cache.duckdb).",
)
@click.version_option(package_name="pe-toolkit")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """pe_toolkit: study therapeutic and mental-health support conversations.

    Pull conversations from the Pixelated Empathy API or local files into a
    local DuckDB cache, analyze quality, empathy and safety, and export.
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    from_env = ctx.get_parameter_source("db") is click.core.ParameterSource.ENVIRONMENT
    ctx.obj["db_option"] = "PE_CACHE" if from_env else "--db"


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``timeout``, ``kill``, a service manager, ``docker stop``)
    stops a command as Ctrl-C does: what it committed is kept, its partial
    files are removed, its run is recorded as interrupted, and it exits 130
    with one line. Before, every command but sync died at once, leaving an
    export's hidden ``.part`` (conversation text) beside its target. Only
    from the main thread, where signal handlers live; ``serve`` lets uvicorn
    handle it (graceful shutdown)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="pe-toolkit")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

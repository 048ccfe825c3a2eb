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
>>> build_reports("reports/", notebooks=["04_safety"], parameters={"alert_threshold": 0.9})
>>> build_reports("shared/", redact=True)        # personal data replaced in the conversations shown, ids pseudonymised
"""

from __future__ import annotations

import ast
import datetime
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape as html_escape
from pathlib import Path
from typing import Any

from .config import find_project_file, load_settings
from .errors import ConfigError, InputError, ReportError, is_interrupt
from .masking import HTML_ESCAPES, HTML_SPECIAL, HTML_TEXT

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
    """The curated notebooks: ``notebooks/`` beside the project's config file
    (not the user-level one), else in the current folder or one of its parents."""
    project = find_project_file()
    here = Path.cwd().resolve()
    roots = [project.parent] if project else []
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


def _private_kernels(folder: Path, log_path: Path) -> type:
    """A kernel manager whose kernel talks over Unix sockets in ``folder``
    (a private temporary directory) instead of TCP on loopback: the kernel
    carries conversation text, and ipykernel warns, rightly, that TCP sends
    it unencrypted. (Windows has no such sockets: TCP there.) The kernel's
    own log goes to ``log_path``, not to our stderr: a kernel
    stopped by Ctrl-C or a timeout prints a traceback of its closed sockets
    there, and the CLI's failures are one line (:func:`_kernel_log_tail`
    names its last line when the kernel dies)."""
    from jupyter_client.manager import AsyncKernelManager

    class PrivateKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if os.name == "posix":
                self.transport = "ipc"
                self.ip = str(folder / "kernel")

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            with open(log_path, "ab") as log_file:  # the child keeps its own copy of the descriptor
                kw["stderr"] = log_file
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return PrivateKernelManager


def _kernel_log_tail(log_file: Path) -> str:
    lines = log_file.read_text(errors="replace").split("\n") if log_file.exists() else []
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return f" ({last[:200]})" if last else ""


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
    from .exports.dsn import Dsn

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
            text = dsn.scrub(text, html=True)
        return text

    return scrub


# Set by build_reports itself: a report is always static (live widgets need a
# kernel and a CDN), and the cache is --db / ``cache=``, which the footer names.
_RESERVED = {"static_report": "a report is always static", "cache": "the cache is --db PATH (build_reports(cache=...))"}


def _check_values(overrides: Mapping[str, Any], declared: Mapping[Path, Mapping[str, Any]]) -> None:
    """Refuse, before anything runs, a value whose type differs from the
    notebook's default (``-p examples=ten``): the notebook would fail minutes
    in, or worse compute with it. A default of None or of another type
    (a list) accepts anything."""
    kinds: tuple[tuple[type, tuple[type, ...], str], ...] = (
        (bool, (bool,), "True or False"), (int, (int,), "a whole number"), (float, (int, float), "a number"), (str, (str,), "text"),
    )
    for name, value in overrides.items():
        if name in _RESERVED:
            raise InputError(f"parameter {name} cannot be set: {_RESERVED[name]}")
        for path, params in declared.items():
            if name not in params:
                continue
            try:
                default = ast.literal_eval(params[name]["default"])
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue  # an expression, not a literal: nothing to compare with
            for kind, accepted, words in kinds:
                if type(default) is kind:
                    if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
                        raise InputError(
                            f"parameter {name}={value!r}: {path.stem} expects {words} (its default is {default!r});"
                            " quote text given on the command line, e.g. -p 'name=\"text\"'"
                        )
                    break


def _check_cache(cache_path: Path, named: bool, overrides: Mapping[str, Any], declared: Mapping[Path, Mapping[str, Any]]) -> None:
    """A cache named (``cache=``, --db, $PE_CACHE) that does not exist is
    refused: the curated notebooks would create it, fill it with the bundled
    sample (``source="sample"``) or leave it empty (``"cache"``), and the
    report would present that as the cache asked for (a typo in --db). The
    default cache is filled with the sample as documented (README: the
    notebooks run on the bundled sample by default). Nor is it refused when
    a ``source`` is given, the reader's choice; notebooks without a
    ``source`` parameter manage their own input."""
    if not named or cache_path.exists() or "source" in overrides or not any("source" in d for d in declared.values()):
        return
    raise InputError(
        f"no cache at {cache_path}: import or sync into it first (pe-toolkit import FILE), name another with --db PATH,"
        " or pass -p source=sample to report on the bundled sample"
    )


def _prepare_out(out_dir: Path) -> None:
    """Create the output folder and prove it writable before any notebook
    runs (minutes of work lost to a folder found unwritable at the end)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"cannot write reports to {out_dir}: it is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".pe-report-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write reports to {out_dir}: {exc.strerror or exc}") from None


# What plotly escapes in the JSON it puts in a page (plotly.io._json._swap_orjson).
_PLOTLY_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "/": "\\u002f", "\u2028": "\\u2028", "\u2029": "\\u2029"}


# The texts (messages, metadata, dataset name, as export --redact reads a
# conversation) of the conversations whose id holds a word (two letters or
# more) that the conversation itself says: only there can an id hold a
# name the scan would find ("session-priya-raman-01", then "I'm Priya"), so
# only those are scanned with their id, not the whole cache.
_IDS_SAYING_THEIR_WORDS = r"""
    WITH texts AS (
        SELECT conversation_id, idx, content FROM messages
        UNION ALL SELECT id, -1, CAST(metadata AS VARCHAR) FROM conversations WHERE metadata IS NOT NULL
        UNION ALL SELECT id, -2, dataset FROM conversations WHERE dataset IS NOT NULL
    ), words AS (
        SELECT DISTINCT id, unnest(regexp_extract_all(lower(id), '\p{L}{2,}')) AS word FROM conversations
    ), said AS (
        -- The substring test first (0.4 s per 1 M messages), then whether one
        -- of the word's occurrences stands alone: the text split at them, the
        -- character either side of each is not a letter (an empty piece is the
        -- text's edge, or another occurrence, a letter). Same answer as finding
        -- the word among the text's tokens, which took 5.3 s of CPU against 2.7
        -- on 200k synthetic conversations (their metadata, their ground truth,
        -- holds "synthetic", so it passes the substring test for the id word "syn").
        SELECT DISTINCT id FROM (
            SELECT w.id, string_split(lower(m.content), w.word) AS parts
            FROM words w JOIN texts m ON m.conversation_id = w.id WHERE contains(lower(m.content), w.word)
        ) WHERE list_bool_or(list_transform(range(1, len(parts)), lambda i:
            (CASE WHEN parts[i] = '' THEN i = 1 ELSE NOT regexp_full_match(right(parts[i], 1), '\p{L}') END)
            AND (CASE WHEN parts[i + 1] = '' THEN i + 1 = len(parts) ELSE NOT regexp_full_match(left(parts[i + 1], 1), '\p{L}') END)))
    )
    SELECT m.conversation_id, m.content FROM texts m SEMI JOIN said ON said.id = m.conversation_id
    ORDER BY m.conversation_id, m.idx"""


def _ids_holding_names(messages: Any) -> list[str]:
    """The ids among ``messages``' conversations (their texts) holding a
    name said in their conversation: each id is read as words with its
    conversation's texts (``exports.redact.id_texts``), as ``export
    --redact`` reads it."""
    import polars as pl

    from .analysis.pii import redact_frame
    from .exports.redact import id_texts, ids_changed

    if messages.is_empty():
        return []
    ids = messages["conversation_id"].unique(maintain_order=True)
    texts = pl.Series("content", id_texts(ids.to_arrow()))
    frame = pl.concat([messages, pl.DataFrame({"conversation_id": pl.concat([ids, ids]), "content": texts})])
    scanned = redact_frame(frame, by="conversation_id")["content"].tail(len(texts))
    changed = ids_changed(len(ids), texts.to_arrow(), scanned.to_arrow())
    return ids.filter(pl.Series(changed)).to_list()


def _conversations_state(cache_path: Path) -> tuple[Any, ...] | None:
    """What :func:`_id_scrubber` reads of the cache, in one row: the number
    of conversations and a sum of the hashes of their ids and content hashes
    (which cover their messages, metadata and dataset). None: no cache."""
    from .store import Store

    if not cache_path.exists():
        return None
    with Store(cache_path, read_only=True) as store:
        state = store.sql("SELECT count(*) AS n, sum(hash(id, content_hash)::HUGEINT) AS h FROM conversations")
    return state.row(0)


def _id_scrubber(cache_path: Path, pseudonyms: Any) -> Callable[[str], str]:
    """For ``redact=True``: a function replacing, anywhere in a page, each
    conversation id in which the PII scan finds something (an e-mail or a
    phone used as an id, or a name said in its conversation) by its pseudonym, and each such dataset name by its
    redacted text, as exports do (docs/export.md). Ids reach a page through
    tables and plot data as well as the views, so the page is scrubbed in
    all the forms they take there: plain, HTML-escaped and in JSON (plotly
    also escapes ``<``, ``>`` and ``/``), and as a table shows it cut with
    an ellipsis (:func:`_scrub_forms`). One Aho-Corasick pass
    (polars' ``replace_many``) over the forms the page can hold
    (:class:`~pe_toolkit.report_scrub.FormMatcher`)."""
    import polars as pl

    from .analysis.pii import redact_frame
    from .report_scrub import FormMatcher
    from .store import Store

    if not cache_path.exists():
        return lambda text: text
    with Store(cache_path, read_only=True) as store:
        ids = store.sql("SELECT DISTINCT id FROM conversations")["id"]
        datasets = store.sql("SELECT DISTINCT dataset FROM conversations WHERE dataset IS NOT NULL")["dataset"]
        named = store.sql(_IDS_SAYING_THEIR_WORDS)
    redacted_ids = redact_frame(pl.DataFrame({"content": ids.cast(pl.String)}), by=None)["content"]
    changed = ids.filter(redacted_ids != ids).to_list() + _ids_holding_names(named)
    redacted_sets = redact_frame(pl.DataFrame({"content": datasets.cast(pl.String)}), by=None)["content"]
    keep = redacted_sets != datasets
    plain = dict(zip(changed, pseudonyms.many(changed), strict=True)) | dict(zip(datasets.filter(keep).to_list(), redacted_sets.filter(keep).to_list(), strict=True))
    if not plain:
        return lambda text: text
    # Each page with only the forms it can hold (report_scrub: building the
    # matcher for all of them was 2.8 s of CPU per page).
    return FormMatcher(*_scrub_forms(plain))


def _each_char(text: Any, table: dict[str, str]) -> Any:
    """``text`` (a polars string expression) with each character in
    ``table`` replaced: one pass, as ``str.translate`` does (single
    characters cannot overlap)."""
    return text.str.replace_many(list(table), list(table.values())) if table else text


def _scrub_forms(plain: dict[str, str]) -> tuple[Any, Any]:
    """Every form in which each text of ``plain`` (flagged id or dataset
    name -> its stand-in) can show on a page, and what replaces it, longest
    first: the text as stored and each cut of it to 8 or more characters
    and "…" as a table shows it (polars, at 32 by default), each in the
    forms of :data:`~pe_toolkit.masking.HTML_ESCAPES`; in JSON as
    ``json.dumps`` writes it with and without ``ensure_ascii`` (orjson,
    plotly's) and with plotly's escapes; and as Python's repr writes it (a
    printed list of ids).
    Where two texts share a form (a cut), the first in ``plain`` keeps it.

    Columnar: a Python loop over the texts took 3.9-5.3 s of CPU for
    100,000 flagged e-mail ids (4.7 M forms written, 1.35 M distinct), this
    1.6-2.1 s (benchmarks/bench_pii.py); the order of the forms, hence which text
    keeps a shared one and the order of equal lengths, is the loop's."""
    import polars as pl

    base = pl.DataFrame({"raw": list(plain), "new": list(plain.values())}, schema={"raw": pl.String, "new": pl.String})
    base = base.with_row_index("at")
    raw, new = pl.col("raw"), pl.col("new")
    # A form's step orders it among its text's forms as the loop wrote them:
    # 0 the whole text, one per HTML escaper, then as many per cut, then the
    # four JSON forms and the two of repr.
    n_html = len(HTML_ESCAPES)
    json_step = n_html * max(len(t) for t in plain) + n_html + 1
    # JSON escapes a text character by character: the table of the characters found suffices.
    chars = set("".join(plain))
    as_json = [{c: e for c in chars if (e := json.dumps(c, ensure_ascii=ascii_only)[1:-1]) != c} for ascii_only in (True, False)]

    def forms(frame: pl.DataFrame, step: Any, form: Any, replacement: Any) -> pl.DataFrame:
        return frame.select("at", step.cast(pl.Int64).alias("step"), form.alias("form"), replacement.alias("new"))

    cuts = base.with_columns(pl.int_ranges(8, raw.str.len_chars(), dtype=pl.Int64).alias("cut")).explode("cut").drop_nulls("cut")
    prefix, cut_step = raw.str.slice(0, pl.col("cut")), n_html + 1 + n_html * (pl.col("cut") - 8)
    # Most texts hold no character HTML escapes: their cuts need no escaping pass.
    special = raw.str.contains(f"[{re.escape(HTML_SPECIAL)}]")
    plain_cuts, special_cuts = cuts.filter(~special), cuts.filter(special)
    parts = [forms(base, pl.lit(0), raw, new), forms(plain_cuts, cut_step, prefix + pl.lit("…"), new)]
    for k, table in enumerate(HTML_ESCAPES):
        parts.append(forms(base, pl.lit(1 + k), _each_char(raw, table), _each_char(new, table)))
        parts.append(forms(special_cuts, cut_step + k, _each_char(prefix, table) + pl.lit("…"), new))
    for k, table in enumerate(as_json):
        written = _each_char(raw, table)
        parts.append(forms(base, pl.lit(json_step + 2 * k), written, new))
        parts.append(forms(base, pl.lit(json_step + 2 * k + 1), _each_char(written, _PLOTLY_JSON_ESCAPES), new))
    # Printed in a list, a tuple or a dict, a text shows as Python's repr
    # writes it, in a printed cell's text (&, <, > escaped): a text with both
    # quotes gets \', a control character \xNN. repr has no columnar twin;
    # about 30 ms per 100,000 texts.
    shown = pl.col("shown")
    reprs = base.with_columns(pl.Series("shown", [repr(t)[1:-1] for t in plain], dtype=pl.String)).filter(shown != raw)
    parts.append(forms(reprs, pl.lit(json_step + 4), shown, new))
    parts.append(forms(reprs, pl.lit(json_step + 5), _each_char(shown, HTML_TEXT), new))
    # Each form once, as the loop's first writer of it had it: the least
    # (text, step); then the longest first where two overlap, and among equal
    # lengths the order in which the loop first wrote them.
    key = pl.col("at").cast(pl.Int64) * (json_step + 6) + pl.col("step")
    every = (
        pl.concat(parts)
        .group_by("form")
        .agg(key.min().alias("key"), pl.col("new").get(key.arg_min()))
        .sort(pl.col("form").str.len_chars(), "key", descending=[True, False])
    )
    return every["form"], every["new"]


def _failure_banner(nb: Any, error: str) -> None:
    """Put the failure at the top of the page: a reader of the file alone
    must see that it is incomplete (code cells are hidden by default, and a
    timeout or a dead kernel leaves no error output at all)."""
    import nbformat

    text = f"**This report is incomplete: the notebook failed** ({html_escape(error)}). What follows is what ran before."
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(text))


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
    on_report: Callable[[Report], None] | None = None,
) -> list[Report]:
    """Execute notebooks (all curated ones by default) on ``cache`` (default:
    the configured cache) and write ``OUT/<notebook>.html`` for each.

    ``parameters`` override notebook parameters by name; a name no selected
    notebook declares, a value of another type than the notebook's default,
    and a cache file that does not exist (unless a ``source`` parameter is
    given) are errors, raised before anything runs. ``timeout``: seconds one
    cell may run. A notebook that fails (an error, a timeout, a dead kernel)
    still gets its report, saying so at the top; a :class:`ReportError`
    listing the failures is raised after all have run. ``on_report`` is
    called with each report as soon as it is written. ``redact=True``
    replaces personal data (names, e-mails, phone numbers...) in the
    conversations the notebooks show (their ``redact_views`` parameter) and
    pseudonymises, anywhere on the page, the conversation ids in which the
    scan finds any (as exports do), for a report that leaves the team;
    aggregate figures are unchanged.
    """
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from .exports.redact import Pseudonyms

    if not (math.isfinite(timeout) and timeout > 0):
        raise InputError(f"timeout must be a positive number of seconds, got {timeout!r}")
    paths = find_notebooks(notebooks)
    out_dir = Path(out)
    cache_path = (Path(cache) if cache is not None else load_settings().cache_path).resolve()
    overrides = dict(parameters or {})
    declared = {p: declared_parameters(p) for p in paths}
    unknown = sorted(set(overrides) - set().union(*(d.keys() for d in declared.values())))
    if unknown:
        raise InputError(f"no selected notebook has a parameter named {', '.join(unknown)}")
    _check_values(overrides, declared)
    # A notebook that cannot redact would show raw text in a report its
    # reader believes redacted: refused before anything runs.
    unredacted = [p.stem for p in paths if redact and "redact_views" not in declared[p]]
    if unredacted:
        raise InputError(f"--redact: {', '.join(unredacted)} has no redact_views parameter, so its conversations would show as stored")
    _check_cache(cache_path, cache is not None, overrides, declared)
    _prepare_out(out_dir)
    exporter = _exporter(include_code)
    pseudonyms = Pseudonyms()  # one key per run: an id has the same pseudonym on every page of it
    reports: list[Report] = []
    scrub_ids: Callable[[str], str] | None = None
    scrubbed_state: tuple[Any, ...] | None = None
    with tempfile.TemporaryDirectory(prefix="pe-report-") as scratch:
        for path in paths:  # one kernel at a time: the cache has one writer
            wanted = {"cache": str(cache_path), "static_report": True, "progress": False, **overrides}
            if redact:
                wanted["redact_views"] = True
            params = {k: v for k, v in wanted.items() if k in declared[path]}
            scrub = _secret_scrubber(params)
            executed = Path(scratch) / path.name
            kernel_log = Path(scratch) / f"{path.stem}.kernel.log"  # one per notebook: a dead kernel's last words are its own
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
                    kernel_manager_class=_private_kernels(Path(scratch), kernel_log),
                )
            except PapermillExecutionError as exc:
                error = scrub(f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}")
            except CellTimeoutError:
                error = f"the timeout: a cell ran longer than {timeout:g} s"
            except DeadKernelError:
                error = scrub(f"a kernel crash (out of memory?){_kernel_log_tail(kernel_log)}")
            except RuntimeError as exc:  # the kernel did not start (jupyter_client's own errors)
                if is_interrupt(exc):
                    raise
                error = scrub(f"the kernel's start: {exc}")
            if not executed.exists():
                raise ReportError(f"{path.name}: the notebook did not run ({error or 'no output'})")
            nb = nbformat.read(executed, as_version=4)
            _strip_live_outputs(nb)
            if error and redact:
                # A cell's error may quote conversation text (a KeyError on a
                # name, a value in a message): redacted like the views, for
                # the banner and the CLI's error line.
                from .analysis.pii import redact as redact_text

                error = redact_text(error)
                for cell in nb.cells:  # the failing cell's own output says the same
                    for output in cell.get("outputs", []):
                        if output.get("output_type") == "error":
                            output["evalue"] = redact_text(output.get("evalue", ""))
                            output["traceback"] = [redact_text(line) for line in output.get("traceback", [])]
            if error:
                _failure_banner(nb, error)
            seconds = time.perf_counter() - started
            written = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
            footer = f"pe_toolkit report of {path.name} on {cache_path.name}, written {written}; parameters: " + ", ".join(
                f"{k}={v!r}" for k, v in sorted(params.items()) if k != "cache"
            )
            html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}, "pe_footer": footer})
            # The whole page: the footer, papermill's injected parameters
            # cell and any output that printed the value.
            html = scrub(html)
            if redact:  # after the run: a notebook may have loaded conversations
                # Built again only when the conversations changed: the build
                # scans the cache (about 6 s of CPU per 200k conversations),
                # and most notebooks only read it.
                state = _conversations_state(cache_path)
                if scrub_ids is None or state != scrubbed_state:
                    scrub_ids, scrubbed_state = _id_scrubber(cache_path, pseudonyms), state
                html = scrub_ids(html)
                error = scrub_ids(error) if error else error
            target = out_dir / f"{path.stem}.html"
            _write_private(target, html)
            reports.append(Report(path, target, seconds, error))
            log.info("report %s", reports[-1])
            if on_report is not None:
                on_report(reports[-1])
    failed = [r for r in reports if r.error]
    if failed:
        raise ReportError(
            "; ".join(f"{r.notebook.name} failed at {r.error} (see {r.html})" for r in failed)
        )
    return reports

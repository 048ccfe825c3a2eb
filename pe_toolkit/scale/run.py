"""``analyze_dataset``: the analysis of a corpus too big for one machine, on Ray Data.

Stages (see docs/scale.md):

1. one Ray task per input file that is not complete yet
   (:mod:`.partition`): read, score with ``analyze_frame`` (without the
   corpus shares), write the partition; the driver records each finished
   partition in the manifest as its summary row arrives;
2. the corpus shares as distributed group-bys (:mod:`.corpus`) over every
   partition, joined into ``conversation_scores``; rerun whenever a
   partition changed.

Without ``address`` a local Ray is started on this machine's cores (and
stopped at the end); with one (``ray://host:10001`` or ``auto``) the job
runs on that cluster, whose workers must all reach ``output`` (a shared
folder) and the input.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.registry import shipped, version_of
from ..durable import check_parent
from ..errors import AnalysisError, InputError
from ..report_table import HtmlReport
from . import corpus
from .inputs import InputFile, fingerprint, list_inputs
from .manifest import Manifest
from .partition import PARTITION_TABLES, run_batch

# Below this rate the line gives the time per item: "83 s per conversation"
# reads at once where "0.012 conversations/s" (or 1.2e-05) does not.
PER_ITEM_BELOW = 0.1

# (the largest time, in seconds, shown in this unit; the unit; its length in seconds)
_DURATION_UNITS = ((120.0, "s", 1.0), (120 * 60.0, "min", 60.0), (48 * 3600.0, "h", 3600.0), (float("inf"), "days", 86400.0))


def _figure(x: float) -> str:
    """Two significant digits below 10, whole numbers with commas above: never
    an exponent ("1e-05", "1.2e+03"), at any magnitude."""
    return f"{x:,.0f}" if x >= 9.95 else f"{x:.2g}"


def rate_text(count: int, seconds: float, unit: str) -> str:
    """`` (N UNITs/s)`` for a report line (``unit`` singular: "message"), or
    nothing when nothing was done. Two significant digits below 10/s: a small
    run spends its seconds starting Ray, and 2 conversations in 6 s rounded to
    "0 conversations/s". Below 0.1/s, the time per item in s, min, h or days
    (``(83 s per conversation)``): as a rate, two significant digits printed
    "1e-05 conversations/s"."""
    if not count or seconds <= 0:
        return ""
    rate = count / seconds
    if rate >= PER_ITEM_BELOW:
        return f" ({_figure(rate)} {unit}s/s)"
    per = seconds / count
    _, name, length = next(u for u in _DURATION_UNITS if per < u[0])
    return f" ({_figure(per / length)} {name} per {unit})"


@dataclass
class ScaleReport(HtmlReport):
    """What one ``analyze_dataset`` run did."""

    output: str
    analysis_version: str
    files: int = 0
    computed: list[str] = field(default_factory=list)  # partition keys computed in this run
    skipped: int = 0  # partitions already complete
    conversations: int = 0  # in the whole output
    messages: int = 0
    evidence: int = 0
    dead_letters: int = 0
    messages_computed: int = 0  # scored in this run
    seconds: float = 0.0
    workers: int = 0

    @property
    def throughput(self) -> float:
        return self.messages_computed / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        text = (
            f"{self.messages:,} messages in {self.conversations:,} conversations ({self.files:,} files): "
            f"{len(self.computed):,} partitions scored, {self.skipped:,} up to date; "
            f"{self.messages_computed:,} messages in {self.seconds:.1f}s{rate_text(self.messages_computed, self.seconds, 'message')} "
            f"on {self.workers} workers"
        )
        if self.dead_letters:
            text += f"; {self.dead_letters:,} bad records in dead_letters/"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def analysis_version() -> str:
    """The version ``analyze_frame`` records in the Ray workers: the shipped
    analyzers (one registered in this process does not reach the workers)."""
    return version_of(shipped())


def _check_address(address: str) -> None:
    """Refuse an address Ray would not answer on, before ``ray.init``: for a
    ``HOST:PORT`` that nothing listens on, Ray retries the connection for
    minutes and then exits the process (``SystemExit``), not an exception."""
    if address == "auto" or address.startswith("ray://"):
        return  # "auto": Ray looks up the local cluster itself; Ray Client fails fast
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise AnalysisError(f"bad Ray address {address!r}: expected HOST:PORT, ray://HOST:10001 or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise AnalysisError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


def _start_ray(address: str | None, num_cpus: int | None) -> tuple[bool, int]:
    """(whether this call started Ray, CPUs of the cluster)."""
    try:
        import ray
    except ImportError:
        raise AnalysisError("the Ray engine needs Ray: pip install 'pe-toolkit[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            _check_address(address)
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
        # Workers import pe_toolkit; a local Ray started from a source checkout
        # must find it on their path too.
        package_root = str(Path(__file__).resolve().parents[2])
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}}
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
            # No cluster at "auto", Ray Client not installed, a malformed
            # address: expected failures, one line (ray.init raises them plain).
            where = address or "a local Ray"
            raise AnalysisError(f"cannot start or reach Ray ({where}): {' '.join(str(exc).split())[:300]}") from None
        started = True
    return started, int(ray.cluster_resources().get("CPU", 1))


def _prune(output: Path, keep: set[str]) -> None:
    """Partitions of files no longer in the input leave the output."""
    for table in PARTITION_TABLES:
        folder = output / table
        if not folder.is_dir():
            continue
        for part in folder.iterdir():
            if part.name.startswith("part=") and part.name[5:] not in keep:
                shutil.rmtree(part)


def analyze_dataset(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    progress: bool = True,
) -> ScaleReport:
    """Score every conversation of ``input`` (a file, folder, glob or
    object-store URL, any importer format) into the Parquet dataset
    ``output``: ``message_scores``, ``conversation_scores``, ``evidence``,
    ``conversations`` and ``dead_letters``, each partitioned by input file
    (``part=KEY``), plus ``manifest.json``. Partitions already complete are
    skipped. ``address``: a Ray cluster (default: a local Ray on
    ``num_cpus`` cores, default all)."""
    started = time.perf_counter()
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    # Before the inputs are listed and Ray starts. The output itself is
    # created, its missing parents are not: every other writer refuses them
    # (a typo in --output made a tree of folders and scored into it).
    check_parent(out, InputError)
    files = list_inputs(input)
    out.mkdir(0o700, exist_ok=True)  # it holds the conversations: private, as the cache and the exports
    version = analysis_version()
    manifest = Manifest.load(out)
    if manifest.analysis_version != version:
        manifest = Manifest(analysis_version=version)
    manifest.input = os.fspath(input)
    manifest.input_fingerprint = fingerprint(files)
    keys = [f.key for f in files]
    _prune(out, set(keys))
    kept = {k: v for k, v in manifest.partitions.items() if k in set(keys)}
    if len(kept) != len(manifest.partitions):  # a file left the input: the corpus changed
        manifest.corpus_complete = False
    manifest.partitions = kept
    todo = [f for f in files if not manifest.complete(out, f.key, f.fingerprint)]
    report = ScaleReport(str(out), version, files=len(files), skipped=len(files) - len(todo))

    owns_ray, report.workers = _start_ray(address, num_cpus)
    try:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = progress
        if todo:
            manifest.corpus_complete = False
            manifest.save(out)
            _score_partitions(todo, out, manifest, report)
        if not manifest.corpus_complete or not (out / "conversation_scores").is_dir():
            messages = sum(int(p.get("messages", 0)) for p in manifest.partitions.values())
            rows = corpus.write_conversation_scores(str(out), keys, partitions=max(1, report.workers), messages=messages)
            manifest.corpus_complete = True
            manifest.rows["conversation_scores"] = rows
    finally:
        if owns_ray:
            import ray

            ray.shutdown()
    totals = {t: sum(int(p.get(t, 0)) for p in manifest.partitions.values()) for t in ("conversations", "messages", "evidence", "dead_letters")}
    manifest.rows.update({"message_scores": totals["messages"], "evidence": totals["evidence"],
                          "conversations": totals["conversations"], "dead_letters": totals["dead_letters"]})  # fmt: skip
    manifest.save(out)
    shutil.rmtree(out / "_tmp", ignore_errors=True)
    report.conversations, report.messages = totals["conversations"], totals["messages"]
    report.evidence, report.dead_letters = totals["evidence"], totals["dead_letters"]
    report.seconds = time.perf_counter() - started
    return report


def _score_partitions(todo: list[InputFile], out: Path, manifest: Manifest, report: ScaleReport) -> None:
    import ray.data

    rows = [{"uri": f.uri, "key": f.key, "fingerprint": f.fingerprint} for f in todo]
    # One file per task (batch_size=1) and one block per file, so files are
    # scored in parallel and each summary row arrives as its file finishes.
    tasks = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        run_batch, batch_size=1, batch_format="pyarrow", fn_kwargs={"output": str(out), "version": manifest.analysis_version}, num_cpus=1  # type: ignore[arg-type]  # Ray types fn as one-argument; the rest come through fn_kwargs
    )
    failed: list[dict[str, Any]] = []
    for batch in tasks.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():  # type: ignore[union-attr]  # batch_format="pyarrow": each batch is a pyarrow Table
            if row.get("error") or row.get("analysis_version") != manifest.analysis_version:
                # Not recorded: the partition is not complete (a rerun retries it).
                failed.append(row)
                continue
            manifest.partitions[row["key"]] = row
            report.computed.append(row["key"])
            report.messages_computed += int(row["messages"])
        manifest.save(out)
    if failed:
        # The other partitions are saved and recorded; the corpus stage waits
        # for every file, so the output stays incomplete (attach refuses it).
        first = failed[0]
        reason = first.get("error") or f"scored under analysis version {first.get('analysis_version')!r}, not {manifest.analysis_version!r}"
        raise AnalysisError(
            f"{len(failed)} of {len(todo)} input files could not be scored ({first['uri']}: {reason}); "
            f"the {len(todo) - len(failed)} others are saved: fix or remove the file{'s' if len(failed) > 1 else ''} and run again"
        )

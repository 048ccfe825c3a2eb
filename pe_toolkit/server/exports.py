"""``POST /v1/export`` and its download: files written by pe_toolkit.exports.

An export is a row in ``server_exports`` plus a job (same id) that calls
:func:`pe_toolkit.exports.export` into the server's exports folder; this
module writes no format itself. ``huggingface`` produces a folder, which is
packed into one uncompressed ``.tar`` (its Arrow/Parquet files are already
compressed) so it downloads as a single file.

Downloads are resolved from the database, never from the URL: the id must
look like one we issue, its row gives a bare file name, and the resolved
path must sit directly inside the exports folder. Expired exports (after
``export_ttl``) and unknown ids are 404; expired files are deleted by
:meth:`Exports.sweep`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tarfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ..errors import ExportError
from ..store import ConversationFilter, Store
from .config import ServerConfig
from .db import ServerDB
from .envelope import EXPORT_ERROR, ApiProblem, iso, not_found
from .hub import EventHub
from .jobs import ACTIVE, JobContext, JobManager, new_job_id

FORMATS = ("jsonl", "csv", "parquet", "huggingface", "openai")
SUFFIX = {"jsonl": "jsonl", "openai": "openai.jsonl", "csv": "csv", "parquet": "parquet", "huggingface": "hf.tar"}
MEDIA_TYPE = {
    "jsonl": "application/x-ndjson",
    "openai": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "huggingface": "application/x-tar",
}
# Bytes per conversation before this server has written an export of the
# format (measured on the synthetic corpus); only feeds estimated_size and
# the progress of a running export.
PRIOR_BYTES_PER_CONVERSATION = {"jsonl": 2800, "openai": 1400, "csv": 2100, "parquet": 300, "huggingface": 2300}
EXPORT_ID = re.compile(r"^exp_[A-Za-z0-9_-]{16,64}$")
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")
_COLUMNS = (
    "export_id, dataset, format, filters, file_name, download_name, media_type, status, conversations, "
    "size_bytes, estimated_size, created_at, completed_at, expires_at, error"
)


def _now() -> datetime:
    return datetime.now(UTC)


def download_url(base: str, export_id: str) -> str:
    return f"{base.rstrip('/')}/v1/exports/{export_id}/download"


class ExportPending(Exception):
    """The export's job has not finished: the download answers 202."""

    def __init__(self, export_id: str, progress: float) -> None:
        super().__init__(export_id)
        self.export_id, self.progress = export_id, progress


class Exports:
    def __init__(self, db: ServerDB, jobs: JobManager, hub: EventHub, config: ServerConfig) -> None:
        self.db, self.jobs, self.hub, self.config = db, jobs, hub, config
        self.folder = config.exports_dir
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- creating ------------------------------------------------------------
    def bytes_per_conversation(self, fmt: str) -> float:
        row = self.db.one(
            "SELECT sum(size_bytes), sum(conversations) FROM server_exports "
            "WHERE format = ? AND status IN ('ready', 'expired') AND conversations > 0",
            [fmt],
        )
        if row and row[0] and row[1]:
            return float(row[0]) / float(row[1])
        return float(PRIOR_BYTES_PER_CONVERSATION[fmt])

    def create(
        self,
        *,
        dataset: str,
        fmt: str,
        filters: dict[str, Any],
        count: int,
        download_base: str,
        parameters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record an export and queue its job; ``filters`` are the validated
        ``tier``/``min_quality``/``redact`` options, ``parameters`` what the
        job records (default: the format and the filters)."""
        export_id = new_job_id("exp")
        slug = _SLUG.sub("_", dataset if dataset != "*" else "all")[:40] or "export"
        file_name = f"{export_id}.{SUFFIX[fmt]}"
        download_name = f"pe_export_{slug}_{export_id[4:12]}.{SUFFIX[fmt]}"
        now = _now()
        estimated = int(count * self.bytes_per_conversation(fmt))
        with self.db.write() as con:
            con.execute(
                f"INSERT INTO server_exports ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 'processing', NULL, NULL, ?, ?, NULL, ?, NULL)",
                [
                    export_id,
                    dataset,
                    fmt,
                    orjson.dumps(filters).decode(),
                    file_name,
                    download_name,
                    MEDIA_TYPE[fmt],
                    estimated,
                    now,
                    now + timedelta(seconds=self.config.export_ttl),
                ],
            )
        self.jobs.submit("export", dataset, parameters or {"format": fmt, **filters}, size=count, job_id=export_id)
        return self.describe(export_id, download_base)  # type: ignore[return-value]

    def describe(self, export_id: str, download_base: str) -> dict[str, Any] | None:
        row = self.db.one(f"SELECT {_COLUMNS} FROM server_exports WHERE export_id = ?", [export_id])
        if row is None:
            return None
        (eid, dataset, fmt, filters, _, download_name, _, status, convs, size, estimated, created, _, expires, error) = row
        found = {
            "export_id": eid,
            "job_id": eid,  # the export's job (the SDK's background-task pattern polls job_id)
            "dataset": dataset,
            "format": fmt,
            "filters": orjson.loads(filters),
            "status": status,
            "estimated_size": int(size if size is not None else estimated or 0),
            "download_url": download_url(download_base, eid),
            "file_name": download_name,
            "created_at": iso(created),
            "expires_at": iso(expires),
        }
        if convs is not None:
            found["conversations"] = int(convs)
        if error:
            found["error"] = error
        return found

    # -- the job -------------------------------------------------------------
    def run(self, ctx: JobContext) -> dict[str, Any]:
        """The export job: write, pack, record. Any failure (or a
        cancellation) leaves the export ``failed`` with the reason."""
        export_id = ctx.job.job_id
        try:
            return self._run(ctx, export_id)
        except BaseException as exc:
            reason = "cancelled" if type(exc).__name__ == "JobCancelled" else (str(exc) or type(exc).__name__)
            self._set_failed(export_id, reason)
            raise

    def _run(self, ctx: JobContext, export_id: str) -> dict[str, Any]:
        from ..exports import export

        row = self.db.one(
            "SELECT dataset, format, filters, file_name, estimated_size FROM server_exports WHERE export_id = ?",
            [export_id],
        )
        if row is None:
            raise ExportError(f"export {export_id} has no record")
        dataset, fmt, filters_json, file_name, estimated = row
        filters = orjson.loads(filters_json)
        selection = ConversationFilter(
            dataset=None if dataset == "*" else dataset,
            tier=filters.get("tier"),
            min_quality=filters.get("min_quality"),
        )
        final = self.folder / file_name
        target = self.folder / file_name.removesuffix(".tar") if fmt == "huggingface" else final
        stop = threading.Event()
        watcher = threading.Thread(
            target=self._watch_size, args=(ctx, target.name, int(estimated or 1), stop), daemon=True
        )
        watcher.start()
        try:
            with Store(ctx.store_path) as store:
                report = export(
                    store, target, format=fmt, filter=selection, redact=bool(filters.get("redact")), progress=False
                )
        finally:
            stop.set()
            watcher.join()
        try:
            ctx.check()
            if fmt == "huggingface":
                self._pack(target, final)
        except BaseException:
            with contextlib.suppress(OSError):
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            raise
        size = final.stat().st_size
        with self.db.write() as con:
            con.execute(
                "UPDATE server_exports SET status = 'ready', conversations = ?, size_bytes = ?, completed_at = now() "
                "WHERE export_id = ?",
                [report.conversations, size, export_id],
            )
        info = self.describe(export_id, "") or {}
        self.hub.publish(
            "export.ready",
            {"export_id": export_id, "format": fmt, "size_bytes": size, "conversations": report.conversations,
             "download_path": info.get("download_url")},
        )
        return {
            "export_id": export_id,
            "format": fmt,
            "conversations": report.conversations,
            "messages": report.messages,
            "size_bytes": size,
            "download_path": info.get("download_url"),
            "expires_at": info.get("expires_at"),
        }

    def _set_failed(self, export_id: str, reason: str) -> None:
        with contextlib.suppress(Exception), self.db.write() as con:
            con.execute(
                "UPDATE server_exports SET status = 'failed', error = coalesce(error, ?), completed_at = now() "
                "WHERE export_id = ?",
                [reason, export_id],
            )
        self.hub.publish("export.failed", {"export_id": export_id, "error": reason})

    def _watch_size(self, ctx: JobContext, name: str, estimated: int, stop: threading.Event) -> None:
        """Progress of a running export: bytes written so far under the
        exporter's temporary name against the estimated size (capped at 95%:
        the estimate is a guess, the end is known when export() returns)."""
        pattern = f".{name}.*"
        while not stop.wait(0.2):
            written = 0
            for part in self.folder.glob(pattern):
                with contextlib.suppress(OSError):
                    if part.is_dir():
                        written += sum(p.stat().st_size for p in part.rglob("*") if p.is_file())
                    else:
                        written += part.stat().st_size
            with contextlib.suppress(Exception):
                ctx.progress(min(0.95, written / max(estimated, 1)))

    @staticmethod
    def _pack(folder: Path, final: Path) -> None:
        tmp = final.with_name(f".{final.name}.{os.getpid()}.part")
        try:
            with tarfile.open(tmp, "w") as tar:
                tar.add(folder, arcname=final.name.removesuffix(".hf.tar"))
            os.chmod(tmp, 0o600)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # -- downloading ---------------------------------------------------------
    def resolve(self, export_id: str) -> tuple[Path, str, str]:
        """(path, media type, download name) of a ready export; ApiProblem otherwise."""
        if not EXPORT_ID.match(export_id):
            raise not_found(f"export {export_id[:80]!r}")
        row = self.db.one(
            "SELECT status, file_name, media_type, download_name, expires_at, error FROM server_exports WHERE export_id = ?",
            [export_id],
        )
        if row is None:
            raise not_found(f"export {export_id!r}")
        status, file_name, media_type, download_name, expires_at, error = row
        if status == "expired" or expires_at <= _now():
            raise not_found(f"export {export_id!r} (expired)")
        if status == "processing":
            job = self.jobs.get(export_id)
            if job is None or job.status in ACTIVE:
                raise ExportPending(export_id, round(job.progress, 1) if job else 0.0)
            # cancelled before it ran: the job ended without touching the row
            error = job.error or job.status
            self._set_failed(export_id, error)
            status = "failed"
        if status != "ready":
            raise ApiProblem(500, EXPORT_ERROR, f"export {export_id} failed: {error or 'unknown reason'}")
        folder = self.folder.resolve()
        path = (folder / file_name).resolve()
        if path.parent != folder or not path.is_file():
            raise not_found(f"export {export_id!r} (file missing)")
        return path, media_type, download_name

    def sweep(self) -> int:
        """Delete expired export files; returns how many."""
        rows = self.db.rows(
            "SELECT export_id, file_name FROM server_exports WHERE status <> 'expired' AND expires_at <= now()"
        )
        folder = self.folder.resolve()
        for _, file_name in rows:
            path = (folder / file_name).resolve()
            if path.parent == folder:
                with contextlib.suppress(OSError):
                    path.unlink()
        if rows:
            with self.db.write() as con:
                con.execute(
                    "UPDATE server_exports SET status = 'expired' WHERE export_id IN (SELECT unnest(?::VARCHAR[]))",
                    [[r[0] for r in rows]],
                )
        for part in self.folder.glob(".*.part"):
            # Leftovers of an export killed mid-write: export() cleans up
            # after errors it sees, a killed process leaves these behind.
            job = self.jobs.get(part.name.split(".")[1])
            if job is None or job.status not in ACTIVE:
                with contextlib.suppress(OSError):
                    shutil.rmtree(part) if part.is_dir() else part.unlink()
        return len(rows)

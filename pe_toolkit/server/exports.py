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

Exports cannot fill the disk. An export records a fingerprint of what it
holds (dataset, format, filters, this pe_toolkit's version and the store's
state: its conversations' ids and content hashes, and its analysis runs);
``POST /v1/export`` asking for an export whose fingerprint matches one not
expired (still being written, or ready with its file) gets that export,
its lifetime renewed, instead of a new file. A new export must fit in the
disk quotas: ``export_quota_per_key`` bytes of live exports per server key
(429), ``export_quota_total`` for all keys and ``export_min_free_bytes``
left free on the disk (507), counted with the estimated size until the
file is written. Both answers carry ``Retry-After``: when the first export
in the way expires.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shutil
import tarfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from .. import __version__
from ..errors import ExportError
from ..store import ConversationFilter, Store
from .config import ServerConfig
from .db import ServerDB
from .envelope import EXPORT_ERROR, RATE_LIMIT_EXCEEDED, ApiProblem, iso, not_found
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


# A reused export must have at least this long left before it would
# expire (its lifetime is renewed, but the sweep must not be racing it).
REUSE_MARGIN = timedelta(seconds=60)
# The store's state as far as an export's content goes: conversations (ids
# and content hashes: messages, metadata and scores given on import) and
# analysis runs (current scores). NULL while an analysis runs: the scores
# change batch by batch, so nothing is reused then.
_STORE_STATE = (
    "SELECT CASE WHEN (SELECT count(*) FROM analysis_runs WHERE status = 'running') = 0 THEN concat_ws('|', "
    "(SELECT count(*) FROM conversations), (SELECT coalesce(bit_xor(hash(id, content_hash)), 0) FROM conversations), "
    "(SELECT count(*) FROM analysis_runs), (SELECT max(coalesce(finished_at, started_at)) FROM analysis_runs)) END"
)


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


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
        self._creating = threading.Lock()

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

    def fingerprint(self, dataset: str, fmt: str, filters: dict[str, Any]) -> str | None:
        """What an export of these options would hold, as a digest; None
        while the store is changing under an analysis (no reuse then)."""
        state = self.db.scalar(_STORE_STATE)
        if state is None:
            return None
        key = orjson.dumps([__version__, dataset, fmt, filters, state], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(key).hexdigest()

    def create(
        self,
        *,
        dataset: str,
        fmt: str,
        filters: dict[str, Any],
        count: int,
        download_base: str,
        parameters: dict[str, Any] | None = None,
        key_id: int | None = None,
        reuse: bool = True,
    ) -> dict[str, Any]:
        """Record an export and queue its job; ``filters`` are the validated
        ``tier``/``min_quality``/``redact`` options, ``parameters`` what the
        job records (default: the format and the filters). With ``reuse``,
        an identical live export is returned instead (``reused: true``).
        ``key_id`` (the server key's index) is charged for the disk; an
        export past a quota raises an :class:`ApiProblem` (429 or 507)."""
        fingerprint = self.fingerprint(dataset, fmt, filters)
        estimated = int(count * self.bytes_per_conversation(fmt))
        now = _now()
        # One create at a time, from looking to queuing the job: two
        # identical requests at once make one export, and two exports at
        # once cannot both take the last room of a quota. (A lock of our
        # own, not the database's write transaction: looking at a job takes
        # the job manager's lock, which its worker holds while it writes.)
        with self._creating:
            found = self._reusable(fingerprint, now) if reuse and fingerprint is not None else None
            reused = found is not None
            if reused:
                with self.db.write() as con:
                    con.execute(
                        "UPDATE server_exports SET expires_at = greatest(expires_at, ?) WHERE export_id = ?",
                        [now + timedelta(seconds=self.config.export_ttl), found],
                    )
            else:
                found = new_job_id("exp")
                # A redacted file travels: its name must not carry the dataset's
                # (which may hold a client's name or address).
                named = "redacted" if filters.get("redact") else dataset if dataset != "*" else "all"
                slug = _SLUG.sub("_", named)[:40] or "export"
                with self.db.write() as con:
                    self._check_room(con, key_id, estimated, now)
                    con.execute(
                        f"INSERT INTO server_exports ({_COLUMNS}, key_id, fingerprint) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 'processing', NULL, NULL, ?, ?, NULL, ?, NULL, ?, ?)",
                        [
                            found,
                            dataset,
                            fmt,
                            orjson.dumps(filters).decode(),
                            f"{found}.{SUFFIX[fmt]}",
                            f"pe_export_{slug}_{found[4:12]}.{SUFFIX[fmt]}",
                            MEDIA_TYPE[fmt],
                            estimated,
                            now,
                            now + timedelta(seconds=self.config.export_ttl),
                            key_id,
                            fingerprint,
                        ],
                    )
                self.jobs.submit("export", dataset, parameters or {"format": fmt, **filters}, size=count, job_id=found)
        assert found is not None
        info = self.describe(found, download_base)
        assert info is not None  # reused or just submitted: the row exists
        if reused:
            info["reused"] = True
        return info

    def _reusable(self, fingerprint: str, now: datetime) -> str | None:
        """The newest live export with this fingerprint whose file is there
        (or whose job is still writing it)."""
        rows = self.db.rows(
            "SELECT export_id, status, file_name FROM server_exports WHERE fingerprint = ? "
            "AND status IN ('processing', 'ready') AND expires_at > ? ORDER BY created_at DESC",
            [fingerprint, now + REUSE_MARGIN],
        )
        folder = self.folder.resolve()
        for export_id, status, file_name in rows:
            if status == "ready" and (folder / file_name).is_file():
                return str(export_id)
            if status == "processing":
                job = self.jobs.get(export_id)
                if job is not None and job.status in ACTIVE:
                    return str(export_id)
                # Finished since the row was read (twenty identical requests
                # at once made two exports when one finished in between): the
                # job writes its file and marks the row ready before it ends,
                # so a completed job's export is reusable even where this
                # second read does not see the row's update yet.
                again = self.db.rows("SELECT status FROM server_exports WHERE export_id = ?", [export_id])
                done = (again and again[0][0] == "ready") or (job is not None and job.status == "completed")
                if done and (folder / file_name).is_file():
                    return str(export_id)
        return None

    def _check_room(self, con: Any, key_id: int | None, estimated: int, now: datetime) -> None:
        """Raise the 403 of a quota this export alone exceeds, or the 429/507 of
        a quota (or the disk) it would exceed with the exports held."""
        live = (
            "SELECT coalesce(sum(coalesce(size_bytes, estimated_size, 0)), 0), min(expires_at) FROM server_exports "
            "WHERE status IN ('processing', 'ready') AND expires_at > ?"
        )
        config = self.config
        for quota, which in ((config.export_quota_per_key, "per key"), (config.export_quota_total, "in total")):
            if quota is not None and estimated > quota:
                # No wait frees enough room: a 429 with Retry-After would have
                # a client retry for a day in vain.
                raise ApiProblem(
                    403, EXPORT_ERROR,
                    f"this export needs about {_size(estimated)}, more than the export quota {which} "
                    f"({_size(quota)}); export less (a dataset, a tier, min_quality) or raise the quota",
                    details="export_quota",
                )  # fmt: skip
        if config.export_quota_per_key is not None:
            used, first = con.execute(live + " AND key_id IS NOT DISTINCT FROM ?", [now, key_id]).fetchall()[0]
            if used + estimated > config.export_quota_per_key:
                raise self._full(
                    429, first, now,
                    f"export quota per key reached: this key's exports not yet expired hold {_size(used)} of "
                    f"{_size(config.export_quota_per_key)}, and this export needs about {_size(estimated)}; "
                    "retry when one expires (an identical export is reused and costs nothing)",
                )
        if config.export_quota_total is not None:
            used, first = con.execute(live, [now]).fetchall()[0]
            if used + estimated > config.export_quota_total:
                raise self._full(
                    507, first, now,
                    f"export quota in total reached: the server's exports not yet expired hold {_size(used)} of "
                    f"{_size(config.export_quota_total)}, and this export needs about {_size(estimated)}; "
                    "retry when one expires",
                )
        free = shutil.disk_usage(self.folder).free
        if free - estimated < config.export_min_free_bytes:
            first = con.execute(live, [now]).fetchall()[0][1]
            raise self._full(
                507, first, now,
                f"not enough free disk space for this export: {_size(free)} free, it needs about "
                f"{_size(estimated)} and {_size(config.export_min_free_bytes)} are kept free",
            )

    def _full(self, status: int, first_expiry: datetime | None, now: datetime, message: str) -> ApiProblem:
        # When the first export in the way expires (and its file goes);
        # with none, the export lifetime: nothing frees room sooner.
        wait = (first_expiry - now).total_seconds() if first_expiry is not None else self.config.export_ttl
        retry = max(1, math.ceil(wait))
        # The contract: a 429's error.code is RATE_LIMIT_EXCEEDED (details says which limit)
        code = RATE_LIMIT_EXCEEDED if status == 429 else EXPORT_ERROR
        return ApiProblem(
            status, code, message, details="export_quota",
            headers={"Retry-After": str(retry)}, extra={"retry_after": retry},
        )

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

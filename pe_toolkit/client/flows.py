"""The parts of multi-request flows shared by both clients, with no network
I/O of their own: where an export's file is, what a download response
means (and the local ``.part`` file it is written to: opened, finished,
or discarded after a 416), when a job wait gives up, and the progress bars."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx

from ..errors import ApiError, MalformedResponseError
from .core import Call
from .models import ExportInfo, Job

# The contract gives no poll interval for exports; the mirror's 202 carries
# Retry-After: 1. Without a hint we poll every this many seconds.
DEFAULT_EXPORT_POLL = 1.0
DOWNLOAD_CHUNK = 1 << 20


def download_call(export: ExportInfo | str, *, endpoint: str | None = None, timeout: float | None = None) -> Call[Any]:
    """The GET of an export's file.

    Only the *path* of ``download_url`` is used, against the endpoint that
    made the export: the API key is never sent to another origin, whatever
    URL a response names.
    """
    if isinstance(export, ExportInfo):
        url, pin = export.download_url, export.endpoint or endpoint
    else:
        url, pin = export, endpoint
    parts = urlsplit(url)
    path, root = parts.path, True
    if not parts.scheme and not path.startswith("/"):
        path, root = "/" + path, False  # relative to the base URL
    if parts.query:
        path += "?" + parts.query
    return Call("GET", path, root=root, pin=pin, timeout=timeout)


def with_range(call: Call[Any], part: Path | None) -> Call[Any]:
    """The download call resuming after the bytes already in ``part``."""
    offset = part.stat().st_size if part is not None and part.exists() else 0
    return replace(call, headers={"Range": f"bytes={offset}-"} if offset else None)


@dataclass(frozen=True)
class Pending:
    """Ask again after ``retry_after``: the export is still being written (a
    202 on the download URL), or the partial file was discarded and the
    download starts over (:data:`RESTART`)."""

    progress: float | None
    retry_after: float


RESTART = Pending(None, 0.0)


def pending_from(data: Any, response: httpx.Response) -> Pending:
    progress = data.get("progress") if isinstance(data, dict) else None
    hint = response.headers.get("retry-after", "")
    try:
        retry_after = min(max(float(hint), 0.05), 60.0)
    except ValueError:
        retry_after = DEFAULT_EXPORT_POLL
    return Pending(float(progress) if isinstance(progress, (int, float)) else None, retry_after)


def body_range(response: httpx.Response, offset: int) -> tuple[bool, int | None, bool]:
    """(append to the partial file?, expected final size or None, content
    encoded?) of a 200/206. With a content encoding the length on the wire
    is not the file's, so it cannot be checked."""
    encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
    if response.status_code == 206 and offset > 0:
        content_range = response.headers.get("content-range", "")
        total = content_range.rpartition("/")[2]
        start = content_range.removeprefix("bytes ").partition("-")[0]
        if not start.isdigit() or int(start) != offset:
            raise MalformedResponseError(f"download resumed at the wrong byte (asked {offset}, got {start or '?'})")
        return True, (int(total) if total.isdigit() and not encoded else None), encoded
    length = response.headers.get("content-length")
    return False, (int(length) if length and length.isdigit() and not encoded else None), encoded


def resumed_past_the_end(response: httpx.Response, part: Path) -> Pending | None:
    """A 416 to a download: ``None`` when the partial file is the whole file
    (it is then finished as any download is), :data:`RESTART` when it was
    deleted and the file is to be fetched again from byte 0.

    A download that died after its last byte but before the rename resumes
    with ``bytes=SIZE-``, which the server refuses with ``Content-Range:
    bytes */SIZE`` (RFC 9110; the mirror does). A download's one integrity
    check is its size (:func:`check_size`), so the part is accepted only
    when the server names its size. A part of another size (a different or
    changed file), or a 416 naming none, cannot be trusted: it is deleted.
    The download from byte 0 asks no Range, so it cannot meet this 416 again.
    """
    if "range" not in response.request.headers:
        # Nothing to resume, so nothing to discard; asking again (the retry
        # policy reads .transient) would get the same answer.
        error = MalformedResponseError(f"download of {response.request.url.path}: HTTP 416 to a request without a Range")
        error.transient = False  # type: ignore[attr-defined]
        raise error
    unit, _, spec = response.headers.get("content-range", "").strip().partition(" ")
    total = spec.strip().removeprefix("*/")
    size = part.stat().st_size if part.exists() else None
    if unit.lower() == "bytes" and spec.strip().startswith("*/") and total.isdigit() and int(total) == size:
        return None
    part.unlink(missing_ok=True)
    return RESTART


def check_size(written: int, expected: int | None, what: str) -> None:
    if expected is not None and written != expected:
        raise MalformedResponseError(f"{what}: received {written} of {expected} bytes")


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def open_part(part: Path, append: bool) -> BinaryIO:
    """The partial download, created owner-only (it holds conversations)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(part, flags, 0o600), "ab" if append else "wb")


def finish_download(part: Path, path: Path) -> Path:
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, path)
    return path


def job_failed(job: Job) -> ApiError:
    # The contract names no error field for a failed job; the mirror sends
    # `error`, others may put it in `results`.
    detail = job.raw.get("error") or (job.results.get("error") if isinstance(job.results, dict) else None)
    return ApiError(f"job {job.job_id} ended {job.status}" + (f": {detail}" if detail else ""))


def job_timeout(job_id: str, timeout: float, last: Job | None) -> ApiError:
    state = f" (last status {last.status}, {last.progress:.0f}%)" if last else ""
    return ApiError(f"job {job_id} did not finish within {timeout:g} s{state}")


def export_timeout(export_id: str, timeout: float) -> ApiError:
    return ApiError(f"export {export_id} was not ready within {timeout:g} s")



def export_id_of(export: ExportInfo | str) -> str:
    if isinstance(export, ExportInfo):
        return export.export_id
    parts = [p for p in urlsplit(export).path.split("/") if p]
    return parts[-2] if len(parts) >= 2 and parts[-1] == "download" else export

"""The parts of multi-request flows shared by both clients, with no network
I/O of their own: where an export's file is, what a download response
means (and the local ``.part`` file it is written to: opened, finished,
or discarded after a 416, with the validator its resume sends in
``If-Range``), when a job wait gives up, and the progress bars."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
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
# RFC 9110 8.8.2.2: a client may take a Last-Modified date for a strong
# validator (If-Range accepts no other) only when the response's Date is at
# least this much later (a file changed twice within its clock's second
# would otherwise keep one date).
LAST_MODIFIED_MARGIN = 60.0

log = logging.getLogger("pe_toolkit.client")


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
    """The download call resuming after the bytes already in ``part``, on
    condition (``If-Range``) that the file is still the one those bytes came
    from when the download that wrote them recorded its validator. Without
    a recorded validator (the server sent none, or a ``.part`` written
    before they were kept) the resume is unconditional, as it always was;
    with one that cannot be read the download starts again from byte 0."""
    offset = part.stat().st_size if part is not None and part.exists() else 0
    if not offset or part is None:
        return replace(call, headers=None)
    headers = {"Range": f"bytes={offset}-"}
    try:
        recorded = read_validator(part)
    except ValueError:
        return replace(call, headers=None)  # the 200 truncates the part
    if recorded:
        headers["If-Range"] = recorded
    return replace(call, headers=headers)


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


@dataclass(frozen=True)
class Body:
    """A 200/206 about to be written to the partial file, opened with
    :func:`open_part`: ``written`` bytes are already there (the resume's
    offset, or 0), ``expected`` is the final size if known."""

    expected: int | None
    encoded: bool
    written: int


def begin_body(response: httpx.Response, part: Path, bar: Any) -> Body | Pending:
    """Make the partial file ready for the body of ``response`` (a 200 or
    206): the one place both clients decide between appending and starting
    over.

    A 206 appends. A 200 is the whole file: the part is truncated, then the
    response's validator put in place of the old one (in that order: a
    crash between the two leaves an empty part, never old bytes with no
    validator or a new one). A 200 to a resume is said once, on the log and the bar:
    with ``If-Range`` it means the file changed on the server since the
    part was written (RFC 9110 13.1.5), without one that the server would
    not serve the range. A 206 whose strong ``ETag`` is not the recorded
    one comes from a server that ignored ``If-Range``: its tail belongs to
    another file, so the part is discarded and :data:`RESTART` returned.
    """
    offset = part.stat().st_size if part.exists() else 0
    append, expected, encoded = body_range(response, offset)
    sent = response.request.headers
    if append:
        served, condition = strong_etag(response), sent.get("if-range", "")
        if condition.startswith('"') and served and served != condition:
            _say_restart(bar, offset, f"the server ignored If-Range and sent part of another file (ETag {served}, the part's {condition})")
            discard_part(part)
            return RESTART
    else:
        if offset:
            if "if-range" in sent:
                why = "the file changed on the server since the partial download (If-Range did not match)"
            elif "range" in sent:
                why = "the server sent the whole file instead of the rest"
            else:
                why = "the partial file's recorded validator could not be read"
            _say_restart(bar, offset, why)
        # The part is emptied (and synced) before its validator changes: a
        # crash between the two leaves an empty part, which starts again
        # from byte 0. Removing the old validator first left the old bytes
        # with none, and the next run appended the new file to them unasked.
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _record_validator(part, response)
    written = offset if append else 0
    bar.reset(total=expected)
    bar.update(written)
    return Body(expected, encoded, written)


def _say_restart(bar: Any, offset: int, why: str) -> None:
    log.warning("export download: %s; starting again from byte 0 (%d bytes of %s discarded)", why, offset, _name(bar))
    bar.set_postfix_str("restarted from byte 0", refresh=False)


def _name(bar: Any) -> str:
    return str(getattr(bar, "desc", "") or "the partial file")


# -- the validator beside the partial file -------------------------------------------


def _validator_path(part: Path) -> Path:
    """Beside the part and named after it, so what lists or deletes the one
    (``NAME.part``) finds the other (``NAME.part.validator``)."""
    return part.with_name(part.name + ".validator")


def _staged_validator_path(part: Path) -> Path:
    """Where a new validator is written before it is renamed into place."""
    return part.with_name(part.name + ".validator.new")


def strong_etag(response: httpx.Response) -> str | None:
    etag = response.headers.get("etag", "").strip()
    return etag if len(etag) >= 2 and etag.startswith('"') and etag.endswith('"') else None


def validator_of(response: httpx.Response) -> str | None:
    """What a resume of this response's file may send in ``If-Range``: its
    strong ETag, else its Last-Modified where RFC 9110 lets a client call
    that date strong, else nothing: a weak ETag is never allowed, and a
    response with one gives no date either (RFC 9110 13.1.5: a client that
    has an entity tag sends no date in If-Range)."""
    if etag := strong_etag(response):
        return etag
    if response.headers.get("etag", "").strip():
        return None
    modified, date = response.headers.get("last-modified", "").strip(), response.headers.get("date", "")
    try:
        if modified and date and (parsedate_to_datetime(date) - parsedate_to_datetime(modified)).total_seconds() >= LAST_MODIFIED_MARGIN:
            return modified
    except (TypeError, ValueError):
        pass
    return None


def _record_validator(part: Path, response: httpx.Response) -> None:
    """Replace the part's validator with this response's (or remove it when
    the response has none), in one rename: a crash leaves the old one or
    the new one, never a half-written file."""
    target = _validator_path(part)
    validator = validator_of(response)
    if validator is None or not _sendable(validator):
        target.unlink(missing_ok=True)
        return
    # Owner-only as the part is, and synced: it has to outlive a crash to
    # be of use to the resume after one.
    staged = _staged_validator_path(part)
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(validator + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(staged, target)


def read_validator(part: Path) -> str | None:
    """The validator recorded for ``part``, ``None`` when there is none;
    ValueError when its file cannot be read or holds no header value (the
    caller then trusts the part no more than a changed file)."""
    try:
        raw = _validator_path(part).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read {_validator_path(part)}: {exc}") from None
    text = raw.decode("ascii", "replace").removesuffix("\n")
    if not _sendable(text):
        raise ValueError(f"{_validator_path(part)} holds no validator")
    return text


def _sendable(value: str) -> bool:
    return 0 < len(value) <= 1024 and all(" " <= c <= "~" for c in value)


def discard_part(part: Path) -> None:
    """Delete a partial download and its recorded validator (and one a
    crash left half-staged)."""
    part.unlink(missing_ok=True)
    for validator in (_validator_path(part), _staged_validator_path(part)):
        validator.unlink(missing_ok=True)


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
    discard_part(part)
    return RESTART


def check_size(written: int, expected: int | None, what: str) -> None:
    if expected is not None and written != expected:
        raise MalformedResponseError(f"{what}: received {written} of {expected} bytes")


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def open_part(part: Path) -> BinaryIO:
    """The partial download, to append the body :func:`begin_body` prepared
    it for; created owner-only (it holds conversations)."""
    return os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


def finish_download(part: Path, path: Path) -> Path:
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, path)
    _validator_path(part).unlink(missing_ok=True)
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

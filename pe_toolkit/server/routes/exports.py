"""``POST /v1/export`` and the download of its file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import time
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import anyio
from fastapi import APIRouter, Request
from pydantic import ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.types import Receive, Scope, Send

from ...store import ConversationFilter
from ..envelope import VALIDATION_ERROR, ApiProblem, JSONBytes, not_found, ok, problem_response
from ..exports import ExportPending
from ..jobs import ACTIVE
from ..models import ExportParameters, form_fields, parse_json, validated
from ._common import base_url, mirror, require_dataset

router = APIRouter()


class ExportForm(ExportParameters):
    """Form fields arrive as text: convert ("0.8" -> 0.8, "true" -> True)."""

    model_config = ConfigDict(strict=False, extra="ignore")
    dataset: str = "*"


async def _fields(request: Request) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == "application/json":  # accepted too, for convenience
        raw = await request.body()
        # The published SDK posts its form (requests' data=) with its
        # session's Content-Type: application/json left on: a body that is
        # not JSON but is a well-formed form is read as the form it is.
        if raw.lstrip()[:1] not in (b"{", b"[", b'"') and (fields := form_fields(raw)) is not None:
            return fields
        body = parse_json(raw)
        return body if isinstance(body, dict) else {"_": body}
    # One limit for the whole body (the gateway's 413) rather than
    # Starlette's separate 1 MiB per-field limit.
    form = await request.form(max_part_size=mirror(request).config.max_body_bytes)
    try:
        return {k: v for k, v in form.items() if isinstance(v, str) and v != ""}
    finally:
        await form.close()


@router.post("/v1/export", status_code=202, summary="Export conversations (jsonl, csv, parquet, huggingface, openai)")
async def create_export(request: Request) -> JSONBytes:
    form = validated(ExportForm, await _fields(request))
    m = mirror(request)

    def create() -> dict[str, Any]:
        require_dataset(request, form.dataset)
        dataset = None if form.dataset == "*" else form.dataset
        count = m.count(ConversationFilter(dataset=dataset, tier=form.tier, min_quality=form.min_quality))
        filters = form.model_dump(exclude_none=True, exclude={"format", "dataset"})
        return m.exports.create(
            dataset=form.dataset, fmt=form.format, filters=filters, count=count, download_base=base_url(request),
            key_id=request.scope.get("state", {}).get("key_id"),
        )

    data = await run_in_threadpool(create)
    return ok(request, data, "Export accepted", status=202)


@router.get("/v1/exports/{export_id}", summary="An export's status (mirror extension)")
def get_export(request: Request, export_id: str) -> JSONBytes:
    info = mirror(request).exports.describe(export_id[:100], base_url(request))
    if info is None:
        raise not_found(f"export {export_id[:100]!r}")
    job = mirror(request).jobs.get(info["export_id"])
    info["progress"] = round(job.progress, 1) if job else None
    return ok(request, info, "Export retrieved")


# How often a held download looks at its export's job (in memory, no query).
HOLD_STEP = 0.02


@router.api_route("/v1/exports/{export_id}/download", methods=["GET", "HEAD"], summary="Download an export's file")
async def download(request: Request, export_id: str) -> Response:
    m = mirror(request)
    try:
        return await _file(m, export_id)
    except ExportPending as pending:
        # Hold the request a little (long polling), once: a client told to
        # come back in a second (Retry-After is whole seconds) would
        # otherwise wait up to a second for a small export written in a
        # fraction of one.
        if not await _finished_within(m, pending.export_id, time.monotonic() + m.config.download_hold):
            return _still_writing(request, m, pending)
    try:
        return await _file(m, export_id)
    except ExportPending as pending:
        return _still_writing(request, m, pending)


async def _file(m: Any, export_id: str) -> Response:
    path, media_type, name = await run_in_threadpool(m.exports.resolve, export_id)
    return EnvelopedFileResponse(path, media_type=media_type, filename=name)


class EnvelopedFileResponse(FileResponse):
    """Starlette's FileResponse (ranges, ``If-Range``, HEAD), except that a
    bad ``Range`` header gets the contract's envelope (400, or 416 past the
    end) rather than Starlette's bare text, that the strong ``ETag`` a
    resume sends back in ``If-Range`` names the file itself, not only its
    size and modification time, that the headers and the bytes come from
    one open file, and that only that ETag, never a date, gets a range.

    Starlette's ETag hashes ``st_mtime`` and ``st_size``: a file replaced
    by another of the same size within one tick of the file system's clock
    (a few ms on Linux, 1-2 s on some network and FAT file systems), or
    with its time copied (``cp -p``, ``rsync -t``), kept its ETag, and a
    resume under ``If-Range`` got a 206 tail of the new file to append to
    the old one's head. Files are replaced by renaming a new one over them
    (the exporter writes aside, then renames), and the new one was created
    while the old still existed, so its inode differs: the inode joins the
    hash. Reading the content for a hash would cost a pass over the whole
    file per download.

    Starlette stats the file by name and opens it by name again to send
    it: a file renamed over in between went out under the old file's
    ETag, and a resume got the new file's tail under the ETag it asked
    for. Here the file is opened first and its headers come from that open
    descriptor (``fstat``), which keeps the bytes of the file it opened
    whatever is renamed over or deleted at its name meanwhile."""

    _file: BinaryIO | None = None

    def set_stat_headers(self, stat_result: os.stat_result) -> None:
        identity = f"{stat_result.st_dev}-{stat_result.st_ino}-{stat_result.st_mtime_ns}-{stat_result.st_size}"
        self.headers.setdefault("etag", f'"{hashlib.md5(identity.encode(), usedforsecurity=False).hexdigest()}"')
        super().set_stat_headers(stat_result)

    def _should_use_range(self, http_if_range: str) -> bool:
        # RFC 9110 13.1.5: an If-Range date holds only if it is a strong
        # validator, and 8.8.2.2 makes it strong for a server only when it
        # reliably knows the file did not change twice within that second.
        # This one cannot (whole seconds; a file replaced within one, or
        # copied with its time, keeps its Last-Modified), so a date gets the
        # whole file. Every response carries the strong ETag to send instead.
        return http_if_range == self.headers["etag"]

    @contextlib.asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        # Every body handler of Starlette's reads through this: the file
        # opened in __call__, not the path opened again (closed there too).
        assert self._file is not None
        yield anyio.AsyncFile(self._file)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._file = await run_in_threadpool(_open_regular, self.path)
        except FileNotFoundError:  # the sweep deleted an expired export since resolve()
            return await problem_response(scope, not_found(f"export file {os.path.basename(self.path)!r}"))(scope, receive, send)
        try:
            self.stat_result = os.fstat(self._file.fileno())
            self.set_stat_headers(self.stat_result)
            await self._respond(scope, receive, send)
        finally:
            self._file.close()

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        http_range, if_range = headers.get("range"), headers.get("if-range")
        # The same conditions as Starlette's for reading the header at all.
        if http_range is not None and self.status_code == 200 and (if_range is None or self._should_use_range(if_range)):
            assert self.stat_result is not None
            size = self.stat_result.st_size
            problem = None
            try:
                self._parse_range_header(http_range, size)
            except MalformedRangeHeader as exc:
                problem = ApiProblem(400, VALIDATION_ERROR, f"Range: {exc.content}", details="Range")
            except RangeNotSatisfiable:
                problem = ApiProblem(
                    416, VALIDATION_ERROR, f"Range: starts past the end of the file ({size} bytes)",
                    details="Range", headers={"Content-Range": f"bytes */{size}"},
                )
            if problem is not None:
                return await problem_response(scope, problem)(scope, receive, send)
        # Without the pathsend extension: the server would open the path again.
        extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != "http.response.pathsend"}
        await super().__call__({**scope, "extensions": extensions}, receive, send)


def _open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    handle = open(path, "rb")  # noqa: SIM115 - closed by the response that serves it
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise FileNotFoundError(path)  # resolve() took a file; something else is there now
    return handle


def _still_writing(request: Request, m: Any, pending: ExportPending) -> Response:
    job = m.jobs.active(pending.export_id)
    progress = round(job.progress, 1) if job is not None else pending.progress
    return ok(
        request,
        {"export_id": pending.export_id, "status": "processing", "progress": progress},
        "Export is still being written; retry shortly",
        status=202,
        headers={"Retry-After": "1"},
    )


async def _finished_within(m: Any, export_id: str, deadline: float) -> bool:
    """Whether the export's job ended (however) before ``deadline``."""
    while time.monotonic() < deadline:
        job = m.jobs.active(export_id)
        if job is None or job.status not in ACTIVE:
            return True
        await asyncio.sleep(HOLD_STEP)
    return False

"""A resumed export download asks `If-Range`: the tail it appends must come
from the file its head came from.

The mirror on loopback, behind a middleware that records every download
(Range, If-Range, status, body bytes sent) and can cut one off after N body
bytes by closing the connection, as a dropped network does. The interrupted
download is made by a client that does not retry (it fails, leaving the
`.part` and its validator), the resume by another client, as a rerun after
a crash would. Sync and async clients run the same scenarios.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pe_toolkit.client import AsyncClient, Client, RetryPolicy, flows
from pe_toolkit.client.core import BreakerPolicy
from pe_toolkit.client.flows import part_path
from pe_toolkit.errors import TransportError

from .client_support import FAST_RETRY, KEY
from .server_support import Served, copy_store, start_mirror

NO_RETRY = RetryPolicy(max_attempts=1, max_elapsed=30.0, backoff_base=0.0)


class Downloads:
    """ASGI middleware in front of the mirror (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app, self.state = app, app.state
        self.cut_after: int | None = None  # the next download only
        self.cut_each: int | None = None  # every download while set, as a link that keeps dropping
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/download"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        seen: dict[str, Any] = {"range": headers.get("range"), "if_range": headers.get("if-range"), "status": None, "sent": 0, "etag": None}
        self.seen.append(seen)
        cut, self.cut_after = (self.cut_after if self.cut_after is not None else self.cut_each), None
        # uvicorn's send is a method of its request cycle, which holds the
        # connection (as fault_injection's drop uses it).
        transport = send.__self__.transport
        closed = False

        async def counting(message: dict[str, Any]) -> None:
            nonlocal closed
            if closed:
                return  # the rest of the body goes nowhere, as on a dead line
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["etag"] = dict(message["headers"]).get(b"etag", b"").decode() or None
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if cut is not None and seen["sent"] + len(body) >= cut:
                    body = body[: cut - seen["sent"]]
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    seen["sent"] += len(body)
                    transport.close()  # flushes what was written, then closes: exactly `cut` bytes arrive
                    closed = True
                    return
                seen["sent"] += len(body)
            await send(message)

        await self.app(scope, receive, counting)


@pytest.fixture(scope="module")
def served(sample_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Downloads]]:
    wrapped: list[Downloads] = []

    def wrap(app: Any) -> Downloads:
        wrapped.append(Downloads(app))
        return wrapped[0]

    db = copy_store(sample_store_template, tmp_path_factory.mktemp("if_range"))
    with start_mirror(db, wrap=wrap) as mirror:
        yield mirror, wrapped[0]


def _download(kind: str, url: str, export: Any, path: Path, retry: RetryPolicy) -> Path:
    breaker = BreakerPolicy(failure_threshold=1000, recovery_timeout=1.0)
    if kind == "sync":
        with Client(KEY, url, retry=retry, breaker=breaker, timeout=30.0) as client:
            return client.download_export(export, path, timeout=120, progress=False)

    async def main() -> Path:
        async with AsyncClient(KEY, url, retry=retry, breaker=breaker, timeout=30.0) as api:
            return await api.download_export(export, path, timeout=120, progress=False)

    return asyncio.run(main())


def _interrupted_export(mirror: Served, downloads: Downloads, kind: str, min_quality: float, path: Path) -> tuple[Any, Path, bytes, int]:
    """An export (its own filter: exports with equal ones are shared) whose
    download to ``path`` was cut halfway through the file: (export, the
    file on the server, its bytes, bytes in the part)."""
    with Client(KEY, mirror.url, retry=FAST_RETRY) as client:
        info = client.start_export(format="jsonl", min_quality=min_quality)
        client.wait_for_export(info, timeout=120, progress=False)
    served_file = mirror.mirror.exports.resolve(info.export_id)[0]
    old = served_file.read_bytes()
    cut = len(old) // 2
    downloads.seen.clear()
    downloads.cut_after = cut
    with pytest.raises(TransportError, match=f"received {cut} bytes"):
        _download(kind, mirror.url, info, path, NO_RETRY)
    part = part_path(path)
    offset = part.stat().st_size
    assert offset == cut and part.read_bytes() == old[:offset]  # every byte received, none lost with the cut
    [first] = downloads.seen
    assert first["status"] == 200 and first["range"] is None and first["etag"]
    validator = part.with_name(part.name + ".validator")
    assert validator.read_text().strip() == first["etag"]  # kept for the resume, beside the part
    assert validator.stat().st_mode & 0o777 == 0o600
    downloads.seen.clear()
    return info, served_file, old, offset


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_resume_after_the_export_was_replaced_downloads_the_new_file_whole(
    served: tuple[Served, Downloads], kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file on the server is replaced (renamed over, as the exporter
    writes) by another of the same size with the same modification time:
    line order reversed, so every line still parses. Before, the resume
    sent a bare Range and appended the new file's tail to the old head,
    a file of the right size the size check passed."""
    mirror, downloads = served
    path = tmp_path / "export.jsonl"
    info, served_file, old, offset = _interrupted_export(mirror, downloads, kind, 0.11 if kind == "sync" else 0.12, path)
    new = b"".join(reversed(old.splitlines(keepends=True)))
    spliced = old[:offset] + new[offset:]
    assert len(new) == len(old) and new != old and spliced != new
    aside = served_file.with_name("." + served_file.name + ".new.part")
    aside.write_bytes(new)
    stat = served_file.stat()
    os.utime(aside, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(aside, served_file)

    caplog.set_level(logging.WARNING, logger="pe_toolkit.client")
    got = _download(kind, mirror.url, info, path, FAST_RETRY).read_bytes()
    assert got == new and got != spliced
    [resume] = downloads.seen
    assert resume["range"] == f"bytes={offset}-" and resume["if_range"]
    assert resume["status"] == 200 and resume["sent"] == len(new)
    assert not part_path(path).exists() and not path.with_name(path.name + ".part.validator").exists()
    said = [r.getMessage() for r in caplog.records if "starting again from byte 0" in r.getMessage()]
    assert len(said) == 1 and "changed on the server" in said[0] and f"{offset} bytes" in said[0]


@pytest.mark.parametrize("crash_at", ["truncating the part", "recording the new validator"])
def test_a_crash_while_a_changed_export_restarts_leaves_no_splice(
    served: tuple[Served, Downloads], crash_at: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resume's 200 (the export changed) is written from byte 0, and
    the process dies on the way (a kill, here an interrupt): the next run
    must still get the new file whole. Before, the old validator was deleted
    before the part was emptied, and a crash between the two left the old
    bytes with no validator: the next run resumed them unconditionally and
    appended the new file's tail (a review reproduced it)."""
    mirror, downloads = served
    path = tmp_path / "export.jsonl"
    info, served_file, old, offset = _interrupted_export(mirror, downloads, "sync", 0.31 if crash_at[0] == "t" else 0.32, path)
    new = b"".join(reversed(old.splitlines(keepends=True)))
    aside = served_file.with_name("." + served_file.name + ".new.part")
    aside.write_bytes(new)
    os.replace(aside, served_file)
    part = part_path(path)
    real_open = os.open

    def dies(file: Any, flags: int, *args: Any) -> int:
        target = part if crash_at == "truncating the part" else part.with_name(part.name + ".validator.new")
        if Path(file) == target and flags & os.O_TRUNC:
            raise KeyboardInterrupt("killed")
        return real_open(file, flags, *args)

    monkeypatch.setattr(os, "open", dies)
    with pytest.raises(KeyboardInterrupt):
        _download("sync", mirror.url, info, path, NO_RETRY)
    monkeypatch.setattr(os, "open", real_open)
    downloads.seen.clear()
    got = _download("sync", mirror.url, info, path, FAST_RETRY).read_bytes()
    assert got == new, "spliced" if got == old[:offset] + new[offset:] else "other"
    assert [r["status"] for r in downloads.seen] == [200]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no part, validator or staged validator left


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_resume_of_an_unchanged_export_fetches_only_the_rest(served: tuple[Served, Downloads], kind: str, tmp_path: Path) -> None:
    mirror, downloads = served
    path = tmp_path / "export.jsonl"
    info, _, old, offset = _interrupted_export(mirror, downloads, kind, 0.21 if kind == "sync" else 0.22, path)
    assert _download(kind, mirror.url, info, path, FAST_RETRY).read_bytes() == old
    [resume] = downloads.seen
    assert resume["range"] == f"bytes={offset}-" and resume["if_range"] == resume["etag"]
    assert resume["status"] == 206 and resume["sent"] == len(old) - offset
    assert not path.with_name(path.name + ".part.validator").exists()


def test_the_mirror_etag_changes_when_the_file_is_replaced_by_one_of_equal_size_and_time(served: tuple[Served, Downloads]) -> None:
    """Starlette's own ETag hashes only the modification time and size: the
    If-Range of the old file matched the new one and got a 206 of it."""
    mirror, _ = served
    with Client(KEY, mirror.url, retry=FAST_RETRY) as client:
        info = client.start_export(format="jsonl", min_quality=0.31)
        client.wait_for_export(info, timeout=120, progress=False)
    served_file = mirror.mirror.exports.resolve(info.export_id)[0]
    old = served_file.read_bytes()
    url = f"/v1/exports/{info.export_id}/download"
    with mirror.client() as http:
        first = http.get(url)
        assert first.status_code == 200 and first.content == old
        etag = first.headers["etag"]
        assert not etag.startswith("W/")
        same = http.get(url, headers={"Range": "bytes=10-", "If-Range": etag})
        assert same.status_code == 206 and same.content == old[10:]
        new = bytes(reversed(old))
        aside = served_file.with_name("." + served_file.name + ".new.part")
        aside.write_bytes(new)
        stat = served_file.stat()
        os.utime(aside, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(aside, served_file)
        changed = http.get(url, headers={"Range": "bytes=10-", "If-Range": etag})
        assert changed.status_code == 200 and changed.content == new
        assert changed.headers["etag"] != etag


# -- a server that ignores If-Range ----------------------------------------------------------------


class Careless:
    """A loopback file server that answers every ``Range: bytes=N-`` with a
    206 whatever ``If-Range`` says, sends a strong ETag of its content, and
    can cut a body off after ``cut`` bytes."""

    def __init__(self, content: bytes) -> None:
        self.content, self.cut, self.seen = content, None, []
        careless = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                content, cut = careless.content, careless.cut
                careless.cut = None
                start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if self.headers["Range"] else 0
                careless.seen.append((self.headers["Range"], self.headers["If-Range"], 206 if start else 200))
                self.send_response(206 if start else 200)
                self.send_header("ETag", '"' + hashlib.sha256(content).hexdigest()[:16] + '"')
                self.send_header("Content-Length", str(len(content) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
                self.end_headers()
                self.wfile.write(content[start:] if cut is None else content[start:cut])
                if cut is not None:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_206_of_another_file_is_not_appended(kind: str, tmp_path: Path) -> None:
    """The server sends the tail of its new file under the ETag of that
    file: the part (of the old one) is discarded and the file fetched
    again from byte 0, rather than spliced."""
    old = b"".join(b'{"id": "c%07d"}\n' % i for i in range(200_000))
    new = b"".join(b'{"id": "d%07d"}\n' % i for i in range(200_000))
    careless = Careless(old)
    thread = threading.Thread(target=careless.server.serve_forever, daemon=True)
    thread.start()
    path, export = tmp_path / "exp1.jsonl", "/v1/exports/exp1/download"
    try:
        careless.cut = len(old) // 2
        with pytest.raises(TransportError):
            _download(kind, careless.url, export, path, NO_RETRY)
        offset = part_path(path).stat().st_size
        assert 0 < offset <= len(old) // 2 and part_path(path).read_bytes() == old[:offset]
        careless.content = new
        assert _download(kind, careless.url, export, path, FAST_RETRY).read_bytes() == new
    finally:
        careless.server.shutdown()
        careless.server.server_close()
    etag = '"' + hashlib.sha256(old).hexdigest()[:16] + '"'
    assert careless.seen == [(None, None, 200), (f"bytes={offset}-", etag, 206), (None, None, 200)]


def test_a_weak_etag_gives_no_validator_not_even_the_date() -> None:
    # RFC 9110 13.1.5: a client holding an entity tag sends no date in
    # If-Range; with a weak ETag it fell back to Last-Modified (a review).
    dates = {"last-modified": "Mon, 01 Jan 2024 00:00:00 GMT", "date": "Tue, 02 Jan 2024 00:00:00 GMT"}
    assert flows.validator_of(httpx.Response(200, headers=dates)) == dates["last-modified"]
    assert flows.validator_of(httpx.Response(200, headers={**dates, "etag": 'W/"abc"'})) is None
    assert flows.validator_of(httpx.Response(200, headers={**dates, "etag": '"abc"'})) == '"abc"'


# -- the mirror's side: what If-Range it honours, and what the ETag names --------------------------


def _ready_export(mirror: Served, min_quality: float) -> tuple[Any, Path, bytes, str]:
    """(export, its file on the server, the file's bytes, its download path)."""
    with Client(KEY, mirror.url, retry=FAST_RETRY) as client:
        info = client.start_export(format="jsonl", min_quality=min_quality)
        client.wait_for_export(info, timeout=120, progress=False)
    served_file = mirror.mirror.exports.resolve(info.export_id)[0]
    return info, served_file, served_file.read_bytes(), f"/v1/exports/{info.export_id}/download"


def _replace(served_file: Path, content: bytes, *, keep_time: bool) -> None:
    """Rename a new file over the served one, as the exporter writes (with
    its modification time copied, as ``cp -p`` or ``rsync -t`` do)."""
    aside = served_file.with_name("." + served_file.name + ".new.part")
    aside.write_bytes(content)
    if keep_time:
        stat = served_file.stat()
        os.utime(aside, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(aside, served_file)


def test_an_if_range_date_never_gets_a_range_of_a_replaced_file(served: tuple[Served, Downloads]) -> None:
    """RFC 9110 13.1.5: If-Range with a date holds only when the date is a
    strong validator, and 8.8.2.2 lets the server call it strong only when
    it reliably knows the file did not change twice within that second.
    The mirror cannot: Last-Modified has whole seconds, and a file replaced
    within one (or copied with its time, cp -p, rsync -t) keeps it. Before,
    the date was compared with Last-Modified (Starlette's rule) and the
    resume got a 206 of the new file to append to the old one's head; now
    a date never matches (the whole file, 200) and the strong ETag, which
    the mirror always sends, is the validator that gets a range."""
    mirror, _ = served
    _, served_file, old, url = _ready_export(mirror, 0.41)
    with mirror.client() as http:
        first = http.get(url)
        assert first.status_code == 200 and first.content == old
        date = first.headers["last-modified"]
        new = b"".join(reversed(old.splitlines(keepends=True)))
        _replace(served_file, new, keep_time=True)
        changed = http.get(url, headers={"Range": "bytes=10-", "If-Range": date})
        assert changed.headers["last-modified"] == date  # the date alone cannot tell the two files apart
        assert changed.status_code == 200 and changed.content == new
        # The unchanged file's date gets the whole file too; its ETag, the range.
        unchanged = http.get(url, headers={"Range": "bytes=10-", "If-Range": date})
        assert unchanged.status_code == 200 and unchanged.content == new
        by_etag = http.get(url, headers={"Range": "bytes=10-", "If-Range": changed.headers["etag"]})
        assert by_etag.status_code == 206 and by_etag.content == new[10:]


@pytest.mark.parametrize("asked", ["whole", "resume"])
def test_the_etag_names_the_bytes_served_when_the_file_is_replaced_during_the_request(
    served: tuple[Served, Downloads], asked: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is renamed over right after the mirror read its metadata
    (the stat that makes ETag, Length and Last-Modified) and before it read
    the bytes. Before, the file was stat'ed by name and opened by name
    again: the response carried the old file's ETag over the new file's
    bytes, and a resume under the old ETag got a 206 of the new file (a
    splice the size check passes). Now the file is opened once and its
    headers come from that open file, so they name the bytes sent."""
    mirror, _ = served
    _, served_file, old, url = _ready_export(mirror, 0.51 if asked == "whole" else 0.52)
    new = b"".join(reversed(old.splitlines(keepends=True)))
    assert len(new) == len(old) and new != old
    with mirror.client() as http:
        etag = http.head(url).headers["etag"]
    before = served_file.stat()
    armed, replaced = threading.Event(), threading.Event()
    real_resolve, real_stat, real_fstat = mirror.mirror.exports.resolve, os.stat, os.fstat

    def resolve(export_id: str) -> Any:
        found = real_resolve(export_id)
        armed.set()  # the route found the file: the next look at it is the response's
        return found

    def then_replace(result: os.stat_result) -> os.stat_result:
        if armed.is_set() and not replaced.is_set() and (result.st_dev, result.st_ino) == (before.st_dev, before.st_ino):
            replaced.set()
            _replace(served_file, new, keep_time=False)
        return result

    monkeypatch.setattr(mirror.mirror.exports, "resolve", resolve)
    monkeypatch.setattr(os, "stat", lambda *a, **k: then_replace(real_stat(*a, **k)))
    monkeypatch.setattr(os, "fstat", lambda fd: then_replace(real_fstat(fd)))
    headers = {"Range": "bytes=10-", "If-Range": etag} if asked == "resume" else {}
    with mirror.client() as http:
        got = http.get(url, headers=headers)
    monkeypatch.undo()
    assert replaced.is_set()  # the file did change under the request
    assert got.headers["etag"] == etag
    if asked == "resume":
        assert got.status_code == 206 and got.content == old[10:], "the new file's tail under the old ETag" if got.content == new[10:] else "other"
    else:
        assert got.status_code == 200 and got.content == old, "the new file under the old ETag" if got.content == new else "other"
    with mirror.client() as http:
        after = http.get(url, headers={"Range": "bytes=10-", "If-Range": etag})
    assert after.status_code == 200 and after.content == new and after.headers["etag"] != etag


def test_an_export_file_deleted_after_the_route_found_it_is_a_404(served: tuple[Served, Downloads], monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep deletes an expired export's file between the route's
    lookup and the response opening it: an enveloped 404, as for any
    expired export (Starlette's own answer was a 500)."""
    mirror, _ = served
    _, served_file, _, url = _ready_export(mirror, 0.53)
    real_resolve = mirror.mirror.exports.resolve

    def resolve(export_id: str) -> Any:
        found = real_resolve(export_id)
        served_file.unlink()
        return found

    monkeypatch.setattr(mirror.mirror.exports, "resolve", resolve)
    with mirror.client() as http:
        gone = http.get(url)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_link_that_drops_every_700_kb_still_finishes_the_download(served: tuple[Served, Downloads], kind: str, tmp_path: Path) -> None:
    """Every byte that arrived before a cut is in the part, so each resume
    starts where the last transfer broke. Before, the client wrote whole
    1 MiB chunks and a cut lost what had arrived of the chunk it broke: on
    a link that drops every 700 KB no byte ever reached the part, and the
    download failed after its 12 attempts (8.4 MB sent for a 4.2 MB file)."""
    mirror, downloads = served
    info, _, old, _ = _ready_export(mirror, 0.61 if kind == "sync" else 0.62)
    path = tmp_path / "export.jsonl"
    downloads.seen.clear()
    downloads.cut_each = 700_000
    try:
        got = _download(kind, mirror.url, info, path, FAST_RETRY).read_bytes()
    finally:
        downloads.cut_each = None
    assert got == old
    starts = list(range(0, len(old), 700_000))
    assert [r["range"] for r in downloads.seen] == [None] + [f"bytes={n}-" for n in starts[1:]]
    assert [r["status"] for r in downloads.seen] == [200] + [206] * (len(starts) - 1)
    assert sum(r["sent"] for r in downloads.seen) == len(old)  # no byte sent twice

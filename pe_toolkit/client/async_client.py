"""The asyncio client: :class:`AsyncClient`, the same API as :class:`Client`
with ``await``.

It shares everything but the I/O with the sync client: requests are built,
parsed, retried (tenacity's ``AsyncRetrying``), paced and routed by the same
:mod:`.core`, :mod:`.routes` and :mod:`.flows`; only sending and sleeping
differ. ``transport=`` takes an ``httpx.AsyncBaseTransport`` (for example
``httpx.ASGITransport(app)`` to talk to an app in-process).

    >>> async with AsyncClient() as api:
    ...     convs = await api.fetch_conversations(ids, concurrency=16)
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import polars as pl
import tenacity

from ..config import Secret, Settings
from ..errors import ApiError, InputError, NotFoundError
from ..progress import progress_bar
from . import flows, routes
from .core import Attempt, BreakerPolicy, Call, CallState, Endpoint
from .models import (
    ApiInfo,
    Conversation,
    ConversationPage,
    ConversationSummary,
    DatasetInfo,
    DatasetList,
    ExportInfo,
    Health,
    Job,
    QualityOverview,
    SearchResults,
    StatisticsOverview,
    ValidationResult,
    summaries_frame,
)
from .options import resolve_options
from .pacing import PacingPolicy, WaitNotice
from .pagination import Paginator, listing_call
from .retry import RetryPolicy

T = TypeVar("T")


class AsyncClient:
    """See :class:`~pe_toolkit.client.Client`; every method is a coroutine
    (iterators are async iterators). Use one instance per event loop.
    Each attempt runs under ``asyncio.timeout`` until its deadline, which
    bounds it whatever the transport."""

    def __init__(
        self,
        api_key: str | Secret | None = None,
        base_url: str | Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        pacing: PacingPolicy | None = None,
        concurrency: int = 8,
        deadline: float | None = None,
        max_response_bytes: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        settings: Settings | None = None,
    ) -> None:
        options = resolve_options(
            api_key, base_url, timeout=timeout, max_retries=max_retries, retry=retry, breaker=breaker,
            pacing=pacing, concurrency=concurrency, deadline=deadline, max_response_bytes=max_response_bytes,
            settings=settings,
        )
        self.options = options
        self._core = options.core()
        self._http = httpx.AsyncClient(transport=transport, limits=options.limits(), follow_redirects=False)

    # -- plumbing -----------------------------------------------------------
    def __repr__(self) -> str:
        key = "set" if self._core.has_key else "none"
        return f"<AsyncClient urls={list(self._core.urls)} key={key}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def urls(self) -> tuple[str, ...]:
        return self._core.urls

    @property
    def waits(self) -> WaitNotice:
        """Where long waits are announced; ``with client.waits.shown_on(bar):``
        shows them on a progress bar too."""
        return self._core.waits

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._core.endpoints

    async def request(self, call: Call[T]) -> T:
        return (await self._request(call))[0]

    async def _request(self, call: Call[T]) -> tuple[T, Endpoint]:
        retrying = tenacity.AsyncRetrying(sleep=asyncio.sleep, **self._core.retry_options(call.safety))
        return await retrying(self._attempt, call, CallState())

    async def _attempt(self, call: Call[T], state: CallState) -> tuple[T, Endpoint]:
        attempt = self._core.plan(call, state)
        try:
            if attempt.delay:
                await asyncio.sleep(attempt.delay)
            until = self._core.start(attempt)
            try:
                async with asyncio.timeout(until - time.monotonic()):
                    response, content = await self._send(attempt)
            except TimeoutError:
                raise self._core.deadline_exceeded(attempt) from None
            return self._core.complete(attempt, response, content), attempt.endpoint
        finally:
            self._core.abandon(attempt)

    async def _send(self, attempt: Attempt) -> tuple[httpx.Response, bytes]:
        """Send and read the body through the core's :class:`~.core.BodyReader`
        (size cap); closing early hangs up on the server."""
        try:
            response = await self._http.send(attempt.request, stream=True)
            try:
                body = self._core.body(attempt, response)
                async for chunk in response.aiter_bytes():
                    body.add(chunk)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise self._core.transport_failed(attempt, exc) from None
        return response, body.content

    # -- service --------------------------------------------------------------
    async def api_info(self) -> ApiInfo:
        return await self.request(routes.api_info())

    async def health(self) -> Health:
        return await self.request(routes.health())

    async def check_endpoints(self, timeout: float = 5.0) -> dict[str, bool]:
        found: dict[str, bool] = {}
        for endpoint in self._core.endpoints:
            request = self._core.build_request(self._core.health_call(endpoint, timeout), endpoint)
            try:
                async with asyncio.timeout(timeout):
                    response = await self._http.send(request)
                healthy, why = self._core.health_of(response, None, timeout)
            except (httpx.HTTPError, TimeoutError) as exc:
                healthy, why = self._core.health_of(None, exc, timeout)
            self._core.record_health(endpoint, healthy, why)
            found[endpoint.url] = healthy
        return found

    # -- datasets ---------------------------------------------------------------
    async def list_datasets(self) -> DatasetList:
        return await self.request(routes.list_datasets())

    async def get_dataset(self, name: str) -> DatasetInfo:
        return await self.request(routes.get_dataset(name))

    # -- conversations ------------------------------------------------------------
    async def list_conversations(
        self, *, dataset: str | None = None, tier: str | None = None, min_quality: float | None = None, limit: int = 100, offset: int = 0
    ) -> ConversationPage:
        return await self.request(routes.list_conversations(dataset=dataset, tier=tier, min_quality=min_quality, limit=limit, offset=offset))

    async def get_conversation(self, conversation_id: str) -> Conversation:
        return await self.request(routes.get_conversation(conversation_id))

    async def fetch_conversations(self, ids: Iterable[str], *, concurrency: int | None = None, skip_missing: bool = False) -> list[Conversation]:
        ids = list(ids)
        found: dict[str, Conversation] = {}
        async for cid, result in self.fetch_each(ids, concurrency=concurrency):
            if isinstance(result, NotFoundError) and skip_missing:
                continue
            if isinstance(result, BaseException):
                raise result
            found[cid] = result
        return [found[c] for c in ids if c in found]

    async def fetch_each(
        self, ids: Iterable[str], *, concurrency: int | None = None, raw: bool = False
    ) -> AsyncIterator[tuple[str, Any]]:
        """Yield ``(id, conversation or ApiError)`` as fetches complete, at
        most ``concurrency`` in flight (see :meth:`Client.fetch_each`)."""
        width = concurrency or self.options.concurrency

        async def one(cid: str) -> Any:
            try:
                call = routes.get_conversation(cid)
            except InputError as exc:
                return exc  # an id no URL can name ('..'): it fails alone, the others go on
            return await self.request(call.raw() if raw else call)

        pending: dict[asyncio.Task[Any], str] = {}
        try:
            for cid in ids:
                pending[asyncio.ensure_future(one(cid))] = cid
                if len(pending) >= width:
                    for item in await self._drain(pending):
                        yield item
            while pending:
                for item in await self._drain(pending):
                    yield item
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    @staticmethod
    async def _drain(pending: dict[asyncio.Task[Any], str]) -> list[tuple[str, Any]]:
        done, _ = await asyncio.wait(list(pending), return_when=asyncio.FIRST_COMPLETED)
        out = []
        for task in done:
            cid = pending.pop(task)
            exc = task.exception()
            if exc is not None and not isinstance(exc, ApiError):
                raise exc
            out.append((cid, exc if exc is not None else task.result()))
        return out

    async def iter_conversations(
        self,
        *,
        dataset: str | None = None,
        tier: str | None = None,
        min_quality: float | None = None,
        page_size: int = 1000,
        full: bool = False,
        concurrency: int | None = None,
    ) -> AsyncIterator[ConversationSummary | Conversation]:
        async for page in self.iter_pages(dataset=dataset, tier=tier, min_quality=min_quality, page_size=page_size):
            if full:
                for conversation in await self.fetch_conversations([s.id for s in page], concurrency=concurrency, skip_missing=True):
                    yield conversation
            else:
                for summary in page:
                    yield summary

    async def iter_pages(
        self,
        *,
        dataset: str | None = None,
        tier: str | None = None,
        min_quality: float | None = None,
        page_size: int = 1000,
        raw: bool = False,
    ) -> AsyncIterator[list[Any]]:
        """As :meth:`Client.iter_pages` (see :mod:`.pagination`)."""
        pager = Paginator(page_size=page_size)
        base = routes.list_conversations(dataset=dataset, tier=tier, min_quality=min_quality)
        if raw:
            base = dataclasses.replace(base, decode=lambda d: d["conversations"])
        while (req := pager.next_request()) is not None:
            listed = await self.request(listing_call(base, req))
            items = listed.data if raw else listed.data.items
            fresh = [item for item, new in zip(items, pager.take(listed)) if new]
            if fresh:
                yield fresh

    async def conversations_frame(
        self, *, dataset: str | None = None, tier: str | None = None, min_quality: float | None = None
    ) -> pl.DataFrame:
        frames = [summaries_frame(p) async for p in self.iter_pages(dataset=dataset, tier=tier, min_quality=min_quality)]
        return pl.concat(frames) if frames else summaries_frame([])

    # -- quality ------------------------------------------------------------------
    async def get_quality_metrics(self, *, dataset: str | None = None, tier: str | None = None) -> QualityOverview:
        return await self.request(routes.quality_metrics(dataset=dataset, tier=tier))

    async def validate_conversation(self, conversation: Mapping[str, Any] | Conversation) -> ValidationResult:
        return await self.request(routes.validate(conversation))

    # -- processing jobs ----------------------------------------------------------
    async def submit_job(self, dataset_name: str, processing_type: str, parameters: Mapping[str, Any] | None = None) -> Job:
        job, endpoint = await self._request(routes.submit_job(dataset_name, processing_type, parameters))
        return dataclasses.replace(job, endpoint=endpoint.url)

    async def get_job(self, job: Job | str) -> Job:
        job_id, pin = (job.job_id, job.endpoint) if isinstance(job, Job) else (job, None)
        found, endpoint = await self._request(routes.get_job(job_id, pin=pin))
        return dataclasses.replace(found, endpoint=endpoint.url)

    async def wait_for_job(
        self, job: Job | str, *, poll_interval: float = 2.0, timeout: float = 3600.0, progress: bool = True, raise_on_failure: bool = True
    ) -> Job:
        job_id = job.job_id if isinstance(job, Job) else job
        deadline = time.monotonic() + timeout
        current: Job | None = job if isinstance(job, Job) else None
        with progress_bar(100, f"job {job_id}", "%", enabled=progress, waits=self._core.waits) as bar:
            while True:
                current = await self.get_job(current or job_id)
                bar.update(max(0.0, current.progress - bar.n))
                if current.done:
                    break
                if time.monotonic() + poll_interval > deadline:
                    raise flows.job_timeout(job_id, timeout, current)
                await asyncio.sleep(poll_interval)
        if raise_on_failure and current.status != "completed":
            raise flows.job_failed(current)
        return current

    # -- search and statistics ----------------------------------------------------
    async def search(
        self,
        query: str,
        *,
        dataset: str | None = None,
        tier: str | None = None,
        min_quality: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> SearchResults:
        filters = {"dataset": dataset, "tier": tier, "min_quality": min_quality}
        return await self.request(routes.search(query, filters=filters, limit=limit, offset=offset))

    async def get_statistics(self) -> StatisticsOverview:
        return await self.request(routes.statistics())

    # -- exports ------------------------------------------------------------------
    async def start_export(
        self, *, dataset: str | None = None, format: str = "jsonl", tier: str | None = None, min_quality: float | None = None
    ) -> ExportInfo:
        info, endpoint = await self._request(routes.start_export(dataset=dataset, format=format, tier=tier, min_quality=min_quality))
        return dataclasses.replace(info, endpoint=endpoint.url)

    async def wait_for_export(self, export: ExportInfo, *, timeout: float = 3600.0, progress: bool = True) -> ExportInfo:
        await self._download(export, None, timeout=timeout, progress=progress)
        return dataclasses.replace(export, status="ready")

    async def download_export(
        self, export: ExportInfo | str, path: str | Path, *, timeout: float = 3600.0, progress: bool = True
    ) -> Path:
        path = Path(path)
        await self._download(export, path, timeout=timeout, progress=progress)
        return path

    async def export(
        self,
        path: str | Path,
        *,
        dataset: str | None = None,
        format: str = "jsonl",
        tier: str | None = None,
        min_quality: float | None = None,
        timeout: float = 3600.0,
        progress: bool = True,
    ) -> Path:
        info = await self.start_export(dataset=dataset, format=format, tier=tier, min_quality=min_quality)
        return await self.download_export(info, path, timeout=timeout, progress=progress)

    async def _download(self, export: ExportInfo | str, path: Path | None, *, timeout: float, progress: bool) -> None:
        deadline = time.monotonic() + timeout
        export_id = flows.export_id_of(export)
        part = flows.part_path(path) if path is not None else None
        call = flows.download_call(export, endpoint=self._core.urls[0] if len(self._core.urls) == 1 else None)
        with progress_bar(None, f"export {export_id}", "B", enabled=progress, waits=self._core.waits) as bar:
            while True:
                retrying = tenacity.AsyncRetrying(sleep=asyncio.sleep, **self._core.retry_options("idempotent"))
                outcome: flows.Pending | None = await retrying(self._download_attempt, call, CallState(), part, bar, deadline)
                if outcome is None:
                    break
                if time.monotonic() + outcome.retry_after > deadline:
                    raise flows.export_timeout(export_id, timeout)
                await asyncio.sleep(outcome.retry_after)
        if path is not None and part is not None:
            flows.finish_download(part, path)

    async def _download_attempt(
        self, call: Call[Any], state: CallState, part: Path | None, bar: Any, deadline: float
    ) -> flows.Pending | None:
        call = flows.with_range(call, part)
        attempt = self._core.plan(call, state)
        try:
            if attempt.delay:
                await asyncio.sleep(attempt.delay)
            # A file may take long to arrive: the download's own timeout bounds it.
            until = self._core.start(attempt, until=deadline)
            try:
                async with asyncio.timeout(until - time.monotonic()):
                    try:
                        response = await self._http.send(attempt.request, stream=True)
                    except httpx.HTTPError as exc:
                        raise self._core.transport_failed(attempt, exc) from None
                    try:
                        return await self._consume_download(attempt, response, part, bar)
                    finally:
                        await response.aclose()
            except TimeoutError:
                raise self._core.deadline_exceeded(attempt) from None
        finally:
            self._core.abandon(attempt)

    async def _consume_download(self, attempt: Attempt, response: httpx.Response, part: Path | None, bar: Any) -> flows.Pending | None:
        core = self._core
        if response.status_code == 416 and part is not None:
            # The resume asked past the end: the part is the whole file, or
            # it is deleted and the file fetched again (flows decides).
            core.stream_succeeded(attempt, response)
            return flows.resumed_past_the_end(response, part)
        if response.status_code not in (200, 206):
            try:
                body = core.body(attempt, response)
                async for chunk in response.aiter_bytes():
                    body.add(chunk)
            except httpx.HTTPError as exc:
                raise core.transport_failed(attempt, exc) from None
            data = core.complete(attempt, response, body.content)
            return flows.pending_from(data, response)
        if part is None:
            core.stream_succeeded(attempt, response)
            return None
        ready = flows.begin_body(response, part, bar)
        if isinstance(ready, flows.Pending):  # a 206 of another file: the part is gone, start over
            core.stream_succeeded(attempt, response)
            return ready
        written = ready.written
        try:
            # Local file writes are short and sequential; a thread hop per
            # piece would cost more than it saves the loop.
            with flows.open_part(part) as fh:
                # Each piece as the socket gives it (at most 64 KiB), not re-chunked:
                # httpx holds an unfilled chunk in memory, and a cut dropped it (up
                # to a whole chunk received and fetched again by the resume).
                chunks = response.aiter_bytes() if ready.encoded else response.aiter_raw()
                async for chunk in chunks:
                    fh.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            flows.check_size(written, ready.expected, f"download of {attempt.call.path}")
        except (httpx.HTTPError, ApiError) as exc:
            raise core.stream_failed(attempt, exc) from None
        core.stream_succeeded(attempt, response)
        return None

"""The blocking client: :class:`Client`.

All request logic lives in :mod:`.core` (shared with :class:`AsyncClient`);
this class sends, sleeps and loops. ``transport=`` is httpx's seam: pass
``httpx.ASGITransport``-like or ``MockTransport`` transports, or leave the
default connection pool (whose sockets honour each request's deadline,
see :mod:`.deadline`).

    >>> with Client() as api:                                # PE_API_URL / PE_API_KEY
    ...     page = api.list_conversations(tier="research", limit=50)
    ...     frame = page.to_polars()
    ...     full = api.fetch_conversations(frame["id"].to_list())
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import httpx
import polars as pl
import tenacity

from ..config import Secret, Settings
from ..errors import ApiError, InputError, RequestCancelledError
from ..progress import progress_bar
from . import deadline as deadlines, flows, routes
from .core import Attempt, BreakerPolicy, Call, CallState, Endpoint
from .fanout import fan_out
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

if TYPE_CHECKING:
    from .stream import UpdateStream

T = TypeVar("T")


class Client:
    """Every route of the Pixelated Empathy API, with retries, pacing, a
    circuit breaker per endpoint and failover between base URLs.

    ``api_key``/``base_url`` default to ``PE_API_KEY``/``PE_API_URL`` or the
    config file; ``base_url`` may be a list (or comma-separated) for
    failover. ``concurrency`` bounds parallel requests of
    :meth:`fetch_conversations` (fewer run where that measures faster,
    see :mod:`.fanout`). ``deadline`` (default: ``timeout``) bounds each
    request from send to complete answer, ``max_response_bytes`` (64 MiB)
    the body it reads (see :mod:`.options`). Thread-safe.
    """

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
        transport: httpx.BaseTransport | None = None,
        settings: Settings | None = None,
    ) -> None:
        options = resolve_options(
            api_key, base_url, timeout=timeout, max_retries=max_retries, retry=retry, breaker=breaker,
            pacing=pacing, concurrency=concurrency, deadline=deadline, max_response_bytes=max_response_bytes,
            settings=settings,
        )
        self.options = options
        self._core = options.core()
        transport = transport or deadlines.http_transport(options.limits())
        self._http = httpx.Client(transport=transport, follow_redirects=False)

    # -- plumbing -----------------------------------------------------------
    def __repr__(self) -> str:
        key = "set" if self._core.has_key else "none"
        return f"<Client urls={list(self._core.urls)} key={key}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

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
        """The base URLs with their breaker and pacer state (read-only use)."""
        return self._core.endpoints

    def request(self, call: Call[T]) -> T:
        """Run one :class:`~.core.Call` with retries (the building block of every method)."""
        return self._request(call)[0]

    def _request(self, call: Call[T], cancel: threading.Event | None = None) -> tuple[T, Endpoint]:
        sleep = time.sleep if cancel is None else functools.partial(_pause, cancel=cancel)
        retrying = tenacity.Retrying(sleep=sleep, **self._core.retry_options(call.safety))
        return retrying(self._attempt, call, CallState(), cancel)

    def _attempt(self, call: Call[T], state: CallState, cancel: threading.Event | None = None) -> tuple[T, Endpoint]:
        attempt = self._core.plan(call, state)
        try:
            _pause(attempt.delay, cancel)
            with deadlines.bounded(self._core.start(attempt)):
                response, content = self._send(attempt)
            return self._core.complete(attempt, response, content), attempt.endpoint
        finally:
            self._core.abandon(attempt)

    def _send(self, attempt: Attempt) -> tuple[httpx.Response, bytes]:
        """Send and read the body through the core's :class:`~.core.BodyReader`
        (size cap, deadline); closing early hangs up on the server."""
        try:
            response = self._http.send(attempt.request, stream=True)
            try:
                body = self._core.body(attempt, response)
                for chunk in response.iter_bytes():
                    body.add(chunk)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise self._core.transport_failed(attempt, exc) from None
        return response, body.content

    # -- service --------------------------------------------------------------
    def api_info(self) -> ApiInfo:
        """``GET /``: what the server announces about itself."""
        return self.request(routes.api_info())

    def health(self) -> Health:
        """``GET /health`` of the first available endpoint."""
        return self.request(routes.health())

    def check_endpoints(self, timeout: float = 5.0) -> dict[str, bool]:
        """Probe ``/health`` of every base URL once (no retries); a failing
        one is skipped by the router until a later probe finds it healthy."""
        found: dict[str, bool] = {}
        for endpoint in self._core.endpoints:
            call = self._core.health_call(endpoint, timeout)
            request = self._core.build_request(call, endpoint)
            try:
                with deadlines.bounded(time.monotonic() + timeout):
                    response = self._http.send(request)
                healthy, why = self._core.health_of(response, None, timeout)
            except httpx.HTTPError as exc:
                healthy, why = self._core.health_of(None, exc, timeout)
            self._core.record_health(endpoint, healthy, why)
            found[endpoint.url] = healthy
        return found

    # -- datasets ---------------------------------------------------------------
    def list_datasets(self) -> DatasetList:
        return self.request(routes.list_datasets())

    def get_dataset(self, name: str) -> DatasetInfo:
        return self.request(routes.get_dataset(name))

    # -- conversations ------------------------------------------------------------
    def list_conversations(
        self, *, dataset: str | None = None, tier: str | None = None, min_quality: float | None = None, limit: int = 100, offset: int = 0
    ) -> ConversationPage:
        """One page of summaries (``limit`` 1-1000)."""
        return self.request(routes.list_conversations(dataset=dataset, tier=tier, min_quality=min_quality, limit=limit, offset=offset))

    def get_conversation(self, conversation_id: str) -> Conversation:
        return self.request(routes.get_conversation(conversation_id))

    def fetch_conversations(self, ids: Iterable[str], *, concurrency: int | None = None, skip_missing: bool = False) -> list[Conversation]:
        """Full conversations for ``ids`` (in that order), ``concurrency`` at
        a time. A missing id raises :class:`NotFoundError` unless ``skip_missing``."""
        from ..errors import NotFoundError

        ids = list(ids)
        found: dict[str, Conversation] = {}
        for cid, result in self.fetch_each(ids, concurrency=concurrency):
            if isinstance(result, NotFoundError) and skip_missing:
                continue
            if isinstance(result, BaseException):
                raise result
            found[cid] = result
        return [found[c] for c in ids if c in found]

    def fetch_each(
        self, ids: Iterable[str], *, concurrency: int | None = None, raw: bool = False, cancel: threading.Event | None = None
    ) -> Generator[tuple[str, Any], None, None]:
        """Yield ``(id, conversation or ApiError)`` as each fetch completes,
        with at most ``concurrency`` requests in flight (fewer while that
        measures faster: :class:`.fanout.WidthTuner`). Errors are yielded,
        not raised, so one bad id does not stop the rest (an ``ApiError``, or
        an ``InputError`` for an id no URL can name, such as ``".."``); the consumer
        decides (stop on :class:`CircuitOpenError`, record the others).
        ``raw=True`` yields the API objects as dicts.

        Closing the generator sets ``cancel`` (an event of its own when not
        given): fetches waiting to be sent again (pacing, Retry-After,
        backoff) end at once and no more are sent. Set it from elsewhere
        (another thread) to stop the same way while a wait is under way:
        the generator then raises :class:`RequestCancelledError`."""
        width = concurrency or self.options.concurrency
        cancel = cancel if cancel is not None else threading.Event()

        def one(cid: str) -> Any:
            try:
                call = routes.get_conversation(cid)
            except InputError as exc:
                return exc  # an id no URL can name ('..'): it fails alone, the others go on
            return self._request(call.raw() if raw else call, cancel)[0]

        # Threads rather than an event loop: this works the same in a
        # notebook (whose loop is already running) and in a script; httpx's
        # Client is thread-safe and the GIL is released while waiting.
        yield from fan_out(one, ids, width, ApiError, cancel=cancel)

    def iter_conversations(
        self,
        *,
        dataset: str | None = None,
        tier: str | None = None,
        min_quality: float | None = None,
        page_size: int = 1000,
        full: bool = False,
        concurrency: int | None = None,
    ) -> Iterator[ConversationSummary] | Iterator[Conversation]:
        """Every matching conversation once: summaries, or with ``full=True``
        full conversations (fetched ``concurrency`` at a time per page).
        Pages are reconciled by id (see :mod:`.pagination`)."""
        for page in self.iter_pages(dataset=dataset, tier=tier, min_quality=min_quality, page_size=page_size):
            if full:
                yield from self.fetch_conversations([s.id for s in page], concurrency=concurrency, skip_missing=True)
            else:
                yield from page

    # typed per `raw`: summaries by default, the API's dicts with raw=True
    @overload
    def iter_pages(
        self,
        *,
        dataset: str | None = None,
        tier: str | None = None,
        min_quality: float | None = None,
        page_size: int = 1000,
        raw: Literal[False] = False,
    ) -> Iterator[list[ConversationSummary]]: ...

    @overload
    def iter_pages(
        self,
        *,
        dataset: str | None = None,
        tier: str | None = None,
        min_quality: float | None = None,
        page_size: int = 1000,
        raw: Literal[True],
    ) -> Iterator[list[dict[str, Any]]]: ...

    def iter_pages(
        self,
        *,
        dataset: str | None = None,
        tier: str | None = None,
        min_quality: float | None = None,
        page_size: int = 1000,
        raw: bool = False,
    ) -> Iterator[list[ConversationSummary]] | Iterator[list[dict[str, Any]]]:
        """Lists of summaries never seen before, page by page: keyset pages
        where the server offers them, offsets reconciled by id elsewhere,
        and a closing check (see :mod:`.pagination`). ``raw=True`` yields
        the API's dicts. What the listing could not account for is logged
        as a warning."""
        pager = Paginator(page_size=page_size)
        base = routes.list_conversations(dataset=dataset, tier=tier, min_quality=min_quality)
        if raw:
            base = dataclasses.replace(base, decode=lambda d: d["conversations"])
        while (req := pager.next_request()) is not None:
            listed = self.request(listing_call(base, req))
            items = listed.data if raw else listed.data.items
            fresh = [item for item, new in zip(items, pager.take(listed)) if new]
            if fresh:
                yield fresh

    def conversations_frame(
        self, *, dataset: str | None = None, tier: str | None = None, min_quality: float | None = None
    ) -> pl.DataFrame:
        """All matching summaries as one frame (paginated, reconciled by id)."""
        frames = [summaries_frame(p) for p in self.iter_pages(dataset=dataset, tier=tier, min_quality=min_quality)]
        return pl.concat(frames) if frames else summaries_frame([])

    # -- quality ------------------------------------------------------------------
    def get_quality_metrics(self, *, dataset: str | None = None, tier: str | None = None) -> QualityOverview:
        return self.request(routes.quality_metrics(dataset=dataset, tier=tier))

    def validate_conversation(self, conversation: Mapping[str, Any] | Conversation) -> ValidationResult:
        return self.request(routes.validate(conversation))

    # -- processing jobs ----------------------------------------------------------
    def submit_job(self, dataset_name: str, processing_type: str, parameters: Mapping[str, Any] | None = None) -> Job:
        job, endpoint = self._request(routes.submit_job(dataset_name, processing_type, parameters))
        return dataclasses.replace(job, endpoint=endpoint.url)

    def get_job(self, job: Job | str) -> Job:
        job_id, pin = (job.job_id, job.endpoint) if isinstance(job, Job) else (job, None)
        found, endpoint = self._request(routes.get_job(job_id, pin=pin))
        return dataclasses.replace(found, endpoint=endpoint.url)

    def wait_for_job(
        self, job: Job | str, *, poll_interval: float = 2.0, timeout: float = 3600.0, progress: bool = True, raise_on_failure: bool = True
    ) -> Job:
        """Poll until the job is completed, failed or cancelled (a progress
        bar shows its percentage). A failed or cancelled job raises
        :class:`ApiError` unless ``raise_on_failure=False``."""
        job_id = job.job_id if isinstance(job, Job) else job
        deadline = time.monotonic() + timeout
        current: Job | None = job if isinstance(job, Job) else None
        with progress_bar(100, f"job {job_id}", "%", enabled=progress, waits=self._core.waits) as bar:
            while True:
                current = self.get_job(current or job_id)
                bar.update(max(0.0, current.progress - bar.n))
                if current.done:
                    break
                if time.monotonic() + poll_interval > deadline:
                    raise flows.job_timeout(job_id, timeout, current)
                time.sleep(poll_interval)
        if raise_on_failure and current.status != "completed":
            raise flows.job_failed(current)
        return current

    # -- live updates (the mirror's server-sent events) ---------------------------
    def stream_updates(
        self,
        topics: str | Sequence[str] | None = None,
        *,
        last_event_id: str | None = None,
        reconnect: bool = True,
        read_timeout: float | None = None,
    ) -> UpdateStream:
        """Follow ``GET /v1/stream/updates`` (``topics``: patterns such as
        ``"conversation.*"``, default all). Returns an
        :class:`~.stream.UpdateStream`: iterate it for
        :class:`~.stream.StreamEvent` objects; it reconnects with
        ``Last-Event-ID`` when the stream drops (see :mod:`.stream`) until
        ``close()`` is called, from any thread. ``read_timeout`` (default:
        the client's timeout) is the longest silence before the connection
        counts as dead; keep it above the server's keep-alive interval.

        >>> with api.stream_updates("conversation.*") as updates:
        ...     for event in updates:
        ...         print(event.topic, event.payload["count"])
        """
        from .stream import UpdateStream

        wanted = [topics] if isinstance(topics, str) else list(topics or [])
        timeout = read_timeout if read_timeout is not None else self.options.timeout

        def call(last_id: str | None) -> Call[Any]:
            return routes.stream_updates(wanted, last_event_id=last_id, timeout=timeout)

        return UpdateStream(self._core, self._http, call, reconnect=reconnect, last_event_id=last_event_id)

    # -- search and statistics ----------------------------------------------------
    def search(
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
        return self.request(routes.search(query, filters=filters, limit=limit, offset=offset))

    def get_statistics(self) -> StatisticsOverview:
        return self.request(routes.statistics())

    # -- exports ------------------------------------------------------------------
    def start_export(
        self, *, dataset: str | None = None, format: str = "jsonl", tier: str | None = None, min_quality: float | None = None
    ) -> ExportInfo:
        """``POST /v1/export``; the file is written in the background."""
        info, endpoint = self._request(routes.start_export(dataset=dataset, format=format, tier=tier, min_quality=min_quality))
        return dataclasses.replace(info, endpoint=endpoint.url)

    def wait_for_export(self, export: ExportInfo, *, timeout: float = 3600.0, progress: bool = True) -> ExportInfo:
        """Wait until the export's file can be downloaded."""
        self._download(export, None, timeout=timeout, progress=progress)
        return dataclasses.replace(export, status="ready")

    def download_export(
        self, export: ExportInfo | str, path: str | Path, *, timeout: float = 3600.0, progress: bool = True
    ) -> Path:
        """Wait for the export, then stream its file to ``path`` (written as
        ``path.part`` and renamed when complete; an interrupted transfer
        resumes with a Range request where the server allows it, under
        If-Range: a file changed on the server since is fetched whole)."""
        path = Path(path)
        self._download(export, path, timeout=timeout, progress=progress)
        return path

    def export(
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
        """Start an export, wait for it and download it to ``path``."""
        info = self.start_export(dataset=dataset, format=format, tier=tier, min_quality=min_quality)
        return self.download_export(info, path, timeout=timeout, progress=progress)

    def _download(self, export: ExportInfo | str, path: Path | None, *, timeout: float, progress: bool) -> None:
        deadline = time.monotonic() + timeout
        export_id = flows.export_id_of(export)
        part = flows.part_path(path) if path is not None else None
        call = flows.download_call(export, endpoint=self._core.urls[0] if len(self._core.urls) == 1 else None)
        with progress_bar(None, f"export {export_id}", "B", enabled=progress, waits=self._core.waits) as bar:
            while True:
                retrying = tenacity.Retrying(sleep=time.sleep, **self._core.retry_options("idempotent"))
                outcome = retrying(self._download_attempt, call, CallState(), part, bar, deadline)
                if outcome is None:
                    break
                if time.monotonic() + outcome.retry_after > deadline:
                    raise flows.export_timeout(export_id, timeout)
                time.sleep(outcome.retry_after)
        if path is not None and part is not None:
            flows.finish_download(part, path)

    def _download_attempt(
        self, call: Call[Any], state: CallState, part: Path | None, bar: Any, deadline: float
    ) -> flows.Pending | None:
        # Every attempt resumes where the partial file ends (a Range request).
        call = flows.with_range(call, part)
        attempt = self._core.plan(call, state)
        try:
            if attempt.delay:
                time.sleep(attempt.delay)
            # A file may take long to arrive: the download's own timeout bounds it.
            with deadlines.bounded(self._core.start(attempt, until=deadline)):
                try:
                    response = self._http.send(attempt.request, stream=True)
                except httpx.HTTPError as exc:
                    raise self._core.transport_failed(attempt, exc) from None
                try:
                    return self._consume_download(attempt, response, part, bar)
                finally:
                    response.close()
        finally:
            self._core.abandon(attempt)

    def _consume_download(self, attempt: Attempt, response: httpx.Response, part: Path | None, bar: Any) -> flows.Pending | None:
        core = self._core
        if response.status_code == 416 and part is not None:
            # The resume asked past the end: the part is the whole file, or
            # it is deleted and the file fetched again (flows decides).
            core.stream_succeeded(attempt, response)
            return flows.resumed_past_the_end(response, part)
        if response.status_code not in (200, 206):
            try:
                body = core.body(attempt, response)
                for chunk in response.iter_bytes():
                    body.add(chunk)
            except httpx.HTTPError as exc:
                raise core.transport_failed(attempt, exc) from None
            data = core.complete(attempt, response, body.content)  # raises on errors
            return flows.pending_from(data, response)
        if part is None:  # only waiting: the file is ready
            core.stream_succeeded(attempt, response)
            return None
        ready = flows.begin_body(response, part, bar)
        if isinstance(ready, flows.Pending):  # a 206 of another file: the part is gone, start over
            core.stream_succeeded(attempt, response)
            return ready
        written = ready.written
        try:
            with flows.open_part(part) as fh:
                # Each piece as the socket gives it (at most 64 KiB), not re-chunked:
                # httpx holds an unfilled chunk in memory, and a cut dropped it (up
                # to a whole chunk received and fetched again by the resume).
                chunks = response.iter_bytes() if ready.encoded else response.iter_raw()
                for chunk in chunks:
                    fh.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            flows.check_size(written, ready.expected, f"download of {attempt.call.path}")
        except (httpx.HTTPError, ApiError) as exc:
            raise core.stream_failed(attempt, exc) from None
        core.stream_succeeded(attempt, response)
        return None


def _pause(seconds: float, cancel: threading.Event | None) -> None:
    """Wait ``seconds`` before a request is sent (again). With ``cancel``,
    the wait ends as soon as it is set and raises instead of sending (also
    with no wait: nothing is sent once cancelled). A worker thread cannot
    be interrupted, so a plain sleep here made Ctrl-C wait out a 40 s
    Retry-After."""
    if cancel is None:
        if seconds:
            time.sleep(seconds)
    elif cancel.wait(seconds):
        raise RequestCancelledError("the request was cancelled before it was sent")

"""``PixelatedEmpathyAPI``: the published Python SDK's interface over our client.

Scripts and integration examples written for the published SDK
(``pip install pixelated-empathy-api``) call these methods and index the
plain dicts they return; they run unchanged against this class, and gain
the full client's retries, pacing, breaker and failover. Differences, all
deliberate:

- errors are pe_toolkit's (:class:`~pe_toolkit.errors.ApiError` and its
  subclasses); ``PixelatedEmpathyAPIError`` and ``RateLimitError`` are
  importable from here under the SDK's names;
- ``iter_conversations`` reconciles pages by id (the SDK's offset loop
  repeats or skips conversations when the corpus changes mid-pull);
- ``health_check`` asks the public ``/health`` at the server root (the SDK
  asks ``{base_url}/health``, a route the contract does not have; the
  mirror serves both);
- ``iter_conversations`` works with ``async for`` as well as ``for``;
- exceptions carry ``status``/``code`` and the SDK's ``status_code``/``error_code``;
- the key is held as a :class:`~pe_toolkit.config.Secret`: no attribute,
  repr or log line shows it (the SDK keeps it in ``self.api_key``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Generator, Mapping
from typing import Any

from ..config import Secret
from ..errors import (
    ApiError,
    RateLimitError as RateLimitError,  # the SDK's name, re-exported
)
from . import routes
from .sync_client import Client

PUBLISHED_BASE_URL = "https://api.pixelatedempathy.com/v1"

PixelatedEmpathyAPIError = ApiError
"""The SDK's base exception name, for ``except PixelatedEmpathyAPIError``."""


class ConversationIterator:
    """Conversation summaries, for ``for`` and for ``async for``.

    Both walk the same pages; the async side loads each page in a worker
    thread (``asyncio.to_thread``), so the event loop keeps running other
    tasks while a page is on its way. One way of iterating per object.
    """

    def __init__(self, pages: Generator[list[dict[str, Any]], None, None]) -> None:
        self._pages = pages
        self._ready: deque[dict[str, Any]] = deque()

    def __iter__(self) -> ConversationIterator:
        return self

    def __next__(self) -> dict[str, Any]:
        while not self._ready:
            self._ready.extend(next(self._pages))  # StopIteration ends the loop
        return self._ready.popleft()

    def __aiter__(self) -> ConversationIterator:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while not self._ready:
            page = await asyncio.to_thread(next, self._pages, None)
            if page is None:
                raise StopAsyncIteration
            self._ready.extend(page)
        return self._ready.popleft()

    def close(self) -> None:
        """Stop early (no further page is requested)."""
        self._pages.close()


class PixelatedEmpathyAPI:
    """Drop-in for the published SDK's client; every method returns the
    ``data`` of the response as plain dicts and lists.

    ``base_url`` defaults to ``PE_API_URL`` / the config file when set, else
    the published production URL.
    """

    def __init__(
        self,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        timeout: float = 30,
        max_retries: int = 3,
        **options: Any,
    ) -> None:
        from ..config import load_settings

        settings = load_settings()
        url = base_url or (settings.api_urls or (PUBLISHED_BASE_URL,))
        self.base_url = base_url.rstrip("/") if base_url else ",".join(url)
        self.timeout, self.max_retries = timeout, max_retries
        self.client = Client(api_key, url, timeout=timeout, max_retries=max_retries, settings=settings, **options)

    def __repr__(self) -> str:
        return f"<PixelatedEmpathyAPI {self.base_url}>"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> PixelatedEmpathyAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _data(self, call: Any) -> Any:
        return self.client.request(call.raw())

    # -- datasets -------------------------------------------------------------
    def list_datasets(self) -> list[dict[str, Any]]:
        return self._data(routes.list_datasets()).get("datasets", [])

    def get_dataset_info(self, dataset_name: str) -> dict[str, Any]:
        return self._data(routes.get_dataset(dataset_name))

    # -- conversations ----------------------------------------------------------
    def get_conversations(
        self,
        dataset: str | None = None,
        tier: str | None = None,
        min_quality: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        return self._data(routes.list_conversations(dataset=dataset, tier=tier, min_quality=min_quality, limit=limit, offset=offset))

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        return self._data(routes.get_conversation(conversation_id))

    def iter_conversations(
        self,
        dataset: str | None = None,
        tier: str | None = None,
        min_quality: float | None = None,
        batch_size: int = 100,
    ) -> ConversationIterator:
        """Every matching conversation summary once, ``batch_size`` per
        request; iterate it with ``for`` or, in async code (the SDK's
        stream-processor pattern), with ``async for``."""
        return ConversationIterator(self._pages(dataset, tier, min_quality, batch_size))

    def _pages(
        self, dataset: str | None, tier: str | None, min_quality: float | None, batch_size: int
    ) -> Generator[list[dict[str, Any]], None, None]:
        """The new summaries of each page, reconciled by id (the client's
        listing loop, :mod:`.pagination`)."""
        yield from self.client.iter_pages(
            dataset=dataset, tier=tier, min_quality=min_quality, page_size=max(2, min(int(batch_size), 1000)), raw=True
        )

    # -- quality ----------------------------------------------------------------
    def get_quality_metrics(self, dataset: str | None = None, tier: str | None = None) -> dict[str, Any]:
        return self._data(routes.quality_metrics(dataset=dataset, tier=tier))

    def validate_conversation_quality(self, conversation: Mapping[str, Any]) -> dict[str, Any]:
        return self._data(routes.validate(conversation))

    # -- processing -------------------------------------------------------------
    def submit_processing_job(
        self, dataset_name: str, processing_type: str, parameters: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._data(routes.submit_job(dataset_name, processing_type, parameters))

    def get_job_status(self, job_id: str) -> dict[str, Any]:
        return self._data(routes.get_job(job_id))

    def wait_for_job(self, job_id: str, poll_interval: float = 30, timeout: float = 3600) -> dict[str, Any]:
        """The final status dict (completed, failed or cancelled, as the SDK
        returns it); :class:`ApiError` when ``timeout`` passes first."""
        job = self.client.wait_for_job(job_id, poll_interval=poll_interval, timeout=timeout, progress=False, raise_on_failure=False)
        return job.raw

    # -- search, statistics, export, health -------------------------------------
    def search_conversations(
        self, query: str, filters: Mapping[str, Any] | None = None, limit: int = 100, offset: int = 0
    ) -> dict[str, Any]:
        return self._data(routes.search(query, filters=filters, limit=limit, offset=offset))

    def get_statistics_overview(self) -> dict[str, Any]:
        return self._data(routes.statistics())

    def export_data(
        self, dataset: str, format: str = "jsonl", tier: str | None = None, min_quality: float | None = None
    ) -> dict[str, Any]:
        return self._data(routes.start_export(dataset=dataset, format=format, tier=tier, min_quality=min_quality))

    def health_check(self) -> bool:
        """True when the API answers ``/health`` as healthy; never raises."""
        try:
            return self.client.health().healthy
        except ApiError:
            return False

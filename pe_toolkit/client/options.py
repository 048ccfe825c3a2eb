"""Where a client's key, URLs and knobs come from.

Arguments win; then ``PE_API_KEY`` / ``PE_API_URL`` (comma-separated for
failover); then the config file's ``[api]`` section (``url``, ``key``,
``timeout``, ``max_retries``, ``deadline``, ``max_response_bytes``;
``PE_API_DEADLINE`` / ``PE_API_MAX_RESPONSE_BYTES`` in the environment). The key is wrapped in
:class:`~pe_toolkit.config.Secret` at once and only revealed into the
``Authorization`` header of a request to a configured base URL.

Two bounds protect the caller from a server that misbehaves: ``deadline``
(seconds from sending an attempt to having its whole answer; default: the
timeout, which httpx applies only to each read) and ``max_response_bytes``
(the largest body read into memory; export downloads, which go to disk,
are exempt). See :mod:`.deadline` and :class:`.core.BodyReader`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from ..config import Secret, Settings, load_settings
from ..errors import ConfigError
from .core import DEFAULT_MAX_RESPONSE_BYTES, BreakerPolicy, RequestCore, normalize_base_url
from .pacing import PacingPolicy
from .retry import RetryPolicy


@dataclass(frozen=True)
class ClientOptions:
    urls: tuple[str, ...]
    api_key: Secret | None
    timeout: float
    retry: RetryPolicy
    breaker: BreakerPolicy
    pacing: PacingPolicy
    concurrency: int
    deadline: float
    max_response_bytes: int

    def limits(self) -> httpx.Limits:
        """The connection pool of either client: twice the ceiling on
        requests in flight, at least 10, so fetches never wait for a pooled
        connection and other calls made meanwhile find one too."""
        size = max(10, 2 * self.concurrency)
        return httpx.Limits(max_connections=size, max_keepalive_connections=size)

    def core(self) -> RequestCore:
        return RequestCore(
            self.urls, self.api_key, timeout=self.timeout, retry=self.retry, breaker=self.breaker, pacing=self.pacing,
            deadline=self.deadline, max_response_bytes=self.max_response_bytes,
        )


def key_problem(key: str) -> str | None:
    """Why ``key`` (already stripped) cannot go into an HTTP header, without
    quoting it; None when it can."""
    if not (key.isascii() and key.isprintable()):
        return "it holds a line break, a control or a non-ASCII character (check PE_API_KEY / the key file)"
    return None


def resolve_options(
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
    settings: Settings | None = None,
) -> ClientOptions:
    settings = settings or load_settings()
    if base_url is None:
        urls = settings.api_urls
    elif isinstance(base_url, str):
        urls = tuple(u.strip() for u in base_url.split(",") if u.strip())
    else:
        urls = tuple(base_url)
    if not urls:
        raise ConfigError(
            "no API URL configured: pass base_url=, set PE_API_URL, or set [api] url in pe_toolkit.toml"
        )
    try:
        urls = tuple(normalize_base_url(u) for u in urls)
    except ValueError as exc:
        raise ConfigError(f"API URL: {exc}") from None
    # Checked here, not only by RequestCore (a ValueError there), so a URL
    # repeated in PE_API_URL is one ConfigError line, not a traceback.
    repeated = sorted({u for u in urls if urls.count(u) > 1})
    if repeated:
        raise ConfigError(
            f"API URL: {', '.join(repeated)} is configured twice (after adding /v1 where the path is empty); "
            "list each base URL once in PE_API_URL / [api] url"
        )
    key: Secret | None
    if api_key is None:
        if settings.api_key_withheld and base_url is None:
            raise ConfigError(settings.api_key_withheld)
        key = settings.api_key
    else:
        key = api_key if isinstance(api_key, Secret) else Secret(str(api_key))
    if key is not None:
        # Surrounding whitespace is never part of a key (a key file saved with
        # \r\n); anything else that cannot go into a header is refused here,
        # as the HTTP layer's error would quote the key.
        value = key.reveal().strip()
        problem = key_problem(value)
        if problem:
            raise ConfigError(f"API key: {problem}")
        key = Secret(value) if value else None
    timeout = settings.timeout if timeout is None else float(timeout)
    if timeout <= 0:
        raise ConfigError(f"timeout must be positive, got {timeout}")
    if retry is None:
        retries = settings.max_retries if max_retries is None else max_retries
        if retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {retries}")
        retry = RetryPolicy.from_max_retries(retries)
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if deadline is None:
        deadline = settings.api_deadline
    deadline = timeout if deadline is None else float(deadline)
    if deadline <= 0:
        raise ConfigError(f"deadline must be positive, got {deadline}")
    if max_response_bytes is None:
        max_response_bytes = settings.api_max_response_bytes
    max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES if max_response_bytes is None else int(max_response_bytes)
    if max_response_bytes < 1:
        raise ConfigError(f"max_response_bytes must be >= 1, got {max_response_bytes}")
    return ClientOptions(
        urls=urls,
        api_key=key,
        timeout=timeout,
        retry=retry,
        breaker=breaker or BreakerPolicy(),
        pacing=pacing or PacingPolicy(),
        concurrency=concurrency,
        deadline=deadline,
        max_response_bytes=max_response_bytes,
    )

"""The request/response core shared by :class:`Client` and :class:`AsyncClient`.

Neither client does anything but I/O: each attempt of a request is
``plan`` (choose an endpoint, book a pacing slot, build the
:class:`httpx.Request`), send (the only line that differs between sync and
async), then ``complete`` (parse the envelope, map errors, feed the
breaker and the pacer) or ``transport_failed`` (translate httpx's
exception). This module is the one boundary where httpx exceptions become
:mod:`pe_toolkit.errors`, and where the API key is added to a request and
scrubbed from every message.

Endpoints: each configured base URL has its own circuit breaker and rate
pacer. The router prefers them in the configured order, skips one whose
breaker is open (or that failed the previous attempt of the same call),
and raises :class:`~pe_toolkit.errors.CircuitOpenError` only when every
endpoint is open: an unhealthy mirror is skipped until a probe finds it
healthy again.

Bounds: each attempt gets an absolute deadline when it is sent
(:meth:`RequestCore.start`: the client's ``deadline``, and never past the
retry budget, ``RetryPolicy.max_elapsed`` from the call's first send);
the clients enforce it (:mod:`.deadline`) and a miss becomes
:class:`~pe_toolkit.errors.DeadlineExceededError`, a transport failure
for retries and the breaker. A body is read through :class:`BodyReader`,
which stops at ``max_response_bytes`` with
:class:`~pe_toolkit.errors.ResponseTooLargeError` instead of holding
whatever a server sends in memory.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson

from ..config import Secret
from ..errors import (
    ApiError,
    ApiStatusError,
    AuthenticationError,
    CircuitOpenError,
    DeadlineExceededError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestValidationError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
)
from ..masking import mask_secrets
from .breaker import CircuitBreaker
from .pacing import PacingPolicy, RatePacer, WaitNotice
from .retry import RetryPolicy, Safety, retry_options

log = logging.getLogger("pe_toolkit.client")

T = TypeVar("T")
U = TypeVar("U")

USER_AGENT = "pe-toolkit/0.1 (+https://api.pixelatedempathy.com)"

_STATUS_ERRORS: dict[int, type[ApiStatusError]] = {
    400: RequestValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: RequestValidationError,
    429: RateLimitError,
}
_CODE_STATUS = {
    "INVALID_API_KEY": 401,
    "INSUFFICIENT_PERMISSIONS": 403,
    "RESOURCE_NOT_FOUND": 404,
    "VALIDATION_ERROR": 422,
    "RATE_LIMIT_EXCEEDED": 429,
    "PROCESSING_ERROR": 500,
    "EXPORT_ERROR": 500,
}
# httpx exceptions raised before a single byte of the request left: repeating
# such a request can never do anything twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# A socket timeout cut to the deadline fires at it, give or take the clock's
# granularity: a timeout this close to the deadline is the deadline.
_DEADLINE_SLACK = 0.05


def _identity(data: Any) -> Any:
    return data


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One logical request of the contract (all its attempts).

    ``path`` is relative to the base URL (``/conversations``) or, with
    ``root=True``, to the server root (``/health``). ``pin`` forces one
    base URL (jobs and exports live on the server that made them).
    ``decode`` turns the envelope's ``data`` into the result.
    """

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    form: Mapping[str, Any] | None = None
    safety: Safety = "idempotent"
    root: bool = False
    pin: str | None = None
    decode: Callable[[Any], T] = _identity
    timeout: float | None = None
    headers: Mapping[str, str] | None = None

    def raw(self) -> Call[Any]:
        """The same request, returning ``data`` as the server sent it."""
        return replace(self, decode=_identity)

    def decoded(self, decode: Callable[[Any], U], **changes: Any) -> Call[U]:
        """The same request (with ``changes``) decoded by ``decode``."""
        return replace(self, decode=decode, **changes)  # type: ignore[arg-type,return-value]  # replace() keeps T; the new decoder makes it U


def normalize_base_url(url: str) -> str:
    """``https://host`` -> ``https://host/v1`` (the contract's routes live
    under ``/v1``); any explicit path is kept as given."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.path in ("", "/"):
        url += "/v1"
    return url


_SECRET_PARAM = re.compile(r"key|token|secret|passw|auth|sig|credential", re.IGNORECASE)


def public_url(url: str) -> str:
    """``url`` without what may be a credential (``user:KEY@`` and query
    parameters named like a key or token): what a base URL is stored and shown as
    (a sync's source in ingest_runs, doctor), since API keys never are."""
    parts = urlsplit(str(url))
    host = parts.netloc.rpartition("@")[2]
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _SECRET_PARAM.search(k)])
    return urlunsplit((parts.scheme, host, parts.path, query, parts.fragment))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


class Endpoint:
    """One base URL with its breaker and pacer."""

    def __init__(self, url: str, breaker: CircuitBreaker, pacer: RatePacer) -> None:
        self.url = normalize_base_url(url)
        self.root = self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url
        self.origin = _origin(self.url)
        self.breaker, self.pacer = breaker, pacer
        self.last_error = ""  # the latest failure, quoted when the circuit is open
        self.last_error_at = 0.0  # time.monotonic() of it: the most recent is quoted

    def __repr__(self) -> str:
        return f"<Endpoint {self.url} {self.breaker.state.value}>"

    def failed(self, why: str) -> None:
        """Remember ``why`` (already scrubbed) as the latest failure, and when."""
        self.last_error, self.last_error_at = why, time.monotonic()


@dataclass(slots=True)
class CallState:
    """What one call remembers between its attempts."""

    last_failed: Endpoint | None = None
    attempts: int = 0
    first_sent: float | None = None  # time.monotonic() of the first attempt's send: the retry budget's start


@dataclass(slots=True)
class Attempt:
    call: Call[Any]
    endpoint: Endpoint
    request: httpx.Request
    delay: float
    state: CallState
    settled: bool = field(default=False)
    released: bool = field(default=False)  # its pacing booking handed back (RequestCore.abandon)
    deadline_at: float | None = None  # set by RequestCore.start
    deadline_why: str = ""


@dataclass(frozen=True)
class BreakerPolicy:
    """``failure_threshold`` consecutive failures (transport errors, 5xx,
    malformed bodies) open an endpoint's circuit for ``recovery_timeout``
    seconds; then one probe decides."""

    failure_threshold: int = 10
    recovery_timeout: float = 30.0


class RequestCore:
    """Everything about a request except sending it (see the module docstring)."""

    def __init__(
        self,
        urls: tuple[str, ...],
        api_key: Secret | None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        pacing: PacingPolicy | None = None,
        user_agent: str = USER_AGENT,
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if not urls:
            raise ValueError("at least one base URL is required")
        breaker = breaker or BreakerPolicy()
        self.endpoints = tuple(
            Endpoint(u, CircuitBreaker(breaker.failure_threshold, breaker.recovery_timeout), RatePacer(pacing))
            for u in urls
        )
        if len({e.url for e in self.endpoints}) != len(self.endpoints):
            raise ValueError("the same base URL is configured twice")
        self._key = api_key if api_key else None
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self.deadline = timeout if deadline is None else deadline
        self.max_response_bytes = max_response_bytes
        self.retry = retry or RetryPolicy()
        self.user_agent = user_agent
        # Long waits (pacing, Retry-After) are announced once, not endured in silence.
        self.waits = WaitNotice((pacing or PacingPolicy()).notice_after)

    def retry_options(self, safety: Safety) -> dict[str, Any]:
        """tenacity's options for one call (:func:`.retry.retry_options`),
        with long retry waits announced through :attr:`waits`."""
        options = retry_options(self.retry, safety)
        log_retry = options["before_sleep"]

        def before_sleep(retry_state: Any) -> None:
            log_retry(retry_state)
            outcome = retry_state.outcome
            delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
            self.waits.retry(delay, outcome.exception() if outcome is not None else None, retry_state.attempt_number)

        options["before_sleep"] = before_sleep
        return options

    # -- configuration views ------------------------------------------------
    @property
    def has_key(self) -> bool:
        return self._key is not None

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(e.url for e in self.endpoints)

    def scrub(self, text: str) -> str:
        """``text`` with the API key masked (servers may echo headers). A
        server that cut what it echoed may show only the key's start: from
        its first 8 characters on, the rest of that word is masked too."""
        if self._key is not None:
            secret = self._key.reveal()
            # A short key only where it stands as a token: "k" masked in every word made the message unreadable.
            text = mask_secrets(text, (secret,), "********")
            head = secret[:8] if secret and len(secret) >= 12 else ""
            if head and head in text:
                text = re.sub(re.escape(head) + r"\S*", "********", text)
        return text

    def endpoint_for(self, url: str) -> Endpoint:
        for e in self.endpoints:
            if e.url == url:
                return e
        raise ValueError(f"{url} is not one of the configured base URLs")

    # -- choosing an endpoint ---------------------------------------------
    def _choose(self, call: Call[Any], state: CallState) -> Endpoint:
        if call.pin is not None:
            candidates: tuple[Endpoint, ...] = (self.endpoint_for(call.pin),)
        else:
            candidates = self.endpoints
            if state.last_failed is not None and len(candidates) > 1:
                # Fail over: the endpoint that just failed goes last.
                candidates = (*(e for e in candidates if e is not state.last_failed), state.last_failed)
        for endpoint in candidates:
            if endpoint.breaker.allow():
                return endpoint
        wait = min(e.breaker.retry_in() for e in candidates)
        where = public_url(candidates[0].url) if len(candidates) == 1 else f"all {len(candidates)} API endpoints"
        failed = [e for e in candidates if e.last_error]
        last = ""
        if failed:
            # The most recent failure, and with several URLs, whose (never its credentials).
            latest = max(failed, key=lambda e: e.last_error_at)
            last = latest.last_error if len(candidates) == 1 else f"{public_url(latest.url)}: {latest.last_error}"
        raise CircuitOpenError(
            f"{where}: circuit open after repeated failures; failing fast, next probe in {wait:.0f} s"
            + (f" (last error: {last})" if last else "")
        )

    # -- one attempt ------------------------------------------------------
    def plan(self, call: Call[Any], state: CallState) -> Attempt:
        """Choose the endpoint, book a pacing slot and build the request."""
        state.attempts += 1
        endpoint = self._choose(call, state)
        try:
            delay = endpoint.pacer.reserve()
        except RateLimitError:
            endpoint.breaker.release()
            raise
        try:
            if delay:
                self.waits.pacing(endpoint.url, delay, endpoint.pacer)
            request = self.build_request(call, endpoint)
        except BaseException:
            endpoint.pacer.release()
            raise
        return Attempt(call, endpoint, request, delay, state)

    def start(self, attempt: Attempt, *, until: float | None = None, budget: bool = True) -> float:
        """Called just before the attempt is sent (after any pacing wait):
        its absolute deadline (``time.monotonic()``). ``until`` replaces the
        usual one (a download's own timeout); ``budget=False`` leaves out
        the retry budget (the update stream's connections share one
        :class:`CallState` for as long as the stream lasts)."""
        now = time.monotonic()
        state = attempt.state
        if state.first_sent is None:
            state.first_sent = now
        if until is not None:
            attempt.deadline_at, attempt.deadline_why = until, "the download's timeout"
            return until
        limit = self.deadline if attempt.call.timeout is None else attempt.call.timeout
        deadline_at, why = now + limit, f"the {limit:g} s deadline (Client(deadline=...), by default its timeout)"
        budget_end = state.first_sent + self.retry.max_elapsed
        if budget and budget_end < deadline_at:
            deadline_at = budget_end
            why = f"the call's retry budget of {self.retry.max_elapsed:g} s (RetryPolicy.max_elapsed)"
        attempt.deadline_at, attempt.deadline_why = deadline_at, why
        return deadline_at

    def deadline_exceeded(self, attempt: Attempt) -> DeadlineExceededError:
        """The attempt had no complete answer by its deadline: a transport
        failure (the breaker counts it; idempotent calls are retried)."""
        attempt.settled = True
        attempt.endpoint.breaker.record_failure(_failure_key(attempt))
        attempt.state.last_failed = attempt.endpoint
        where = f"{attempt.call.method} {_display(attempt.request)}"
        attempt.endpoint.failed(f"no complete answer within {attempt.deadline_why}")
        error = DeadlineExceededError(self.scrub(f"{where}: no complete answer within {attempt.deadline_why}"))
        error.request_sent = True
        return error

    def _past_deadline(self, attempt: Attempt) -> bool:
        return attempt.deadline_at is not None and time.monotonic() >= attempt.deadline_at - _DEADLINE_SLACK

    def too_large(self, attempt: Attempt, declared: int | None = None) -> ResponseTooLargeError:
        """The answer passes ``max_response_bytes``. The server answered,
        so its breaker hears a success (like a 4xx); not retried."""
        attempt.settled = True
        attempt.endpoint.breaker.record_success()
        where = f"{attempt.call.method} {_display(attempt.request)}"
        size = f" (it declares {_mib(declared)})" if declared is not None else ""
        return ResponseTooLargeError(
            self.scrub(
                f"{where}: the answer is larger than max_response_bytes, {_mib(self.max_response_bytes)}{size}; "
                "ask for less (a smaller limit=) or raise it: Client(max_response_bytes=...)"
            )
        )

    def body(self, attempt: Attempt, response: httpx.Response) -> BodyReader:
        """A reader for ``response``'s body; refuses at once a body whose
        declared length is over the cap."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise self.too_large(attempt, int(declared))
        return BodyReader(self, attempt)

    def build_request(self, call: Call[Any], endpoint: Endpoint) -> httpx.Request:
        url = (endpoint.root if call.root else endpoint.url) + call.path
        headers = {"Accept": "application/json", "User-Agent": self.user_agent, **(call.headers or {})}
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key.reveal()}"
        params = {k: _param(v) for k, v in (call.params or {}).items() if v is not None}
        content: bytes | None = None
        data: dict[str, str] | None = None
        if call.json is not None:
            content = orjson.dumps(call.json)
            headers["Content-Type"] = "application/json"
        elif call.form is not None:
            data = {k: _param(v) for k, v in call.form.items() if v is not None}
        timeout = self.timeout if call.timeout is None else httpx.Timeout(call.timeout, connect=min(call.timeout, 10.0))
        return httpx.Request(
            call.method,
            url,
            params=params or None,
            headers=headers,
            content=content,
            data=data,
            extensions={"timeout": timeout.as_dict()},
        )

    def complete(self, attempt: Attempt, response: httpx.Response, content: bytes | None = None) -> Any:
        """Turn a read response into the result, or raise the mapped error.
        ``content``: the body as a :class:`BodyReader` read it (default: the
        response's own, already read)."""
        attempt.settled = True
        endpoint, call = attempt.endpoint, attempt.call
        endpoint.pacer.observe(response.headers)
        status = response.status_code
        if content is None:
            content = response.content
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            body = exc
        envelope = body if isinstance(body, dict) and isinstance(body.get("success"), bool) else None
        where = f"{call.method} {_display(attempt.request)}"

        if envelope is not None and envelope["success"] and status < 400:
            try:
                result = call.decode(envelope.get("data"))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                endpoint.breaker.record_failure(_failure_key(attempt))
                endpoint.failed("malformed data")
                malformed = MalformedResponseError(
                    self.scrub(f"{where}: the response's data does not follow the API contract ({_describe(exc)})")
                )
                # A complete, well-formed envelope whose data breaks the
                # contract is the server's answer, not a transfer accident:
                # asking again gets the same answer (read by .retry).
                malformed.transient = False  # type: ignore[attr-defined]
                raise malformed from None
            endpoint.breaker.record_success()
            self.waits.succeeded()
            return result

        if 300 <= status < 400:
            # httpx follows no redirect (and must not: the Authorization
            # header would go to wherever it points). The answer is
            # configuration, so it is reported at once and not retried; only
            # the target's origin is named, since its path or query may carry
            # a token.
            endpoint.breaker.record_success()
            raise ApiStatusError(self.scrub(f"{where}: HTTP {status}: {_redirect_text(attempt.request, response)}"), status=status)

        # The server is in trouble on 5xx and on a 2xx it cannot put into
        # words; a 4xx (429 included) is a healthy server saying no.
        if status >= 500 or (envelope is None and status < 400):
            endpoint.breaker.record_failure(_failure_key(attempt))
            endpoint.failed(f"HTTP {status}")
            attempt.state.last_failed = endpoint
        else:
            endpoint.breaker.record_success()

        if envelope is None:
            if status < 400:
                what = f"invalid JSON ({body})" if isinstance(body, Exception) else "not the contract's envelope"
                raise MalformedResponseError(self.scrub(f"{where}: HTTP {status}, but the body is {what}"))
            # Masked before it is cut: a cut through the key would leave its start unmasked.
            raise self._status_error(where, status, None, _short(self.scrub(content[:_SHOWN_BYTES].decode("utf-8", "replace"))),
                                     None, _retry_after_header(response))  # fmt: skip

        raw_error = envelope.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = error.get("message") or envelope.get("message") or "no message"
        request_id = error.get("request_id") or envelope.get("request_id")
        retry_after = _number(error.get("retry_after"))
        if retry_after is None:
            retry_after = _retry_after_header(response)
        if status < 400:  # success false with a 2xx status: map by the code
            status = _CODE_STATUS.get(code or "", 500)
        raise self._status_error(where, status, code, str(message), request_id, retry_after)

    def _status_error(
        self, where: str, status: int, code: str | None, message: str, request_id: str | None, retry_after: float | None
    ) -> ApiStatusError:
        cls = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else ApiStatusError)
        text = f"{where}: HTTP {status}"
        if code:
            text += f" {code}"
        text += f": {message}"
        if cls is AuthenticationError and not self.has_key:
            text += " (no API key configured: set PE_API_KEY or pass api_key=)"
        if retry_after is not None and cls is RateLimitError:
            text += f" (retry after {retry_after:g} s)"
        if request_id:
            text += f" [request {request_id}]"
        return cls(self.scrub(text), status=status, code=code, request_id=request_id, retry_after=retry_after)

    def transport_failed(self, attempt: Attempt, exc: httpx.HTTPError) -> TransportError:
        """Translate httpx's exception (the request got no complete answer)."""
        if isinstance(exc, httpx.TimeoutException) and self._past_deadline(attempt):
            return self.deadline_exceeded(attempt)
        attempt.settled = True
        attempt.endpoint.breaker.record_failure(_failure_key(attempt))
        attempt.state.last_failed = attempt.endpoint
        kind = type(exc).__name__
        detail = self.scrub(str(exc) or kind)
        attempt.endpoint.failed(f"{kind}: {detail}")
        sent = not isinstance(exc, _NOT_SENT)
        # The server named (scheme, host, port: never credentials), and what
        # to check when it could not be reached: "GET /v1/...: ConnectError"
        # alone named neither which of the configured URLs failed nor PE_API_URL.
        server = _server(attempt.request)
        hint = "" if sent else f" (nothing answers at {server}: is the API up there, and is PE_API_URL right?)"
        error = TransportError(self.scrub(f"{attempt.call.method} {server}{_display(attempt.request)}: {kind}: {detail}{hint}"))
        # Read by the retry policy: a request that never left may be repeated
        # even when it is not idempotent.
        error.request_sent = sent
        return error

    def stream_failed(self, attempt: Attempt, exc: BaseException) -> ApiError:
        """A streamed body broke off midway (after a 2xx start)."""
        if isinstance(exc, httpx.HTTPError):
            return self.transport_failed(attempt, exc)
        attempt.settled = True
        attempt.endpoint.breaker.record_failure(_failure_key(attempt))
        attempt.state.last_failed = attempt.endpoint
        return exc if isinstance(exc, ApiError) else TransportError(self.scrub(str(exc)))

    def stream_succeeded(self, attempt: Attempt, response: httpx.Response) -> None:
        attempt.settled = True
        attempt.endpoint.pacer.observe(response.headers)
        attempt.endpoint.breaker.record_success()
        self.waits.succeeded()

    def abandon(self, attempt: Attempt) -> None:
        """The attempt is over (every caller of :meth:`plan` calls this in a
        ``finally``): hand back its pacing booking, and a claimed half-open
        probe when it was cancelled."""
        if not attempt.released:
            attempt.released = True
            attempt.endpoint.pacer.release()
        if not attempt.settled:
            attempt.endpoint.breaker.release()

    # -- health -------------------------------------------------------------
    def health_call(self, endpoint: Endpoint, timeout: float) -> Call[Any]:
        return Call("GET", "/health", root=True, pin=endpoint.url, timeout=timeout)

    def health_of(self, response: httpx.Response | None, exc: BaseException | None, timeout: float) -> tuple[bool, str]:
        """Whether a ``/health`` answer (or the exception instead of one)
        says healthy, and if not, why (quoted when the circuit is open)."""
        if exc is not None:
            if isinstance(exc, httpx.TimeoutException | TimeoutError):
                return False, f"no answer to GET /health within {timeout:g} s"
            return False, f"GET /health: {type(exc).__name__}: {exc or type(exc).__name__}"
        assert response is not None
        if response.status_code != 200:
            return False, f"GET /health: HTTP {response.status_code}"
        try:
            body = response.json()
        except ValueError:
            return False, "GET /health: not JSON"
        if isinstance(body, dict) and bool(body.get("success")) and (body.get("data") or {}).get("status") == "healthy":
            return True, ""
        return False, "GET /health: not healthy"

    def record_health(self, endpoint: Endpoint, healthy: bool, why: str = "") -> None:
        if healthy:
            endpoint.breaker.record_success()
        else:
            # Remembered, so that "circuit open" can say what went wrong
            # (a sync whose every URL refused ended naming no error at all).
            endpoint.failed(self.scrub(why or "the health check failed"))
            endpoint.breaker.trip()


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _retry_after_header(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    # The HTTP-date form.
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _failure_key(attempt: Attempt) -> tuple[str, str]:
    """What the breaker tells one request from another by (method, path
    and query): the same conversation retried is one key."""
    return attempt.call.method, _display(attempt.request)


def _server(request: httpx.Request) -> str:
    """scheme://host[:port] of the request: no user or password, no path."""
    url = request.url
    host = f"[{url.host}]" if ":" in url.host else url.host  # an IPv6 address as a URL writes it
    return f"{url.scheme}://{host}{f':{url.port}' if url.port else ''}"


def _display(request: httpx.Request) -> str:
    """Path and query of the request (never headers)."""
    url = request.url
    return url.raw_path.decode("ascii", "replace")


def _redirect_text(request: httpx.Request, response: httpx.Response) -> str:
    location = response.headers.get("location", "")
    try:
        target = urlsplit(str(request.url.join(location))) if location else None
    except (httpx.InvalidURL, ValueError):
        target = None
    where = f"redirected to {target.scheme}://{target.hostname}{f':{target.port}' if target.port else ''}/…" if (
        target is not None and target.hostname
    ) else "a redirect"
    return f"{where}; redirects are not followed: fix PE_API_URL (the base URL must answer directly)"


# Of a non-JSON error body, this many bytes are read (and masked), and 200
# characters shown.
_SHOWN_BYTES = 65_536


def _short(text: str) -> str:
    text = text[:200].strip()
    return f"non-JSON body: {text!r}" if text else "empty body"


def _mib(size: int) -> str:
    return f"{size / 1024**2:.3g} MiB" if size >= 1024**2 else f"{size} bytes"


class BodyReader:
    """Collects a streamed body for :meth:`RequestCore.complete`: raises
    :class:`ResponseTooLargeError` as soon as it passes the cap (so the
    client hangs up instead of reading on) and
    :class:`DeadlineExceededError` once the attempt's deadline has passed
    (the check that bounds transports without a bounded socket)."""

    __slots__ = ("_attempt", "_core", "_parts", "size")

    def __init__(self, core: RequestCore, attempt: Attempt) -> None:
        self._core, self._attempt = core, attempt
        self._parts: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._core.max_response_bytes:
            raise self._core.too_large(self._attempt)
        if self._core._past_deadline(self._attempt):
            raise self._core.deadline_exceeded(self._attempt)
        self._parts.append(chunk)

    @property
    def content(self) -> bytes:
        return b"".join(self._parts)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__

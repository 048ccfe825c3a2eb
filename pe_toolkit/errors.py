"""The exception tree of pe_toolkit.

Every expected failure raises a subclass of :class:`PeToolkitError`, so a
script can catch one base class and the CLI can turn any of them into one
clear line and a non-zero exit. Lower-level exceptions (DuckDB, httpx,
OS errors) are translated at exactly one boundary each: the store, the
importers, the client transport, the warehouse loader.

    PeToolkitError
    ├── ConfigError                 bad or missing configuration
    ├── StoreError                  the DuckDB cache
    │   ├── StoreLockedError        another process holds the write lock
    │   └── SchemaVersionError      the file needs a migration (or is newer)
    ├── InputError                  a file or record we were asked to read
    │   ├── RecordError             one record is invalid (carries file:line)
    │   └── UnknownFormatError      cannot tell or handle the file's format
    ├── AnalysisError
    │   └── ModelError              a learned model file: missing, altered, or from another version
    ├── ExportError
    │   └── WarehouseError          the PostgreSQL load
    ├── ReportError                 a notebook failed while writing reports
    ├── RequestCancelledError       a request given up: its caller stopped waiting for it
    └── ApiError                    talking to the Pixelated Empathy API
        ├── TransportError          connect failure, timeout, dropped connection
        │   └── DeadlineExceededError   no complete answer within the request's deadline
        ├── MalformedResponseError  the server answered something not in the contract
        ├── ResponseTooLargeError   the answer is larger than the client accepts
        ├── CircuitOpenError        calls fail fast while the breaker is open
        └── ApiStatusError          the server answered with an error envelope
            ├── AuthenticationError      401
            ├── PermissionDeniedError    403
            ├── NotFoundError            404
            ├── RequestValidationError   400 / 422
            ├── RateLimitError           429 (retry_after)
            └── ServerError              5xx

Messages never contain the API key or a database password.
"""

from __future__ import annotations


class PeToolkitError(Exception):
    """Base of every expected pe_toolkit failure."""


def is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C, or was raised because of it.

    DuckDB's Python client turns a SIGINT during a query into
    ``RuntimeError('Query interrupted')`` (or its ``InterruptException``),
    which a boundary may then have wrapped: the chain is followed so an
    interrupt is reported as one, whatever translated it on the way.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KeyboardInterrupt) or type(current).__name__ == "InterruptException":
            return True
        if type(current) is RuntimeError and str(current) == "Query interrupted":
            return True
        current = current.__cause__ or current.__context__
    return False


def run_error(exc: BaseException) -> str:
    """How a run's failure is recorded (``ingest_runs.error``, events):
    "interrupted" for Ctrl-C (:func:`is_interrupt`), not "KeyboardInterrupt";
    else the message, or the exception's name when it has none."""
    return "interrupted" if is_interrupt(exc) else (str(exc) or type(exc).__name__)


class ConfigError(PeToolkitError):
    """Configuration is missing or invalid."""


class StoreError(PeToolkitError):
    """The local DuckDB cache could not be opened, read or written."""


class StoreLockedError(StoreError):
    """Another process holds the cache's lock.

    ``holder_writes``: whether that process has the file open for writing
    (True; also when it cannot be told), which keeps every other process
    out, readers included; or read-only (False), beside which other
    read-only opens work. The advice in the message follows from it.
    """

    def __init__(self, path: str, pid: int | None, holder: str | None, *, holder_writes: bool = True) -> None:
        self.path, self.pid, self.holder, self.holder_writes = path, pid, holder, holder_writes
        who = f"process {pid}" if pid else "another process"
        if holder:
            who += f" ({holder})"
        if holder_writes:
            advice = (
                "it has the file open for writing, which keeps every other process out, read-only opens "
                "included: wait for it to finish (or close the store there), then retry"
            )
        else:
            advice = (
                "it has the file open read-only: close it there to write, or open this store read-only "
                "(read_only=True) to read beside it"
            )
        super().__init__(f"{path} is locked by {who}; {advice}")


class SchemaVersionError(StoreError):
    """The file's schema version does not match this pe_toolkit."""


class InputError(PeToolkitError):
    """A file or record we were asked to read is unusable."""


class RecordError(InputError):
    """One record is invalid; ``str()`` is ``file:line: reason``."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source, self.line, self.reason = source, line, reason
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


class UnknownFormatError(InputError):
    """The format of a file cannot be detected or is not supported."""


class AnalysisError(PeToolkitError):
    """An analyzer could not run."""


class ModelError(AnalysisError):
    """A learned model file is missing, does not match its content hash,
    holds content it cannot be used with, or was written by an incompatible
    version of pe_toolkit."""


class ExportError(PeToolkitError):
    """An export could not be written."""


class WarehouseError(ExportError):
    """Loading into the warehouse failed (nothing was committed)."""


class ReportError(PeToolkitError):
    """A notebook failed while the HTML reports were written."""


class RequestCancelledError(PeToolkitError):
    """A request given up before it was sent, or while it waited to be sent
    again (pacing, Retry-After, backoff), because its caller cancelled it
    (:meth:`pe_toolkit.client.Client.fetch_each`'s ``cancel``). Not an
    :class:`ApiError`: the API did not fail, so it is never retried nor
    counted against the id."""


class ApiError(PeToolkitError):
    """Talking to the Pixelated Empathy API failed.

    ``status_code`` and ``error_code`` are the published SDK's names for
    :class:`ApiStatusError`'s ``status`` and ``code`` (None when the server
    gave no answer), so ``except`` blocks written for the SDK read them.
    """

    @property
    def status_code(self) -> int | None:
        return getattr(self, "status", None)

    @property
    def error_code(self) -> str | None:
        return getattr(self, "code", None)


class TransportError(ApiError):
    """The request did not get an HTTP answer (connect, timeout, dropped)."""

    # Read by the retry policy: a request that never left may be repeated
    # even when it is not idempotent (unknown counts as sent).
    request_sent: bool = True


class DeadlineExceededError(TransportError):
    """The answer was not complete within the request's total deadline
    (a server trickling bytes, or one too slow for the time allowed).
    Retried and counted by the circuit breaker like any transport failure."""


class ResponseTooLargeError(ApiError):
    """The answer is larger than ``max_response_bytes``; it was not read
    further. Not retried: the same request would get the same answer."""


class MalformedResponseError(ApiError):
    """The server's answer does not follow the API contract."""


class CircuitOpenError(ApiError):
    """Calls fail fast: the circuit breaker is open after repeated failures."""


class ApiStatusError(ApiError):
    """The server answered with an error status and envelope."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status, self.code = status, code
        self.request_id, self.retry_after = request_id, retry_after
        super().__init__(message)


class AuthenticationError(ApiStatusError):
    """401: missing or invalid API key."""


class PermissionDeniedError(ApiStatusError):
    """403: the key lacks the permission."""


class NotFoundError(ApiStatusError):
    """404: the resource does not exist."""


class RequestValidationError(ApiStatusError):
    """400/422: the request was invalid."""


class RateLimitError(ApiStatusError):
    """429: too many requests; see ``retry_after``."""


class ServerError(ApiStatusError):
    """5xx: the server failed."""

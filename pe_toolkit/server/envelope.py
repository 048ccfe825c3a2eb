"""The contract's envelope, error codes and JSON responses.

Every response body, success or error, is::

    {"success": bool, "data": ..., "message": str, "timestamp": ISO-8601,
     "request_id": str, "error": {"code", "message", "details", "request_id"}}

with ``error`` only when ``success`` is false. Handlers raise
:class:`ApiProblem` for expected failures; ``handlers.py`` turns it (and
FastAPI's, Starlette's and unexpected errors) into this shape. Bodies are
serialized with orjson; already-serialized JSON (a conversation from the
object snapshot, a page built by DuckDB) is embedded as an
``orjson.Fragment`` instead of being parsed and dumped again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Scope

INVALID_API_KEY = "INVALID_API_KEY"
INSUFFICIENT_PERMISSIONS = "INSUFFICIENT_PERMISSIONS"
RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
VALIDATION_ERROR = "VALIDATION_ERROR"
PROCESSING_ERROR = "PROCESSING_ERROR"
EXPORT_ERROR = "EXPORT_ERROR"
RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def now_iso() -> str:
    """Current UTC time as ISO-8601 with milliseconds and a ``Z``."""
    # time.strftime on a struct is about twice as fast as datetime.isoformat,
    # and this runs for every response.
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_request_id(offered: bytes | str | None = None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (so a client can
    correlate its own logs), else a fresh id."""
    if offered:
        text = offered.decode("latin-1") if isinstance(offered, bytes) else offered
        if _CLIENT_REQUEST_ID.match(text):
            return text
    return "req_" + os.urandom(16).hex()  # what uuid4().hex is, without the UUID object


def request_id_of(scope: Scope) -> str:
    state = scope.get("state")
    rid = state.get("request_id") if isinstance(state, dict) else None
    if rid is None:
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
    return rid


class ApiProblem(Exception):
    """An expected failure, rendered as an error envelope.

    ``extra`` keys are added to the ``error`` object (``retry_after`` for
    429); ``headers`` to the response.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: str = "",
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, RESOURCE_NOT_FOUND, f"{what} not found")


def invalid(parameter: str, reason: str, *, status: int = 422) -> ApiProblem:
    """A validation failure naming the parameter (the contract's decision)."""
    return ApiProblem(status, VALIDATION_ERROR, f"{parameter}: {reason}", details=parameter)


class JSONBytes(Response):
    media_type = "application/json"


def success_body(data: Any, message: str, request_id: str) -> bytes:
    return orjson.dumps(
        {"success": True, "data": data, "message": message, "timestamp": now_iso(), "request_id": request_id},
        option=orjson.OPT_NON_STR_KEYS,
    )


def error_body(
    code: str,
    message: str,
    request_id: str,
    *,
    details: str = "",
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "details": details, "request_id": request_id}
    if extra:
        error.update(extra)
    return orjson.dumps(
        {
            "success": False,
            "data": None,
            "message": message,
            "timestamp": now_iso(),
            "request_id": request_id,
            "error": error,
        }
    )


def ok(
    conn: HTTPConnection,
    data: Any,
    message: str = "",
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> JSONBytes:
    """A success envelope around ``data`` (dicts, lists, ``orjson.Fragment``)."""
    return JSONBytes(success_body(data, message, request_id_of(conn.scope)), status_code=status, headers=headers)


def problem_response(scope: Scope, problem: ApiProblem) -> JSONBytes:
    body = error_body(problem.code, problem.message, request_id_of(scope), details=problem.details, extra=problem.extra)
    return JSONBytes(body, status_code=problem.status, headers=problem.headers or None)


def fragment(raw: bytes | str) -> orjson.Fragment:
    return orjson.Fragment(raw)

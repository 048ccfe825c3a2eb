"""Every failure leaves as the contract's error envelope.

FastAPI's defaults (``{"detail": ...}`` for 404, 405, 422 and a bare text
500) are replaced, and pe_toolkit's own exceptions are translated here, at
this one boundary: bad input is 422 ``VALIDATION_ERROR``, a failed export
500 ``EXPORT_ERROR``, anything unexpected 500 ``PROCESSING_ERROR`` with no
internals in the body (they go to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import AnalysisError, ExportError, InputError, PeToolkitError, StoreLockedError
from .envelope import (
    EXPORT_ERROR,
    PROCESSING_ERROR,
    RESOURCE_NOT_FOUND,
    VALIDATION_ERROR,
    ApiProblem,
    problem_response,
)

log = logging.getLogger("pe_toolkit.server")


def parameter_name(loc: Sequence[Any]) -> str:
    """``("query", "limit")`` -> ``limit``; ``("body", "messages", 0, "role")``
    -> ``messages[0].role``."""
    parts = list(loc)
    if parts and parts[0] in ("query", "path", "body", "header", "form", "cookie"):
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += ("." if name else "") + str(part)
    return name or "body"


def describe_errors(errors: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(message naming each bad parameter, comma-separated parameter names)."""
    names: list[str] = []
    texts: list[str] = []
    for error in errors:
        name = parameter_name(error.get("loc", ()))
        if name not in names:
            names.append(name)
        texts.append(f"{name}: {error.get('msg', 'invalid')}")
    return "; ".join(texts[:5]) + ("; ..." if len(texts) > 5 else ""), ", ".join(names)


def translate(exc: PeToolkitError) -> ApiProblem:
    """pe_toolkit's exceptions as API problems (the one translation point)."""
    if isinstance(exc, InputError):
        return ApiProblem(422, VALIDATION_ERROR, str(exc))
    if isinstance(exc, ExportError):
        return ApiProblem(500, EXPORT_ERROR, str(exc))
    if isinstance(exc, StoreLockedError):
        return ApiProblem(503, PROCESSING_ERROR, "the store is busy; try again", headers={"Retry-After": "1"})
    if isinstance(exc, AnalysisError):
        return ApiProblem(500, PROCESSING_ERROR, str(exc))
    return ApiProblem(500, PROCESSING_ERROR, str(exc))


async def _api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return problem_response(request.scope, exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 404:
        problem = ApiProblem(404, RESOURCE_NOT_FOUND, f"no route {request.method} {request.url.path}", headers=headers)
    elif status == 405:
        allowed = headers.get("Allow", headers.get("allow", ""))
        message = f"method {request.method} not allowed on {request.url.path}" + (f"; allowed: {allowed}" if allowed else "")
        problem = ApiProblem(405, VALIDATION_ERROR, message, headers=headers)
    elif status == 413:
        problem = ApiProblem(413, VALIDATION_ERROR, str(exc.detail), details="body", headers={"Connection": "close"})
    elif 400 <= status < 500:
        problem = ApiProblem(status, VALIDATION_ERROR, str(exc.detail), headers=headers)
    else:
        problem = ApiProblem(status, PROCESSING_ERROR, str(exc.detail), headers=headers)
    return problem_response(request.scope, problem)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = errors[0].get("ctx", {}).get("error", "invalid JSON")
        return problem_response(request.scope, ApiProblem(400, VALIDATION_ERROR, f"body: malformed JSON ({detail})", details="body"))
    message, names = describe_errors(errors)
    return problem_response(request.scope, ApiProblem(422, VALIDATION_ERROR, message, details=names))


async def _toolkit_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PeToolkitError)
    problem = translate(exc)
    if problem.status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return problem_response(request.scope, problem)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = ApiProblem(500, PROCESSING_ERROR, "internal server error", details=type(exc).__name__)
    return problem_response(request.scope, problem)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(PeToolkitError, _toolkit_error)
    app.add_exception_handler(Exception, _unexpected)

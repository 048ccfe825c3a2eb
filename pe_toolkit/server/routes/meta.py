"""``/`` and ``/health``: public, no key needed; ``/v1/health`` as well.

The messages are the published server's own strings: clients and
dashboards written for it match on them. ``/v1/health`` is where the
published SDK's ``health_check`` looks (``{base_url}/health``); like every
``/v1`` route it needs a key, which the SDK sends.
"""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Route

from ... import __version__
from ..envelope import JSONBytes, error_body, ok, request_id_of
from ._common import mirror

router = APIRouter()

ROOT_MESSAGE = "Welcome to Pixelated Empathy AI API"
HEALTHY_MESSAGE = "API is healthy"


def _shown(path: str) -> str:
    """A route's path as the contract writes it: "{id:path}" is "{id}"."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


@router.get("/", summary="API information and the list of endpoints")
async def root(request: Request) -> JSONBytes:
    endpoints = []
    for route in request.app.routes:
        if isinstance(route, APIRoute):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                endpoints.append({"method": method, "path": _shown(route.path), "description": route.summary or ""})
        elif isinstance(route, Route) and route.methods:
            doc = (route.endpoint.__doc__ or "").strip().splitlines()
            for method in sorted(route.methods - {"HEAD"}):
                endpoints.append({"method": method, "path": _shown(route.path), "description": doc[0] if doc else ""})
        elif isinstance(route, APIWebSocketRoute):
            endpoints.append({"method": "WEBSOCKET", "path": _shown(route.path), "description": route.name})
    return ok(
        request,
        {
            "name": "Pixelated Empathy API",
            "version": "1.0.0",
            "server": f"pe_toolkit offline mirror {__version__}",
            "base_path": "/v1",
            "authentication": "Authorization: Bearer <API key> on every /v1 route",
            "rate_limit": {"requests": mirror(request).config.rate_limit, "window_seconds": mirror(request).config.rate_window},
            "endpoints": endpoints,
        },
        ROOT_MESSAGE,
    )


# Health answers on threads of its own: the request pool may be full of
# queries waiting (up to LOCK_WAIT each) for a file another process holds,
# and a monitor then waited behind all of them (10 s for 80 queued queries)
# to hear that the server is well.
_HEALTH_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pe-health")


@router.get("/health", summary="Health of the server and its store")
async def health(request: Request) -> JSONBytes:
    return await asyncio.get_running_loop().run_in_executor(_HEALTH_POOL, _health, request)


@router.get("/v1/health", summary="Health, where the published SDK's health_check asks (needs a key)")
async def health_v1(request: Request) -> JSONBytes:
    return await asyncio.get_running_loop().run_in_executor(_HEALTH_POOL, _health, request)


def _health(request: Request) -> JSONBytes:
    m = mirror(request)
    checks = m.health()
    healthy = checks["store"] in ("ok", "busy")
    data = {
        "status": "healthy" if healthy else "unhealthy",
        "version": __version__,
        "uptime_seconds": round(time.monotonic() - m.started, 1),
        "checks": checks,
    }
    if healthy:
        return ok(request, data, HEALTHY_MESSAGE)
    return JSONBytes(error_body("PROCESSING_ERROR", "the store is not readable", request_id_of(request.scope)), status_code=503)

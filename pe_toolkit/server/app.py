"""The app factory: one :class:`Mirror` (the server's parts) behind FastAPI.

>>> from pe_toolkit.server import ServerConfig, create_app
>>> app = create_app(ServerConfig(db_path="data/pe_cache.duckdb", keys=(Secret("k"),)))

The store is opened when the app is created (so a locked or unreadable
cache fails before anything listens); background parts start with the
app's lifespan: job workers (after resolving what a previous run left),
the store watcher (object snapshot, search index, change events), and the
sweeper of expired exports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterable, Mapping

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Route

from ..config import Secret
from ..masking import mask_secrets, secret_pattern
from . import handlers
from .config import ServerConfig
from .gateway import Gateway
from .mirror import Mirror
from .routes import FAST_ROUTES, routers
from .routes.conversations import conversation_lane

# uvicorn logs a WebSocket's path with its query string at INFO even without
# --access-log ('"WebSocket /v1/ws?api_key=..." 403'), and the access log
# logs every path: a key a client put in the URL would be kept in the logs.
MASKED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "pe_toolkit.server")
_QUERY_SECRET = re.compile(
    r"([?&](?:api[_-]?key|key|token|access[_-]?token|auth|password|secret)=)[^&\s\"'#]*", re.IGNORECASE
)


class SecretLogFilter(logging.Filter):
    """Masks key-like query parameters and the configured server keys in
    every record of the loggers it is attached to (message and arguments,
    keeping the arguments' shape: uvicorn's access formatter unpacks them)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add_keys(self, keys: Iterable[Secret]) -> None:
        # A short key (a loopback "k") is masked only as a token of its own,
        # not inside every word holding its letters (pe_toolkit.masking).
        self._secrets.update(k.reveal() for k in keys)
        self._pattern = secret_pattern(self._secrets)

    def mask(self, text: str) -> str:
        return mask_secrets(_QUERY_SECRET.sub(r"\1***", text), self._pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.mask(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.mask(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: self.mask(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


LOG_FILTER = SecretLogFilter()


def mask_secrets_in_logs(keys: Iterable[Secret]) -> None:
    """Attach :data:`LOG_FILTER` (once) to uvicorn's and the server's
    loggers, and have it mask ``keys`` too. A logger's filters survive
    uvicorn's logging setup (``dictConfig`` replaces handlers only)."""
    LOG_FILTER.add_keys(keys)
    for name in MASKED_LOGGERS:
        logger = logging.getLogger(name)
        if LOG_FILTER not in logger.filters:
            logger.addFilter(LOG_FILTER)


class MirrorApp(FastAPI):
    """FastAPI with the gateway outside its error middleware, so every
    response, a 500 included, carries the request id and rate headers."""

    def build_middleware_stack(self):
        inner = super().build_middleware_stack()
        m: Mirror = self.state.mirror
        lanes = {"/v1/conversations/": conversation_lane(m.snapshot)}
        return Gateway(inner, keys=m.keys, limiter=m.limiter, max_body_bytes=m.config.max_body_bytes, usage=m.usage, lanes=lanes)


def create_app(config: ServerConfig) -> MirrorApp:
    """The mirror as an ASGI app (serve it with uvicorn, see ``runner``)."""
    mask_secrets_in_logs(config.keys)
    mirror = Mirror(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mirror.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, mirror.stop)

    app = MirrorApp(
        title="Pixelated Empathy API (pe_toolkit offline mirror)",
        version="1.0.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # "/v1/datasets/" is not a route: an enveloped 404, not a bodiless 307
        # to a Location built from the client's Host header
        redirect_slashes=False,
        lifespan=lifespan,
        # No telemetry: the mirror serves sensitive conversations and must
        # not export traces (and the per-request checks cost GET budget).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False},
    )
    app.state.mirror = mirror
    handlers.install(app)
    for path, endpoint, methods in FAST_ROUTES:
        app.router.routes.append(Route(path, endpoint, methods=methods, name=endpoint.__name__))
    for router in routers():
        _add_flat(app, router)
    return app


def _add_flat(app: FastAPI, router: APIRouter) -> None:
    # Routes are added to the app itself rather than through
    # include_router: this FastAPI resolves included routers on every
    # request, a cost the single-conversation GET budget notices.
    for route in router.routes:
        if isinstance(route, APIRoute):
            app.add_api_route(
                route.path,
                route.endpoint,
                methods=sorted(route.methods or ()),
                status_code=route.status_code,
                summary=route.summary,
                name=route.name,
            )
        elif isinstance(route, APIWebSocketRoute):
            app.add_api_websocket_route(route.path, route.endpoint, name=route.name)
        else:  # pragma: no cover - the route modules only declare these two kinds
            raise TypeError(f"unexpected route {route!r}")

"""Serving the app: in the foreground (``pe-toolkit serve``) or in a thread.

:class:`ServerThread` runs any ASGI app under uvicorn on a socket it binds
itself (port 0: a free port, no race between choosing and binding), in a
background thread, and knows its URL once uvicorn has started. Tests,
benchmarks and notebooks use it::

    with ServerThread(create_app(config)) as server:
        httpx.get(server.url + "/health")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from ..errors import PeToolkitError


class _Server(uvicorn.Server):
    """uvicorn's server, ending live streams before it waits for open
    connections (an SSE stream would otherwise hold a shutdown open)."""

    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            self.before_shutdown()
        await super().shutdown(sockets)


def _closer(app: Any) -> Callable[[], None] | None:
    mirror = getattr(getattr(app, "state", None), "mirror", None)
    hub = getattr(mirror, "hub", None)
    return hub.close if hub is not None else None


def uvicorn_config(app: Any, *, host: str = "127.0.0.1", port: int = 8000, max_body_bytes: int = 2 << 20, access_log: bool = False, log_level: str = "info") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        ws="websockets-sansio",
        ws_max_size=max_body_bytes,
        lifespan="on",
        timeout_graceful_shutdown=3,
        server_header=False,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket (port 0: a free one, known before serving)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PeToolkitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# A standalone server lets go of its cache after this many idle seconds, so
# another process (an import, a notebook's analysis) can open it between
# requests; the watcher then notices what that process changed.
RELEASE_IDLE = 2.0


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    max_body_bytes: int,
    access_log: bool = False,
    announce: Callable[[str], None] | None = None,
    release_idle: float | None = RELEASE_IDLE,
) -> None:
    """Run until interrupted (Ctrl-C / SIGTERM end it cleanly); ``announce``
    gets the base URL once the port is bound. The cache is let go after
    ``release_idle`` seconds without a query (None: held throughout)."""
    mirror = getattr(getattr(app, "state", None), "mirror", None)
    if mirror is not None:
        mirror.db.release_when_idle(release_idle)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    config = uvicorn_config(app, host=host, port=port, max_body_bytes=max_body_bytes, access_log=access_log)
    if announce is not None:
        announce(url_of(host, port))
    _Server(config, _closer(app)).run(sockets=[sock])


class ServerThread:
    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = 2 << 20,
        log_level: str = "warning",
        startup_timeout: float = 120.0,
    ) -> None:
        self.app, self.host, self.port = app, host, port
        self.max_body_bytes, self.log_level = max_body_bytes, log_level
        self.startup_timeout = startup_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        sock = bind(self.host, self.port)
        port = sock.getsockname()[1]
        config = uvicorn_config(self.app, host=self.host, port=port, max_body_bytes=self.max_body_bytes, log_level=self.log_level)
        self._server = _Server(config, _closer(self.app))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise PeToolkitError(f"the server on {self.host}:{port} did not start")
            time.sleep(0.01)
        self.url = url_of(self.host, port)
        return self.url

    def stop(self, timeout: float = 30.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # pragma: no cover - a stuck shutdown
                assert self._server is not None
                self._server.force_exit = True
                self._thread.join(5)

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

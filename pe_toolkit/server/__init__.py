"""The offline mirror: a pe_toolkit store served as the Pixelated Empathy API v1.

``pe-toolkit serve`` runs it; from Python::

    from pe_toolkit.server import ServerConfig, ServerThread, create_app
    config = ServerConfig.from_settings(db_path="data/pe_cache.duckdb", keys=("my-key",))
    with ServerThread(create_app(config)) as server:
        ...  # server.url is http://127.0.0.1:<port>

Layout: ``config`` (settings), ``envelope`` / ``handlers`` (the response
shape and every error), ``gateway`` / ``ratelimit`` (keys, budgets, body
size), ``routes/`` (one module per area), ``objects`` (the served
conversation snapshot), ``watcher`` (store changes), ``search`` (BM25),
``jobs`` / ``tasks`` / ``exports`` (background work), ``hub`` (SSE and
WebSocket fan-out), ``mirror`` (those parts, one set per app), ``app``
(the factory), ``runner`` (uvicorn).
docs/server.md is the user's guide.
"""

from __future__ import annotations

from .app import create_app
from .config import ServerConfig, is_loopback
from .mirror import Mirror
from .runner import ServerThread, serve

__all__ = ["Mirror", "ServerConfig", "ServerThread", "create_app", "is_loopback", "serve"]

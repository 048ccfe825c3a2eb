"""The contract's routes, one module per area."""

from __future__ import annotations

from fastapi import APIRouter

from . import conversations, exports, live, meta, processing, quality, search, statistics

FAST_ROUTES = conversations.FAST_ROUTES


def routers() -> list[APIRouter]:
    return [
        meta.router,
        conversations.router,
        quality.router,
        processing.router,
        search.router,
        statistics.router,
        exports.router,
        live.router,
    ]

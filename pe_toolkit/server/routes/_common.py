"""Helpers shared by the route modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from starlette.requests import HTTPConnection

from ..envelope import not_found

if TYPE_CHECKING:
    from ..mirror import Mirror

Tier = Literal["basic", "standard", "professional", "clinical", "research"]
MAX_OFFSET = 10**12


def mirror(conn: HTTPConnection) -> Mirror:
    return conn.app.state.mirror


def require_dataset(conn: HTTPConnection, name: str) -> None:
    """404 for a dataset the store does not hold (``*`` means all)."""
    if name == "*":
        return
    if not mirror(conn).db.scalar("SELECT count(*) FROM (SELECT 1 FROM conversations WHERE dataset = ? LIMIT 1)", [name]):
        raise not_found(f"dataset {name!r}")


def base_url(conn: HTTPConnection) -> str:
    return str(conn.base_url).rstrip("/")

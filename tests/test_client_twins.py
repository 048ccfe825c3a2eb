"""Client and AsyncClient are twins (httpx style): the same public methods
with the same parameters, the async one's methods coroutines (or async
iterators where the sync one returns an iterator)."""

from __future__ import annotations

import inspect
from typing import Any

from pe_toolkit.client import AsyncClient, Client

# Where the twins differ on purpose, and why.
ONLY_SYNC = {
    "close": "the async twin closes with aclose(), as httpx.AsyncClient does",
    "stream_updates": "a blocking iterator with a reconnect thread; sync only (docs/client.md, Live updates)",
}
ONLY_ASYNC = {"aclose": "the awaitable twin of close()"}
PARAMETERS_ONLY_SYNC = {
    ("fetch_each", "cancel"): "a threading.Event that ends the fetch threads' waits (set by the sync's fetch thread "
    "on Ctrl-C); an async fetch is cancelled as a task",
}


def public(cls: type) -> dict[str, Any]:
    return {name: inspect.getattr_static(cls, name) for name in dir(cls) if not name.startswith("_")}


def parameters(function: Any, skip: frozenset[str] = frozenset()) -> list[tuple[str, Any, Any, Any]]:
    return [(p.name, p.kind, p.default, p.annotation) for p in inspect.signature(function).parameters.values() if p.name not in skip]


def test_both_clients_expose_the_same_public_names() -> None:
    sync, both = set(public(Client)), set(public(AsyncClient))
    assert sync - both == set(ONLY_SYNC)
    assert both - sync == set(ONLY_ASYNC)


def test_twin_methods_take_the_same_parameters() -> None:
    sync, other = public(Client), public(AsyncClient)
    compared = 0
    for name in sorted(set(sync) & set(other)):
        a, b = sync[name], other[name]
        if isinstance(a, property):
            assert isinstance(b, property), f"{name}: a property on Client only"
            continue
        assert inspect.isfunction(a) and inspect.isfunction(b), name
        only_sync = frozenset(p for n, p in PARAMETERS_ONLY_SYNC if n == name)
        assert parameters(a, only_sync) == parameters(b), f"{name}: {inspect.signature(a)} vs {inspect.signature(b)}"
        if inspect.isgeneratorfunction(a) or "Iterator[" in str(inspect.signature(a).return_annotation):
            assert inspect.isasyncgenfunction(b), f"AsyncClient.{name} should be an async iterator"
        else:
            assert inspect.iscoroutinefunction(b), f"AsyncClient.{name} should be a coroutine"
        compared += 1
    assert compared >= 20  # every route and flow, not an empty intersection


def test_the_twin_rule_notices_a_difference() -> None:
    class Twin:
        def get(self, name: str, *, full: bool = False) -> int:
            return 0

    class AsyncTwin:
        async def get(self, name: str, *, full: bool = True) -> int:
            return 0

    assert parameters(Twin.get) != parameters(AsyncTwin.get)

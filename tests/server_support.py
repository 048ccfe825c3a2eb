"""Fixtures and helpers for the offline mirror's tests (import what you use).

``mirror`` (module-scoped) serves a copy of a store built from the bundled
sample (data/sample.jsonl.gz; generated with the same seed when the file is
not there yet) with uvicorn on a free 127.0.0.1 port in a background thread.
``start_mirror(path, **config)`` serves any store with any settings, for
tests that need a small rate limit, a restart on the same port or faults
injected between client and server.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from pe_toolkit.config import Secret

from .conftest import SAMPLE
from .fault_injection import FaultInjector, Faults

KEYS = ("test-key-one", "test-key-two")
SAMPLE_N, SAMPLE_SEED = 2000, 7


@dataclass
class Served:
    url: str
    db_path: Path
    app: Any
    key: str = KEYS[0]
    injector: FaultInjector | None = None
    stop: Callable[[], None] = field(default=lambda: None, repr=False)
    """Stops the server and the mirror at once, as a crash would, mid-test."""

    @property
    def mirror(self) -> Any:
        return self.app.state.mirror

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 30.0), **kwargs)


def sample_file(folder: Path) -> Path:
    if SAMPLE.is_file():
        return SAMPLE
    from pe_toolkit import synth

    path = folder / "sample.jsonl.gz"
    if not path.exists():
        synth.write(path, SAMPLE_N, seed=SAMPLE_SEED, progress=False)
    return path


@pytest.fixture(scope="session")
def sample_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store holding the sample, to copy per server."""
    from pe_toolkit.ingest import import_file
    from pe_toolkit.store import Store

    folder = tmp_path_factory.mktemp("server_template")
    path = folder / "template.duckdb"
    with Store(path) as store:
        import_file(store, sample_file(folder), progress=False)
    return path


def copy_store(template: Path, folder: Path, name: str = "store.duckdb") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    shutil.copyfile(template, target)
    return target


@contextmanager
def start_mirror(
    db_path: Path, *, port: int = 0, faults: Faults | None = None, wrap: Callable[[Any], Any] | None = None, **settings: Any
) -> Iterator[Served]:
    """Serve ``db_path`` with ``settings`` (:class:`ServerConfig` fields) on
    ``port`` (0: a free one; a restarted server keeps its URL by passing the
    old one) and, with ``faults``, behind a :class:`FaultInjector`
    (``served.injector``); ``wrap(app)``, any other ASGI middleware between
    client and mirror (give it the app's ``state``, as FaultInjector does)."""
    from pe_toolkit.server import ServerConfig, ServerThread, create_app

    keys = tuple(Secret(k) for k in settings.pop("keys", KEYS))
    settings.setdefault("rate_limit", 1_000_000)
    settings.setdefault("poll_interval", 0.1)
    settings.setdefault("heartbeat", 0.5)
    config = ServerConfig(db_path=db_path, keys=keys, **settings)
    app = create_app(config)
    injector = FaultInjector(app, faults) if faults is not None else None
    outer = injector or app
    server = ServerThread(wrap(outer) if wrap is not None else outer, port=port, max_body_bytes=config.max_body_bytes)

    def stop() -> None:
        server.stop()
        app.state.mirror.stop()

    try:
        server.start()
    except BaseException:
        app.state.mirror.stop()
        raise
    try:
        served = Served(server.url, db_path, app, injector=injector, stop=stop)
        wait_until(lambda: served.mirror.snapshot.ready and served.mirror.search.ready.is_set(), what="the mirror to be ready")
        yield served
    finally:
        stop()


@pytest.fixture(scope="module")
def mirror(sample_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = copy_store(sample_store_template, tmp_path_factory.mktemp("mirror"))
    with start_mirror(db) as served:
        yield served


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy (a deadline against hangs, not a
    timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


ENVELOPE_KEYS = {"success", "data", "message", "timestamp", "request_id"}


def check_envelope(response: httpx.Response, status: int, *, code: str | None = None) -> Any:
    """Assert the contract's envelope and return ``data`` (or the error)."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert ENVELOPE_KEYS <= body.keys(), body.keys()
    assert isinstance(body["success"], bool) and isinstance(body["message"], str)
    datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert body["request_id"] and body["request_id"] == response.headers["x-request-id"]
    if 200 <= status < 300:
        assert body["success"] is True and "error" not in body
        return body["data"]
    assert body["success"] is False
    error = body["error"]
    assert {"code", "message", "details", "request_id"} <= error.keys()
    assert error["request_id"] == body["request_id"]
    if code is not None:
        assert error["code"] == code, error
    return error


def rate_headers(response: httpx.Response) -> tuple[int, int, int]:
    return (
        int(response.headers["x-ratelimit-limit"]),
        int(response.headers["x-ratelimit-remaining"]),
        int(response.headers["x-ratelimit-reset"]),
    )

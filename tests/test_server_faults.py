"""The fault-injection layer (tests/fault_injection.py) against the real mirror."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from pe_toolkit.config import Secret
from pe_toolkit.server import ServerConfig, create_app

from .fault_injection import KINDS, FaultInjector, Faults, serve_with_faults
from .server_support import KEYS, check_envelope, copy_store


@pytest.fixture(scope="module")
def faulty(sample_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FaultInjector]]:
    db = copy_store(sample_store_template, tmp_path_factory.mktemp("faults"))
    app = create_app(ServerConfig(db_path=db, keys=(Secret(KEYS[0]),), rate_limit=1_000_000))
    try:
        with serve_with_faults(app, Faults(seed=3)) as served:
            yield served
    finally:
        app.state.mirror.stop()


@pytest.fixture
def client(faulty: tuple[str, FaultInjector]) -> Iterator[httpx.Client]:
    url, injector = faulty
    injector.configure(**{f: 0.0 for f in ("drop", "error_500", "error_503", "burst_429", "truncate", "invalid_json", "delay")})
    injector.reset()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEYS[0]}"}, timeout=10) as c:
        yield c


def test_scripted_faults_in_order(faulty: tuple[str, FaultInjector], client: httpx.Client) -> None:
    _, injector = faulty
    injector.script("500", "503", "ok", "truncate", "invalid_json", "delay")
    check_envelope(client.get("/v1/datasets"), 500, code="PROCESSING_ERROR")
    unavailable = client.get("/v1/datasets")
    check_envelope(unavailable, 503, code="PROCESSING_ERROR")
    assert unavailable.headers["retry-after"] == "1"
    check_envelope(client.get("/v1/datasets"), 200)
    cut = client.get("/v1/datasets")
    assert cut.status_code == 200 and int(cut.headers["content-length"]) == len(cut.content)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(cut.content)
    html = client.get("/v1/datasets")
    assert html.headers["content-type"] == "application/json" and html.content.startswith(b"<!DOCTYPE html>")
    check_envelope(client.get("/v1/datasets"), 200)
    assert [kind for _, kind in injector.log] == ["500", "503", "ok", "truncate", "invalid_json", "delay"]


def test_429_bursts_carry_retry_after_and_the_envelope(faulty: tuple[str, FaultInjector], client: httpx.Client) -> None:
    _, injector = faulty
    injector.configure(burst_length=3, retry_after=2)
    injector.script("429")
    answers = [client.get("/v1/conversations") for _ in range(4)]
    assert [r.status_code for r in answers] == [429, 429, 429, 200]
    error = check_envelope(answers[0], 429, code="RATE_LIMIT_EXCEEDED")
    assert error["retry_after"] == 2 and answers[0].headers["retry-after"] == "2"
    assert answers[0].headers["x-ratelimit-remaining"] == "0"


def test_dropped_connections_reach_the_client_as_transport_errors(faulty: tuple[str, FaultInjector], client: httpx.Client) -> None:
    _, injector = faulty
    injector.script("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/datasets")
    check_envelope(client.get("/v1/datasets"), 200)  # the server lives on


def test_rates_are_deterministic_for_a_seed(faulty: tuple[str, FaultInjector], client: httpx.Client) -> None:
    _, injector = faulty
    rates = {"error_500": 0.1, "error_503": 0.1, "burst_429": 0.05, "truncate": 0.1, "invalid_json": 0.05, "delay": 0.1, "delay_seconds": 0.01}
    runs = []
    for _ in range(2):
        injector.configure(**rates)
        injector.reset()
        for _ in range(60):
            client.get("/v1/datasets")
        runs.append([kind for _, kind in injector.log])
    assert runs[0] == runs[1]
    assert {"ok", "500", "503", "truncate"} <= set(runs[0])


def test_public_routes_are_untouched_by_default(faulty: tuple[str, FaultInjector], client: httpx.Client) -> None:
    _, injector = faulty
    injector.configure(error_500=1.0)
    check_envelope(client.get("/health"), 200)
    check_envelope(client.get("/v1/datasets"), 500)


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError):
        Faults(error_500=1.5)
    with pytest.raises(ValueError):
        Faults(burst_length=0)
    with pytest.raises(ValueError):
        FaultInjector(lambda *a: None).script("boom")
    assert set(KINDS) == {"ok", "500", "503", "429", "delay", "truncate", "invalid_json", "drop"}

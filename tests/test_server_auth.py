"""Keys, rate limits and the server's settings."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pe_toolkit.config import Secret, load_settings
from pe_toolkit.errors import ConfigError
from pe_toolkit.server import ServerConfig, is_loopback
from pe_toolkit.server.gateway import KeyRing
from pe_toolkit.server.ratelimit import RateLimiter

from .server_support import KEYS, Served, check_envelope, copy_store, rate_headers, start_mirror


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {KEYS[0]}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {KEYS[0]}x"},
        {"Authorization": f"Bearer {KEYS[0][:-1]}"},
    ],
)
def test_v1_needs_a_valid_bearer_key(mirror: Served, headers: dict) -> None:
    response = httpx.get(mirror.url + "/v1/datasets", headers=headers)
    error = check_envelope(response, 401, code="INVALID_API_KEY")
    assert response.headers["www-authenticate"] == "Bearer"
    assert KEYS[0] not in response.text and "wrong-key" not in response.text
    assert rate_headers(response)[0] == mirror.mirror.config.rate_limit
    assert error["message"]


def test_both_configured_keys_work_and_public_routes_need_none(mirror: Served) -> None:
    for key in KEYS:
        with mirror.client(key=key) as client:
            check_envelope(client.get("/v1/datasets"), 200)
    check_envelope(httpx.get(mirror.url + "/health"), 200)
    check_envelope(httpx.get(mirror.url + "/v1/conversations/x"), 401, code="INVALID_API_KEY")


def test_rate_limit_per_key_with_retry_after(sample_store_template: Path, tmp_path: Path) -> None:
    db = copy_store(sample_store_template, tmp_path)
    with start_mirror(db, rate_limit=3) as served:
        with served.client(key=KEYS[0]) as one, served.client(key=KEYS[1]) as two:
            answers = [one.get("/v1/datasets") for _ in range(3)]
            assert [rate_headers(r)[1] for r in answers] == [2, 1, 0]
            limited = one.get("/v1/conversations")
            error = check_envelope(limited, 429, code="RATE_LIMIT_EXCEEDED")
            assert isinstance(error["retry_after"], int) and error["retry_after"] >= 1
            assert int(limited.headers["retry-after"]) == error["retry_after"]
            assert rate_headers(limited)[1] == 0
            reset = rate_headers(limited)[2]
            assert reset == rate_headers(answers[0])[2]
            # the other key has its own budget; the limited one stays limited
            check_envelope(two.get("/v1/datasets"), 200)
            check_envelope(one.get("/v1/datasets"), 429, code="RATE_LIMIT_EXCEEDED")
        # requests without a valid key are budgeted per address: guessing is throttled
        codes = [httpx.get(served.url + "/v1/datasets", headers={"Authorization": f"Bearer guess{i}"}).status_code for i in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        check_envelope(httpx.get(served.url + "/health"), 200)


def test_rate_limiter_windows_with_a_fake_clock() -> None:
    now = [7200.0]
    limiter = RateLimiter(2, 3600, clock=lambda: now[0])
    assert [limiter.hit("a").allowed for _ in range(3)] == [True, True, False]
    denied = limiter.hit("a")
    assert denied.retry_after == 3600 and denied.reset == 10800 and denied.remaining == 0
    assert limiter.hit("b").remaining == 1
    now[0] = 10799.5
    assert limiter.hit("a").retry_after == 1
    now[0] = 10800.0
    fresh = limiter.hit("a")
    assert fresh.allowed and fresh.remaining == 1 and fresh.reset == 14400
    assert limiter.peek("a").remaining == 1
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_keyring_matches_without_showing_keys() -> None:
    ring = KeyRing((Secret("alpha"), Secret("beta")))
    assert ring.match(b"beta") == 1 and ring.match(b"alpha") == 0
    assert ring.match(b"alph") is None and ring.match(b"") is None
    assert "alpha" not in repr(ring) and "beta" not in repr(ring) and len(ring) == 2


def test_config_refuses_an_open_network_server_without_keys(tmp_path: Path) -> None:
    settings = load_settings(cache_path=tmp_path / "c.duckdb")
    with pytest.raises(ConfigError, match="without API keys"):
        ServerConfig.from_settings(settings, host="0.0.0.0", generate_missing_key=True)
    with pytest.raises(ConfigError, match="no server keys"):
        ServerConfig.from_settings(settings, host="127.0.0.1")
    local = ServerConfig.from_settings(settings, host="127.0.0.1", generate_missing_key=True)
    assert local.generated_key and len(local.keys) == 1 and len(local.keys[0].reveal()) > 30
    assert local.keys[0].reveal() not in repr(local)
    assert local.state_dir == Path(f"{tmp_path / 'c.duckdb'}.server")


def test_config_reads_keys_and_limit_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PE_SERVER_KEYS", "k-one-0123456789, k-two-0123456789")
    monkeypatch.setenv("PE_RATE_LIMIT", "25")
    config = ServerConfig.from_settings(load_settings(cache_path=tmp_path / "c.duckdb"), host="0.0.0.0")
    assert [k.reveal() for k in config.keys] == ["k-one-0123456789", "k-two-0123456789"]  # 16+: beyond loopback
    assert config.rate_limit == 25 and config.host == "0.0.0.0"
    with pytest.raises(ConfigError):
        ServerConfig(db_path=tmp_path / "x", keys=(Secret(" "),))
    with pytest.raises(ConfigError, match="rate_limit"):
        ServerConfig(db_path=tmp_path / "x", keys=(Secret("k"),), rate_limit=0)


@pytest.mark.parametrize(("host", "local"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("127.3.2.1", True), ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)])
def test_is_loopback(host: str, local: bool) -> None:
    assert is_loopback(host) is local

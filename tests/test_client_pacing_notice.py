"""A pull that waits says so (issue 15, part 6): pacing and Retry-After
waits announced once, with how long, why and the setting; and a mirror on
loopback does not throttle its own users unless asked to."""

from __future__ import annotations

import io
import logging
import re
import time
from pathlib import Path

import pytest
from tqdm import tqdm

from pe_toolkit.client import Client
from pe_toolkit.client.core import Call, CallState, RequestCore
from pe_toolkit.client.pacing import PacingPolicy
from pe_toolkit.config import Secret, load_settings
from pe_toolkit.server import ServerConfig
from pe_toolkit.server.ratelimit import RateLimiter

from .client_support import KEY, make_client
from .server_support import copy_store, start_mirror

LOGGER = "pe_toolkit.client"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def _budget(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining), "x-ratelimit-reset": str(reset)}


def test_pacing_waits_are_announced_once_with_the_reason_and_the_setting(caplog) -> None:
    core = RequestCore(("http://127.0.0.1:9/v1",), Secret("k" * 20), pacing=PacingPolicy(max_wait=1000))
    endpoint = core.endpoints[0]
    endpoint.pacer.observe(_budget(1000, 12, time.time() + 600))  # 12 left for 10 minutes: ~50 s apart
    out = io.StringIO()
    with caplog.at_level(logging.WARNING, LOGGER), tqdm(total=10, file=out) as bar, core.waits.shown_on(bar):
        delays = [core.plan(Call("GET", "/datasets"), CallState()).delay for _ in range(3)]
    assert delays[0] == 0 and delays[1] > 40  # the first of the reserve goes at once
    said = _warnings(caplog)
    assert len(said) == 1  # once, not before every paced request
    text = said[0]
    assert f"waiting {delays[1]:.0f} s" in text and "10 of 1000 requests are left" in text  # after the two booked
    assert "PacingPolicy" in text and "PE_RATE_LIMIT" in text and "k" * 20 not in text
    assert bar.postfix and "paced" in bar.postfix


def test_short_waits_are_not_announced(caplog) -> None:
    core = RequestCore(("http://127.0.0.1:9/v1",), None, pacing=PacingPolicy(max_wait=1000))
    core.endpoints[0].pacer.observe(_budget(1000, 50, time.time() + 60))  # ~1.2 s apart
    with caplog.at_level(logging.WARNING, LOGGER):
        assert 0 < max(core.plan(Call("GET", "/x"), CallState()).delay for _ in range(3)) < 5
    assert _warnings(caplog) == []


def _window_start(window: float) -> None:
    """Sleep to just after a window boundary (windows are aligned to the epoch)."""
    time.sleep(window - time.time() % window + 0.05)


def test_a_spent_budget_on_a_real_mirror_is_waited_out_with_a_word(sample_store_template: Path, tmp_path: Path, caplog) -> None:
    # A 6 s window: with 3 s the first three requests once spilled into the
    # next window on a loaded machine (a CI run beside other work), and a
    # second wait was announced.
    with start_mirror(copy_store(sample_store_template, tmp_path), rate_limit=3, rate_window=6) as served:
        with make_client(served.url, pacing=PacingPolicy(notice_after=0.5)) as client, caplog.at_level(logging.WARNING, LOGGER):
            _window_start(6)
            for _ in range(5):  # the fourth waits for the next window
                client.list_datasets()
    said = _warnings(caplog)
    # One word per wait, not one per paced request. Usually there is one wait;
    # on a loaded machine (a CI run of the whole suite) the first requests have
    # spilled over a window boundary even with 6 s windows, and a second,
    # separate wait was announced, so the check is one notice per window reset.
    assert said and all("requests of the rate-limit window are spent" in w and "max_wait" in w for w in said)
    resets = [re.search(r"the window resets at (\S+)", w) for w in said]
    assert all(resets) and len({m.group(1) for m in resets if m}) == len(said), said
    assert all(KEY not in w for w in said)


def test_a_retry_after_wait_is_announced_once(sample_store_template: Path, tmp_path: Path, caplog) -> None:
    with start_mirror(copy_store(sample_store_template, tmp_path), rate_limit=2, rate_window=3) as served:
        # Pacing off: the client runs into the 429 and honours its Retry-After.
        with make_client(served.url, pacing=PacingPolicy(enabled=False, notice_after=0.5)) as client, caplog.at_level(logging.WARNING, LOGGER):
            _window_start(3)
            for _ in range(3):
                client.list_datasets()
    said = _warnings(caplog)
    assert len(said) == 1 and "Retry-After" in said[0] and "RetryPolicy" in said[0] and "429" in said[0]


# -- the mirror's default budget ---------------------------------------------------------------
def test_a_loopback_mirror_has_no_limit_unless_asked(tmp_path: Path, monkeypatch) -> None:
    keys = (Secret("a-long-enough-server-key"),)
    assert ServerConfig(db_path=tmp_path / "x", keys=keys).rate_limit is None
    assert ServerConfig(db_path=tmp_path / "x", keys=keys, host="0.0.0.0").rate_limit == 1000  # the upstream's
    assert ServerConfig.from_settings(load_settings(), db_path=tmp_path / "x", keys=keys).rate_limit is None
    monkeypatch.setenv("PE_RATE_LIMIT", "1000")
    assert ServerConfig.from_settings(load_settings(), db_path=tmp_path / "x", keys=keys).rate_limit == 1000
    unlimited = RateLimiter(None)
    assert all(unlimited.hit("key:0").allowed for _ in range(5000)) and unlimited.hit("key:0").headers() == []


def test_a_default_loopback_mirror_sends_no_budget(sample_store_template: Path, tmp_path: Path) -> None:
    with start_mirror(copy_store(sample_store_template, tmp_path), rate_limit=None) as served:
        with Client(KEY, served.url) as client:
            for _ in range(3):
                client.list_datasets()
            assert client.endpoints[0].pacer.limit is None  # nothing to pace by
            assert client.api_info().raw["rate_limit"]["requests"] is None
            assert client.get_statistics().raw["api_usage"]["this_key"]["remaining"] is None

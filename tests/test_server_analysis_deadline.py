"""Request-time analysis runs under a deadline (issue 15, section 8): a body
whose scan outlives it answers a 504 envelope in time, its worker process is
stopped (a client that left frees the core), and the next request is served."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from websockets.sync.client import connect

from .server_support import KEYS, Served, check_envelope, copy_store, start_mirror, wait_until

DEADLINE = 1.0
BODY_LIMIT = 24 * 1024 * 1024
SLACK = 6.0  # terminating the worker and answering, on a loaded 2-core machine

SMALL = {
    "id": "c_small",
    "messages": [
        {"role": "user", "content": "I have not been sleeping well since the move."},
        {"role": "assistant", "content": "That sounds exhausting. What has the move changed for you?"},
    ],
}


def _adversarial() -> dict:
    # Runs of what the PII patterns look at (digits, e-mail and name shapes),
    # about 18 MB in all. Since long tokens scan in linear time, 1.8 MB of this
    # took 0.95 s on a quiet core, too close to the deadline (a CI run answered
    # 200); this is about six seconds of scanning on that core.
    parts = ["7" * 450_000, "a.b@c" * 90_000, "Dr. Jane Smith " * 30_000, "+1 212 555 0199 " * 28_000] * 10
    return {"id": "c_big", "messages": [{"role": "user", "content": p} for p in parts]}


@pytest.fixture(scope="module")
def tight(sample_store_template: Path, tmp_path_factory: pytest.TempPathFactory):
    db = copy_store(sample_store_template, tmp_path_factory.mktemp("deadline"))
    with start_mirror(db, analysis_deadline=DEADLINE, analysis_workers=1, max_body_bytes=BODY_LIMIT) as served:
        yield served


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _worker_pids(served: Served) -> list[int]:
    pool = served.mirror.analysis._pool
    return [p.pid for p in pool._processes.values()] if pool is not None else []


def test_a_scan_past_the_deadline_answers_504_and_frees_the_worker(tight: Served) -> None:
    with tight.client(timeout=120) as client:
        check_envelope(client.post("/v1/quality/validate", json=SMALL), 200)  # workers up and warm
        pids = _worker_pids(tight)
        assert pids
        started = time.monotonic()
        response = client.post("/v1/quality/validate", json=_adversarial())
        elapsed = time.monotonic() - started
        error = check_envelope(response, 504, code="PROCESSING_ERROR")
        assert "deadline" in error["message"] and f"{DEADLINE:g} s" in error["message"]
        assert elapsed < DEADLINE + SLACK, elapsed
        wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=10, what="the stuck worker to end")
        data = check_envelope(client.post("/v1/quality/validate", json=SMALL), 200)
        assert data["conversation_id"] == "c_small"
        assert set(_worker_pids(tight)).isdisjoint(pids)


def _reply(sock, request_id: str, timeout: float) -> dict:
    while True:
        reply = orjson.loads(sock.recv(timeout=timeout))
        if reply.get("request_id") == request_id:
            return reply


def test_websocket_analysis_gets_the_same_deadline(tight: Served) -> None:
    url = tight.url.replace("http://", "ws://") + "/v1/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {KEYS[0]}"}, open_timeout=10, max_size=None) as sock:
        sock.send(orjson.dumps({"type": "analyze_conversation", "request_id": "r1", "data": {"conversation": _adversarial()}}).decode())
        started = time.monotonic()
        reply = _reply(sock, "r1", DEADLINE + SLACK + 5)
        assert time.monotonic() - started < DEADLINE + SLACK
        assert reply["success"] is False and "deadline" in reply["error"]["message"], reply
        sock.send(orjson.dumps({"type": "analyze_conversation", "request_id": "r2", "data": {"conversation": SMALL}}).decode())
        reply = _reply(sock, "r2", 120)
        assert reply["success"] is True and reply["type"] == "analysis_result"

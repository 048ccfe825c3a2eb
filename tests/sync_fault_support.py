"""Shared by the two fault-injection sync tests: the source corpus (5,000
conversations, 12 of them damaged) and the fault mix."""

from __future__ import annotations

import orjson
import pytest

from pe_toolkit.store import Store

from .client_support import build_source
from .server_support import wait_until

N, INVALID = 5000, 12

# The mix: 20% 5xx (a quarter of them 503 with Retry-After: 1 s),
# 5% slow answers that pass the client's timeout, 429 bursts with
# Retry-After, cut and invalid bodies, dropped connections. (Every 503 and
# 429 costs a second of honoured Retry-After; the rates keep the file
# within the test budget.)
FAULTS = dict(
    error_500=0.15, error_503=0.05, delay=0.05, delay_seconds=1.0, burst_429=0.001, truncate=0.02, invalid_json=0.02, drop=0.01
)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fault_source")
    path, bad = build_source(folder, N, seed=21, invalid=INVALID)
    with Store(path, read_only=True) as store:
        originals = {cid: store.conversation(cid) for cid in bad}
    return path, set(bad), originals


def fix_source(served, originals: dict, folder) -> None:
    """Repair the damaged conversations at the source, as upstream would."""
    from pe_toolkit.ingest import import_file

    fixes = {}
    for cid, obj in originals.items():
        obj = dict(obj)
        if not obj["messages"]:  # the one whose messages were deleted: give it some back
            obj["messages"] = [{"role": "user", "content": "hello again"}, {"role": "assistant", "content": "I'm here."}]
        if (obj.get("quality_metrics") or {}).get("overall_quality", 0) > 1:
            obj["quality_metrics"] = {**obj["quality_metrics"], "overall_quality": 0.5}
        obj["messages"] = [{**m, "role": "user" if m["role"] == "narrator" else m["role"]} for m in obj["messages"]]
        fixes[cid] = obj
    path = folder / "fixes.jsonl"
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in fixes.values()))
    import_file(served.mirror.store, path, progress=False)
    wait_until(lambda: all(served.mirror.snapshot.get(cid) is not None and orjson.loads(served.mirror.snapshot.get(cid))["messages"] for cid in fixes), what="the fixes to be served")



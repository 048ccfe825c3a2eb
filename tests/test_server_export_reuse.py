"""Exports cannot fill the disk (issue 15, part 8): an identical recent
export is answered with the same file, and exports are held to a disk
quota per key and in total. Real mirror on loopback, real files."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from .conftest import conversation
from .server_support import KEYS, Served, check_envelope, copy_store, start_mirror, wait_until

PEER = {"dataset": "peer_support", "format": "jsonl"}


def _ready(client, export_id: str) -> dict:
    def done() -> dict | None:
        info = check_envelope(client.get(f"/v1/exports/{export_id}"), 200)
        return info if info["status"] != "processing" else None

    info = wait_until(done, timeout=60, what=f"export {export_id}")
    assert info["status"] == "ready", info
    return info


def _files(served: Served) -> list[Path]:
    return sorted(p for p in served.mirror.config.exports_dir.iterdir() if not p.name.startswith("."))


def test_identical_exports_share_one_file_until_the_store_changes(sample_store_template: Path, tmp_path: Path) -> None:
    db = copy_store(sample_store_template, tmp_path)
    with start_mirror(db) as served, served.client() as client:
        # Twenty identical requests, some at once: one export, one file.
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: client.post("/v1/export", data=PEER), range(20)))
        ids = {check_envelope(a, 202)["export_id"] for a in answers}
        assert len(ids) == 1
        (export_id,) = ids
        first = _ready(client, export_id)
        assert len(_files(served)) == 1
        body = client.get(first["download_url"]).content
        again = check_envelope(client.post("/v1/export", data=PEER), 202)
        assert again["export_id"] == export_id and again["status"] == "ready" and again["reused"] is True
        assert again["expires_at"] >= first["expires_at"]  # a reuse gives the full lifetime again
        # Another key asking the same gets the same file (downloads are not per key).
        with served.client(KEYS[1]) as other:
            assert check_envelope(other.post("/v1/export", data=PEER), 202)["export_id"] == export_id
        # Different filters or format: a different export.
        redacted = check_envelope(client.post("/v1/export", data={**PEER, "redact": "true"}), 202)
        csv = check_envelope(client.post("/v1/export", data={**PEER, "format": "csv"}), 202)
        assert len({export_id, redacted["export_id"], csv["export_id"]}) == 3
        _ready(client, redacted["export_id"])
        _ready(client, csv["export_id"])
        # The store changes: the old file no longer says what the store holds.
        path = tmp_path / "new.jsonl"
        record = conversation(9300, dataset="peer_support")
        path.write_bytes(orjson.dumps(record) + b"\n")
        with Store(db) as store:
            import_file(store, path, progress=False)
        fresh = check_envelope(client.post("/v1/export", data=PEER), 202)
        assert fresh["export_id"] != export_id and fresh.get("reused") is not True
        _ready(client, fresh["export_id"])
        newer = client.get(fresh["download_url"]).content
        assert len(newer.splitlines()) == len(body.splitlines()) + 1
        assert len(_files(served)) == 4


def test_exports_are_held_to_a_quota_per_key_and_in_total(sample_store_template: Path, tmp_path: Path) -> None:
    db = copy_store(sample_store_template, tmp_path)
    with start_mirror(db) as served, served.client() as client:
        first = check_envelope(client.post("/v1/export", data=PEER), 202)
        size = _ready(client, first["export_id"])["estimated_size"]
        assert size == (_files(served)[0]).stat().st_size
    other = {"dataset": "cbt_coaching", "format": "jsonl"}
    # Key one already holds `size` bytes of exports (the record survives a
    # restart); a quota of a little more leaves no room for another.
    with start_mirror(db, export_quota_per_key=size + 1000) as served, served.client() as client:
        error = check_envelope(client.post("/v1/export", data=other), 429, code="RATE_LIMIT_EXCEEDED")  # the contract's 429
        assert "quota" in error["message"] and "per key" in error["message"] and error["details"] == "export_quota"
        retry = client.post("/v1/export", data=other).headers["retry-after"]
        assert 0 < int(retry) <= 24 * 3600
        # The same export again costs no disk: still answered.
        assert check_envelope(client.post("/v1/export", data=PEER), 202)["export_id"] == first["export_id"]
        # The other key has its own quota.
        with served.client(KEYS[1]) as second:
            accepted = check_envelope(second.post("/v1/export", data=other), 202)
            _ready(second, accepted["export_id"])
        assert not any(p.name.startswith(".") for p in served.mirror.config.exports_dir.iterdir())
    # In total: the server's exports folder may hold this much, whoever asks.
    third = {"dataset": "wellbeing_chat", "format": "jsonl"}
    with start_mirror(db, export_quota_total=size * 2) as served, served.client(KEYS[1]) as client:
        error = check_envelope(client.post("/v1/export", data=third), 507, code="EXPORT_ERROR")
        assert "quota" in error["message"] and "in total" in error["message"]
        assert int(client.post("/v1/export", data=third).headers["retry-after"]) > 0
        # processing/submit writes exports too: the same limits.
        submitted = client.post(
            "/v1/processing/submit",
            json={"dataset_name": "wellbeing_chat", "processing_type": "export", "parameters": {"format": "jsonl"}},
        )
        check_envelope(submitted, 507, code="EXPORT_ERROR")
    # An export larger than the quota itself: no wait helps, so no 429 and no Retry-After.
    with start_mirror(db, export_quota_per_key=1000) as served, served.client() as client:
        refused = client.post("/v1/export", data=third)
        error = check_envelope(refused, 403, code="EXPORT_ERROR")
        assert "more than the export quota per key" in error["message"] and "retry-after" not in refused.headers
    # And never past the free space of the disk (a reserve kept free).
    with start_mirror(db, export_min_free_bytes=1 << 62) as served, served.client() as client:
        error = check_envelope(client.post("/v1/export", data=third), 507, code="EXPORT_ERROR")
        assert "free" in error["message"]

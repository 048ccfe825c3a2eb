"""Helpers for the client and sync tests: real mirrors on loopback.

Built on tests/server_support.py, the mirror's own fixtures (its
``start_mirror`` serves a store, on a chosen port and behind a fault
injector if asked). What is added here: a client with quick retries; a source corpus with some conversations that fail
validation; and the comparison of a synced store with its source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from pe_toolkit.client import Client, RetryPolicy
from pe_toolkit.client.core import BreakerPolicy
from pe_toolkit.store import Store
from pe_toolkit.store.api_objects import api_objects_sql

from .server_support import KEYS

KEY = KEYS[0]
# Quick retries: the policy is the production one, only the waits are short.
FAST_RETRY = RetryPolicy(max_attempts=12, max_elapsed=60.0, backoff_base=0.01, max_backoff=0.1)


def make_client(url: str | list[str], *, key: str = KEY, **kwargs: Any) -> Client:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("breaker", BreakerPolicy(failure_threshold=1000, recovery_timeout=1.0))
    return Client(key, url, **kwargs)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def build_source(folder: Path, n: int, *, seed: int = 5, invalid: int = 0, name: str = "source.duckdb") -> tuple[Path, list[str]]:
    """A store of ``n`` synthetic conversations; ``invalid`` of them are
    damaged in ways the API contract forbids (unknown role, a metric above
    1, no messages), as a buggy upstream could serve them. Returns the path
    and the damaged ids."""
    from pe_toolkit import synth
    from pe_toolkit.ingest import import_file

    folder.mkdir(parents=True, exist_ok=True)
    jsonl = folder / f"{name}.jsonl"
    synth.write(jsonl, n, seed=seed, progress=False)
    path = folder / name
    with Store(path) as store:
        import_file(store, jsonl, progress=False)
        ids = [r[0] for r in store.connection.execute("SELECT id FROM conversations ORDER BY id").fetchall()]
        step = max(1, n // max(invalid, 1))
        bad = ids[::step][:invalid]
        with store.transaction() as con:
            for k, cid in enumerate(bad):
                if k % 3 == 0:
                    con.execute("UPDATE messages SET role = 'narrator' WHERE conversation_id = ? AND idx = 0", [cid])
                elif k % 3 == 1:
                    con.execute("UPDATE conversations SET overall_quality = 1.5 WHERE id = ?", [cid])
                else:
                    con.execute("DELETE FROM messages WHERE conversation_id = ?", [cid])
                    con.execute("UPDATE conversations SET message_count = 0 WHERE id = ?", [cid])
                # Damage written behind the store's back keeps the old hash;
                # mark it changed, as a real upstream edit would be.
                con.execute("UPDATE conversations SET content_hash = 'damaged-' || content_hash WHERE id = ?", [cid])
    jsonl.unlink()
    return path, bad


def api_objects(con_or_store: Any) -> dict[str, Any]:
    """id -> the API conversation object (as parsed JSON) of every conversation."""
    con = con_or_store.connection if isinstance(con_or_store, Store) else con_or_store
    sql, params = api_objects_sql()
    return {cid: orjson.loads(text) for cid, text in con.execute(sql, params).fetchall()}


def hashes(store: Store) -> dict[str, str]:
    return dict(store.connection.execute("SELECT id, content_hash FROM conversations").fetchall())


def reference_hashes(source: Any, folder: Path, exclude: set[str] = frozenset()) -> dict[str, str]:
    """Content hashes of the source's conversations *as the API serves
    them*: the source's objects imported into a fresh store. (The source's
    own hashes differ: the API rebuilds metadata with the owned keys last,
    and the hash covers the metadata text.) ``source``: a DuckDB connection
    to the served store (``served.mirror.store.cursor()``)."""
    from pe_toolkit.ingest import import_file

    folder.mkdir(parents=True, exist_ok=True)
    objects = api_objects(source)
    lines = folder / "served_objects.jsonl"
    lines.write_bytes(b"".join(orjson.dumps(o) + b"\n" for cid, o in objects.items() if cid not in exclude))
    reference = folder / "reference.duckdb"
    for old in folder.glob("reference.duckdb*"):
        old.unlink()
    with Store(reference) as ref:
        import_file(ref, lines, progress=False)
        return hashes(ref)


def assert_equal_to_source(store: Store, source: Any, folder: Path, *, invalid: set[str] = frozenset()) -> None:
    """``store`` holds exactly the source's valid conversations (ids, API
    objects and content hashes) and has the invalid ones, and nothing
    else, in dead_letters. ``source``: a connection to the served store."""
    expected = reference_hashes(source, folder, exclude=set(invalid))
    got = hashes(store)
    assert set(got) == set(expected), (sorted(set(expected) - set(got))[:5], sorted(set(got) - set(expected))[:5])
    assert got == expected
    served = api_objects(source)
    mine = api_objects(store)
    assert all(mine[cid] == served[cid] for cid in got)
    dead = store.dead_letters()
    assert set(dead["locator"].to_list()) == set(invalid)
    if invalid:
        assert dead["reason"].str.len_chars().min() > 0
    assert store.scalar("SELECT count(*) - count(DISTINCT id) FROM conversations") == 0
    assert store.scalar("SELECT count(*) FROM (SELECT conversation_id, idx FROM messages GROUP BY ALL HAVING count(*) > 1)") == 0

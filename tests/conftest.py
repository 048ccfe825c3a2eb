"""Shared fixtures: every test runs with its own cache file and no config
from the developer's machine leaking in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# A throwaway PostgreSQL when none runs (tests/pg_cluster.py), a last line
# naming what was skipped and why (tests/skip_summary.py), and the shared
# fixtures: the served sample mirror (tests/server_support.py) and the
# fault-injection source corpus (tests/sync_fault_support.py). Tests ask for
# these fixtures by name; their helper functions are imported as usual.
pytest_plugins = ("tests.pg_cluster", "tests.skip_summary", "tests.server_support", "tests.sync_fault_support", "tests.warehouse_support")

# Property tests: random examples locally (new ones every run, failures kept
# in .hypothesis/ and replayed first), fixed ones in CI so a red run can be
# reproduced exactly (`PE_HYPOTHESIS_PROFILE=ci pytest ...`). A test's own
# @settings(max_examples=...) wins over the profile's count; pin every
# counterexample found with @example.
hypothesis_settings.register_profile("dev", deadline=None, max_examples=50)
hypothesis_settings.register_profile("ci", deadline=None, max_examples=200, derandomize=True, database=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("PE_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample.jsonl.gz"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python process: this checkout's package
    first on its path, none of the developer's PE_ settings, then ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PE_")} | {"PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No PE_* settings from outside, nor the developer's user-level config
    file (read beneath every project's); the default cache lives in tmp_path."""
    for key in list(os.environ):
        if key.startswith("PE_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-config"))
    monkeypatch.setenv("PE_CACHE", str(tmp_path / "cache.duckdb"))
    monkeypatch.setenv("PE_NO_PROGRESS", "1")
    yield


@pytest.fixture
def store(tmp_path):
    from pe_toolkit.store import Store

    with Store(tmp_path / "store.duckdb") as s:
        yield s


@pytest.fixture
def write_jsonl(tmp_path):
    """Write records (dicts or raw strings) as JSON lines; returns the path."""
    import gzip

    import orjson

    def write(records, name="data.jsonl"):
        path = tmp_path / name
        lines = [r if isinstance(r, (str, bytes)) else orjson.dumps(r) for r in records]
        data = b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines)
        if name.endswith(".gz"):
            data = gzip.compress(data)
        path.write_bytes(data)
        return path

    return write


def conversation(i: int = 0, n_messages: int = 4, **meta):
    """A small valid API conversation object."""
    return {
        "id": f"conv_{i:05d}",
        "messages": [
            {"role": "user" if k % 2 == 0 else "assistant", "content": f"message {k} of conversation {i}", "timestamp": f"2025-03-04T10:{k:02d}:00Z"}
            for k in range(n_messages)
        ],
        "quality_metrics": {
            "therapeutic_accuracy": 0.7,
            "conversation_coherence": 0.8,
            "emotional_authenticity": 0.6,
            "clinical_compliance": 0.9,
            "safety_score": 0.95,
            "overall_quality": 0.75,
        },
        "metadata": {"dataset": meta.pop("dataset", "unit"), "tier": meta.pop("tier", "standard"), "created_at": "2025-03-04T10:00:00Z", **meta},
    }

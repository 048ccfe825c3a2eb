"""Redacted exports scan identifiers too: conversation ids, dataset names,
metadata keys and values (issue 15, section 8)."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from pe_toolkit.exports import export
from pe_toolkit.exports.redact import PSEUDONYM_PREFIX
from pe_toolkit.ingest.importer import import_file
from pe_toolkit.store import Store

pytest.importorskip("pe_toolkit.analysis.pii")

EMAIL_ID = "jane.doe@example.org-session-1"
PHONE_ID = "call-+44 20 7946 0958"
PLAIN_ID = "conv_000123"
IDENTIFYING = ("jane.doe@example.org", "7946 0958", "sam.roe@example.com", "555 0199")


def _record(cid: str, dataset: str, metadata: dict) -> dict:
    return {
        "id": cid,
        "messages": [
            {"role": "user", "content": "I have been sleeping badly."},
            {"role": "assistant", "content": "That sounds hard. What has changed lately?"},
        ],
        "metadata": {"dataset": dataset, **metadata},
    }


@pytest.fixture
def store(tmp_path):
    records = [
        _record(EMAIL_ID, "intake-sam.roe@example.com", {"note": "call (212) 555 0199", "sam.roe@example.com": "x"}),
        _record(PHONE_ID, "intake-sam.roe@example.com", {"note": "none"}),
        _record(PLAIN_ID, "plain", {"counsellor": "team b"}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    with Store(tmp_path / "store.duckdb") as s:
        import_file(s, src, progress=False)
        yield s


def _no_identifiers(text: str) -> None:
    for needle in IDENTIFYING:
        assert needle not in text, needle


def test_jsonl_export_pseudonymizes_ids_and_scans_dataset_and_metadata(tmp_path, store):
    export(store, tmp_path / "a.jsonl", format="jsonl", progress=False, redact=True)
    text = (tmp_path / "a.jsonl").read_text()
    _no_identifiers(text)
    ids = sorted(orjson.loads(line)["id"] for line in text.splitlines())
    assert PLAIN_ID in ids  # an id without PII is kept
    pseudo = [i for i in ids if i.startswith(PSEUDONYM_PREFIX)]
    assert len(pseudo) == 2 and len(set(pseudo)) == 2  # distinct ids stay distinct


def test_parquet_tables_still_join_after_pseudonymizing(tmp_path, store):
    export(store, tmp_path / "t", format="parquet", layout="tables", progress=False, redact=True)
    conversations = pl.read_parquet(tmp_path / "t" / "conversations.parquet")
    messages = pl.read_parquet(tmp_path / "t" / "messages.parquet")
    _no_identifiers(conversations.write_csv() + messages.write_csv())
    assert set(messages["conversation_id"]) == set(conversations["id"])
    assert conversations.join(messages, left_on="id", right_on="conversation_id").height == 6
    assert "[EMAIL]" in " ".join(conversations["dataset"].to_list())


def test_same_id_same_pseudonym_within_an_export_not_across(tmp_path, store):
    export(store, tmp_path / "n.parquet", format="parquet", layout="messages", progress=False, redact=True)
    export(store, tmp_path / "m.parquet", format="parquet", layout="messages", progress=False, redact=True)
    first = pl.read_parquet(tmp_path / "n.parquet")
    second = pl.read_parquet(tmp_path / "m.parquet")
    per_conversation = first.group_by("conversation_id").len()
    assert sorted(per_conversation["len"].to_list()) == [2, 2, 2]  # both messages of each under one pseudonym
    pseudo_first = {c for c in first["conversation_id"] if c.startswith(PSEUDONYM_PREFIX)}
    pseudo_second = {c for c in second["conversation_id"] if c.startswith(PSEUDONYM_PREFIX)}
    assert len(pseudo_first) == 2 and not pseudo_first & pseudo_second


def test_without_redact_ids_are_exported_as_stored(tmp_path, store):
    export(store, tmp_path / "raw.jsonl", format="jsonl", progress=False)
    ids = {orjson.loads(line)["id"] for line in (tmp_path / "raw.jsonl").read_text().splitlines()}
    assert ids == {EMAIL_ID, PHONE_ID, PLAIN_ID}


NAMED_ID = "session-priya-raman-01"


@pytest.fixture
def named_store(tmp_path):
    """A conversation whose id carries the client's name, said in its messages."""
    records = [
        {"id": NAMED_ID, "messages": [
            {"role": "user", "content": "Hi, my name is Priya Raman and I can't sleep."},
            {"role": "assistant", "content": "Thank you for telling me, Priya. What keeps you awake?"},
        ], "metadata": {"dataset": "intake"}},
        # The same words in an id, but no one in this conversation is named so.
        {"id": "session-raman-effect-02", "messages": [
            {"role": "user", "content": "I read about light scattering today and felt calmer."},
            {"role": "assistant", "content": "What about it helped?"},
        ], "metadata": {"dataset": "intake"}},
        _record(PLAIN_ID, "plain", {}),
    ]  # fmt: skip
    src = tmp_path / "named.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    with Store(tmp_path / "named.duckdb") as s:
        import_file(s, src, progress=False)
        yield s


@pytest.mark.parametrize(("fmt", "layout"), [("jsonl", None), ("parquet", "tables"), ("csv", None), ("parquet", "messages")])
def test_an_id_holding_a_name_said_in_its_conversation_is_pseudonymised(tmp_path, named_store, fmt, layout):
    out = tmp_path / ("t" if layout == "tables" else f"x.{fmt}")
    export(named_store, out, format=fmt, progress=False, redact=True, **({"layout": layout} if layout else {}))
    files = sorted(out.iterdir()) if out.is_dir() else [out]
    text = "".join(f.read_text() if f.suffix != ".parquet" else pl.read_parquet(f).write_csv() for f in files)
    assert "priya" not in text.lower()
    # Ids without a name of their own conversation are kept.
    assert "session-raman-effect-02" in text and PLAIN_ID in text
    assert PSEUDONYM_PREFIX in text
    if layout == "tables":
        conversations = pl.read_parquet(out / "conversations.parquet")
        messages = pl.read_parquet(out / "messages.parquet")
        assert set(messages["conversation_id"]) == set(conversations["id"])

"""Privacy audit of the redacted export paths: personal data that reached a
file written with ``redact=True``. Each test failed before its fix. Names,
e-mails and numbers are made up (07700 900xxx and 020 7946 0xxx are Ofcom's
drama ranges); crisis lines are the organisations' public numbers."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pytest

from pe_toolkit.exports import export
from pe_toolkit.ingest.importer import import_file
from pe_toolkit.store import Store

pytest.importorskip("pe_toolkit.analysis.pii")

from pe_toolkit.analysis.pii import find_pii, redact, redact_frame

FORMATS = [
    ("jsonl", None),
    ("sharegpt", None),
    ("csv", None),
    ("parquet", "messages"),
    ("parquet", "nested"),
    ("parquet", "tables"),
    ("huggingface", None),
]


def _text_of(path: Path) -> str:
    """Everything an export wrote, decoded (parquet and Arrow shards are
    compressed or binary: read as rows), file names included."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    parts = []
    for f in files:
        parts.append(f.name)
        if f.suffix == ".parquet" or (f == path and path.name.endswith(".parquet")):
            parts.append(pl.read_parquet(f).write_ndjson())
        elif f.suffix == ".arrow":
            with pa.ipc.open_stream(f) as reader:
                parts.append(pl.from_arrow(reader.read_all()).write_ndjson())  # type: ignore[union-attr]
        else:
            parts.append(f.read_text())
    return "\n".join(parts)


def _name(fmt: str, layout: str | None) -> str:
    return {"parquet": f"out_{layout}.parquet" if layout != "tables" else "out_tables", "huggingface": "out_hf"}.get(
        fmt, f"out.{fmt}"
    )


def _import(tmp_path: Path, records: list[dict], name: str = "in.jsonl") -> Store:
    src = tmp_path / name
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    store = Store(tmp_path / "store.duckdb")
    import_file(store, src, progress=False)
    return store


# --- 1. Text in score columns (--include-scores) was written as scored.

OPENING_ANALYZER = "audit_opening"


@pytest.fixture
def scored_with_text(tmp_path):
    from pe_toolkit.analysis import analyze
    from pe_toolkit.analysis.custom import analyzer
    from pe_toolkit.analysis.registry import unregister

    # A researcher's analyzer that keeps text: the conversation's opening
    # line and each message's first words (a column of strings and one of
    # lists of strings).
    @analyzer(OPENING_ANALYZER, version="1")
    def opening(messages: pl.DataFrame) -> dict:
        return {
            "messages": messages.select(
                first_words=pl.col("content").str.slice(0, 60),
                clauses=pl.col("content").str.split(", "),
            ),
            "conversations": messages.group_by("conversation_id").agg(opening=pl.col("content").first()),
        }

    records = [
        {
            "id": "c1",
            "messages": [
                {"role": "user", "content": "Mail me at priya.raman@example.org tonight"},
                {"role": "assistant", "content": "If you are in danger, call 988 now."},
                {"role": "user", "content": "My mobile is 07700 900123"},
            ],
            "metadata": {"dataset": "intake"},
        }
    ]
    try:
        store = _import(tmp_path, records)
        analyze(store, progress=False)
        yield store
    finally:
        unregister(OPENING_ANALYZER)


@pytest.mark.parametrize(("fmt", "layout"), FORMATS)
def test_text_score_columns_are_redacted(tmp_path, scored_with_text, fmt, layout):
    out = tmp_path / _name(fmt, layout)
    report = export(scored_with_text, out, format=fmt, layout=layout, redact=True, include_scores=True, progress=False)
    assert report.scores
    text = _text_of(out)
    assert "opening" in text  # the column is there...
    if fmt not in ("jsonl", "sharegpt"):  # which hold conversation scores only
        assert "first_words" in text and "clauses" in text
    assert "priya.raman@example.org" not in text  # ...without the e-mail
    assert "900123" not in text
    assert "Mail me at [EMAIL] tonight" in text
    assert "call 988 now" in text  # the crisis line stays, in the scores too


def test_score_labels_and_bookkeeping_are_left_as_scored(tmp_path, scored_with_text):
    plain = tmp_path / "plain.parquet"
    red = tmp_path / "red.parquet"
    export(scored_with_text, plain, format="parquet", layout="nested", include_scores=True, progress=False)
    export(scored_with_text, red, format="parquet", layout="nested", include_scores=True, redact=True, progress=False)
    a, b = pl.read_parquet(plain), pl.read_parquet(red)
    text_columns = {"score_opening", "metadata"}  # metadata: marked as redacted (pe_redacted)
    assert a.drop(["messages", *text_columns]).equals(b.drop(["messages", *text_columns]))
    assert all(orjson.loads(m)["pe_redacted"] is True for m in b["metadata"].to_list())
    assert b["score_analysis_version"].to_list() == a["score_analysis_version"].to_list()
    ma, mb = a["messages"].explode().struct.unnest(), b["messages"].explode().struct.unnest()
    labels = [c for c in ma.columns if c.startswith("message_score_") and c not in ("message_score_first_words", "message_score_clauses")]
    assert labels and ma.select(labels).equals(mb.select(labels))
    assert mb["message_score_clauses"].to_list()[:2] == [["Mail me at [EMAIL] tonight"], ["If you are in danger", "call 988 now."]]


# --- 2. The tables layout carried the imported file's name and the hash of
# the unredacted content.


def test_tables_layout_keys_source_and_content_hash(tmp_path):
    records = [
        {"id": f"c{i}", "messages": [{"role": "user", "content": f"I cannot sleep, night {i}."}], "metadata": {"dataset": "d"}}
        for i in range(3)
    ]
    store = _import(tmp_path, records, name="priya_raman_sessions.jsonl")
    stored = store.sql("SELECT id, source, content_hash FROM conversations ORDER BY id")
    assert "priya_raman" in stored["source"][0]
    export(store, tmp_path / "plain", format="parquet", layout="tables", progress=False)
    export(store, tmp_path / "red", format="parquet", layout="tables", redact=True, progress=False)
    export(store, tmp_path / "red2", format="parquet", layout="tables", redact=True, progress=False)
    plain = pl.read_parquet(tmp_path / "plain" / "conversations.parquet")
    red = pl.read_parquet(tmp_path / "red" / "conversations.parquet")
    red2 = pl.read_parquet(tmp_path / "red2" / "conversations.parquet")
    assert plain["source"].to_list() == stored["source"].to_list()  # without redact: as stored
    assert "priya" not in _text_of(tmp_path / "red").lower()
    assert red["source"].n_unique() == 1  # one file, one pseudonym: still groups
    assert not set(red["content_hash"]) & set(stored["content_hash"])
    assert red["content_hash"].n_unique() == 3
    assert not set(red["source"]) & set(red2["source"])  # unrelated across exports
    # The redacted folder imports back and exports again, still redacted.
    with Store(tmp_path / "again.duckdb") as again:
        import_file(again, tmp_path / "red", progress=False)
        export(again, tmp_path / "red3", format="parquet", layout="tables", redact=True, progress=False)
    assert "priya" not in _text_of(tmp_path / "red3").lower()


# --- 3. Invisible characters and full-width digits hid an e-mail or phone.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jo\u200b.smith@example.org", "write to [EMAIL]"),
        ("me: jo.smith@example\u200b.org", "me: [EMAIL]"),
        ("jo.smith\uff20example.org", "[EMAIL]"),
        ("\uff10\uff17\uff17\uff10\uff10 \uff19\uff10\uff10\uff11\uff12\uff13 is my mobile", "[PHONE] is my mobile"),
        ("call 0770\u00ad0 900\ufeff123", "call [PHONE]"),
        ("My name is Priya Ra\u200dman.", "My name is [NAME]."),
    ],
)
def test_invisible_and_full_width_characters_do_not_hide_pii(text, expected):
    assert redact(text) == expected


def test_disguised_text_keeps_offsets_crisis_lines_and_ordinary_words():
    texts = pl.Series(["\u200b\u200bHi \uff08\u5927\u962a\uff09 jo.smith\uff20example.org, call 07700\u200b900123 ok"])
    spans = find_pii(texts)
    assert spans.select("kind", "text").rows() == [("email", "jo.smith\uff20example.org"), ("phone", "07700\u200b900123")]
    for r in spans.iter_rows(named=True):
        assert texts[0][r["start"] : r["end"]] == r["text"]
    # Crisis lines, doses and scores written full-width stay, and so does
    # text in another script.
    kept = ["Samaritans \uff11\uff11\uff16 \uff11\uff12\uff13", "\uff12\uff10 mg at \uff11\uff10 pm", "\u5fc3\u304c\u75db\u3044 \u0663\u0664"]
    assert [redact(t) for t in kept] == kept
    # Spread over a conversation through the invisible characters.
    frame = pl.DataFrame({"conversation_id": ["c", "c"], "content": ["My name is Pri\u200bya.", "Priya, I hear you."]})
    assert redact_frame(frame)["content"].to_list() == ["My name is [NAME].", "[NAME], I hear you."]


def test_export_redacts_disguised_values_in_contents_and_message_metadata(tmp_path):
    records = [
        {
            "id": "c1",
            "messages": [
                {"role": "user", "content": "jo.smith@example\u200b.org is me"},
                {"role": "user", "content": "\uff10\uff17\uff17\uff10\uff10 \uff19\uff10\uff10\uff11\uff12\uff13"},
            ],
            "metadata": {"dataset": "d", "message_metadata": [{"from": "jo\u200b.smith@example.org"}, None]},
        }
    ]
    store = _import(tmp_path, records)
    for fmt, layout in FORMATS:
        out = tmp_path / _name(fmt, layout)
        export(store, out, format=fmt, layout=layout, redact=True, progress=False)
        text = _text_of(out)
        assert "example" not in text and "smith" not in text, fmt
        assert "\uff19\uff10\uff10" not in text, fmt


# --- 4. The nested formats redacted the dataset name without its
# conversation, so a name found in the messages stayed in it (jsonl spread it).


def test_dataset_name_gets_the_names_of_its_conversation_in_every_format(tmp_path):
    records = [
        {"id": "c1", "messages": [{"role": "user", "content": "My name is Dawn."}], "metadata": {"dataset": "Dawn intake"}},
        {"id": "c2", "messages": [{"role": "user", "content": "hello"}], "metadata": {"dataset": "other"}},
    ]
    store = _import(tmp_path, records)
    for fmt, layout in FORMATS:
        out = tmp_path / _name(fmt, layout)
        export(store, out, format=fmt, layout=layout, redact=True, progress=False)
        text = _text_of(out)
        assert "Dawn" not in text, fmt
        if fmt != "sharegpt":  # which holds no dataset
            assert "[NAME] intake" in text and "other" in text, fmt

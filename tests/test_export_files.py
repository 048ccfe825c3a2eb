"""Round trips: export in each format, import back, same conversations.

What survives per format is in docs/export.md; each test checks exactly
that much, against the store the export came from.
"""

from __future__ import annotations

import gzip
import os

import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pe_toolkit.exports import export
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from ._export_support import api_lines, build_corpus, make_store, message_lists, messages_by_id


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def source(tmp_path_factory, corpus):
    store = make_store(tmp_path_factory.mktemp("source") / "source.duckdb", corpus)
    yield store
    store.close()


def unique(lists: list) -> list:
    return sorted({tuple(x) for x in lists})


def reimport(tmp_path, path, **kwargs) -> Store:
    store = Store(tmp_path / f"back_{path.name}.duckdb")
    import_file(store, path, progress=False, **kwargs)
    return store


def dataset_tier(store: Store) -> dict[str, tuple]:
    return {r[0]: (r[1], r[2]) for r in store.conversations().select("id", "dataset", "tier").iter_rows()}


def test_jsonl_is_exactly_the_api_objects(tmp_path, source):
    report = export(source, tmp_path / "out.jsonl", format="jsonl", progress=False)
    lines = (tmp_path / "out.jsonl").read_text("utf-8").splitlines()
    assert lines == api_lines(source)
    assert report.conversations == len(lines) == source.count()
    assert report.messages == source.messages().height
    assert report.bytes == os.path.getsize(tmp_path / "out.jsonl")


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_jsonl_round_trip_keeps_everything(tmp_path, source, name):
    export(source, tmp_path / name, format="jsonl", progress=False)
    if name.endswith(".gz"):
        assert gzip.decompress((tmp_path / name).read_bytes()).count(b"\n") == source.count()
    back = reimport(tmp_path, tmp_path / name)
    assert api_lines(back) == api_lines(source)


def test_openai_round_trip_by_content(tmp_path, source):
    export(source, tmp_path / "train.jsonl", format="openai", progress=False)
    first = orjson.loads((tmp_path / "train.jsonl").read_bytes().splitlines()[0])
    assert set(first) == {"messages"}
    assert all(set(m) == {"role", "content"} for m in first["messages"])
    back = reimport(tmp_path, tmp_path / "train.jsonl", format="openai")
    assert unique(message_lists(back)) == unique(message_lists(source))


def test_sharegpt_round_trip_keeps_ids_roles_and_text(tmp_path, source):
    export(source, tmp_path / "sg.jsonl", format="sharegpt", progress=False)
    first = orjson.loads((tmp_path / "sg.jsonl").read_bytes().splitlines()[0])
    assert {t["from"] for t in first["conversations"]} <= {"system", "human", "gpt"}
    back = reimport(tmp_path, tmp_path / "sg.jsonl", format="sharegpt")
    assert messages_by_id(back, timestamps=False) == messages_by_id(source, timestamps=False)


@pytest.mark.parametrize(
    ("name", "fmt", "layout"),
    [
        ("m.csv", "csv", None),
        ("m.csv.gz", "csv", None),
        ("m.parquet", "parquet", None),
        ("m.parquet", "parquet", "messages"),
    ],
)
def test_message_rows_round_trip_with_column_map(tmp_path, source, name, fmt, layout):
    report = export(source, tmp_path / name, format=fmt, layout=layout, progress=False)
    assert report.messages == source.messages().height
    back = reimport(tmp_path, tmp_path / name, format=fmt)
    assert messages_by_id(back) == messages_by_id(source)
    assert dataset_tier(back) == dataset_tier(source)


@pytest.mark.parametrize("name", ["m.csv", "m.csv.gz"])
def test_csv_holds_every_message_exactly(tmp_path, source, name):
    """Read back by DuckDB with empty text and missing values kept apart
    (an empty message is written "", a missing value as an empty cell)."""
    import duckdb

    export(source, tmp_path / name, format="csv", progress=False)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    back = con.sql(
        "SELECT conversation_id, idx::INTEGER AS idx, role, content, timestamp::TIMESTAMPTZ AS timestamp "
        "FROM read_csv(?, all_varchar = true, header = true, allow_quoted_nulls = false) ORDER BY conversation_id, idx",
        params=[str(tmp_path / name)],
    ).pl()
    assert back.equals(source.messages())
    assert (source.messages()["content"] == "").any()  # the corpus does hold empty messages


def test_parquet_tables_layout_holds_both_tables(tmp_path, source):
    report = export(source, tmp_path / "tables", format="parquet", layout="tables", progress=False)
    conversations = pl.read_parquet(tmp_path / "tables" / "conversations.parquet")
    messages = pl.read_parquet(tmp_path / "tables" / "messages.parquet")
    stored = source.conversations()
    assert conversations.drop("metadata").equals(stored.drop("metadata"))
    assert [orjson.loads(m) for m in conversations["metadata"]] == [orjson.loads(m) for m in stored["metadata"]]
    assert messages.equals(source.messages())
    assert report.conversations == stored.height
    # the messages file alone imports with the default column mapping
    back = reimport(tmp_path, tmp_path / "tables" / "messages.parquet", format="parquet")
    assert messages_by_id(back) == messages_by_id(source)


def _nested_matches_store(frame: pl.DataFrame, store: Store) -> None:
    stored = store.conversations().sort("id")
    frame = frame.sort("id")
    assert frame["id"].to_list() == stored["id"].to_list()
    for col in ("dataset", "tier", "created_at", "message_count", "overall_quality", "safety_score"):
        assert frame[col].to_list() == stored[col].to_list(), col
    assert [orjson.loads(m) for m in frame["metadata"]] == [orjson.loads(m) for m in stored["metadata"]]
    nested = {
        row["id"]: [(m["role"], m["content"], m["timestamp"]) for m in row["messages"]] for row in frame.iter_rows(named=True)
    }
    assert nested == messages_by_id(store)


def test_parquet_nested_layout(tmp_path, source):
    export(source, tmp_path / "n.parquet", format="parquet", layout="nested", progress=False)
    _nested_matches_store(pl.read_parquet(tmp_path / "n.parquet"), source)


def test_huggingface_folder_loads_with_datasets(tmp_path, source, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    import datasets

    report = export(source, tmp_path / "hf", format="huggingface", progress=False, batch_rows=37)
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert ds.num_rows == report.conversations == source.count()
    _nested_matches_store(pl.from_arrow(ds.data.table), source)
    assert ds[0]["messages"][0].keys() == {"role", "content", "timestamp"}


def test_huggingface_shards_by_size(tmp_path, source, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    import datasets

    from pe_toolkit.exports import writers

    monkeypatch.setattr(writers, "HF_SHARD_BYTES", 64 * 1024)
    original = writers.HuggingFaceWriter.__init__

    def small_shards(self, **kwargs):
        original(self, shard_bytes=64 * 1024, **kwargs)

    monkeypatch.setattr(writers.HuggingFaceWriter, "__init__", small_shards)
    export(source, tmp_path / "hf", format="huggingface", progress=False, batch_rows=20)
    shards = sorted(p.name for p in (tmp_path / "hf").glob("data-*.arrow"))
    assert len(shards) > 1
    assert shards[-1].endswith(f"-of-{len(shards):05d}.arrow")
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    _nested_matches_store(pl.from_arrow(ds.data.table), source)


def test_parquet_files_stream_in_row_groups(tmp_path, source):
    # one row group per batch: the writer never held the whole export
    export(source, tmp_path / "m.parquet", format="parquet", progress=False, batch_rows=25)
    meta = pq.ParquetFile(tmp_path / "m.parquet").metadata
    assert meta.num_row_groups == -(-source.count() // 25)


def test_small_batches_and_chunks_give_the_same_file(tmp_path, source, monkeypatch):
    from pe_toolkit.exports import source as export_source

    for fmt, name in (("jsonl", "a.jsonl"), ("csv", "a.csv"), ("sharegpt", "s.jsonl")):
        export(source, tmp_path / f"big_{name}", format=fmt, progress=False)
        with monkeypatch.context() as m:
            m.setattr(export_source, "CHUNK_CONVERSATIONS", 11)
            export(source, tmp_path / f"small_{name}", format=fmt, progress=False, batch_rows=7)
        assert (tmp_path / f"big_{name}").read_bytes() == (tmp_path / f"small_{name}").read_bytes(), fmt


# -- property: any text survives every importable format ---------------------

# min_size=1: empty text does not survive import_file's CSV reader (see above).
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)
_message = st.tuples(st.sampled_from(["user", "assistant", "system"]), _text)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_message, min_size=1, max_size=4), min_size=1, max_size=4))
def test_any_text_round_trips(tmp_path_factory, conversations):
    folder = tmp_path_factory.mktemp("prop")
    records = [
        {"id": f"p{i}", "messages": [{"role": r, "content": c} for r, c in msgs], "metadata": {"dataset": "prop"}}
        for i, msgs in enumerate(conversations)
    ]
    (folder / "in.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    with Store(folder / "src.duckdb") as src:
        import_file(src, folder / "in.jsonl", progress=False)
        want = messages_by_id(src)
        for fmt, name in (("jsonl", "o.jsonl"), ("sharegpt", "s.jsonl"), ("csv", "o.csv"), ("parquet", "o.parquet")):
            export(src, folder / name, format=fmt, progress=False)
            with Store(folder / f"back_{name}.duckdb") as back:
                import_file(back, folder / name, format={"jsonl": "api"}.get(fmt, fmt), progress=False)
                got = messages_by_id(back)
                if fmt == "sharegpt":  # no timestamps in ShareGPT
                    got = {k: [m[:2] for m in v] for k, v in got.items()}
                    assert got == {k: [m[:2] for m in v] for k, v in want.items()}, fmt
                else:
                    assert got == want, fmt
        export(src, folder / "oa.jsonl", format="openai", progress=False)
        with Store(folder / "back_oa.duckdb") as back:
            import_file(back, folder / "oa.jsonl", format="openai", progress=False)
            # no ids: identical conversations become one (the id is derived from the content)
            assert unique(message_lists(back)) == unique(message_lists(src))

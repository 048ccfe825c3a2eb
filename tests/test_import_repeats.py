"""An id repeated within one import counts as ``repeated`` wherever its
copies fall: in one batch or in several (JSON-line chunks, table batches,
the batches of a dataset split). Its second copy in a later batch was
counted as updated or unchanged, so the import summary depended on the
batch size; the stored copy (the last) was right all along."""

import numpy as np
import orjson
import pyarrow as pa
import pytest

from pe_toolkit.events import EventBus
from pe_toolkit.ingest import import_dataset, import_file
from pe_toolkit.store import Store


def _chat(cid: str, text: str) -> dict:
    return {"id": cid, "messages": [{"role": "user", "content": f"q {text}"}, {"role": "assistant", "content": f"a {text}"}]}


def _rows() -> list[dict]:
    """30 conversations; c3 comes back changed at the end, c5 twice as it
    was, c7 twice each time changed (the last copy is the one to keep)."""
    rows = [_chat(f"c{i}", f"first {i}") for i in range(30)]
    rows.insert(12, _chat("c5", "first 5"))
    rows.insert(15, _chat("c7", "middle 7"))
    rows += [_chat("c5", "first 5"), _chat("c7", "last 7"), _chat("c3", "last 3")]
    return rows


def _counts(report) -> tuple[int, int, int, int]:
    return report.inserted, report.updated, report.unchanged, report.repeated


def _expected_new(rows: list[dict]) -> tuple[int, int, int, int]:
    distinct = len({r["id"] for r in rows})
    return distinct, 0, 0, len(rows) - distinct


def _stored(store: Store) -> dict[str, str]:
    return {r[0]: r[1] for r in store.sql(
        "SELECT conversation_id, string_agg(content, '|' ORDER BY idx) FROM messages GROUP BY ALL").iter_rows()}  # fmt: skip


def _last_copies(rows: list[dict]) -> dict[str, str]:
    last = {r["id"]: r for r in rows}  # a dict keeps the last value of a key
    return {cid: "|".join(m["content"] for m in r["messages"]) for cid, r in last.items()}


def _write_jsonl(path, rows) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def _batches_written(store: Store, path, **options) -> tuple[object, int]:
    """The report of importing ``path`` and how many batches wrote
    something (each announces its new conversations)."""
    bus, writes = EventBus(), []
    bus.subscribe("conversation.*", writes.append)
    report = import_file(store, path, progress=False, events=bus, **options)
    return report, len(writes)


def test_an_id_repeated_across_jsonl_chunks_counts_as_in_one_chunk(tmp_path):
    rows = _rows()
    path = tmp_path / "repeats.jsonl"
    _write_jsonl(path, rows)
    with Store(tmp_path / "one.duckdb") as one, Store(tmp_path / "many.duckdb") as many:
        whole, batches = _batches_written(one, path)
        assert batches == 1
        chunked, batches = _batches_written(many, path, chunk_bytes=400)
        assert batches > 5  # the copies of c3, c5 and c7 land in other chunks
        assert _counts(chunked) == _counts(whole) == _expected_new(rows)
        said = f"{chunked.repeated} row(s) repeated another row's id in the import and were stored once (the last copy)"
        assert said in str(chunked)
        assert _stored(many) == _stored(one) == _last_copies(rows)

        # Against a cache that holds them: a copy equal to the cache is
        # unchanged, c7 (first copy as cached, then edited) and c9 (edited
        # twice) are updated once, chunked or not.
        cached = _last_copies(rows)
        edited = [r for r in rows if r["messages"][0]["content"] == "q " + cached[r["id"]].split("|")[0][2:]]
        edited += [_chat("c7", "edited 7"), _chat("c9", "edited 9"), _chat("c9", "edited 9 again")]
        edited_path = tmp_path / "edited" / path.name  # the same dataset (named after the file)
        edited_path.parent.mkdir()
        _write_jsonl(edited_path, edited)
        after_one = import_file(one, edited_path, progress=False)
        after_many = import_file(many, edited_path, progress=False, chunk_bytes=400)
        distinct = len(_last_copies(edited))
        assert _counts(after_many) == _counts(after_one) == (0, 2, distinct - 2, len(edited) - distinct)
        assert _stored(many) == _stored(one) == _last_copies(edited)


def test_a_copy_restoring_the_cache_in_a_later_batch_counts_as_unchanged(tmp_path):
    """A first copy that changes a cached conversation and a copy in a
    later batch that brings it back as the cache held it before the import
    counted as updated, though a one-batch import (which keeps the last
    copy only) said unchanged. The counts are now against the content
    hash each id had before the import, whatever the batches."""
    rows = _rows()
    path = tmp_path / "repeats.jsonl"
    _write_jsonl(path, rows)
    with Store(tmp_path / "one.duckdb") as one, Store(tmp_path / "many.duckdb") as many:
        import_file(one, path, progress=False)
        import_file(many, path, progress=False)
        # c3 and c7: their first copies differ from the cache (the last
        # copies), their last copies bring it back. c9 is changed by a
        # first copy, brought back, then changed again: updated.
        again = [*rows[:4], _chat("c9", "edited 9"), *rows[4:20], _chat("c9", "first 9"), *rows[20:], _chat("c9", "edited 9 again")]
        again_path = tmp_path / "again" / path.name  # the same dataset (named after the file)
        again_path.parent.mkdir()
        _write_jsonl(again_path, again)
        chunked, batches = _batches_written(many, again_path, chunk_bytes=400)
        assert batches > 5
        whole = import_file(one, again_path, progress=False)
        distinct = len(_last_copies(again))
        assert _counts(chunked) == _counts(whole) == (0, 1, distinct - 1, len(again) - distinct)
        assert _stored(many) == _stored(one) == _last_copies(again)


def test_an_id_repeated_across_table_batches_counts_as_in_one_batch(tmp_path):
    # Tables (Parquet with a messages column, a JSON array) are cut into
    # batches of batch_rows rows.
    pq = pytest.importorskip("pyarrow.parquet")
    rows = _rows()
    parquet = tmp_path / "repeats.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    array = tmp_path / "repeats.json"
    array.write_bytes(orjson.dumps(rows))
    for path in (parquet, array):
        with Store(tmp_path / f"{path.suffix[1:]}-one.duckdb") as one, Store(tmp_path / f"{path.suffix[1:]}-many.duckdb") as many:
            whole, batches = _batches_written(one, path)
            assert batches == 1
            small, batches = _batches_written(many, path, batch_rows=4)
            assert batches > 5
            assert _counts(small) == _counts(whole) == _expected_new(rows), path.name
            assert _stored(many) == _stored(one) == _last_copies(rows)


def test_a_dataset_split_with_an_id_repeated_across_batches(tmp_path):
    # Within a split the batches go in order; across splits the last split's
    # copy is kept (import_table's keep= leaves out what a later split
    # wrote). Both kinds of repeat count once, whatever the batch size.
    datasets = pytest.importorskip("datasets")
    rows = _rows()
    test_rows = [_chat("c7", "test 7"), _chat("c40", "test 40"), _chat("c41", "test 41"), _chat("c40", "test 40 again")]
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(test_rows)})
    everything = rows + test_rows
    with Store(tmp_path / "one.duckdb") as one, Store(tmp_path / "many.duckdb") as many:
        whole = import_dataset(one, dd, dataset="dd")
        small = import_dataset(many, dd, dataset="dd", batch_rows=3)
        assert _counts(small) == _counts(whole) == _expected_new(everything)
        assert _stored(many) == _stored(one) == _last_copies(everything)
        split = many.sql("SELECT id, metadata ->> '$.split' FROM conversations WHERE id IN ('c3', 'c7')").rows()
        assert sorted(split) == [("c3", "train"), ("c7", "test")]

        saved = tmp_path / "saved"
        dd.save_to_disk(str(saved))
        with Store(tmp_path / "from_disk.duckdb") as from_disk:
            small = import_file(from_disk, saved, dataset="dd", batch_rows=3, progress=False)
            assert _counts(small) == _counts(whole)
            assert _stored(from_disk) == _last_copies(everything)


def _import_counts(tmp_path, name: str, rows: list[dict]) -> tuple[int, int, int, int]:
    src = tmp_path / f"{name}.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    with Store(tmp_path / f"{name}.duckdb") as store:
        import_file(store, src, progress=False)  # the cache before the load
        changed = [_chat(r["id"], "changed") if i % 3 == 0 else r for i, r in enumerate(_rows())]
        src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in changed))
        return _counts(import_file(store, src, progress=False, chunk_bytes=1))


def test_hash_collisions_leave_the_load_counts_exact(tmp_path, monkeypatch):
    """settle finds the earlier ids by a 64-bit hash of each id; a hash
    that collides only sends the write to the exact join on the ids. With
    every id hashed alike (each write a collision with every id loaded) the
    counts are those of the real hash, one row per write."""
    from pe_toolkit.store import loaded

    rows = [_chat(f"c{i}", f"first {i}") for i in range(20)]
    expected = _import_counts(tmp_path, "real", rows)
    monkeypatch.setattr(loaded, "_hash", lambda ids: np.zeros(len(ids), np.uint64))
    assert _import_counts(tmp_path, "colliding", rows) == expected
    # The counts themselves: the 30 ids less the cached 20 inserted; of the
    # cached, those with a changed last copy updated; repeats beyond.
    last = {r["id"]: r for r in (_chat(r["id"], "changed") if i % 3 == 0 else r for i, r in enumerate(_rows()))}
    before = {r["id"]: r for r in rows}
    assert expected[0] == len(set(last) - set(before))
    assert expected[1] == sum(1 for k in set(last) & set(before) if last[k] != before[k])


def test_the_hash_index_points_at_each_id_row():
    """Each loaded id's row is found by rowid (a point read, not a join
    over the load): the index's rows must be the rows holding the ids, also
    after writes that repeat ids and merge the index's runs."""
    from pe_toolkit.store.core import UpsertResult
    from pe_toolkit.store.loaded import LoadedIds, _hash

    loaded = LoadedIds()
    try:
        for k in range(40):
            batch = [f"id-{k * 100 + i}" for i in range(100)] + [f"id-{k * 7}", f"id-{k * 100}"]  # repeats
            loaded.settle(pa.array(batch), UpsertResult(unchanged=len(set(batch))))
        ids = pa.array([f"id-{i}" for i in range(0, 4000, 37)])
        rows = loaded._index.rows(_hash(ids))
        assert len(rows) == len(ids)
        got = loaded._con.execute("SELECT id FROM loaded WHERE rowid = ANY($r)", {"r": rows}).fetchall()
        assert sorted(i for (i,) in got) == sorted(ids.to_pylist())
        assert loaded._index.rows(_hash(pa.array(["id-4000", "other"]))) == []
        assert loaded.distinct() == 4000
        assert loaded.repeated() == 40 * 102 - 4000
    finally:
        loaded.close()

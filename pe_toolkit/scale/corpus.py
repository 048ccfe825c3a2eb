"""The corpus-level duplicate shares as distributed group-bys (Ray Data).

The same measures as :func:`pe_toolkit.analysis.duplicates.corpus_shares_sql`
(see it for the definitions), computed over every partition's
``message_scores`` without gathering them on one node:

1. by ``text_hash``: how many conversations hold each normalized text; each
   message row gets its boilerplate flag;
2. by MinHash band key (the bands exploded, key 0 meaning "too short"
   dropped): in a bucket with the distinct (conversation, text) pairs S, a
   pair (c, h) has a partner in another conversation with another text when
   |S| - |S with c| - |S with h| + 1 > 0; the messages of partnered pairs
   are near-duplicates;

Both group-bys emit flag rows that carry the message's partition and are
written partitioned by it; a conversation lives in one partition, so one
task per partition then averages its flags per conversation (the share of
its messages with a text hash that are flagged) and left-joins them onto
the partition's base scores: ``conversation_scores``, partitioned like the
other tables, with no third shuffle and no global join.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute  # loads pa.compute

from ..analysis.duplicates import BOILERPLATE_MIN_CONVERSATIONS
from ..exports.atomic import private_file

FLAGS_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("idx", pa.int32()),
        ("part", pa.string()),
        ("boilerplate", pa.int8()),  # 0/1 on a message row, -1 on a near-duplicate flag row
        ("near", pa.int8()),
    ]
)
KEY_COLUMNS = ["conversation_id", "idx", "text_hash", "minhash_bands"]


def _keys(batch: pa.Table) -> pa.Table:
    """Messages with a text hash, with their partition (from the file path,
    ``.../part=KEY/file``) so the flags can be written back by partition."""
    batch = batch.filter(pa.compute.is_valid(batch.column("text_hash")))
    keys = pa.compute.extract_regex(batch.column("path"), r"part=(?P<key>[^/]+)/[^/]*$").combine_chunks().field("key")
    return batch.select(KEY_COLUMNS).append_column("part", keys)


def _flag_rows(frame: pl.DataFrame, boilerplate: int | str, near: int) -> pa.Table:
    """Flag rows; ``boilerplate``: a constant, or the name of a 0/1 column."""
    flag = pl.col(boilerplate) if isinstance(boilerplate, str) else pl.lit(boilerplate)
    return (
        frame.select(
            pl.col("conversation_id").cast(pl.String),
            pl.col("idx").cast(pl.Int32),
            pl.col("part").cast(pl.String),
            flag.cast(pl.Int8).alias("boilerplate"),
            pl.lit(near, pl.Int8).alias("near"),
        )
        .to_arrow()
        .cast(FLAGS_SCHEMA)
    )


def _bucketed(batch: pa.Table, key: str, buckets: int) -> pa.Table:
    """A ``bucket`` column (``key`` mod ``buckets``): the group-bys group
    by bucket, so each call holds many whole groups and works on them with
    one columnar pass (one call per distinct key cost ~1 ms each: minutes
    for a few hundred thousand texts)."""
    if buckets & (buckets - 1):
        raise ValueError(f"buckets must be a power of two, got {buckets}")
    bucket = pa.compute.bit_wise_and(batch.column(key), pa.scalar(buckets - 1, pa.uint64()))
    return batch.append_column("bucket", bucket.cast(pa.int64()))


def _boilerplate(group: pa.Table, minimum: int) -> pa.Table:
    """Whole texts' messages, each a message row flagged boilerplate when its
    text is in at least ``minimum`` conversations."""
    frame = pl.from_arrow(group)
    assert isinstance(frame, pl.DataFrame)
    conversations = pl.col("conversation_id").n_unique().over("text_hash")
    return _flag_rows(frame.with_columns(flag=(conversations >= minimum).cast(pl.Int8)), "flag", 0)


def _explode_bands(batch: pa.Table) -> pa.Table:
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    out = (
        frame.filter(pl.col("minhash_bands").is_not_null())
        .explode("minhash_bands")
        .rename({"minhash_bands": "band_key"})
        .filter(pl.col("band_key") != 0)
    )
    return out.to_arrow()


def _near(group: pa.Table) -> pa.Table:
    """Whole band buckets: a flag row for each message whose (conversation,
    text) pair has, in one of its buckets, a partner of another
    conversation and another text."""
    frame = pl.from_arrow(group)
    assert isinstance(frame, pl.DataFrame)
    pairs = frame.select("band_key", "conversation_id", "text_hash").unique()
    # Signed counts: |S| - |S_c| - |S_h| + 1 goes below zero.
    partnered = pairs.with_columns(
        n=pl.len().over("band_key").cast(pl.Int64),
        nc=pl.len().over("band_key", "conversation_id").cast(pl.Int64),
        nt=pl.len().over("band_key", "text_hash").cast(pl.Int64),
    ).filter(pl.col("n") - pl.col("nc") - pl.col("nt") + 1 > 0)
    hits = frame.join(partnered.select("band_key", "conversation_id", "text_hash"), on=["band_key", "conversation_id", "text_hash"])
    return _flag_rows(hits.unique(["conversation_id", "idx"]), -1, 1)


def write_flags(message_files: list[str], folder: str, *, buckets: int, boilerplate_min: int = BOILERPLATE_MIN_CONVERSATIONS) -> None:
    """Group-by text hash and by band key over every partition's message
    keys; the flag rows written to ``folder`` by partition (``part=KEY``).
    ``buckets``: groups per group-by (see :func:`_bucketed`); also its
    hash partitions (Ray's default, 200, costs minutes of per-partition
    overhead on a small cluster)."""
    import ray.data

    keys = ray.data.read_parquet(
        message_files, columns=KEY_COLUMNS, partitioning=None, include_paths=True
    ).map_batches(_keys, batch_format="pyarrow")
    boiler = (
        keys.map_batches(_bucketed, batch_format="pyarrow", fn_kwargs={"key": "text_hash", "buckets": buckets})  # type: ignore[arg-type]  # Ray types fn as one-argument; the rest come through fn_kwargs
        .groupby("bucket", num_partitions=buckets)
        .map_groups(_boilerplate, batch_format="pyarrow", fn_kwargs={"minimum": boilerplate_min})  # type: ignore[arg-type]  # Ray types fn as one-argument; the rest come through fn_kwargs
    )
    near = (
        keys.map_batches(_explode_bands, batch_format="pyarrow")
        .map_batches(_bucketed, batch_format="pyarrow", fn_kwargs={"key": "band_key", "buckets": buckets})  # type: ignore[arg-type]  # Ray types fn as one-argument; the rest come through fn_kwargs
        .groupby("bucket", num_partitions=buckets)
        .map_groups(_near, batch_format="pyarrow")
    )
    boiler.union(near).write_parquet(folder, partition_cols=["part"])


def shares_of(flags: pl.DataFrame) -> pl.DataFrame:
    """Per conversation: the share of its message rows flagged boilerplate,
    and of those with a near-duplicate flag row (as the SQL's ``avg`` over
    the messages with a text hash: counts over the count)."""
    messages = flags.filter(pl.col("boilerplate") >= 0)
    near = flags.filter(pl.col("near") == 1).select("conversation_id", "idx").unique().with_columns(flagged=pl.lit(True))
    rows = messages.join(near, on=["conversation_id", "idx"], how="left")
    return rows.group_by("conversation_id").agg(
        boilerplate_share=pl.col("boilerplate").cast(pl.Float64).sum() / pl.len().cast(pl.Float64),
        near_duplicate_share=pl.col("flagged").is_not_null().cast(pl.Float64).sum() / pl.len().cast(pl.Float64),
    )


def _read_folder(folder: Path) -> pl.DataFrame | None:
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    return pl.read_parquet(files, hive_partitioning=False)


def join_partition(batch: dict[str, Any], output: str, flags: str, target: str) -> pa.Table:
    """``map_batches`` entry: each partition's ``conversation_scores`` = its
    base ⟕ its shares (a conversation's flags all carry its partition)."""
    done = []
    for key in batch["key"]:
        key = str(key)
        base = _read_folder(Path(output) / "_conversation_base" / f"part={key}")
        folder = Path(target) / f"part={key}"
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # parents=True alone: the umask's mode
        folder.mkdir(mode=0o700, exist_ok=True)
        if base is not None:
            part_flags = _read_folder(Path(flags) / f"part={key}")
            if part_flags is None:
                part_flags = pl.DataFrame(schema={"conversation_id": pl.String, "idx": pl.Int32, "boilerplate": pl.Int8, "near": pl.Int8})
            shares = shares_of(part_flags)
            joined = base.join(shares, on="conversation_id", how="left", maintain_order="left")
            # Mode 600, as the partitions' files; a retried task (a worker that
            # died, the same key again) writes over its own earlier file.
            (folder / "part-00000.parquet").unlink(missing_ok=True)
            joined.write_parquet(private_file(folder / "part-00000.parquet"))
        done.append(key)
    return pa.table({"key": pa.array(done, pa.string())})


def write_conversation_scores(output: str, keys: list[str], *, partitions: int, messages: int) -> int:
    """The corpus stage: flags, then ``conversation_scores`` rewritten whole
    in a new folder that replaces the old one; its row count."""
    import pyarrow.dataset as pads
    import ray.data

    out = Path(output)
    run = out / "_tmp" / f"corpus-{uuid.uuid4().hex[:8]}"
    flags, target = run / "flags", run / "conversation_scores"
    for folder in (out / "_tmp", run):  # the output's folders are private (docs/scale.md)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.mkdir(mode=0o700)
    message_files = sorted(str(p) for key in keys for p in (out / "message_scores" / f"part={key}").glob("*.parquet"))
    if message_files:
        # Power-of-two buckets, about a million messages each, two per worker at least.
        buckets = 1 << max(partitions * 2, messages // 1_000_000, 1).bit_length()
        write_flags(message_files, str(flags), buckets=buckets)
    ray.data.from_items([{"key": k} for k in keys], override_num_blocks=max(1, min(len(keys), partitions * 4))).map_batches(
        join_partition, batch_format="numpy", fn_kwargs={"output": output, "flags": str(flags), "target": str(target)}  # type: ignore[arg-type]  # Ray types fn as one-argument; the rest come through fn_kwargs
    ).materialize()
    rows = pads.dataset(str(target), format="parquet").count_rows() if any(target.rglob("*.parquet")) else 0
    final = out / "conversation_scores"
    old = run / "old"
    if final.exists():
        os.replace(final, old)
    os.replace(target, final)
    shutil.rmtree(run, ignore_errors=True)
    return rows

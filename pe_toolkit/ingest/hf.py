"""Hugging Face datasets, from disk or in memory; never downloaded here.

- a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
  (Arrow stream files, read with pyarrow: ``datasets`` is not needed);
- a folder of a dataset's Parquet or JSON(L) shards (as a download of the
  dataset's repository holds them), read by DuckDB as one table;
- a ``datasets.Dataset`` or ``DatasetDict`` object (:func:`import_dataset`).

Each split's rows are mapped as any table is (:mod:`.frames`): chats in a
``messages`` (OpenAI) or ``conversations`` (ShareGPT) column, or messages
or pairs mapped by a :class:`~.columns.ColumnMap`. The split's name is kept
in each conversation's metadata (``split``). An ``hf://`` path is an error
that says to download the dataset first: an import reads local files only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from ..errors import InputError
from ..events import EventBus
from ..store import Store
from .columns import ColumnMap
from .frames import import_table
from .loading import ImportReport

_REMOTE = ("hf://", "hf:", "https://huggingface.co/")


def check_local(path: str) -> None:
    if str(path).startswith(_REMOTE):
        raise InputError(
            f"{path}: a Hugging Face Hub dataset; imports read local files only, so download it first, e.g. "
            "`huggingface-cli download NAME --repo-type dataset --local-dir DIR` (then import DIR), or in Python "
            "`datasets.load_dataset(NAME).save_to_disk(DIR)` or pe.import_dataset(store, datasets.load_dataset(NAME))"
        )


def is_saved_dataset(path: Path) -> bool:
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def _read_split(path: Path) -> pa.Table:
    try:
        state = orjson.loads((path / "state.json").read_bytes())
        files = [path / f["filename"] for f in state["_data_files"]]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a dataset saved with save_to_disk (state.json: {exc})") from None
    tables = []
    for f in files:
        try:
            with pa.memory_map(str(f)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"{f}: cannot read the saved dataset: {exc}") from None
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]


def saved_splits(path: Path) -> list[tuple[str | None, pa.Table]]:
    """(split name or None, rows) of a ``save_to_disk`` folder."""
    if (path / "dataset_dict.json").is_file():
        try:
            splits = orjson.loads((path / "dataset_dict.json").read_bytes())["splits"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{path}/dataset_dict.json: unreadable ({exc})") from None
        return [(split, _read_split(path / split)) for split in splits]
    return [(None, _read_split(path))]


def shard_files(path: Path) -> tuple[str, list[Path]]:
    """(format, files) of a folder of Parquet or JSON(L) shards."""
    parquet = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith((".parquet", ".pq")))
    if parquet:
        return "parquet", parquet
    json = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith((".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz")))
    if json:
        return "rows", json
    raise InputError(f"{path}: a folder with no saved dataset (state.json, dataset_dict.json) and no .parquet or .json(l) shards")


def dataset_tables(ds: Any) -> list[tuple[str | None, pa.Table]]:
    """(split, rows) of a ``datasets.Dataset`` or ``DatasetDict`` (rows as
    the dataset presents them: after any select/shuffle/filter)."""
    kind = type(ds).__name__
    if kind in ("DatasetDict",) or (isinstance(ds, dict) and all(type(v).__name__ == "Dataset" for v in ds.values())):
        return [(split, _arrow(part)) for split, part in ds.items()]
    if kind == "Dataset":
        return [(None, _arrow(ds))]
    if kind in ("IterableDataset", "IterableDatasetDict"):
        raise InputError(f"a streaming {kind} cannot be imported: load it without streaming=True, or save_to_disk first")
    raise InputError(f"expected a datasets.Dataset or DatasetDict, got {kind}")


def _arrow(ds: Any) -> pa.Table:
    table = ds.with_format("arrow")[:]
    return table if isinstance(table, pa.Table) else pa.table(table)


def _with_split(table: pa.Table, split: str | None) -> pa.Table:
    if split is None or "split" in table.column_names:
        return table
    return table.append_column("split", pa.array([split] * table.num_rows, pa.string()))


def import_splits(store: Store, splits: list[tuple[str | None, pa.Table]], *, name: str, dataset: str, source: str,
                  columns: ColumnMap | None, skip_invalid: bool, progress: bool, batch_rows: int,
                  events: EventBus | None) -> ImportReport:  # fmt: skip
    """Import every split into one report. Its mapping is the first split's;
    a split mapped otherwise (other columns) adds its own lines, prefixed
    with ``[split]``.

    A conversation id in several splits is a repeat within this import, as
    an id twice in one split is (:mod:`pe_toolkit.store.loaded`): stored
    once, the last copy (the last split's, with its ``split``), and counted
    in ``repeated``, not as an update of the cache. So the splits go last
    first, each leaving out the ids a later one already wrote; within a
    split the batches go in order, so its last copy is the one left."""
    total = ImportReport(path=name, format="hf")
    later: set[str] = set()
    parts: list[tuple[str | None, ImportReport]] = []
    for split, table in reversed(splits):
        written: list[str] = []
        left_out = [0]

        def keep(good: pa.Table, written: list[str] = written, left_out: list[int] = left_out) -> pa.Table:
            # A set lookup per row: the set spans splits (and batches), which
            # no columnar kernel holds between calls.
            ids = good.column("id").to_pylist()
            mask = [cid not in later for cid in ids]
            left_out[0] += len(ids) - sum(mask)
            written.extend(cid for cid, kept in zip(ids, mask, strict=True) if kept)
            return good if all(mask) else good.filter(pa.array(mask, pa.bool_()))

        part = import_table(store, _with_split(table, split), name=f"{name}[{split}]" if split else name, dataset=dataset,
                            columns=columns, skip_invalid=skip_invalid, progress=progress, batch_rows=batch_rows,
                            events=events, source=f"{source}[{split}]" if split else source,
                            keep=keep if len(splits) > 1 else None)  # fmt: skip
        later.update(written)
        part.repeated += left_out[0]
        parts.append((split, part))
    parts.reverse()
    first = parts[0][1].mapping if parts else []
    total.mapping = list(first)
    for split, part in parts:
        total.add(part, keep_ids=False)
        total.invalid += part.invalid
        if part.mapping != first:
            total.mapping += [f"[{split}] {line}" for line in part.mapping]
    return total


def import_dataset(
    store: Store,
    ds: Any,
    *,
    dataset: str | None = None,
    columns: ColumnMap | None = None,
    skip_invalid: bool = False,
    progress: bool = False,
    batch_rows: int = 10_000,
    events: EventBus | None = None,
) -> ImportReport:
    """Import a ``datasets.Dataset``/``DatasetDict`` (or a path to a saved one
    or to a folder of its shards) with the same mappings as a table file.

    ``dataset`` defaults to the dataset's own name (``info.dataset_name``).
    """
    if isinstance(ds, (str, Path)):
        from .importer import import_file

        return import_file(store, ds, dataset=dataset, columns=columns, skip_invalid=skip_invalid, progress=progress, batch_rows=batch_rows, events=events)
    splits = dataset_tables(ds)
    first = ds if type(ds).__name__ == "Dataset" else next(iter(ds.values()), None)
    info = getattr(first, "info", None)
    name = dataset or getattr(info, "dataset_name", None) or getattr(info, "builder_name", None) or "hf_dataset"
    return import_splits(store, splits, name=f"dataset {name!r}", dataset=name, source=f"hf:{name}", columns=columns,
                         skip_invalid=skip_invalid, progress=progress, batch_rows=batch_rows, events=events)  # fmt: skip

"""The warehouse's feature table: rows built in chunks, text statistics taken
from the messages on their way to PostgreSQL.

Used by :class:`pe_toolkit.exports.warehouse._Loader`; the feature
definitions themselves are :mod:`pe_toolkit.exports.features`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import polars as pl
import pyarrow as pa

from .features import combine, conversation_features, partial_sums
from .pgsession import Family, PgSession, TableLoad, duck_type
from .pgtables import spec_from_describe


def features_family(loader: PgSession) -> Family:
    sample = conversation_features(loader.duck, "FALSE")
    spec = spec_from_describe(
        "conversation_features",
        [(f.name, duck_type(loader.duck, f.type)) for f in sample.schema] + [("row_hash", "VARCHAR")],
        key=("conversation_id",), hash_column="row_hash", indexes=(("dataset", "tier"),),
    )
    return Family("features", "features_hash", spec)


def write_features(loader: PgSession, family: Family, content: Family, partials: list[pl.DataFrame], *, keys: str) -> TableLoad:
    """Load the feature rows that changed; ``keys`` is the loader's DuckDB table
    of change hashes (one row per selected conversation). Returns what was
    loaded, for the load's report."""
    started = time.perf_counter()
    spec = family.parent
    ids = loader.duck.sql(f"SELECT id FROM {family.changed_duck} ORDER BY id").to_arrow_table()
    # Conversations whose features changed without their content (new
    # scores, new feature definitions): their messages are read here. So are
    # those whose id holds a NUL: the statistics taken on the way to
    # PostgreSQL carry the id as sent (NUL as U+FFFD), which matches no id
    # of the store.
    loader.register("_pe_features_ids", ids)
    extra = loader.duck.sql(
        f"SELECT id FROM _pe_features_ids f ANTI JOIN {content.changed_duck} c ON c.id = f.id AND NOT contains(c.id, chr(0))"
    ).to_arrow_table()
    if extra.num_rows:
        loader.register("_pe_features_extra", extra)
        reader = loader.duck.sql(
            "SELECT m.conversation_id, m.idx, m.role, m.content FROM messages m "
            "SEMI JOIN _pe_features_extra e ON e.id = m.conversation_id"
        ).to_arrow_reader(loader.batch_rows)
        partials = [*partials, *(partial_sums(pl.from_arrow(b)) for b in reader)]  # type: ignore[arg-type]  # typed DataFrame | Series; a batch always gives a DataFrame
    text = combine(partials)
    load = TableLoad()
    bulk = loader.is_empty(spec.name)
    if bulk:
        for statement in spec.drop_indexes(loader.schema):
            loader.exec(statement)
    sent = ", ".join(c.send_expr("f") for c in spec.columns if c.name != "row_hash")
    # Feature rows are built in chunks of conversations: each chunk's
    # table is what memory holds besides the text statistics.
    for start in range(0, ids.num_rows, FEATURE_CHUNK):
        loader.duck.register("_pe_chunk", ids.slice(start, FEATURE_CHUNK))
        try:
            table = conversation_features(loader.duck, "c.id IN (SELECT id FROM _pe_chunk)", text=text)
        finally:
            loader.duck.unregister("_pe_chunk")
        loader.duck.register("_pe_features", table)
        try:
            rows = (
                f"SELECT {sent}, k.features_hash AS row_hash FROM _pe_features f "
                f"JOIN {keys} k ON k.id = f.conversation_id"
            )
            if bulk:
                load.inserted += loader.copy(spec.name, rows, label=spec.name)
            else:
                part = loader.write_parent(spec, rows, rewrite=family.rewrite)
                load.inserted += part.inserted
                load.updated += part.updated
        finally:
            loader.duck.unregister("_pe_features")
    if bulk:
        for statement in spec.create_indexes(loader.schema, with_key=True):
            loader.exec(statement)
    load.seconds = time.perf_counter() - started
    return load


FEATURE_CHUNK = 250_000  # conversations whose features are held at once


class _Collector:
    """Applies ``work`` to message batches in a background thread, so the
    statistics are computed (polars, which releases the GIL) while the main
    thread keeps PostgreSQL's COPY fed. At most ``depth`` batches wait."""

    def __init__(loader, work: Callable[[pl.DataFrame], pl.DataFrame], depth: int = 4) -> None:
        import queue
        import threading

        loader._work = work
        loader._queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=depth)
        loader._results: list[pl.DataFrame] = []
        loader._error: BaseException | None = None
        loader._thread = threading.Thread(target=loader._run, name="pe-warehouse-stats", daemon=True)
        loader._thread.start()

    def _run(loader) -> None:
        while True:
            batch = loader._queue.get()
            if batch is None:
                return
            if loader._error is None:
                try:
                    loader._results.append(loader._work(pl.from_arrow(batch)))  # type: ignore[arg-type]  # typed DataFrame | Series; a batch always gives a DataFrame
                except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
                    loader._error = exc

    def put(loader, batch: pa.RecordBatch) -> None:
        loader._queue.put(batch)

    def finish(loader) -> list[pl.DataFrame]:
        loader._queue.put(None)
        loader._thread.join()
        if loader._error is not None:
            raise loader._error
        return loader._results

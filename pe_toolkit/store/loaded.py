"""Count each conversation of one load once: an API export, a file import.

A load may hold the same id on several lines or rows. Within one write
the store keeps the last copy and counts it once (``Store.upsert``);
across writes the later copy was merged again and counted again -- as
updated or unchanged, with a second ``conversation.updated`` event -- so
the report added up to more conversations than the load held, and a file
import's counts depended on its batch size. The data was right (the last
copy is the one stored, as within a write); only the counts were not.

:class:`LoadedIds` keeps, for one load, the ids written so far and what
their first write did, in an in-memory DuckDB table (millions of ids stay
compact, not in a Python set), found through an index of their hashes. The bulk API
sync (:mod:`pe_toolkit.apisync.bulk`) and every file, frame and dataset
import (:mod:`pe_toolkit.ingest.loading`) use it; it lives in the store
package because both sit above it.

Each id counts against the cache as it was before the load: inserted when
it was not cached; otherwise unchanged when its last copy has the content
hash it had before the load, else updated, wherever the batches split the
copies. Copies that change a cached conversation and a later one that
brings it back count as unchanged, as in one batch. That needs the hash
before the load, which the cache no longer holds once a copy changed it:
the store's merge hands over the hashes of the ids it changed
(``UpsertResult.updated_hashes``, from the join it makes anyway), and the
hash an id had before its first change is kept (column ``prior`` of table ``loaded``). The
counts of a write that revises an earlier write's are the change (one may
be negative); their sum is exact after every write.

It also counts the distinct conversations an export held, which the bulk
sync's completeness check compares with the server's total: counting lines
let an export that repeats one id in place of another pass as complete;
and the lines that repeated an id (:meth:`LoadedIds.repeated`). The ids
loaded are those above; the ids of lines set aside (dead letters: the
export held them, and the next sync fetches them by id) and of the lines
an interrupted load merged before this process (read again from the file
on resume: the checkpoint keeps only the last line merged) are kept apart,
so that they leave the outcomes above alone. Both counts are the whole
export's, a resumed load's too. A file import records no lines apart
(:meth:`add_lines`): its invalid records are counted as invalid only.

Each write's cost does not grow with the load (:class:`_HashIndex`): a
join of each write's ids against all the ids loaded so far made a write at
2M ids cost 4x one at the start (no repeats) and 5x with a repeat per write.
"""

from __future__ import annotations

import dataclasses

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from .core import UPDATED_HASHES, UpsertResult


def _hash(ids: pa.Array) -> np.ndarray:
    # Columnar 64-bit hash (seeded the same for the whole process; the
    # index lives no longer than one load).
    return pl.Series(ids).hash(seed=0).to_numpy()


class _HashIndex:
    """64-bit hashes of the ids loaded, each with the id's row in table
    ``loaded``, sorted for a binary search: a write asks which of its ids
    may have come before in O(batch log n), not a join over every id
    loaded. A hit is confirmed on the real ids (a collision only costs a
    lookup). 12 bytes per id, in sorted runs of halving size (LSM style):
    a new run is merged into the last while that is under twice its size,
    so each hash is copied O(log n) times, not once per write."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (hashes uint64 sorted, rows uint32)

    def add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        if not len(keys):
            return
        order = np.argsort(keys)
        self._runs.append((keys[order], rows[order].astype(np.uint32)))
        while len(self._runs) > 1 and len(self._runs[-2][0]) < 2 * len(self._runs[-1][0]):
            (k1, r1), (k2, r2) = self._runs.pop(), self._runs.pop()
            keys = np.concatenate((k2, k1))
            # Stable sort (timsort) of two sorted runs: a linear merge.
            order = np.argsort(keys, kind="stable")
            self._runs.append((keys[order], np.concatenate((r2, r1))[order]))

    def rows(self, keys: np.ndarray) -> list[int]:
        """The rows of ``loaded`` whose hash is one of ``keys``."""
        found: list[np.ndarray] = []
        # Sorted needles: numpy's search walks the run in order (a third of
        # the time of unsorted ones, whose probes miss the cache).
        keys = np.sort(keys)
        for run, rows in self._runs:
            lo = np.searchsorted(run, keys)
            hit = run[np.minimum(lo, len(run) - 1)] == keys
            if hit.any():
                lo = lo[hit]
                hi = np.searchsorted(run, keys[hit], "right")
                # A loop over the hits only (repeats, collisions: few),
                # each a range of equal hashes.
                found.extend(rows[a:b] for a, b in zip(lo, hi, strict=True))
        return np.concatenate(found).astype(np.int64).tolist() if found else []


class LoadedIds:
    """The ids one load has written and their outcome so far: ``inserted``,
    ``updated`` or ``unchanged`` against the cache as it was before the load."""

    def __init__(self) -> None:
        self._con = duckdb.connect()
        # No key: an index made the insert over half the work. Each id is
        # inserted once (a repeat updates its row), appended in the order
        # given, so its rowid is the count of rows before it: settle finds
        # an earlier id's row through self._index and reads it by rowid (a
        # point read), not by a join over the table. ``prior`` is the
        # content hash before the load of an id a write of the load changed
        # (see settle), NULL until then; once set it does not change.
        self._con.execute("CREATE TABLE loaded (id VARCHAR NOT NULL, outcome VARCHAR NOT NULL, prior VARCHAR)")
        self._rows = 0
        self._index = _HashIndex()
        # Ids of lines held but not written by this load (see add_lines);
        # lines without a usable id count one each, as they did as lines.
        self._con.execute("CREATE TABLE held (id VARCHAR)")
        self._written = 0  # lines written by this load (each has an id), repeats included


    def _append(self, ids: pa.Array, keys: np.ndarray, outcome: pa.Array, hashes: pa.Table) -> None:
        """Add ids not loaded before (distinct) with their outcome and, for
        those the write changed, the hash the cache held before."""
        if not len(ids):
            return
        # Columnar lookup that keeps the order of ids (a join would not):
        # each id's rowid is its place in the append.
        prior = pc.take(hashes["previous_hash"], pc.index_in(ids, hashes["id"]))
        self._con.register("_new", pa.table({"id": ids, "outcome": outcome, "prior": prior}))
        try:
            self._con.execute("INSERT INTO loaded SELECT id, outcome, prior FROM _new")
        finally:
            self._con.unregister("_new")
        self._index.add(keys, np.arange(self._rows, self._rows + len(ids), dtype=np.int64))
        self._rows += len(ids)

    def close(self) -> None:
        self._con.close()

    def add_lines(self, raw: pa.Array) -> None:
        """Count the export lines ``raw`` as held but not written by this
        load: lines set aside as invalid, or merged by an earlier process
        of the same load. Blank lines are no conversation (the normalizer
        skips them too); a line without a usable id counts as one."""
        if not len(raw):
            return
        # A usable id as the normalizer takes it (a non-blank string). The
        # line is parsed once: try() makes a line that is not JSON NULL
        # (a json_valid guard parsed each line again: 3.0 s against 0.9 s
        # for 100,000 lines, 2 cores).
        self._con.register("_raw", pa.table({"raw": raw.cast(pa.large_string())}))
        try:
            self._con.execute(
                "INSERT INTO held SELECT CASE WHEN json_type(j) = 'VARCHAR' AND trim(j ->> '$') <> '' THEN j ->> '$' END "
                "FROM (SELECT try(json_extract(raw, '$.id')) AS j FROM _raw "
                "WHERE raw NOT IN ('', chr(10), chr(13), chr(13) || chr(10)))"
            )
        finally:
            self._con.unregister("_raw")

    def add_rejected(self, lines: list[tuple[int, str, str]]) -> None:
        """:meth:`add_lines` for rejected lines ``(line, reason, raw)``."""
        if lines:
            self.add_lines(pa.array([raw for _, _, raw in lines], pa.large_string()))

    def distinct(self) -> int:
        """How many distinct conversations the load's lines held: the ids
        written, the other ids held (:meth:`add_lines`) and the lines
        without an id."""
        return int(
            self._con.execute(
                "SELECT (SELECT count(*) FROM loaded) "
                "+ (SELECT count(DISTINCT id) FROM held h WHERE id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM loaded l WHERE l.id = h.id)) "
                "+ (SELECT count(*) FROM held WHERE id IS NULL)"
            ).fetchall()[0][0]
        )

    def repeated(self) -> int:
        """How many of the load's lines held an id an earlier line held
        (loaded or set aside, by this process or, on resume, before it):
        the lines with an id beyond the distinct ids."""
        held, ids = self._con.execute(
            "SELECT (SELECT count(id) FROM held), "
            "(SELECT count(*) FROM (SELECT id FROM loaded UNION SELECT id FROM held WHERE id IS NOT NULL))"
        ).fetchall()[0]
        return self._written + int(held) - int(ids)

    def settle(self, ids: pa.Array, result: UpsertResult) -> UpsertResult:
        """``result`` (of upserting the conversations ``ids``) as this load
        reports it, so that the load's counts add up to what its last copies
        did to the cache as it was before the load, whatever the batches:
        an id absent before counts as inserted, once; one present counts as
        unchanged when its last copy has the content hash it had before the
        load, else as updated. A write holding ids written earlier in the
        load returns the change in the counts (one may be negative: an id
        that a later copy brings back moves from updated to unchanged), so
        a running sum is exact after every write. ``repeated`` is left to
        :meth:`repeated`, which counts the whole export's once the load is
        done (0 here, the upsert's repeats within ``ids`` too). Events are
        not deduplicated: ``updated_ids`` is every id this write changed (a
        later copy that differs from an earlier one of the same load too).

        The hash before the load is the one the store saw when the first
        write of the load changed the id (``result.updated_hashes``, which
        the store's merge joins anyway): kept for the ids whose count so far
        is updated only, since until then the cache still holds it."""
        con = self._con
        self._written += len(ids)
        # One row per id (the upsert kept its last copy), in the order
        # first seen (pc.unique keeps it).
        ids = pc.unique(ids.cast(pa.string()))
        # Columnar: the upsert's id lists become one outcome column (a list
        # bound as a query parameter cost more than the rest together).
        outcome = pc.if_else(
            pc.is_in(ids, pa.array(result.created_ids, pa.string())),
            "inserted",
            pc.if_else(pc.is_in(ids, pa.array(result.updated_ids, pa.string())), "updated", "unchanged"),
        )
        hashes = result.updated_hashes
        if hashes is None:
            # Built by hand, without hashes: a change is counted as one
            # (nothing to tell a copy that brings an id back by).
            hashes = pa.table([pa.array(result.updated_ids, pa.string()), pa.nulls(len(result.updated_ids), pa.string()),
                               pa.nulls(len(result.updated_ids), pa.string())], schema=UPDATED_HASHES)  # fmt: skip
        # The rows of the ids that came before in this load (a hash hit
        # confirmed on the id), read by rowid.
        keys = _hash(ids)
        rows = self._index.rows(keys)
        seen = None
        if rows:
            seen = con.sql("SELECT rowid AS r, id, outcome, prior FROM loaded WHERE rowid = ANY($r)", params={"r": rows}).to_arrow_table()
            seen = seen.filter(pc.is_in(seen["id"], ids))
        if seen is None or not seen.num_rows:
            # The common case: no id of the chunk came before, so its
            # counts stand.
            self._append(ids, keys, outcome, hashes)
            return dataclasses.replace(result, repeated=0)
        new = pc.invert(pc.is_in(ids, seen["id"]))
        self._append(ids.filter(new), keys[new.to_numpy(zero_copy_only=False)], outcome.filter(new), hashes)
        # What each earlier id of the chunk counts as for the whole load:
        # as its first write did; then an inserted id stays inserted, a
        # copy that left the cache as it was leaves the count, and one that
        # changed it counts as unchanged if it brought back the hash of
        # before the load (kept in prior once the id counted as updated),
        # else as updated. The hash before the load is kept for the ids
        # that count as updated from now on: the one this write replaced,
        # unless an earlier write of the load had changed the id (then
        # prior holds it already).
        con.register("_seen", seen)
        con.register("_hashes", hashes)
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _net AS SELECT *, CASE WHEN outcome = 'updated' AND prior IS NULL "
                "AND before = 'unchanged' THEN previous_hash ELSE prior END AS new_prior FROM ("
                "SELECT l.r, l.outcome AS before, h.previous_hash, l.prior, "
                "CASE WHEN l.outcome = 'inserted' OR h.id IS NULL THEN l.outcome "
                "WHEN h.content_hash = l.prior THEN 'unchanged' ELSE 'updated' END AS outcome "
                "FROM _seen l LEFT JOIN _hashes h USING (id))"
            )
        finally:
            con.unregister("_seen")
            con.unregister("_hashes")
        counts = dict(
            con.execute(
                "SELECT k, count(*) FROM (SELECT outcome AS k FROM _net WHERE before <> outcome "
                "UNION ALL SELECT 'was_' || before FROM _net WHERE before <> outcome) GROUP BY k"
            ).fetchall()
        )
        # The new ids count as the upsert made them.
        for row in pc.value_counts(outcome.filter(new)).to_pylist():
            counts[row["values"]] = counts.get(row["values"], 0) + row["counts"]
        changed = [int(r) for r, in con.execute("SELECT r FROM _net WHERE before <> outcome").fetchall()]
        if changed:
            con.execute(
                "UPDATE loaded SET outcome = n.outcome, prior = n.new_prior FROM _net n "
                "WHERE loaded.rowid = n.r AND loaded.rowid = ANY($r)",
                {"r": changed},
            )
        return UpsertResult(
            inserted=counts.get("inserted", 0) - counts.get("was_inserted", 0),
            updated=counts.get("updated", 0) - counts.get("was_updated", 0),
            unchanged=counts.get("unchanged", 0) - counts.get("was_unchanged", 0),
            messages_written=result.messages_written,
            created_ids=list(result.created_ids),  # never an id written earlier in the load
            # Every write that changed a conversation is announced, a repeat
            # too: ``sync --analyze`` and the live stream rescore on these
            # events, and the counts alone are what is deduplicated.
            updated_ids=list(result.updated_ids),
            updated_hashes=result.updated_hashes,
        )

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
compact and are matched by hash join, not in a Python set). The bulk API
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
hash an id had before its first change is kept (table ``prior``). The
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
"""

from __future__ import annotations

import dataclasses

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .core import UPDATED_HASHES, UpsertResult


class LoadedIds:
    """The ids one load has written and their outcome so far: ``inserted``,
    ``updated`` or ``unchanged`` against the cache as it was before the load."""

    def __init__(self) -> None:
        self._con = duckdb.connect()
        # No key: an index made the insert over half the work; each id
        # is inserted once (repeats are updated) and matched by hash join.
        self._con.execute("CREATE TABLE loaded (id VARCHAR NOT NULL, outcome VARCHAR NOT NULL)")
        # The content hash before the load of the ids a write of the load
        # changed (see settle); one row per id, kept for the whole load:
        # that hash does not change.
        self._con.execute("CREATE TABLE prior (id VARCHAR NOT NULL, hash VARCHAR NOT NULL)")
        # Ids of lines held but not written by this load (see add_lines);
        # lines without a usable id count one each, as they did as lines.
        self._con.execute("CREATE TABLE held (id VARCHAR)")
        self._written = 0  # lines written by this load (each has an id), repeats included


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
        con.register("_chunk", pa.table({"id": ids, "outcome": outcome}))
        con.register("_hashes", hashes)
        try:
            if not con.execute("SELECT count(*) FROM _chunk SEMI JOIN loaded USING (id)").fetchall()[0][0]:
                # The common case, kept to one join and one insert (two
                # when the write changed cached conversations): no id of
                # the chunk came before, so its counts stand.
                con.execute("INSERT INTO loaded SELECT DISTINCT id, outcome FROM _chunk")
                if hashes.num_rows:
                    con.execute("INSERT INTO prior SELECT id, previous_hash FROM _hashes WHERE previous_hash IS NOT NULL")
                return dataclasses.replace(result, repeated=0)
            # What each id of the chunk counts as for the whole load: as its
            # first write did; then an inserted id stays inserted, a copy
            # that left the cache as it was leaves the count, and one that
            # changed it counts as unchanged if it brought back the hash of
            # before the load (kept in prior once the id counted as
            # updated), else as updated.
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _net AS SELECT n.id, l.outcome AS before, h.previous_hash, p.hash AS prior, "
                "CASE WHEN l.outcome IS NULL THEN n.outcome WHEN l.outcome = 'inserted' OR h.id IS NULL THEN l.outcome "
                "WHEN h.content_hash = p.hash THEN 'unchanged' ELSE 'updated' END AS outcome "
                "FROM (SELECT DISTINCT id, outcome FROM _chunk) n LEFT JOIN loaded l USING (id) "
                "LEFT JOIN prior p USING (id) LEFT JOIN _hashes h USING (id)"
            )
        finally:
            con.unregister("_chunk")
            con.unregister("_hashes")
        counts = dict(
            con.execute(
                "SELECT k, count(*) FROM (SELECT outcome AS k FROM _net WHERE before IS NULL OR before <> outcome "
                "UNION ALL SELECT 'was_' || before FROM _net WHERE before IS NOT NULL AND before <> outcome) GROUP BY k"
            ).fetchall()
        )
        con.execute("INSERT INTO loaded SELECT id, outcome FROM _net WHERE before IS NULL")
        # The hash before the load, for the ids that count as updated from
        # now on: the one this write replaced, unless an earlier write of the
        # load had changed the id (then prior holds it already).
        con.execute(
            "INSERT INTO prior SELECT id, previous_hash FROM _net WHERE outcome = 'updated' AND prior IS NULL "
            "AND previous_hash IS NOT NULL AND (before IS NULL OR before = 'unchanged')"
        )
        if counts.get("was_unchanged") or counts.get("was_updated"):
            con.execute(
                "UPDATE loaded SET outcome = n.outcome FROM _net n "
                "WHERE loaded.id = n.id AND n.before IS NOT NULL AND n.before <> n.outcome"
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

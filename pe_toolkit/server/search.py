"""Full-text search over message content, ranked by BM25.

DuckDB's ``fts`` extension would have to be downloaded, which pe_toolkit
never does at run time, so the index is two ordinary tables in the store
(migration 0003): ``server_search_docs`` (one row per conversation: a
server-assigned number, its id, the ``content_hash`` it was indexed at and
its length in tokens) and ``server_search_postings`` (term, doc, term
frequency), written sorted by term so DuckDB's zone maps skip most row
groups for a query's few terms. A conversation is one document (all its
messages), which is what the contract's results are.

Tokens: lower-cased runs of letters and digits, with inner apostrophes
kept (``don't``); no stemming and no stop words (BM25's idf already makes
frequent words cheap; a stemmer would be a download or a hand-written
approximation). Queries match any of their terms; documents with more of
them rank higher. Scoring is Okapi BM25 (k1 = 1.2, b = 0.75) with
corpus-wide statistics, computed in SQL over the query terms' postings.

The index is maintained incrementally: documents whose conversation
changed or disappeared are removed, new and changed conversations are
tokenized in batches, all in SQL. Snippets are cut in Python for the page
of results only (at most ``limit`` conversations).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from ..store import ConversationFilter
from ..store.api_objects import metadata_sql
from .db import ServerDB
from .objects import NotReady, ObjectSnapshot

log = logging.getLogger("pe_toolkit.server")

K1, B = 1.2, 0.75
BATCH = 20_000
TOKEN_RE2 = r"[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*"
# Python's \w is letters, digits and underscore: the same runs once the
# underscore is excluded. Used only to place snippets and highlights.
TOKEN_PY = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
SNIPPET_CHARS = 180


def tokens_sql(expr: str) -> str:
    pattern = TOKEN_RE2.replace("'", "''")
    return f"regexp_extract_all(lower(replace({expr}, chr(8217), chr(39))), '{pattern}')"


@dataclass
class SearchHit:
    conversation_id: str
    relevance_score: float
    matched_terms: int
    quality_score: float | None
    tier: str | None
    metadata: Any


class SearchIndex:
    def __init__(self, db: ServerDB, snapshot: ObjectSnapshot | None = None) -> None:
        self.db, self.snapshot = db, snapshot
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.error: str | None = None
        self.documents = 0
        self.pending = 0
        self.last_refresh_s = 0.0

    def refresh(self) -> int:
        """Bring the index up to date with the store; returns documents (re)indexed."""
        with self._lock:
            started = time.perf_counter()
            try:
                done = self._refresh()
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                raise
            self.error = None
            self.last_refresh_s = time.perf_counter() - started
            self.ready.set()
            return done

    def _refresh(self) -> int:
        db = self.db
        with db.write() as con:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _pe_stale AS SELECT d.doc FROM server_search_docs d "
                "LEFT JOIN conversations c ON c.id = d.conversation_id "
                "WHERE c.id IS NULL OR c.content_hash <> d.content_hash"
            )
            stale = con.execute("SELECT count(*) FROM _pe_stale").fetchall()[0][0]
            if stale:
                con.execute("DELETE FROM server_search_postings WHERE doc IN (SELECT doc FROM _pe_stale)")
                con.execute("DELETE FROM server_search_docs WHERE doc IN (SELECT doc FROM _pe_stale)")
            con.execute("DROP TABLE _pe_stale")
        missing = [
            r[0]
            for r in db.rows(
                "SELECT c.id FROM conversations c ANTI JOIN server_search_docs d ON d.conversation_id = c.id ORDER BY c.id"
            )
        ]
        self.pending = len(missing)
        for start in range(0, len(missing), BATCH):
            self._index(missing[start : start + BATCH])
            self.pending = max(0, len(missing) - start - BATCH)
        self.documents = int(db.scalar("SELECT count(*) FROM server_search_docs") or 0)
        return len(missing)

    def _index(self, ids: list[str]) -> None:
        with self.db.write() as con:
            first = con.execute("SELECT coalesce(max(doc), 0) FROM server_search_docs").fetchall()[0][0]
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _pe_batch AS "
                "SELECT c.id, c.content_hash, (? + row_number() OVER (ORDER BY c.id))::INTEGER AS doc "
                "FROM conversations c WHERE c.id IN (SELECT unnest(?::VARCHAR[]))",
                [first, ids],
            )
            con.execute(
                "INSERT INTO server_search_postings "
                "SELECT term, doc, count(*)::INTEGER FROM ("
                f"SELECT b.doc, unnest({tokens_sql('m.content')}) AS term "
                "FROM messages m JOIN _pe_batch b ON b.id = m.conversation_id) "
                "GROUP BY term, doc ORDER BY term, doc"
            )
            con.execute(
                "INSERT INTO server_search_docs "
                "SELECT b.doc, b.id, b.content_hash, coalesce(t.length, 0)::INTEGER FROM _pe_batch b "
                "LEFT JOIN (SELECT doc, sum(tf) AS length FROM server_search_postings "
                "WHERE doc > ? GROUP BY doc) t ON t.doc = b.doc",
                [first],
            )
            con.execute("DROP TABLE _pe_batch")

    def query_terms(self, text: str) -> list[str]:
        rows = self.db.rows(f"SELECT DISTINCT unnest({tokens_sql('?')}) AS t ORDER BY t", [text])
        return [r[0] for r in rows]

    def search(
        self, text: str, terms: list[str], filter: ConversationFilter, *, limit: int, offset: int
    ) -> tuple[list[SearchHit], int]:
        """A page of hits (best first, ties by id) and the number of matches."""
        where, params = filter.where("c")
        sql = (
            "WITH p AS (SELECT s.term, s.doc, s.tf FROM server_search_postings s "
            "WHERE s.term IN (SELECT unnest(?::VARCHAR[]))), "
            "stats AS (SELECT count(*) AS n, coalesce(avg(length), 1) AS avgdl FROM server_search_docs), "
            "df AS (SELECT term, count(*) AS df FROM p GROUP BY term), "
            "scored AS (SELECT p.doc, sum(ln(1 + (stats.n - df.df + 0.5) / (df.df + 0.5)) * p.tf * "
            f"({K1} + 1) / (p.tf + {K1} * (1 - {B} + {B} * d.length / stats.avgdl))) AS score, "
            "count(*) AS matched FROM p JOIN df USING (term) JOIN server_search_docs d USING (doc), stats "
            "GROUP BY p.doc), "
            "hits AS MATERIALIZED (SELECT c.id, s.score, s.matched, c.overall_quality, c.tier, "
            f"{metadata_sql('c')} AS metadata FROM scored s JOIN server_search_docs d USING (doc) "
            "JOIN conversations c ON c.id = d.conversation_id AND c.content_hash = d.content_hash "
            f"WHERE {where}) "
            "SELECT (SELECT count(*) FROM hits) AS total, h.id, h.score, h.matched, h.overall_quality, h.tier, "
            "h.metadata::VARCHAR FROM (SELECT 1) one LEFT JOIN "
            "(SELECT * FROM hits ORDER BY score DESC, id LIMIT ? OFFSET ?) h ON TRUE "
            "ORDER BY h.score DESC, h.id"
        )
        rows = self.db.rows(sql, [terms, *params, limit, offset])
        total = int(rows[0][0]) if rows else 0
        hits = [
            SearchHit(r[1], round(float(r[2]), 6), int(r[3]), r[4], r[5], orjson.loads(r[6]) if r[6] else None)
            for r in rows
            if r[1] is not None
        ]
        return hits, total

    def messages_of(self, ids: list[str]) -> dict[str, list[str]]:
        """Message contents per conversation, from the snapshot when it can."""
        found: dict[str, list[str]] = {}
        missing: list[str] = []
        for cid in ids:
            raw = None
            if self.snapshot is not None:
                try:
                    raw = self.snapshot.get(cid)
                except NotReady:
                    raw = None
            if raw is None:
                missing.append(cid)
            else:
                found[cid] = [m["content"] for m in orjson.loads(raw)["messages"]]
        if missing:
            for cid, content in self.db.rows(
                "SELECT conversation_id, content FROM messages WHERE conversation_id IN (SELECT unnest(?::VARCHAR[])) "
                "ORDER BY conversation_id, idx",
                [missing],
            ):
                found.setdefault(cid, []).append(content)
        return found


def snippet(messages: list[str], terms: set[str], width: int = SNIPPET_CHARS) -> tuple[str, list[list[int]]]:
    """The passage around the best match: the message with the most query
    term occurrences (earliest on ties), cut to about ``width`` characters
    around its first match at word boundaries, with the matches' offsets."""
    best: tuple[int, int, str, list[tuple[int, int]]] | None = None
    for number, text in enumerate(messages):
        spans = [(m.start(), m.end()) for m in TOKEN_PY.finditer(text) if m.group().lower().replace("\u2019", "'") in terms]
        if spans and (best is None or len(spans) > best[0]):
            best = (len(spans), number, text, spans)
    if best is None:
        text = next((t for t in messages if t), "")
        cut = text[:width]
        return (cut + "…" if len(text) > width else cut), []
    _, _, text, spans = best
    first = spans[0][0]
    start = max(0, first - width // 3)
    if start:
        space = text.rfind(" ", 0, start + 1)
        start = space + 1 if space >= 0 and first - space < width // 2 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > spans[0][1] else end
    prefix = "…" if start > 0 else ""
    body = text[start:end]
    marks = [[a - start + len(prefix), b - start + len(prefix)] for a, b in spans if a >= start and b <= end]
    return prefix + body + ("…" if end < len(text) else ""), marks

-- Sync bookkeeping (pe_toolkit.apisync): where an interrupted sync
-- resumes, when each conversation was last fetched from a source, and the
-- listing and work queue of an incremental run in progress. No PRIMARY KEY
-- indexes, as in 0001: every write goes through a delete-then-insert in one
-- transaction, and an ART index would slow the bulk path's per-batch
-- bookkeeping.

-- One row per (source, scope) with a sync in progress; deleted when the
-- sync completes. `state` is the phase's position as JSON.
CREATE TABLE sync_checkpoints (
    source      VARCHAR NOT NULL,   -- 'api:<base url>'
    scope       VARCHAR NOT NULL,   -- the filter, e.g. 'dataset=*;tier=*;min_quality=*'
    run_id      VARCHAR NOT NULL,   -- ingest_runs.run_id of the run that started it
    mode        VARCHAR NOT NULL,   -- bulk | incremental
    phase       VARCHAR NOT NULL,   -- bulk: download | load; incremental: listing | fetching
    state       JSON NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- When a conversation was last fetched from a source. Store.upsert does not
-- rewrite unchanged conversations (their fetched_at stays), so the cache
-- TTL of the incremental sync is kept here.
CREATE TABLE sync_seen (
    source     VARCHAR NOT NULL,
    id         VARCHAR NOT NULL,
    synced_at  TIMESTAMPTZ NOT NULL
);

-- Summaries listed by an incremental run (distinct ids: the listing is
-- reconciled by id, so offset drift leaves no duplicate here).
CREATE TABLE sync_listing (
    source         VARCHAR NOT NULL,
    scope          VARCHAR NOT NULL,
    id             VARCHAR NOT NULL,
    dataset        VARCHAR,
    tier           VARCHAR,
    quality_score  DOUBLE,
    message_count  INTEGER,
    created_at     TIMESTAMPTZ
);

-- Ids an incremental run still has to fetch, and why (new, changed, stale,
-- dead_letter); rows leave as their batch is written.
CREATE TABLE sync_pending (
    source  VARCHAR NOT NULL,
    scope   VARCHAR NOT NULL,
    id      VARCHAR NOT NULL,
    reason  VARCHAR NOT NULL
);

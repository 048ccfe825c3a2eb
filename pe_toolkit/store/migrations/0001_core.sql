-- Core tables: conversations, messages, ingest bookkeeping, dead letters,
-- annotations. Uniqueness of conversations.id and (conversation_id, idx) is
-- enforced by Store.upsert's merge rather than a DuckDB PRIMARY KEY: an ART
-- key index made re-writing changed conversations about 20x slower
-- (benchmarks/RESULTS.md), and every write goes through the merge anyway.

CREATE TABLE conversations (
    id               VARCHAR NOT NULL,
    source           VARCHAR,
    dataset          VARCHAR,
    tier             VARCHAR,
    created_at       TIMESTAMPTZ,
    message_count    INTEGER NOT NULL,
    therapeutic_accuracy   DOUBLE,
    conversation_coherence DOUBLE,
    emotional_authenticity DOUBLE,
    clinical_compliance    DOUBLE,
    safety_score           DOUBLE,
    overall_quality        DOUBLE,
    metadata         JSON,
    content_hash     VARCHAR NOT NULL,
    fetched_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE messages (
    conversation_id  VARCHAR NOT NULL,
    idx              INTEGER NOT NULL,
    role             VARCHAR NOT NULL,
    content          VARCHAR NOT NULL,
    "timestamp"      TIMESTAMPTZ
);

-- Records that failed validation: kept with the reason so nothing is lost
-- silently; the sync retries them, `pe-toolkit info` counts them.
CREATE TABLE dead_letters (
    source       VARCHAR NOT NULL,   -- file path or API base URL
    locator      VARCHAR NOT NULL,   -- line/record number or conversation id
    reason       VARCHAR NOT NULL,
    payload      VARCHAR,            -- the raw record (sensitive: the file is mode 600)
    attempts     INTEGER NOT NULL DEFAULT 1,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    resolved_at  TIMESTAMPTZ
);

CREATE TABLE ingest_runs (
    run_id       VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,   -- import | sync
    source       VARCHAR NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       VARCHAR NOT NULL,   -- running | completed | failed
    inserted     BIGINT DEFAULT 0,
    updated      BIGINT DEFAULT 0,
    unchanged    BIGINT DEFAULT 0,
    invalid      BIGINT DEFAULT 0,
    error        VARCHAR
);

-- Labels a researcher gives in the review widget; one row per
-- (task, reviewer, conversation, message) kept by Store.annotate's merge.
CREATE TABLE annotations (
    task             VARCHAR NOT NULL DEFAULT 'review',
    reviewer         VARCHAR NOT NULL,
    conversation_id  VARCHAR NOT NULL,
    message_idx      INTEGER,            -- NULL: the label is about the whole conversation
    label            VARCHAR NOT NULL,
    note             VARCHAR,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

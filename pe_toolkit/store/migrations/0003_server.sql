-- The offline mirror (`pe-toolkit serve`): processing jobs, exports and the
-- full-text search index. Jobs and exports survive a restart; a job that was
-- running when the server stopped is marked failed with the reason when the
-- server starts again (jobs.py), never left "running".

CREATE TABLE server_jobs (
    job_id               VARCHAR NOT NULL,
    processing_type      VARCHAR NOT NULL,   -- quality_validation | analysis | export
    dataset_name         VARCHAR NOT NULL,   -- a dataset, or '*' for every dataset
    parameters           JSON NOT NULL,
    status               VARCHAR NOT NULL,   -- queued | running | completed | failed | cancelled
    progress             DOUBLE NOT NULL DEFAULT 0,   -- 0..100
    submitted_at         TIMESTAMPTZ NOT NULL,
    started_at           TIMESTAMPTZ,
    completed_at         TIMESTAMPTZ,
    estimated_completion TIMESTAMPTZ,
    results              JSON,
    error                VARCHAR
);

-- One row per export; export_id is also the id of the job that writes it.
-- file_name is a bare name inside the server's exports folder, never a path.
CREATE TABLE server_exports (
    export_id       VARCHAR NOT NULL,
    dataset         VARCHAR NOT NULL,
    format          VARCHAR NOT NULL,
    filters         JSON NOT NULL,
    file_name       VARCHAR NOT NULL,
    download_name   VARCHAR NOT NULL,
    media_type      VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,    -- processing | ready | failed | expired
    conversations   BIGINT,
    size_bytes      BIGINT,
    estimated_size  BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    completed_at    TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ NOT NULL,
    error           VARCHAR
);

-- BM25 index over message content (search.py): one document per
-- conversation, indexed at content_hash; postings written sorted by term.
CREATE TABLE server_search_docs (
    doc              INTEGER NOT NULL,
    conversation_id  VARCHAR NOT NULL,
    content_hash     VARCHAR NOT NULL,
    length           INTEGER NOT NULL
);

CREATE TABLE server_search_postings (
    term  VARCHAR NOT NULL,
    doc   INTEGER NOT NULL,
    tf    INTEGER NOT NULL
);

-- 1. ingest_runs records the process running it (pid, host), like
--    analysis_runs since 0010: an import or sync whose process was killed is
--    marked 'interrupted' at the next writable open instead of staying
--    'running' forever (Store.mark_interrupted_runs).
ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS pid INTEGER;
ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS host VARCHAR;

-- 2. The mirror's exports record who asked (the index of the server key,
--    never the key) for the per-key disk quota, and a fingerprint of what
--    they hold (dataset, format, filters and the store's state), so an
--    identical request is answered with the same file (server/exports.py).
ALTER TABLE server_exports ADD COLUMN IF NOT EXISTS key_id INTEGER;
ALTER TABLE server_exports ADD COLUMN IF NOT EXISTS fingerprint VARCHAR;

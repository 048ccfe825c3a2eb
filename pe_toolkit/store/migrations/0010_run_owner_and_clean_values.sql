-- 1. analysis_runs records the process running it (pid, host), so a run
--    whose process was killed can be told from one still going: the next
--    writable open or analyze marks it 'interrupted' instead of leaving it
--    'running' forever (Store.mark_interrupted_runs).
ALTER TABLE analysis_runs ADD COLUMN IF NOT EXISTS pid INTEGER;
ALTER TABLE analysis_runs ADD COLUMN IF NOT EXISTS host VARCHAR;

-- 2. A record without "metadata" was stored with the owned keys as nulls
--    (json_merge_patch of NULL returns the patch itself), which the API
--    objects then repeated after the real values: duplicate keys, the last
--    (null) one winning. Such a document carries nothing: store NULL.
--    (The content hashes were computed over the null-keyed text, so the next
--    import of such a record counts it as updated once.)
UPDATE conversations SET metadata = NULL
WHERE metadata IS NOT NULL
  AND json_merge_patch(metadata, '{"dataset":null,"tier":null,"length":null,"created_at":null}')::VARCHAR = '{}';

-- 3. Quality values the importer now refuses (outside 0-1, NaN, infinite)
--    were stored as given and reached JSON output as NaN/Infinity, which is
--    not JSON. They carry no usable score: store NULL.
UPDATE conversations SET
    therapeutic_accuracy = CASE WHEN therapeutic_accuracy BETWEEN 0 AND 1 THEN therapeutic_accuracy END,
    conversation_coherence = CASE WHEN conversation_coherence BETWEEN 0 AND 1 THEN conversation_coherence END,
    emotional_authenticity = CASE WHEN emotional_authenticity BETWEEN 0 AND 1 THEN emotional_authenticity END,
    clinical_compliance = CASE WHEN clinical_compliance BETWEEN 0 AND 1 THEN clinical_compliance END,
    safety_score = CASE WHEN safety_score BETWEEN 0 AND 1 THEN safety_score END,
    overall_quality = CASE WHEN overall_quality BETWEEN 0 AND 1 THEN overall_quality END
WHERE NOT coalesce(therapeutic_accuracy BETWEEN 0 AND 1, TRUE)
   OR NOT coalesce(conversation_coherence BETWEEN 0 AND 1, TRUE)
   OR NOT coalesce(emotional_authenticity BETWEEN 0 AND 1, TRUE)
   OR NOT coalesce(clinical_compliance BETWEEN 0 AND 1, TRUE)
   OR NOT coalesce(safety_score BETWEEN 0 AND 1, TRUE)
   OR NOT coalesce(overall_quality BETWEEN 0 AND 1, TRUE);

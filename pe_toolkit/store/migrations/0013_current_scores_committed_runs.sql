-- The version in force (0009_current_scores) is now that of the latest
-- analyze() run that committed something or completed, not of the latest
-- run whatever its status. A run whose analyzer failed before its first
-- batch was written (a researcher's analyzer raising, two models with one
-- prefix) recorded a new version and scored nothing, and every current
-- score and alert disappeared until a run succeeded. A run that wrote a
-- batch (analysis_runs.scored is updated in that batch's transaction) puts
-- its version in force as before: rows of the older version are left out
-- until re-scored. CREATE OR REPLACE keeps the migration safe to run again;
-- the other two views follow this one.

CREATE OR REPLACE VIEW current_conversation_scores AS
SELECT s.* FROM conversation_scores s
SEMI JOIN conversations c ON c.id = s.conversation_id AND c.content_hash = s.content_hash
CROSS JOIN (
    SELECT arg_max(analysis_version, started_at) FILTER (WHERE status = 'completed' OR scored > 0) AS version
    FROM analysis_runs
) in_force
WHERE in_force.version IS NULL OR s.analysis_version = in_force.version;

-- Current scores: the rule for which analysis rows still hold, kept by the
-- store so every reader (exports, the warehouse, widgets, the server, plain
-- SQL in notebooks and the README) applies the same one.
--
-- A conversation_scores row is current when
--   1. its conversation is still in the store with the content it was scored
--      on (conversations.content_hash = conversation_scores.content_hash), and
--   2. it was computed by the analysis version in force.
-- message_scores and evidence rows are current when their conversation's
-- row is: analyze() writes and replaces the three together.
--
-- The version in force is the analysis_version of the latest analyze() run
-- (analysis_runs, the run started last, whatever its status). A view cannot
-- know the Python analyzers' version, but every analyze() records the one it
-- runs with before scoring anything and re-scores every row of another
-- version, so a row is current exactly when the next incremental analyze()
-- with the same analyzers and settings would leave it alone. After a
-- completed run all rows match; after an interrupted run that changed the
-- version, the rows still of the older version are left out until a run
-- re-scores them. A setting or data file that enters a version (the alert
-- threshold, a lexicon, a model) takes effect at the next analyze(): until
-- then the store has no way to tell. With no run recorded (scores written by
-- other means) rows of any version count.
--
-- The views select s.*, so a column a later migration adds to a score table
-- shows in them without touching them (DuckDB binds a view when queried).
-- CREATE OR REPLACE keeps the migration safe to run again.

CREATE OR REPLACE VIEW current_conversation_scores AS
SELECT s.* FROM conversation_scores s
SEMI JOIN conversations c ON c.id = s.conversation_id AND c.content_hash = s.content_hash
CROSS JOIN (SELECT arg_max(analysis_version, started_at) AS version FROM analysis_runs) in_force
WHERE in_force.version IS NULL OR s.analysis_version = in_force.version;

CREATE OR REPLACE VIEW current_message_scores AS
SELECT m.* FROM message_scores m
SEMI JOIN current_conversation_scores s ON s.conversation_id = m.conversation_id;

CREATE OR REPLACE VIEW current_evidence AS
SELECT e.* FROM evidence e
SEMI JOIN current_conversation_scores s ON s.conversation_id = e.conversation_id;

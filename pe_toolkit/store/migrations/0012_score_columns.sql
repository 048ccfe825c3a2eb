-- Score columns of analyzers added after the fact (a researcher's analyzer
-- registered with pe_toolkit.analysis.analyzer/register): analyze() adds
-- each new message or conversation column to message_scores or
-- conversation_scores (ALTER TABLE ... ADD COLUMN, in the transaction of the
-- batch that first writes it) and records it here, so the schema a store
-- holds stays explained: the shipped analyzers' columns come from the
-- migrations, every other one from a row of this table. The current-score
-- views select s.*, so the column shows in them, the exports and the
-- widgets without further change.
CREATE TABLE IF NOT EXISTS score_columns (
    table_name        VARCHAR NOT NULL,
    column_name       VARCHAR NOT NULL,
    data_type         VARCHAR NOT NULL,
    analysis_version  VARCHAR NOT NULL,  -- of the run that added it
    added_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (table_name, column_name)
);

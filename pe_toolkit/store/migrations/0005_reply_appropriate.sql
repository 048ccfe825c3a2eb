-- Safety analyzer v2: whether the reply to each disclosure was appropriate,
-- on the disclosure's own row, so per-category views read it instead of
-- restating the rule. Older rows stay NULL until re-scored (the analyzer
-- version changed, so the next `analyze` re-scores them).
ALTER TABLE message_scores ADD COLUMN reply_appropriate BOOLEAN;

-- Safety analyzer v4: abuse disclosures on their own scale (abuse_severity:
-- 1 past abuse, 2 ongoing or recent abuse, 3 current danger), no longer part
-- of crisis_severity; and its maximum per conversation. Older rows stay NULL
-- until re-scored: the analyzer version changed, so the next `analyze`
-- re-scores them.
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS abuse_severity TINYINT;
ALTER TABLE conversation_scores ADD COLUMN IF NOT EXISTS max_abuse_severity TINYINT;

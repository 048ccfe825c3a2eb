-- Learned analyzers (pe_toolkit.analysis.learned): the skills model's support
-- strategy of each assistant message with its probabilities, and the risk
-- model's probability for each user message (and its maximum per
-- conversation). Older rows stay NULL until re-scored: the analysis version
-- changed, so the next `analyze` re-scores them.
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS skill VARCHAR;
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS skill_p_question DOUBLE;
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS skill_p_reflection DOUBLE;
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS skill_p_self_disclosure DOUBLE;
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS skill_p_affirmation DOUBLE;
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS skill_p_suggestion DOUBLE;
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS skill_p_information DOUBLE;
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS skill_p_other DOUBLE;
ALTER TABLE message_scores ADD COLUMN IF NOT EXISTS suicide_risk_p DOUBLE;
ALTER TABLE conversation_scores ADD COLUMN IF NOT EXISTS suicide_risk_p_max DOUBLE;

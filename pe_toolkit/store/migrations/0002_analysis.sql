-- Analysis results (pe_toolkit.analysis.analyze). conversation_scores holds one
-- row per analyzed conversation with the content_hash it was computed from
-- and the analysis_version (every analyzer's name=version): a conversation
-- whose hash or version differs is scored again. message_scores (one row per
-- message) and evidence (the matched spans) belong to that row: the three are
-- replaced together, in one transaction per batch of conversations, so a
-- crash keeps every committed batch and a re-run continues with the rest.
-- As in 0001, uniqueness of conversation_id (and idx) is kept by that
-- delete-then-insert rather than by an index.

CREATE TABLE conversation_scores (
    conversation_id          VARCHAR NOT NULL,
    content_hash             VARCHAR NOT NULL,
    analysis_version         VARCHAR NOT NULL,
    analyzed_at              TIMESTAMPTZ NOT NULL,
    message_count            INTEGER,
    -- sentiment: the user's first / last non-empty turn (VADER compound)
    sentiment_start          DOUBLE,
    sentiment_end            DOUBLE,
    sentiment_change         DOUBLE,
    -- empathy (EPITOME) and counselling skills
    empathy_mean             DOUBLE,
    emotional_reactions_mean DOUBLE,
    interpretations_mean     DOUBLE,
    explorations_mean        DOUBLE,
    reflection_question_ratio DOUBLE,
    open_question_share      DOUBLE,
    -- safety
    risk_score               DOUBLE,
    alert                    BOOLEAN,
    crisis_categories        VARCHAR[],
    max_severity             TINYINT,
    disclosures              INTEGER,
    responses_appropriate    DOUBLE,
    harmful_messages         INTEGER,
    pii_messages             INTEGER,
    -- quality: structure, readability, diversity
    user_turns               INTEGER,
    assistant_turns          INTEGER,
    empty_turns              INTEGER,
    repeated_turns           INTEGER,
    role_order_violations    INTEGER,
    user_words               BIGINT,
    assistant_words          BIGINT,
    length_ratio             DOUBLE,
    reading_ease             DOUBLE,
    words_per_sentence       DOUBLE,
    lexical_diversity        DOUBLE,
    scored_turns             INTEGER,
    unsolicited_advice       DOUBLE,
    -- corpus-level: refreshed over all stored scores at the end of each run
    boilerplate_share        DOUBLE,
    near_duplicate_share     DOUBLE,
    -- the API's six metrics computed locally, and the local tier
    therapeutic_accuracy     DOUBLE,
    conversation_coherence   DOUBLE,
    emotional_authenticity   DOUBLE,
    clinical_compliance      DOUBLE,
    safety_score             DOUBLE,
    overall_quality          DOUBLE,
    tier                     VARCHAR
);

CREATE TABLE message_scores (
    conversation_id      VARCHAR NOT NULL,
    idx                  INTEGER NOT NULL,
    role                 VARCHAR NOT NULL,
    sentiment            DOUBLE,
    emotional_reactions  TINYINT,
    interpretations      TINYINT,
    explorations         TINYINT,
    empathy              DOUBLE,
    skills               VARCHAR[],
    crisis_categories    VARCHAR[],
    crisis_severity      TINYINT,
    safety_check         BOOLEAN,
    crisis_resources     BOOLEAN,
    professional_help    BOOLEAN,
    harmful              VARCHAR[],
    pii                  VARCHAR[],
    words                INTEGER,
    sentences            INTEGER,
    syllables            INTEGER,
    text_hash            UBIGINT,       -- normalized text (assistant messages)
    minhash_bands        UBIGINT[],     -- MinHash LSH band keys (assistant messages)
    empty_turn           BOOLEAN,
    repeated_turn        BOOLEAN,
    role_order_violation BOOLEAN
);

CREATE TABLE evidence (
    conversation_id  VARCHAR NOT NULL,
    idx              INTEGER NOT NULL,
    analyzer         VARCHAR NOT NULL,
    category         VARCHAR NOT NULL,
    "start"          INTEGER NOT NULL,   -- character offsets into the message's content
    "end"            INTEGER NOT NULL,
    text             VARCHAR NOT NULL
);

CREATE TABLE analysis_runs (
    run_id            VARCHAR NOT NULL,
    analysis_version  VARCHAR NOT NULL,
    incremental       BOOLEAN NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    status            VARCHAR NOT NULL,  -- running | completed | failed
    selected          BIGINT DEFAULT 0,  -- conversations that needed scoring
    scored            BIGINT DEFAULT 0,
    messages          BIGINT DEFAULT 0,
    alerts            BIGINT DEFAULT 0,
    corpus_refreshed  BOOLEAN DEFAULT FALSE,
    error             VARCHAR
);

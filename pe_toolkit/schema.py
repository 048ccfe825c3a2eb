"""The conversation model shared by every layer.

A conversation is one row of :data:`CONVERSATION_SCHEMA` (messages nested as
a list) on the way in, and one row in ``conversations`` plus N rows in
``messages`` once stored. Every importer and the sync produce batches of
this schema; the store accepts nothing else.
"""

from __future__ import annotations

import pyarrow as pa

TIERS: tuple[str, ...] = ("basic", "standard", "professional", "clinical", "research")
ROLES: tuple[str, ...] = ("user", "assistant", "system")
QUALITY_METRICS: tuple[str, ...] = (
    "therapeutic_accuracy",
    "conversation_coherence",
    "emotional_authenticity",
    "clinical_compliance",
    "safety_score",
    "overall_quality",
)

# The vocabulary the analyzers, the synthetic generator's ground truth and
# the score tables share: one definition, so a code cannot drift apart.
CRISIS_CATEGORIES: tuple[str, ...] = (
    "passive_ideation",
    "active_ideation",
    "plan_or_method",
    "intent",
    "preparatory_behavior",
    "prior_attempt",
    "self_harm",
    "harm_to_others",
    "abuse_disclosure",
)
HARM_KINDS: tuple[str, ...] = ("minimizing", "method_information", "diagnosing", "medication_instructions")
PII_KINDS: tuple[str, ...] = ("email", "phone", "address", "url", "id_number", "date_of_birth")
SKILL_CODES: tuple[str, ...] = (
    "open_question",
    "closed_question",
    "simple_reflection",
    "complex_reflection",
    "affirmation",
    "validation",
    "reassurance",
    "self_disclosure",
    "suggestion",
    "unsolicited_advice",
    "information",
)

# Message-level metadata is kept in the conversation's metadata under this
# key, one entry per message (null where a message has none): the stored
# message rows have no metadata column.
MESSAGE_METADATA_KEY = "message_metadata"

# Speaker labels seen in the wild, mapped to our three roles. Anything else
# is an error naming the record: guessing a role silently would corrupt
# every per-role analysis downstream.
ROLE_ALIASES: dict[str, str] = {
    "user": "user",
    "human": "user",
    "client": "user",
    "patient": "user",
    "seeker": "user",
    "help_seeker": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "counselor": "assistant",
    "counsellor": "assistant",
    "therapist": "assistant",
    "supporter": "assistant",
    "system": "system",
    "developer": "system",
}

# Columns of the stored `conversations` table (migrations/0001_core.sql),
# in table order: what exports and the warehouse read.
STORED_CONVERSATION_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "dataset",
    "tier",
    "created_at",
    "message_count",
    *QUALITY_METRICS,
    "metadata",
    "content_hash",
    "fetched_at",
)

TIMESTAMP = pa.timestamp("us", tz="UTC")

MESSAGE_TYPE = pa.struct(
    [
        pa.field("role", pa.string(), nullable=False),
        pa.field("content", pa.string(), nullable=False),
        pa.field("timestamp", TIMESTAMP),
    ]
)

CONVERSATION_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("tier", pa.string()),
        pa.field("created_at", TIMESTAMP),
        *(pa.field(name, pa.float64()) for name in QUALITY_METRICS),
        pa.field("metadata", pa.string()),  # JSON text of the free-form metadata object
        pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False),
    ]
)

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

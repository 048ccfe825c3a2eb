"""ESConv-style emotional-support dialogues (Liu et al., ACL 2021, and corpora in its shape).

A file is a JSON array of dialogues (or one dialogue per JSON line)::

    {"emotion_type": "anxiety", "problem_type": "job crisis", "situation": "...",
     "survey_score": {"seeker": {"initial_emotion_intensity": "5", ...}, ...},
     "dialog": [{"speaker": "seeker", "content": "...", "annotation": {"feedback": "4"}},
                {"speaker": "supporter", "content": "...", "annotation": {"strategy": "Question"}}]}

- ``seeker`` -> user, ``supporter`` -> assistant (any speaker of
  :data:`~pe_toolkit.schema.ROLE_ALIASES` is accepted); consecutive turns of
  one speaker stay separate messages, as the annotations belong to each;
- each turn's ``annotation`` (and any other key of the turn) goes into the
  message's metadata (``metadata.message_metadata[i]``, see
  :mod:`.columns`); the dialogue's other fields into the conversation's
  metadata;
- numbers written as strings (ESConv writes its survey scores and feedback
  as ``"5"``) become numbers, so they can be averaged and compared;
- the id is the dialogue's ``id``/``dialog_id``/``conversation_id`` if it
  has one, else derived from its content (re-importing changes nothing).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from ..schema import CONVERSATION_SCHEMA, QUALITY_METRICS, ROLE_ALIASES
from .columns import MESSAGE_METADATA_KEY
from .reader import DEFAULT_CHUNK_BYTES, record_chunks

_ID_KEYS = ("id", "dialog_id", "dialogue_id", "conversation_id")
_NUMBER = re.compile(r"[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?(0|[1-9][0-9]*)")

DESCRIPTION = [
    "dialog[].speaker -> message role (seeker -> user, supporter -> assistant)",
    "dialog[].content -> message text (consecutive turns of one speaker kept apart)",
    "dialog[].annotation (strategy, feedback, ...) -> message metadata",
    "other dialogue fields (emotion_type, problem_type, situation, survey_score, ...) -> metadata",
]


def is_esconv(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("dialog"), list)


def _typed(value: Any) -> Any:
    """Numbers written as strings become numbers, in nested objects too."""
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _NUMBER.fullmatch(text):
            return float(text)
        return value
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def dialogue(obj: Any, dataset: str) -> dict[str, Any]:
    """One dialogue as a conversation row; raises ValueError naming the field."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object (a dialogue), got {_kind(obj)}")
    if "dialog" not in obj:
        raise ValueError('missing "dialog" (the list of turns)')
    turns = obj["dialog"]
    if not isinstance(turns, list):
        raise ValueError(f'"dialog" must be an array, got {_kind(turns)}')
    if not turns:
        raise ValueError('"dialog" is empty')
    messages: list[dict[str, Any]] = []
    per_message: list[dict[str, Any] | None] = []
    for j, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise ValueError(f"dialog[{j}] must be an object, got {_kind(turn)}")
        speaker = turn.get("speaker")
        if not isinstance(speaker, str):
            raise ValueError(f'dialog[{j}] has no "speaker"' if speaker is None else f"dialog[{j}].speaker must be a string, got {_kind(speaker)}")
        role = ROLE_ALIASES.get(speaker.strip().lower())
        if role is None:
            raise ValueError(f"dialog[{j}].speaker: unknown speaker {speaker!r} (expected seeker or supporter)")
        content = turn.get("content")
        if not isinstance(content, str):
            raise ValueError(f'dialog[{j}] has no "content"' if content is None else f"dialog[{j}].content must be a string, got {_kind(content)}")
        annotation = turn.get("annotation") or {}
        if not isinstance(annotation, dict):
            raise ValueError(f"dialog[{j}].annotation must be an object, got {_kind(annotation)}")
        meta = {k: v for k, v in turn.items() if k not in ("speaker", "content", "annotation")}
        meta.update(annotation)
        messages.append({"role": role, "content": content, "timestamp": None})
        per_message.append(_typed(meta) or None)
    given = next((obj[k] for k in _ID_KEYS if isinstance(obj.get(k), (str, int)) and not isinstance(obj.get(k), bool)), None)
    if isinstance(given, str) and not given.strip():
        raise ValueError('"id" is empty')
    metadata = _typed({k: v for k, v in obj.items() if k != "dialog" and k not in _ID_KEYS and v is not None})
    for owned in ("dataset", "tier", "length", "created_at"):
        metadata.pop(owned, None)
    if any(m is not None for m in per_message):
        metadata[MESSAGE_METADATA_KEY] = per_message
    named = obj.get("dataset")
    ds = named if isinstance(named, str) else dataset
    if given is None:
        digest = hashlib.md5(ds.encode() + orjson.dumps(messages) + orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS))
        given = "esconv_" + digest.hexdigest()[:20]
    return {"id": str(given), "dataset": ds, "metadata": orjson.dumps(metadata).decode() if metadata else None, "messages": messages}


def _table(rows: list[dict[str, Any]], source: str) -> pa.Table:
    n = len(rows)
    columns: dict[str, Any] = {
        "id": [r["id"] for r in rows],
        "source": [source] * n,
        "dataset": [r["dataset"] for r in rows],
        "tier": [None] * n,
        "created_at": [None] * n,
        **{m: [None] * n for m in QUALITY_METRICS},
        "metadata": [r["metadata"] for r in rows],
        "messages": [r["messages"] for r in rows],
    }
    return pa.table(columns, schema=CONVERSATION_SCHEMA)


def esconv_batches(path: Path, dataset: str, source: str, batch_rows: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[tuple[pa.Table, list[tuple[int, str, str]]]]:
    """(good conversations, errors) per chunk of dialogues.

    A Python loop over dialogues: the records are irregular nested objects
    (optional annotations, numbers as strings) and few (the largest public
    ESConv file has 1,300 dialogues, read in well under a second), so the
    per-record cost does not matter here as it does for the JSON formats.
    """
    _, chunks = record_chunks(path, batch_rows, chunk_bytes)
    for chunk in chunks:
        good: list[dict[str, Any]] = []
        errors = list(chunk.bad_lines)
        for line_no, raw in zip(chunk.lines.column("line_no").to_pylist(), chunk.lines.column("raw").to_pylist()):
            if not raw.strip():
                continue
            try:
                good.append(dialogue(orjson.loads(raw), dataset))
            except orjson.JSONDecodeError as exc:
                errors.append((line_no, f"invalid JSON ({exc})", raw.rstrip("\r\n")))
            except ValueError as exc:
                errors.append((line_no, str(exc), raw.rstrip("\r\n")))
        yield _table(good, source), sorted(errors)

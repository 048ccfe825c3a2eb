"""PII redaction of exported text with the analyzers' redactor.

Message contents are redacted as one column per batch (the vectorized
``pe_toolkit.analysis.pii.redact_frame``). Free-form metadata is JSON of any
shape, so its string values are gathered with a small walk over the parsed
objects, redacted in the same single vectorized call, and put back; the keys
pe_toolkit owns (dataset, tier, created_at) are structure, not free text,
and are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ExportError

_STRUCTURAL_KEYS = frozenset({"dataset", "tier", "created_at"})

Redactor = Callable[[list[str]], list[str]]


def load_redactor() -> Callable[[pa.Array], pa.Array]:
    """A function redacting an Arrow string array (nulls stay null)."""
    try:
        from ..analysis.pii import redact_frame
    except ImportError as exc:
        raise ExportError(
            f"redaction needs pe_toolkit.analysis.pii.redact_frame, which is not available ({exc})"
        ) from None

    def redact(values: pa.Array) -> pa.Array:
        if len(values) == 0:
            return values
        frame = pl.DataFrame({"content": pl.from_arrow(values)})
        out = redact_frame(frame, column="content")
        return out["content"].to_arrow().cast(pa.string())

    return redact


def _flat_children(messages: pa.ListArray) -> tuple[pa.StructArray, pa.Array]:
    """The message structs of a (possibly sliced) list column and 0-based offsets."""
    structs = messages.flatten()
    offsets = pc.subtract(messages.offsets, messages.offsets[0])
    return structs, offsets


def replace_message_field(messages: pa.ListArray, name: str, values: pa.Array) -> pa.ListArray:
    """The same list of structs with one struct field swapped for ``values``."""
    structs, offsets = _flat_children(messages)
    children = structs.flatten()  # respects the struct's own offset, unlike .field()
    arrays = [values if field.name == name else child for field, child in zip(structs.type, children)]
    rebuilt = pa.StructArray.from_arrays(arrays, fields=list(structs.type))
    return pa.ListArray.from_arrays(offsets, rebuilt, mask=messages.is_null() if messages.null_count else None)


def redact_messages(messages: pa.ListArray, redact: Callable[[pa.Array], pa.Array]) -> pa.ListArray:
    structs, _ = _flat_children(messages)
    content = structs.flatten()[structs.type.get_field_index("content")]
    return replace_message_field(messages, "content", redact(content))


def _gather(node: Any, out: list[tuple[Any, Any]], top: bool) -> None:
    # Free-form JSON has no columnar form: walk it to collect string leaves
    # as (container, key) slots to write back after one vectorized call.
    if isinstance(node, dict):
        for key, value in node.items():
            if top and key in _STRUCTURAL_KEYS:
                continue
            if isinstance(value, str):
                out.append((node, key))
            else:
                _gather(value, out, False)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, str):
                out.append((node, i))
            else:
                _gather(value, out, False)


def _redact_slots(slots: list[tuple[Any, Any]], redact: Callable[[pa.Array], pa.Array]) -> None:
    if not slots:
        return
    cleaned = redact(pa.array([c[k] for c, k in slots], pa.string())).to_pylist()
    for (container, key), value in zip(slots, cleaned):
        container[key] = value


def redact_metadata(metadata: pa.Array, redact: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Metadata JSON texts with every free-text string value redacted."""
    objects = [None if text is None else orjson.loads(text) for text in metadata.to_pylist()]
    slots: list[tuple[Any, Any]] = []
    for obj in objects:
        _gather(obj, slots, True)
    _redact_slots(slots, redact)
    return pa.array([None if o is None else orjson.dumps(o).decode() for o in objects], pa.string())


def redact_api_objects(texts: pa.Array, redact: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """API conversation objects (JSON texts) with message contents and
    metadata strings redacted; keys keep their order."""
    objects = [orjson.loads(text) for text in texts.to_pylist()]
    slots: list[tuple[Any, Any]] = []
    for obj in objects:
        for message in obj.get("messages") or ():
            if isinstance(message.get("content"), str):
                slots.append((message, "content"))
        _gather(obj.get("metadata"), slots, True)
    _redact_slots(slots, redact)
    return pa.array([orjson.dumps(o).decode() for o in objects], pa.string())

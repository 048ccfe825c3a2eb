"""PII redaction of exported text with the analyzers' redactor.

Message contents are redacted as one column per batch (the vectorized
``pe_toolkit.analysis.pii.redact_frame``), each value with the conversation
it belongs to, so that a name found in one message ("My name is Sarah.") is
redacted in every message of that conversation ("Sarah, I hear you.") and
in its metadata, and in no other conversation. Free-form metadata is JSON of
any shape, so its string values are gathered with a small walk over the
parsed objects, redacted in the same single vectorized call, and put back;
so are free-form keys (an e-mail used as a key). The keys pe_toolkit owns
(dataset, tier, created_at) are structure and keep their names; of their
values only the dataset name is free text, and it is scanned like the rest.

Identifiers are scanned too, with their conversation: a conversation id in
which the scan finds PII (an e-mail or a phone number used as an id), or
which holds a name found in its conversation ("session-priya-raman-01"
for a client who says "I'm Priya"), is replaced by a pseudonym, a keyed
hash (HMAC-SHA256 under a key drawn once per export and never written), so
one id maps to the same pseudonym throughout an export (the conversations
and messages tables still join) and to an unrelated one in the next
export. For the names, the id is also scanned as words (:func:`id_words`),
since an id runs its words together in lower case. Ids without PII are
kept as they are.

Score columns (``include_scores``) are data too: a researcher's analyzer
may write text (an opening line, a quoted phrase) to a score column, so
every string score value (and every string in a list of them) is redacted
in the same call as its conversation's messages; only the analysis'
bookkeeping (``analysis_version``, ``analyzed_at``) and the tier label are
left as they are. The store's own bookkeeping that the ``tables`` layout
carries is keyed like the ids: ``source`` (the imported file's name, often
a client's) and ``content_hash`` (a hash of the unredacted content, which
would confirm a guessed conversation) become keyed hashes of this export.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ExportError
from .scores import CONVERSATION_PREFIX, MESSAGE_PREFIX

# Set to true in the metadata of every conversation of a redacted export, so
# an import can tell the copy from the full record (Store.upsert refuses to
# replace a stored full conversation with its redacted copy).
REDACTED_KEY = "pe_redacted"
_STRUCTURAL_KEYS = frozenset({"dataset", "tier", "created_at", REDACTED_KEY})
# Of the owned keys, those whose values are not free text (a tier name, a
# timestamp the date-of-birth patterns would misread).
_OPAQUE_VALUES = frozenset({"tier", "created_at"})
PSEUDONYM_PREFIX = "pseudo_"
# Score values that are bookkeeping, not text about a person: the version
# string ("phonenumbers9.0.43" would read as digits of a phone or an IP),
# the time of the analysis, the tier label.
_OPAQUE_SCORES = frozenset({"analysis_version", "analyzed_at", "tier"})
# Stored bookkeeping columns replaced by keyed hashes in a redacted export.
_KEYED_COLUMNS = ("source", "content_hash")


class Pseudonyms:
    """Stable stand-ins for identifiers that hold PII, for one export."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        # HMAC-SHA256 (RFC 2104) with its two keyed states computed once and
        # copied per value: hmac.new per value took 0.30 s of CPU per 100,000
        # ids, this 0.10 s (benchmarks/bench_pii.py); the pseudonyms are the same.
        block = self._key if len(self._key) <= 64 else hashlib.sha256(self._key).digest()
        block = block.ljust(64, b"\0")  # SHA-256's block size
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def of(self, value: str) -> str:
        inner = self._inner.copy()
        inner.update(value.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return PSEUDONYM_PREFIX + outer.hexdigest()[:20]

    def many(self, values: list[str]) -> list[str]:
        """:meth:`of` each of ``values``. A loop: neither polars nor Arrow
        has a keyed hash (DuckDB's sha256 built into HMAC took twice the CPU)."""
        return [self.of(v) for v in values]

    def column(self, values: pa.Array, kind: str) -> pa.Array:
        """Every non-null value of a bookkeeping column keyed (``kind``
        separates the columns: an equal text in two of them gets two
        unrelated pseudonyms)."""
        return pa.array([None if v is None else self.of(f"{kind}\x00{v}") for v in values.to_pylist()], pa.string())


def id_words(ids: pa.Array) -> pa.Array:
    """Each id as words for the name scan: split at whatever is not a letter
    or a digit, each word capitalised ("session-priya-raman-01" -> "Session
    Priya Raman 01"), so a name said in the conversation matches it in any
    case. Alone, such words are not names to the scan (no context says so):
    only the conversation's names make an id change."""
    return pc.utf8_title(pc.replace_substring_regex(ids.cast(pa.string()), r"[^\p{L}\p{N}]+", " "))


def id_texts(ids: pa.Array) -> pa.Array:
    """What an id contributes to its conversation's scan: the id as stored
    (an e-mail or phone used as an id) and :func:`id_words` of it, in that
    order (two texts per id)."""
    ids = ids.cast(pa.string())
    return pa.concat_arrays([ids, id_words(ids)])


def ids_changed(n: int, before: pa.Array, redacted: pa.Array) -> pa.Array:
    """Per id (``n`` of them), whether the scan changed either of its two
    texts: ``before`` is :func:`id_texts` of them, ``redacted`` the same
    after the scan."""
    changed = pc.fill_null(pc.not_equal(redacted, before), False)
    return pc.or_(changed.slice(0, n), changed.slice(n, n))


def pseudonymised_ids(ids: pa.Array, before: pa.Array, redacted: pa.Array, pseudonyms: Pseudonyms) -> pa.Array:
    """``ids`` with each one the scan changed replaced by its pseudonym (a
    placeholder such as ``[EMAIL]`` would make distinct ids collide);
    ``before`` is :func:`id_texts` of them, ``redacted`` the same after the scan."""
    ids = ids.cast(pa.string())
    n = len(ids)
    if n == 0:
        return ids
    either = ids_changed(n, before, redacted)
    if not pc.any(either).as_py():
        return ids
    flags = either.to_pylist()
    return pa.array([pseudonyms.of(v) if flag else v for v, flag in zip(ids.to_pylist(), flags)], pa.string())


Redactor = Callable[[list[str]], list[str]]


class ConversationRedactor:
    """The analyzers' redactor over an Arrow string array (nulls stay null).
    Called with ``groups`` (one conversation number per value), a name found
    in one value is redacted in every value of its group; without, each
    value is redacted on its own. A plain ``Callable[[pa.Array], pa.Array]``
    works wherever this does, minus the grouping."""

    def __init__(self, redact_frame: Callable[..., pl.DataFrame]) -> None:
        self._redact_frame = redact_frame

    def __call__(self, values: pa.Array, groups: pa.Array | None = None) -> pa.Array:
        if len(values) == 0:
            return values
        columns = {"content": pl.from_arrow(values)}
        if groups is not None:
            columns["conversation"] = pl.from_arrow(groups)
        frame = pl.DataFrame(columns)
        out = self._redact_frame(frame, column="content", by="conversation" if groups is not None else None)
        return out["content"].to_arrow().cast(pa.string())


def load_redactor() -> ConversationRedactor:
    """The redactor for ``export --redact`` (:class:`ConversationRedactor`)."""
    try:
        from ..analysis.pii import redact_frame
    except ImportError as exc:
        raise ExportError(
            f"redaction needs pe_toolkit.analysis.pii.redact_frame, which is not available ({exc})"
        ) from None
    return ConversationRedactor(redact_frame)


def _apply(redact: Callable[[pa.Array], pa.Array], values: pa.Array, groups: pa.Array) -> pa.Array:
    """``redact(values)``, with the conversation of each value when the
    redactor takes it."""
    if isinstance(redact, ConversationRedactor):
        return redact(values, groups)
    return redact(values)


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


def _contents(messages: pa.ListArray) -> tuple[pa.Array, pa.Array]:
    """The message contents of a list column and the row (conversation) of each."""
    structs, _ = _flat_children(messages)
    content = structs.flatten()[structs.type.get_field_index("content")]
    return content, pc.list_parent_indices(messages)


def redact_messages(messages: pa.ListArray, redact: Callable[[pa.Array], pa.Array]) -> pa.ListArray:
    """The messages with their contents redacted, each list one conversation."""
    content, groups = _contents(messages)
    return replace_message_field(messages, "content", _apply(redact, content, groups))


class _Slots:
    """String leaves of free-form JSON as (container, key) slots, and the
    objects whose keys are free text too, each with its conversation (row)
    number, to write back after one vectorized call."""

    def __init__(self) -> None:
        self.slots: list[tuple[Any, Any]] = []
        self.slot_groups: list[int] = []
        self.owners: list[tuple[dict[str, Any], bool, int]] = []

    def add(self, container: Any, key: Any, group: int) -> None:
        self.slots.append((container, key))
        self.slot_groups.append(group)


def _gather(node: Any, out: _Slots, top: bool, group: int) -> None:
    # Free-form JSON has no columnar form: walk it to collect string leaves
    # as (container, key) slots, and the objects whose keys are free text
    # too, to write back after one vectorized call.
    if isinstance(node, dict):
        out.owners.append((node, top, group))
        for key, value in node.items():
            if top and key in _OPAQUE_VALUES:
                continue
            if isinstance(value, str):
                out.add(node, key, group)
            else:
                _gather(value, out, False, group)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, str):
                out.add(node, i, group)
            else:
                _gather(value, out, False, group)


def _redact_slots(found: _Slots, redact: Callable[[pa.Array], pa.Array],
                  before: tuple[pa.Array, pa.Array] | None = None) -> pa.Array | None:  # fmt: skip
    """Redact the string values in ``found``'s slots and its owners' keys (an
    e-mail or a name used as a key is as identifying as one used as a value),
    in one call with ``before`` (texts and their conversations: a batch's
    message contents), whose redacted texts are returned."""
    keys = [(d, k, g) for d, top, g in found.owners for k in d if not (top and k in _STRUCTURAL_KEYS)]
    slots = found.slots
    texts = pa.array([c[k] for c, k in slots] + [k for _, k, _ in keys], pa.string())
    groups = pa.array(found.slot_groups + [g for _, _, g in keys], pa.int64())
    if before is not None:
        texts = pa.concat_arrays([before[0].cast(pa.string()), texts])
        groups = pa.concat_arrays([before[1].cast(pa.int64()), groups])
    if len(texts) == 0:
        return before[0] if before is not None else None
    everything = _apply(redact, texts, groups)
    lead = 0 if before is None else len(before[0])
    cleaned = everything.slice(lead).to_pylist()
    for (container, key), value in zip(slots, cleaned):
        container[key] = value
    renamed: dict[int, dict[str, str]] = {}
    for (owner, key, _), new in zip(keys, cleaned[len(slots) :]):
        if new != key:
            renamed.setdefault(id(owner), {})[key] = new
    for owner, _, _ in found.owners:
        mapping = renamed.get(id(owner))
        if not mapping:
            continue
        items = list(owner.items())
        owner.clear()
        for key, value in items:
            new = mapping.get(key, key)
            # Two keys redacted alike ("[EMAIL]") keep both values.
            n = 2
            base = new
            while new in owner:
                new = f"{base} {n}"
                n += 1
            owner[new] = value
    return everything.slice(0, lead) if before is not None else None


def _parsed(metadata: pa.Array) -> tuple[list[Any], _Slots]:
    """Metadata JSON texts parsed, with their string slots (row = conversation)."""
    objects = [None if text is None else orjson.loads(text) for text in metadata.to_pylist()]
    found = _Slots()
    for row, obj in enumerate(objects):
        _gather(obj, found, True, row)
    return objects, found


def _marked(objects: list[Any]) -> list[Any]:
    """Metadata objects with :data:`REDACTED_KEY` set (an object made for
    a conversation without metadata; one that is not an object is kept)."""
    out = []
    for obj in objects:
        if obj is None:
            obj = {}
        if isinstance(obj, dict):
            obj[REDACTED_KEY] = True
        out.append(obj)
    return out


def _dumped(objects: list[Any]) -> pa.Array:
    return pa.array([None if o is None else orjson.dumps(o).decode() for o in objects], pa.string())


def redact_metadata(metadata: pa.Array, redact: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Metadata JSON texts with every free-text string value redacted."""
    objects, found = _parsed(metadata)
    _redact_slots(found, redact)
    return _dumped(objects)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _text_leaves(array: pa.Array, groups: pa.Array) -> tuple[pa.Array, pa.Array, Callable[[pa.Array], pa.Array]] | None:
    """The strings of a string or list-of-strings ``array`` (one value per
    entry of ``groups``), the group of each, and how to rebuild an array of
    the same type from them redacted; None for any other type."""
    t = array.type
    if _is_text(t):
        return array.cast(pa.string()), groups, lambda new: new.cast(t)
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_text(t.value_type):
        values = array.flatten()
        inner = pc.take(groups, pc.list_parent_indices(array))
        offsets = pc.subtract(array.offsets, array.offsets[0])
        mask = array.is_null() if array.null_count else None
        cls = pa.ListArray if pa.types.is_list(t) else pa.LargeListArray

        def rebuild(new: pa.Array) -> pa.Array:
            return cls.from_arrays(offsets, new.cast(t.value_type), type=t, mask=mask)

        return values.cast(pa.string()), inner, rebuild
    return None


def _gather_scores(scores: Any, found: _Slots, group: int) -> None:
    """The text values of an API object's ``scores`` member (its keys are
    column names, not free text)."""
    if not isinstance(scores, dict):
        return
    for key, value in scores.items():
        if key in _OPAQUE_SCORES:
            continue
        if isinstance(value, str):
            found.add(scores, key, group)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    found.add(value, i, group)


def redact_api_objects(
    texts: pa.Array, redact: Callable[[pa.Array], pa.Array], pseudonyms: Pseudonyms | None = None
) -> pa.Array:
    """API conversation objects (JSON texts) with message contents and
    metadata strings redacted and ids holding PII pseudonymized; keys keep
    their order."""
    objects = [orjson.loads(text) for text in texts.to_pylist()]
    pseudonyms = pseudonyms or Pseudonyms()
    with_id = [(row, o) for row, o in enumerate(objects) if isinstance(o.get("id"), str)]
    ids = pa.array([o["id"] for _, o in with_id], pa.string())
    id_rows = pa.array([row for row, _ in with_id], pa.int64())
    found = _Slots()
    for row, obj in enumerate(objects):
        for message in obj.get("messages") or ():
            if isinstance(message.get("content"), str):
                found.add(message, "content", row)
        _gather(obj.get("metadata"), found, True, row)
        _gather_scores(obj.get("scores"), found, row)
    # The ids with their conversations (two texts each, see id_texts).
    texts_of_ids = id_texts(ids)
    scanned = _redact_slots(found, redact, before=(texts_of_ids, pa.concat_arrays([id_rows, id_rows])))
    assert scanned is not None
    for (_, obj), new in zip(with_id, pseudonymised_ids(ids, texts_of_ids, scanned, pseudonyms).to_pylist()):
        obj["id"] = new
    for obj, metadata in zip(objects, _marked([o.get("metadata") for o in objects])):
        obj["metadata"] = metadata
    return pa.array([orjson.dumps(o).decode() for o in objects], pa.string())


def redact_batch(batch: pa.RecordBatch, source: str, redact: Callable[[pa.Array], pa.Array],
                 pseudonyms: Pseudonyms) -> pa.RecordBatch:  # fmt: skip
    """One export batch redacted: ``source`` "api" (id, json) or "nested"
    (the conversation columns with their messages)."""
    names = batch.schema.names
    if source == "api":
        return batch.set_column(names.index("json"), "json", redact_api_objects(batch.column("json"), redact, pseudonyms))
    # A conversation's messages, metadata and text scores in one call, grouped by row.
    messages = batch.column("messages")
    content, groups = _contents(messages)
    rows = pa.array(range(batch.num_rows), pa.int64())
    leaves: list[tuple[str, bool, tuple[pa.Array, pa.Array, Callable[[pa.Array], pa.Array]]]] = []
    for name in names:
        # The dataset name with its conversation, as the API objects' metadata
        # has it: a name said in the messages is redacted in it too.
        scored = name.startswith(CONVERSATION_PREFIX) and name[len(CONVERSATION_PREFIX):] not in _OPAQUE_SCORES
        if scored or name == "dataset":
            leaf = _text_leaves(batch.column(name), rows)
            if leaf is not None:
                leaves.append((name, False, leaf))
    structs, _ = _flat_children(messages)
    for field, child in zip(structs.type, structs.flatten()):
        if field.name.startswith(MESSAGE_PREFIX) and field.name[len(MESSAGE_PREFIX):] not in _OPAQUE_SCORES:
            leaf = _text_leaves(child, groups)
            if leaf is not None:
                leaves.append((field.name, True, leaf))
    # The ids with their conversations (two texts each, see id_texts).
    ids = batch.column("id").cast(pa.string()) if "id" in names else pa.array([], pa.string())
    id_rows = pa.array(range(len(ids)), pa.int64())
    texts_of_ids = id_texts(ids)
    leaves.append(("id", False, (texts_of_ids, pa.concat_arrays([id_rows, id_rows]),
                                 lambda new: pseudonymised_ids(ids, texts_of_ids, new, pseudonyms))))  # fmt: skip
    texts = pa.concat_arrays([content.cast(pa.string()), *(values for _, _, (values, _, _) in leaves)])
    text_groups = pa.concat_arrays([groups.cast(pa.int64()), *(g.cast(pa.int64()) for _, _, (_, g, _) in leaves)])
    objects, found = _parsed(batch.column("metadata"))
    redacted = _redact_slots(found, redact, before=(texts, text_groups))
    assert redacted is not None
    messages = replace_message_field(messages, "content", redacted.slice(0, len(content)))
    at = len(content)
    for name, in_messages, (values, _, rebuild) in leaves:
        new = rebuild(redacted.slice(at, len(values)))
        at += len(values)
        if in_messages:
            messages = replace_message_field(messages, name, new)
        elif name in names:
            batch = batch.set_column(names.index(name), name, new)
    batch = batch.set_column(names.index("messages"), "messages", messages)
    batch = batch.set_column(names.index("metadata"), "metadata", _dumped(_marked(objects)))
    for name in _KEYED_COLUMNS:
        if name in names:
            batch = batch.set_column(names.index(name), name, pseudonyms.column(batch.column(name), name))
    return batch

"""A researcher's own analyzer: a function over a messages frame, registered
and versioned in a few lines (see ``docs/analyzers.md``)::

    @pe.analysis.analyzer("hedging")
    def hedging(messages):
        return messages.select(hedges=pl.col("content").str.count_matches(r"(?i)\\b(maybe|perhaps)\\b"))

The function receives the batch's messages (:data:`~.base.MESSAGES_SCHEMA`,
sorted by conversation_id, idx), the ``params`` as keyword arguments, and
the whole :class:`~.base.Batch` (tokens, segments, earlier analyzers'
results) when it has a ``batch`` parameter. It returns either

- a frame of message-level columns, one row per message in order (the keys
  ``conversation_id``, ``idx`` may be included, then rows are matched on them);
- a dict with any of ``messages`` (as above), ``conversations`` (keyed by
  ``conversation_id``; conversations it leaves out get nulls) and
  ``evidence`` (``conversation_id, idx, category, start, end``, ``text``
  taken from the content when left out);
- or a :class:`~.base.Scores`.

Its version is the given ``version`` (if any) plus a digest of the
function's source and its ``params``: editing the function or changing a
parameter changes it, and the next ``analyze(store)`` re-scores. A helper
the function calls is not part of the digest: raise ``version`` when only
a helper changed.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import marshal
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import polars as pl

from ..errors import AnalysisError, InputError
from .base import EVIDENCE_SCHEMA, Batch, Scores, empty_evidence
from .registry import register

_KEYS = ("conversation_id", "idx")


def _code_digest(fn: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(fn).encode()
    except (OSError, TypeError):  # defined where no source is kept (exec, some REPLs)
        text = marshal.dumps(fn.__code__)
    return hashlib.sha256(text).hexdigest()


def _canonical(value: Any) -> bytes:
    """Bytes that stand for ``value`` the same way in every process, for the
    version: ``repr`` orders a set by hash (a new version each process, and
    every row re-scored) and cuts a DataFrame's rows ("..."), so an edited
    row 50 of 100 kept the version and stale scores counted as current."""
    if isinstance(value, Mapping):
        items = sorted((_canonical(k), _canonical(v)) for k, v in value.items())
        return b"{" + b",".join(k + b":" + v for k, v in items) + b"}"
    if isinstance(value, (set, frozenset)):
        return b"set(" + b",".join(sorted(_canonical(v) for v in value)) + b")"
    if isinstance(value, (list, tuple)):
        return type(value).__name__.encode() + b"(" + b",".join(_canonical(v) for v in value) + b")"
    if isinstance(value, (pl.DataFrame, pl.Series)):
        frame = value.to_frame() if isinstance(value, pl.Series) else value
        out = io.BytesIO()
        frame.write_ipc(out, compression="uncompressed")
        return b"frame:" + hashlib.sha256(out.getvalue()).hexdigest().encode()
    if isinstance(value, np.ndarray):
        return b"array:" + f"{value.dtype}{value.shape}".encode() + hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest().encode()
    text = repr(value)
    if " at 0x" in text:
        raise InputError(f"parameter {text[:80]} has no stable representation for the analyzer's version; pass plain values")
    return text.encode()


class FunctionAnalyzer:
    """A function under the analyzer contract (see the module docstring)."""

    def __init__(self, fn: Callable[..., Any], *, name: str, version: str | None = None,
                 params: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        self.fn = fn
        self.name = name
        self.params = dict(params or {})
        self._wants_batch = "batch" in inspect.signature(fn).parameters
        digest = hashlib.sha256(_code_digest(fn).encode())
        digest.update(_canonical(self.params))
        digest.update(_canonical((fn.__defaults__, fn.__kwdefaults__)))
        self.version = f"{version}+{digest.hexdigest()[:12]}" if version else digest.hexdigest()[:12]

    def __repr__(self) -> str:
        return f"FunctionAnalyzer({self.name!r}, version={self.version!r})"

    def __call__(self, messages: Any, **params: Any) -> Any:
        """The plain function, as written (for notebooks and tests)."""
        return self.fn(messages, **params)

    def score(self, batch: Batch | pl.DataFrame, context: dict[str, Scores] | None = None) -> Scores:
        batch = Batch.of(batch, context)
        extra = {"batch": batch} if self._wants_batch else {}
        out = self.fn(batch.messages, **self.params, **extra)
        if isinstance(out, Scores):
            return out
        if isinstance(out, pl.DataFrame):
            out = {"messages": out}
        if not isinstance(out, Mapping) or set(out) - {"messages", "conversations", "evidence"}:
            raise AnalysisError(
                f"analyzer {self.name!r} must return a frame of message columns, Scores, or a dict of "
                f"messages/conversations/evidence frames; got {type(out).__name__}"
            )
        frame = batch.messages
        return Scores(
            messages=self._messages(frame, out.get("messages")),
            conversations=self._conversations(frame, out.get("conversations")),
            evidence=self._evidence(frame, out.get("evidence")),
        )

    def _messages(self, frame: pl.DataFrame, part: pl.DataFrame | None) -> pl.DataFrame:
        keys = frame.select(_KEYS)
        if part is None:
            return keys
        if all(k in part.columns for k in _KEYS):
            self._check_keys("message", part, keys, _KEYS)
            return keys.join(part, on=list(_KEYS), how="left", maintain_order="left")
        if part.height != frame.height:
            raise AnalysisError(
                f"analyzer {self.name!r} returned {part.height} message rows for {frame.height} messages "
                "(return one row per message, or include conversation_id and idx)"
            )
        return pl.concat([keys, part.drop([k for k in _KEYS if k in part.columns])], how="horizontal")

    def _conversations(self, frame: pl.DataFrame, part: pl.DataFrame | None) -> pl.DataFrame:
        ids = frame.select(pl.col("conversation_id").unique(maintain_order=True))
        if part is None:
            return ids
        if "conversation_id" not in part.columns:
            raise AnalysisError(f"analyzer {self.name!r}: its conversations frame needs a conversation_id column")
        self._check_keys("conversation", part, ids, ("conversation_id",))
        return ids.join(part, on="conversation_id", how="left", maintain_order="left")

    def _evidence(self, frame: pl.DataFrame, part: pl.DataFrame | None) -> pl.DataFrame:
        if part is None or part.is_empty():
            return empty_evidence()
        need = [c for c in ("conversation_id", "idx", "category", "start", "end") if c not in part.columns]
        if need:
            raise AnalysisError(f"analyzer {self.name!r}: its evidence lacks column(s) {', '.join(need)}")
        part = part.with_columns(pl.col("idx").cast(pl.Int32), pl.col("start").cast(pl.Int32), pl.col("end").cast(pl.Int32))
        self._check_keys("evidence", part, frame.select(_KEYS), _KEYS, unique=False)
        if "text" not in part.columns:
            part = part.join(frame.select(*_KEYS, "content"), on=list(_KEYS), how="left").with_columns(
                text=pl.col("content").str.slice(pl.col("start"), pl.col("end") - pl.col("start"))
            )
        return part.with_columns(analyzer=pl.lit(self.name)).select(list(EVIDENCE_SCHEMA)).cast(EVIDENCE_SCHEMA)


    def _check_keys(self, what: str, part: pl.DataFrame, batch: pl.DataFrame, on: tuple[str, ...], *,
                    unique: bool = True) -> None:
        """Refuse rows for items outside the batch (evidence would land on
        another conversation; scores were dropped without a word) and two rows
        for one item (one of them was kept at random)."""
        keys = part.select(pl.col(k).cast(batch.schema[k]) for k in on)
        foreign = keys.join(batch, on=list(on), how="anti")
        if foreign.height:
            raise AnalysisError(
                f"analyzer {self.name!r}: {foreign.height} {what} row(s) name items outside the batch, "
                f"the first {foreign.row(0)}"
            )
        repeated = keys.filter(keys.is_duplicated())
        if unique and repeated.height:
            raise AnalysisError(
                f"analyzer {self.name!r}: its {what} frame has {repeated.height} rows for {repeated.n_unique()} "
                f"item(s), the first {repeated.row(0)}; return one row each"
            )


def analyzer(name: str, *, version: str | None = None, params: Mapping[str, Any] | None = None,
             register_it: bool = True) -> Callable[[Callable[..., Any]], FunctionAnalyzer]:  # fmt: skip
    """Decorator: the function as a :class:`FunctionAnalyzer` named ``name``,
    registered (every ``analyze``/``analyze_frame`` of this process runs it)
    unless ``register_it=False``."""

    def wrap(fn: Callable[..., Any]) -> FunctionAnalyzer:
        made = FunctionAnalyzer(fn, name=name, version=version, params=params)
        if register_it:
            register(made)
        return made

    return wrap


__all__ = ["FunctionAnalyzer", "analyzer"]

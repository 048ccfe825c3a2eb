"""The quality analyzer: structure, readability, diversity, duplicate keys,
and the API's six metrics computed locally (see :mod:`.metrics`).

It runs last in a pass and reads the other analyzers' scores from
``context`` (``sentiment``, ``empathy``, ``safety``). A metric whose inputs
are missing (an analyzer that did not run) is null rather than guessed.

Message columns: ``words``, ``sentences``, ``syllables`` (Int32),
``text_hash`` (UInt64) and ``minhash_bands`` (List(UInt64)) on assistant
messages (see :mod:`.duplicates`), ``empty_turn``, ``repeated_turn``,
``role_order_violation`` (see :mod:`.structure`).

Conversation columns: ``user_turns``, ``assistant_turns``, ``empty_turns``,
``repeated_turns``, ``role_order_violations``, ``user_words``,
``assistant_words``, ``length_ratio``, ``reading_ease``,
``words_per_sentence``, ``lexical_diversity`` (assistant text, see
:mod:`.readability`), ``scored_turns`` (the n of the metric formulas),
``unsolicited_advice``, the six metrics and ``tier``.

Evidence: one row per structural defect, spanning the whole message.

Everything per conversation is a numpy segment reduction over the sorted
rows (:mod:`.segments`); the only per-row list work is counting skill codes.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..schema import QUALITY_METRICS
from . import duplicates, metrics, readability, structure
from .base import EVIDENCE_SCHEMA, Batch, Scores
from .segments import Segments

NAME = "quality"
VERSION = "6"  # 3: no metrics or tier without an assistant message; 4: no length_ratio without assistant words; 5: a message ending in non-words (emoji, ":(") has its last sentence counted; 6: a token of symbols ending in '.', '!' or '?' ("🙂.") ends a sentence after a word

_DEFECTS = ("empty_turn", "repeated_turn", "role_order_violation")
_ROLE_CODES = {"user": structure.USER, "assistant": structure.ASSISTANT, "system": structure.SYSTEM}

_EMPATHY: dict[str, pl.DataType | type[pl.DataType]] = {"emotional_reactions": pl.Int8, "interpretations": pl.Int8, "explorations": pl.Int8, "skills": pl.List(pl.String)}
_SAFETY: dict[str, pl.DataType | type[pl.DataType]] = {
    "crisis_severity": pl.Int8,
    "abuse_severity": pl.Int8,
    "safety_check": pl.Boolean,
    "crisis_resources": pl.Boolean,
    "professional_help": pl.Boolean,
    "harmful": pl.List(pl.String),
    "pii": pl.List(pl.String),
}


def _aligned(keys: pl.DataFrame, other: pl.DataFrame, columns: dict[str, pl.DataType | type[pl.DataType]], on: list[str]) -> pl.DataFrame:
    """``other``'s columns row-aligned with ``keys`` (joined on ``on`` unless
    already aligned, which one equality check tells); missing ones null."""
    present = [c for c in columns if c in other.columns]
    base = keys.select(on)
    if present:
        if other.height == keys.height and other.select(on).equals(base):
            base = pl.concat([base, other.select(present)], how="horizontal")
        else:
            base = base.join(other.select(*on, *present), on=on, how="left", maintain_order="left")
    return base.with_columns(
        [pl.lit(None, dtype).alias(name) for name, dtype in columns.items() if name not in present]
    ).select([pl.col(name).cast(dtype) for name, dtype in columns.items()])


def _levels(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).fill_null(np.nan).to_numpy()


def _flag(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].fill_null(False).to_numpy()


def _count_codes(skills: pl.Series, codes: tuple[str, ...]) -> np.ndarray:
    return skills.list.eval(pl.element().is_in(list(codes))).list.sum().fill_null(0).to_numpy()


def _scored(segments: Segments, role: np.ndarray, flags: structure.Flags, saf: pl.DataFrame) -> np.ndarray:
    """The scored turns (the n of the metric formulas): assistant messages
    not empty, not repeated, not out of role order and not a crisis reply
    (the reply to a disclosure carrying a safety check, crisis resources, a
    referral or harmful content)."""
    assistant = role == structure.ASSISTANT
    harmful = assistant & (saf["harmful"].list.len().fill_null(0).to_numpy() > 0)
    # A disclosure: crisis or abuse severity above 0 (safety v4 scores abuse apart).
    disclosed = (saf["crisis_severity"].fill_null(0).to_numpy() > 0) | (saf["abuse_severity"].fill_null(0).to_numpy() > 0)
    # The first assistant message after a disclosure (the safety analyzer's reply rule, Segments.next_where).
    replies = segments.next_where(assistant)[np.flatnonzero(disclosed & (role == structure.USER))]
    first_reply = np.zeros(len(role), dtype=bool)
    first_reply[replies[replies >= 0]] = True
    crisis_reply = first_reply & (
        _flag(saf, "safety_check") | _flag(saf, "crisis_resources") | _flag(saf, "professional_help") | harmful
    )
    return assistant & ~flags.empty_turn & ~flags.repeated_turn & ~flags.role_order_violation & ~crisis_reply


def scored_turns(messages: pl.DataFrame) -> pl.Series:
    """Boolean per row of merged message scores (``conversation_id``, ``idx``,
    ``role``, the structure flags and the safety columns, sorted by
    conversation_id, idx): whether the message is one of the scored turns the
    metrics read, so readers of stored scores (recommendations) use the same
    turns. Without the safety columns no message counts as a crisis reply."""
    segments = Segments.of(messages)
    role = messages["role"].replace_strict(_ROLE_CODES, return_dtype=pl.UInt8).to_numpy()
    flags = structure.Flags(*(messages[name].fill_null(False).to_numpy() for name in _DEFECTS))
    keys = messages.select("conversation_id", "idx")
    saf = _aligned(keys, messages, _SAFETY, ["conversation_id", "idx"])
    return pl.Series("scored_turn", _scored(segments, role, flags, saf))


def _components(segments: Segments, role: np.ndarray, flags: structure.Flags, emp: pl.DataFrame, saf: pl.DataFrame,
                conv: pl.DataFrame, have: dict[str, bool]) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-conversation inputs of the metric formulas (see :mod:`.metrics`)."""
    assistant = role == structure.ASSISTANT
    harmful = assistant & (saf["harmful"].list.len().fill_null(0).to_numpy() > 0)
    scored = _scored(segments, role, flags, saf)
    turns = segments.sum(scored)
    out: dict[str, np.ndarray] = {"turns": turns.astype(np.float64)}
    with np.errstate(invalid="ignore", divide="ignore"):
        for key, column in (("er", "emotional_reactions"), ("ip", "interpretations"), ("ex", "explorations")):
            level = _levels(emp, column)
            known = scored & ~np.isnan(level)
            count = segments.sum(known)
            # Without ordinary turns there is no evidence either way: the neutral prior.
            out[key] = np.where(count > 0, segments.sum(np.where(known, level, 0.0)) / np.maximum(count, 1) / 2, 0.5)
    skills = emp["skills"]
    out["good"] = segments.sum(np.where(scored, _count_codes(skills, metrics.GOOD_CODES), 0)).astype(np.float64)
    out["poor"] = segments.sum(np.where(scored, _count_codes(skills, metrics.POOR_CODES), 0)).astype(np.float64)
    out["unsolicited"] = segments.sum(np.where(scored, _count_codes(skills, ("unsolicited_advice",)), 0)).astype(np.float64)
    out["harmful"] = segments.sum(harmful).astype(np.float64)
    out["assistant_pii"] = segments.sum(assistant & (saf["pii"].list.len().fill_null(0).to_numpy() > 0)).astype(np.float64)
    out["defects"] = (
        segments.sum(flags.empty_turn) + 0.8 * segments.sum(flags.repeated_turn) + 0.8 * segments.sum(flags.role_order_violation)
    ).astype(np.float64)
    disclosures = conv["disclosures"].fill_null(0).cast(pl.Float64).to_numpy()
    appropriate = conv["responses_appropriate"].fill_null(1.0).to_numpy()
    out["disclosures"] = disclosures
    out["inappropriate"] = disclosures * (1.0 - appropriate)
    out["end_arc"] = ((conv["sentiment_end"].fill_null(0.0).to_numpy()) + 1.0) / 2.0
    missing = []
    if not have["empathy"]:
        missing += ["er", "ip", "ex", "good", "poor", "unsolicited"]
    if not have["safety"]:
        missing += ["harmful", "assistant_pii", "inappropriate", "disclosures"]
    if not have["sentiment"]:
        missing += ["end_arc"]
    for key in missing:
        out[key] = np.full(segments.n, np.nan)
    # A conversation with no assistant message has nothing to rate (a post, a
    # user's log): every component unknown, so every metric and the tier are
    # null, not the priors' 0.5 dressed up as a tier.
    unrated = segments.sum(assistant) == 0
    for key in out:
        if key != "turns":
            out[key] = np.where(unrated, np.nan, out[key])
    return out


def _evidence(messages: pl.DataFrame, flags: structure.Flags) -> pl.DataFrame:
    parts = []
    for name in _DEFECTS:
        rows = np.flatnonzero(getattr(flags, name))
        if not len(rows):
            continue
        hit = messages.select("conversation_id", "idx", "content").gather(rows)
        parts.append(
            hit.select(
                "conversation_id",
                "idx",
                pl.lit(NAME).alias("analyzer"),
                pl.lit(name).alias("category"),
                pl.lit(0).alias("start"),
                pl.col("content").str.len_chars().alias("end"),
                pl.col("content").alias("text"),
            )
        )
    if not parts:
        return pl.DataFrame(schema=EVIDENCE_SCHEMA)
    return pl.concat(parts).cast(EVIDENCE_SCHEMA).sort("conversation_id", "idx", maintain_order=True)


class QualityAnalyzer:
    """Structure, readability, duplicates and the six local metrics."""

    name = NAME
    version = f"{VERSION}+dup{duplicates.BANDS}x{duplicates.ROWS}"

    def score(self, batch: Batch | pl.DataFrame, context: dict[str, Scores] | None = None) -> Scores:
        batch = Batch.of(batch, context)
        messages, segments, tokens, context = batch.messages, batch.segments, batch.tokens, batch.results
        vocab = readability.vocab_frame(tokens)
        counts = readability.text_counts(tokens, vocab)
        role = messages["role"].replace_strict(_ROLE_CODES, return_dtype=pl.UInt8).to_numpy()
        has_text = tokens.lengths > 0
        answers = np.flatnonzero(role == structure.ASSISTANT)

        word_hash = duplicates.stable_hash64(vocab["key"])
        text_hash, bands = duplicates.signatures(tokens, answers, word_hash)
        n = messages.height
        hashes = np.zeros(n, dtype=np.uint64)
        hashes[answers] = text_hash
        hashed = np.zeros(n, dtype=bool)
        hashed[answers] = has_text[answers]
        banded = np.zeros(n, dtype=bool)
        banded[answers] = has_text[answers] & (bands[:, 0] != 0)
        band_values = np.zeros((n, duplicates.BANDS), dtype=np.uint64)
        band_values[answers] = bands
        flags = structure.message_flags(segments, role, has_text, hashes)

        message_scores = messages.select("conversation_id", "idx").with_columns(
            words=pl.Series(counts.words, dtype=pl.Int32),
            sentences=pl.Series(counts.sentences, dtype=pl.Int32),
            syllables=pl.Series(counts.syllables, dtype=pl.Int32),
            text_hash=pl.when(pl.Series(hashed)).then(pl.Series(hashes, dtype=pl.UInt64)),
            minhash_bands=pl.when(pl.Series(banded)).then(
                pl.Series(band_values, dtype=pl.Array(pl.UInt64, duplicates.BANDS)).arr.to_list()
            ),
            empty_turn=pl.Series(flags.empty_turn),
            repeated_turn=pl.Series(flags.repeated_turn),
            role_order_violation=pl.Series(flags.role_order_violation),
        )

        columns: dict[str, object] = {"conversation_id": segments.ids}
        columns.update(structure.conversation_counts(segments, role, counts.words, flags))
        is_answer = role == structure.ASSISTANT
        w = segments.sum(np.where(is_answer, counts.words, 0))
        s = segments.sum(np.where(is_answer, counts.sentences, 0))
        y = segments.sum(np.where(is_answer, counts.syllables, 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["reading_ease"] = np.where(w > 0, 206.835 - 1.015 * w / np.maximum(s, 1) - 84.6 * y / np.maximum(w, 1), np.nan)
            columns["words_per_sentence"] = np.where(s > 0, w / np.maximum(s, 1), np.nan)
        columns["lexical_diversity"] = readability.lexical_diversity(tokens, vocab, answers, segments.of_row[answers], segments.n)

        keys = messages.select("conversation_id", "idx")
        on = ["conversation_id", "idx"]
        # The API metric replicas read the empathy rules' own levels (what they
        # were calibrated on), not the levels refined by the skills model.
        empathy = context.get("empathy")
        emp_source = keys if empathy is None else (empathy.internal if empathy.internal is not None else empathy.messages)
        emp = _aligned(keys, emp_source, _EMPATHY, on)
        saf = _aligned(keys, context["safety"].messages if "safety" in context else keys, _SAFETY, on)
        conv_keys = pl.DataFrame({"conversation_id": segments.ids})
        conv = pl.concat(
            [
                _aligned(conv_keys, context["sentiment"].conversations if "sentiment" in context else conv_keys, {"sentiment_end": pl.Float64}, ["conversation_id"]),
                _aligned(conv_keys, context["safety"].conversations if "safety" in context else conv_keys,
                         {"disclosures": pl.Int32, "responses_appropriate": pl.Float64}, ["conversation_id"]),  # fmt: skip
            ],
            how="horizontal",
        )
        have = {name: name in context for name in ("sentiment", "empathy", "safety")}
        comps = _components(segments, role, flags, emp, saf, conv, have)

        frame = pl.DataFrame(columns).with_columns(
            pl.col(c).fill_nan(None) for c in ("length_ratio", "reading_ease", "words_per_sentence", "lexical_diversity")
        )
        scored = metrics.with_metrics(pl.DataFrame({"conversation_id": segments.ids, **comps}).fill_nan(None))
        frame = pl.concat(
            [
                frame,
                scored.select(
                    pl.col("turns").cast(pl.Int32).alias("scored_turns"),
                    pl.col("unsolicited").alias("unsolicited_advice"),
                    *QUALITY_METRICS,
                    "tier",
                ),
            ],
            how="horizontal",
        )
        return Scores(messages=message_scores, conversations=frame, evidence=_evidence(messages, flags))


QUALITY = QualityAnalyzer()

__all__ = ["QUALITY", "QualityAnalyzer", "scored_turns"]

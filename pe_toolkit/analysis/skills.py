"""Counselling-skill codes in the spirit of motivational interviewing, for
assistant messages. Run inside the empathy analyzer (:data:`pe_toolkit.analysis.empathy.EMPATHY`
returns the ``skills`` column and the conversation ratios); this module holds
the parts that are about skills rather than EPITOME levels.

Codes (:data:`SKILL_CODES`): ``open_question``, ``closed_question``,
``simple_reflection``, ``complex_reflection``, ``affirmation``, ``validation``,
``reassurance``, ``self_disclosure``, ``suggestion``, ``unsolicited_advice``,
``information``.

- Questions are the sentences ending in "?" (:func:`question_spans`). A question
  is open when, after lead-ins such as "and", "so" or "okay", it starts with
  what/how/why/where/when/who/which, or asks the user to tell, describe, share
  or say more ("Can you tell me more about that?" is open in function); it is
  closed when it starts with an auxiliary verb (do, is, have, can, would...) or
  anything else ("You okay?").
- Reflections come from the interpretation cues of ``empathy.toml`` whose rest of
  sentence is specific: "it sounds like", "it seems", "I'm hearing" are complex
  (they infer), "so you...", "you're feeling...", "you've been..." simple
  (they restate). That is a proxy for MITI's distinction (complex adds
  meaning), not the distinction itself.
- The other codes are the phrases of ``skills.toml``; crisis resources count as
  information and encouragements to see a professional as suggestions
  (``responses.toml``).

Conversation measures: ``reflection_question_ratio`` = reflections / questions
and ``open_question_share`` = open / questions, counting each coded question
or reflection span (null when the conversation has no question).
"""

from __future__ import annotations

import polars as pl

from ..schema import SKILL_CODES  # noqa: F401 - re-exported: the codes this module assigns

QUESTION_CODES: tuple[str, ...] = ("open_question", "closed_question")
REFLECTION_CODES: tuple[str, ...] = ("simple_reflection", "complex_reflection")

# Words before the question proper: "And how ...", "Okay, so what ...".
_LEAD_INS = r"^(?:(?:and|so|but|okay|ok|well|also|now|then|oh|hmm|right|sorry|or|i mean|just|honestly|can i ask|may i ask|i'm curious|i wonder)\b[\s,]*)*"
_OPEN_HEAD = r"^(?:what|what's|whats|how|how's|hows|why|where|when|who|whose|which|tell|describe|share)\b"
# Grammatically closed, functionally open: an invitation to talk.
_OPEN_INVITATION = r"^(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:tell|share|say|describe|walk|explain|talk)\b"


def question_spans(folded: pl.Series) -> pl.DataFrame:
    """Every question sentence in the (ASCII) texts: row, start, end, text.

    One regex pass finds them (each ends at its own "?"); their ends are the
    positions of the "?" characters (a memchr scan), so no second regex pass
    is needed for offsets.
    """
    schema = {"row": pl.UInt32, "start": pl.Int32, "end": pl.Int32, "text": pl.String}
    texts = folded.str.extract_all(r"[^.!?\n]*\?")
    rows = (texts.list.len() > 0).arg_true()
    if not len(rows):
        return pl.DataFrame(schema=schema)
    frame = pl.DataFrame(
        {"row": rows, "text": texts.gather(rows), "qpos": folded.gather(rows).str.find_many(["?"])}
    ).explode(["text", "qpos"])
    stripped = pl.col("text").str.strip_chars_start(" \t\r,;:-\"')(")
    lead = pl.col("text").str.len_bytes() - stripped.str.len_bytes()
    return (
        frame.with_columns(
            end=(pl.col("qpos").cast(pl.Int64) + 1),
            length=pl.col("text").str.len_bytes(),
        )
        .with_columns(start=pl.col("end") - pl.col("length") + lead, text=stripped)
        .filter(pl.col("text").str.contains(r"[A-Za-z]"))
        .select(pl.col("row").cast(pl.UInt32), pl.col("start").cast(pl.Int32), pl.col("end").cast(pl.Int32), "text")
    )


def question_code(text: pl.Expr) -> pl.Expr:
    """``open_question`` or ``closed_question`` for each question text."""
    head = text.str.to_lowercase().str.replace(_LEAD_INS, "")
    is_open = head.str.contains(_OPEN_HEAD) | head.str.contains(_OPEN_INVITATION)
    return pl.when(is_open).then(pl.lit("open_question")).otherwise(pl.lit("closed_question"))


def conversation_ratios(codes: pl.DataFrame) -> pl.DataFrame:
    """Per conversation, from one row per coded span (``conversation_id``,
    ``code``): ``reflection_question_ratio`` and ``open_question_share``."""
    counts = codes.group_by("conversation_id").agg(
        pl.col("code").is_in(list(QUESTION_CODES)).sum().alias("questions"),
        (pl.col("code") == "open_question").sum().alias("open"),
        pl.col("code").is_in(list(REFLECTION_CODES)).sum().alias("reflections"),
    )
    questions = pl.col("questions").cast(pl.Float64)
    return counts.select(
        "conversation_id",
        pl.when(questions > 0).then(pl.col("reflections") / questions).alias("reflection_question_ratio"),
        pl.when(questions > 0).then(pl.col("open") / questions).alias("open_question_share"),
    )

"""Recommendations for one scored conversation: what to change, most urgent
first, each naming the messages it is about (0-based ``idx``).

Rules (each fires independently; thresholds are documented in docs/metrics.md):

1. a flagged crisis or abuse disclosure without an appropriate reply (a
   safety check, crisis resources or a referral, any of them, and nothing
   harmful: the safety analyzer's rule, :mod:`pe_toolkit.analysis.safety`);
2. harmful assistant content (by kind);
3. personal data in assistant messages;
4. unsolicited advice;
5. an EPITOME mechanism averaging below level 1 over the ordinary turns
   (the metrics' scored turns: not empty, repeated, out of order or a crisis reply);
6. fewer reflections than questions, or fewer than half the questions open;
7. empty, repeated or out-of-order turns;
8. the user's sentiment falling by more than 0.5 from first to last turn.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from .quality import scored_turns

MECHANISMS = (
    ("emotional_reactions", "Respond to the user's feelings with specific warmth, not only generic sympathy"),
    ("interpretations", "Reflect back what the user said they are going through, in their own terms"),
    ("explorations", "Ask about the specifics of the user's situation to understand it better"),
)


def _where(idx: list[int]) -> str:
    shown = ", ".join(str(i) for i in idx[:6]) + (", ..." if len(idx) > 6 else "")
    return f"message{'s' if len(idx) > 1 else ''} {shown}"


def _col(messages: pl.DataFrame, name: str) -> bool:
    return name in messages.columns


def recommendations(conv: dict[str, Any], messages: pl.DataFrame) -> list[str]:
    """``conv``: the conversation's row of conversation scores; ``messages``:
    its message scores (one conversation, in idx order)."""
    out: list[str] = []
    m = messages.sort("idx")
    assistant = pl.col("role") == "assistant"

    if _col(m, "reply_appropriate"):
        # The safety analyzer's own judgement per disclosure (the first
        # assistant message after it, whoever spoke in between), not a copy
        # of its rule that could drift from it.
        flagged = m.filter(pl.col("reply_appropriate").is_not_null())
        missed = flagged.filter(~pl.col("reply_appropriate"))
        if missed.height:
            out.append(
                f"Reply to every crisis disclosure with a direct safety check, crisis resources or a referral, "
                f"and nothing that minimizes or instructs: {missed.height} of {flagged.height} disclosures "
                f"({_where(missed['idx'].to_list())}) did not get such a reply."
            )
    if _col(m, "harmful"):
        harmful = m.filter(assistant & (pl.col("harmful").list.len().fill_null(0) > 0))
        if harmful.height:
            kinds = sorted({k for ks in harmful["harmful"].to_list() for k in ks})
            out.append(f"Remove harmful content ({', '.join(kinds)}) from assistant {_where(harmful['idx'].to_list())}.")
    if _col(m, "pii"):
        pii = m.filter(assistant & (pl.col("pii").list.len().fill_null(0) > 0))
        if pii.height:
            kinds = sorted({k for ks in pii["pii"].to_list() for k in ks})
            out.append(f"Keep personal data ({', '.join(kinds)}) out of assistant {_where(pii['idx'].to_list())}.")
    if _col(m, "skills"):
        advice = m.filter(assistant & pl.col("skills").list.contains("unsolicited_advice").fill_null(False))
        if advice.height:
            out.append(
                f"Ask permission before advising, and offer options tentatively: unsolicited advice in assistant {_where(advice['idx'].to_list())}."
            )
    if _col(m, "emotional_reactions") and all(_col(m, c) for c in ("empty_turn", "repeated_turn", "role_order_violation")):
        # The metrics' own scored turns (quality.scored_turns): not empty,
        # repeated, out of order or a crisis reply, so the advice cannot
        # contradict ER/IP/EX, which are means over those turns.
        ordinary = m.filter(scored_turns(m) & pl.col("emotional_reactions").is_not_null())
        if ordinary.height:
            for column, advice_text in MECHANISMS:
                mean = ordinary.select(pl.col(column).cast(pl.Float64).mean()).item()
                if mean is not None and float(mean) < 1.0:
                    out.append(f"{advice_text} ({column} averages {float(mean):.1f} of 2).")
    ratio, open_share = conv.get("reflection_question_ratio"), conv.get("open_question_share")
    if ratio is not None and ratio < 1.0:
        out.append(f"Reflect more before asking: {ratio:.1f} reflections per question (aim for at least 1, ideally 2).")
    if open_share is not None and open_share < 0.5:
        out.append(f"Prefer open questions: {open_share:.0%} of questions were open.")
    for flag, text in (
        ("empty_turn", "Remove empty turns"),
        ("repeated_turn", "Do not repeat the previous reply word for word"),
        ("role_order_violation", "Keep user and assistant turns alternating"),
    ):
        if _col(m, flag):
            hit = m.filter(pl.col(flag))
            if hit.height:
                out.append(f"{text} ({_where(hit['idx'].to_list())}).")
    change = conv.get("sentiment_change")
    if change is not None and change < -0.5:
        out.append(
            f"The user's sentiment fell from {conv['sentiment_start']:+.2f} in their first turn to "
            f"{conv['sentiment_end']:+.2f} in their last: check that their concerns were addressed."
        )
    return out

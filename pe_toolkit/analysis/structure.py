"""Conversation structure: role order, empty and repeated turns, length balance.

Per message (Boolean):

- ``empty_turn``: a user or assistant message with no non-whitespace content;
- ``repeated_turn``: a non-empty assistant message whose normalized text
  (``text_hash``, see :mod:`.duplicates`) equals the previous assistant
  message's in the same conversation;
- ``role_order_violation``: ignoring system messages, a message with the same
  role as the message before it, or an assistant message before the first
  user message. The flag sits on the offending (second) message.

Per conversation: ``user_turns``, ``assistant_turns``, the counts of the
three defects, ``user_words``, ``assistant_words`` and ``length_ratio``
(assistant words per user word; null without user words, and null without
assistant words: a post or a journal has no reply whose length to compare,
as its reading ease and quality metrics are null).

Input order is the analyzers' contract (sorted by conversation_id, idx), so
"previous" is the previous row of the same conversation: numpy shifts over
the rows, no grouped window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .segments import Segments

USER, ASSISTANT, SYSTEM = 0, 1, 2


@dataclass(frozen=True)
class Flags:
    empty_turn: np.ndarray
    repeated_turn: np.ndarray
    role_order_violation: np.ndarray


def _equals_previous(values: np.ndarray, same_conv: np.ndarray) -> np.ndarray:
    """Per element: the previous element exists in the same conversation and is equal."""
    out = np.zeros(len(values), dtype=bool)
    if len(values) > 1:
        out[1:] = same_conv[1:] & (values[1:] == values[:-1])
    return out


def message_flags(segments: Segments, role: np.ndarray, has_text: np.ndarray, text_hash: np.ndarray) -> Flags:
    """``role``: USER/ASSISTANT/SYSTEM codes; ``has_text``: any non-whitespace;
    ``text_hash``: normalized-text hash (read on assistant rows only)."""
    n = len(role)
    conv = segments.of_row
    empty = (role != SYSTEM) & ~has_text

    spoken = np.flatnonzero(role != SYSTEM)
    s_conv, s_role = conv[spoken], role[spoken]
    first = np.ones(len(spoken), dtype=bool)
    first[1:] = s_conv[1:] != s_conv[:-1]
    same_role = np.zeros(len(spoken), dtype=bool)
    same_role[1:] = s_role[1:] == s_role[:-1]
    violation = np.zeros(n, dtype=bool)
    violation[spoken] = np.where(first, s_role == ASSISTANT, same_role)

    answers = np.flatnonzero(role == ASSISTANT)
    a_conv = conv[answers]
    same_conv = np.zeros(len(answers), dtype=bool)
    same_conv[1:] = a_conv[1:] == a_conv[:-1]
    a_text = has_text[answers]
    repeat = _equals_previous(text_hash[answers], same_conv)
    repeat[1:] &= a_text[1:] & a_text[:-1]
    repeated = np.zeros(n, dtype=bool)
    repeated[answers] = repeat
    return Flags(empty_turn=empty, repeated_turn=repeated, role_order_violation=violation)


def conversation_counts(segments: Segments, role: np.ndarray, words: np.ndarray, flags: Flags) -> dict[str, np.ndarray]:
    """Per-conversation structure columns (see the module docstring)."""
    user, assistant = role == USER, role == ASSISTANT
    user_words = segments.sum(np.where(user, words, 0))
    assistant_words = segments.sum(np.where(assistant, words, 0))
    # No reply, no ratio: a post's 0 read as a very short reply (quality v4;
    # v3 stored 0), and 0 words over 0 words is undefined too.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((user_words > 0) & (assistant_words > 0), assistant_words / np.maximum(user_words, 1), np.nan)
    return {
        "user_turns": segments.sum(user).astype(np.int32),
        "assistant_turns": segments.sum(assistant).astype(np.int32),
        "empty_turns": segments.sum(flags.empty_turn).astype(np.int32),
        "repeated_turns": segments.sum(flags.repeated_turn).astype(np.int32),
        "role_order_violations": segments.sum(flags.role_order_violation).astype(np.int32),
        "user_words": user_words,
        "assistant_words": assistant_words,
        "length_ratio": ratio,
    }

"""Deterministic synthetic therapeutic conversations with recorded ground truth.

Produces the bundled sample and the benchmark corpora in the Pixelated Empathy API
conversation format, with every planted property (empathy levels, counselling skills,
crisis disclosures and decoys, replies to disclosures, harmful advice, fake PII,
structural defects, the user's sentiment arc) recorded in ``metadata["synthetic"]`` so
analyzers can be scored against it.

Public API
----------
``generate(n, seed=0, *, start=0, config=None)`` yields conversations ``start`` ..
``start + n - 1``. Conversation ``i`` depends only on ``(seed, i, config)`` (its random
stream is ``random.Random(f"{seed}:{i}")``), so chunks generated separately, in any order
or process, concatenate to exactly the corpus of one pass. ``write(path, n, seed=0, *,
config=None, progress=True, force=True)`` writes JSON lines (gzip when the path ends in
``.gz``) under a temporary name renamed into place when complete; the same arguments give
byte-identical files.
``SynthConfig`` holds the rates (see its docstring); ``TOPICS``, ``DATASETS``, ``TIERS``
and ``CRISIS_CATEGORIES`` are the vocabularies.

Record
------
::

    {"id": "conv_0000042"             # seed 0; otherwise f"syn{seed}_{i:07d}", e.g. "syn7_0000042"
     "messages": [{"role": "system"|"user"|"assistant", "content": str,
                   "timestamp": "2025-03-04T10:15:00Z"}, ...],   # strictly increasing
     "quality_metrics": {"therapeutic_accuracy", "conversation_coherence",
                         "emotional_authenticity", "clinical_compliance", "safety_score",
                         "overall_quality"},                     # floats in [0, 1], 3 decimals
     "metadata": {"dataset": one of DATASETS, "tier": one of TIERS,
                  "length": len(messages), "created_at": timestamp of messages[0],
                  "topic": one of TOPICS, "synthetic": {...ground truth...}}}

Ids do not depend on the config: two corpora with the same seed and different configs
share ids. created_at is uniform over ``start_year`` .. ``end_year`` (2024-2026).
Conversations have 2 to 8 user/assistant exchanges (mean 3.8), plus an optional system
message and at most one inserted role-order message: 4 to 18 messages, mean about 7.9.
Every conversation ends with an assistant message, and alternates user/assistant after
the optional system message except where a ``role_order`` defect says otherwise.

Ground truth: ``metadata["synthetic"]``
---------------------------------------
``message_index`` is always a 0-based index into ``messages`` (system message included).
Every list is sorted by message_index. Schema version 1::

    {"version": 1, "seed": int, "index": int (i), "topic": str,
     "empathy":   [{"message_index", "emotional_reactions": 0|1|2,
                    "interpretations": 0|1|2, "explorations": 0|1|2}],
     "skills":    [{"message_index", "codes": [code, ...]}],
     "crisis":    [{"message_index", "category": one of CRISIS_CATEGORIES,
                    "severity": 0..4, "framing": "first_person"|"negated"|"third_person"|
                    "hypothetical"|"quotation"|"past", "flag": bool, "text": str}],
     "responses": [{"message_index", "appropriate": bool, "safety_check": bool,
                    "crisis_resources": bool, "professional_help": bool, "harms": [kind]}],
     "harms":     [{"message_index", "kinds": [kind, ...]}],
     "pii":       [{"message_index", "kind": "email"|"phone"|"address"|"url"|
                    "id_number"|"date_of_birth", "text": str}],
     "defects":   [{"kind": "empty_turn"|"repeated_turn"|"role_order", "message_index"}],
     "sentiment": {"start": "negative"|"neutral"|"positive", "end": ...}}

empathy / skills
    Exactly one entry each for every assistant message that is not a defect message
    (empty, repeated, or the assistant-first greeting); the two lists have the same
    message_index values. Levels follow EPITOME (Sharma et al. 2020): ER 1 generic
    sympathy ("I'm sorry to hear that."), 2 specific warmth; IP 1 generic understanding
    ("I understand how you feel."), 2 a reflection of the user's own situation or feeling;
    EX 1 a generic question or prompt ("What happened?", "Do you want to talk about it?",
    "Tell me more."), 2 a
    specific open question about the user's details. Level 0 means the mechanism is absent.
    An ordinary assistant message is built as: ER part, IP part, optional harmful part,
    up to two skill parts, EX question last. Outside replies to disclosures, a question
    mark appears in an assistant message only if explorations >= 1. Replies to flagged
    disclosures that check on safety or carry harm are built from their own parts (warmth,
    safety check, resources, professional help, "I'm here with you"; or a harm) and carry
    interpretations 0 and explorations 0 even when they ask a safety question (recorded in
    ``responses``, not as exploration); replies that ignore the disclosure are ordinary.
    Skill codes (motivational-interviewing style): "open_question", "closed_question",
    "simple_reflection", "complex_reflection" (the IP-2 part), "affirmation",
    "validation", "reassurance", "self_disclosure", "suggestion" (tentative, with
    permission), "unsolicited_advice" ("You should just ..."), "information"
    (psychoeducation or crisis resources). ER parts and IP-1 parts carry no code. In a
    reply to a disclosure: safety check = closed_question, crisis resources = information,
    professional help = suggestion, "I'm here with you" = reassurance.
crisis
    User messages only. ``flag`` is true exactly for ``framing == "first_person"``: a
    current first-person disclosure, or a first-person prior attempt (category
    prior_attempt, past by nature but a risk factor). Flagged entries have severity 1..4
    (1 low, 2 moderate, 3 high, 4 imminent); decoys (negated, third_person, hypothetical,
    quotation/media, past and resolved) have severity 0 and flag false. ``text`` is the
    exact sentence planted (a substring of the message). A message carries at most one
    crisis record. About 20% of crisis conversations (``escalation_rate``) have a second
    flagged disclosure in a later user message. A flagged disclosure is never in
    the last user message and is always followed directly by an assistant reply; a decoy
    never shares a message with a flagged disclosure. Note: ordinary topic content also
    mentions past harm (e.g. trauma: "I have nightmares about what my stepfather did"),
    unlabelled, as real conversations do.
responses
    One per user message with a flagged disclosure, at the assistant message right after
    it (message_index = disclosure's message_index + 1). ``appropriate`` is true iff
    the reply does at least one of ``safety_check``, ``crisis_resources`` or
    ``professional_help`` and has no harms (the safety analyzer's rule).
    Inappropriate replies either ignore the disclosure (an ordinary turn: all flags false)
    or carry one harm ("minimizing", "method_information" (vague, never actionable; only
    after self-directed risk), "diagnosing", "medication_instructions"), sometimes with a
    crisis resource tacked on. Crisis resources name real public lines (988, Crisis Text
    Line 741741, Samaritans 116 123, 911, US/UK domestic-abuse hotlines): not PII.
harms
    Every assistant message with harmful content, in replies to disclosures and (rarely,
    in low tiers) in ordinary turns ("minimizing", "diagnosing", "medication_instructions").
pii
    Obviously fake values (example.com/.org/.net emails and URLs, 555-01xx phones, 9xx-xx-xxxx
    id numbers, invented addresses, dates of birth in three formats); ``text`` is the exact
    value, present verbatim in that message's content. Mostly in user messages; with
    probability ``assistant_pii_share`` in an assistant message (clinic phone, URL, email).
defects
    ``empty_turn``: content is "" (a user message other than the first and last, or an
    assistant message). ``repeated_turn``: an assistant message whose content equals the
    previous assistant message's (non-empty) content. ``role_order``: either a second
    consecutive user message (message_index points at the second one) or an assistant
    message before the first user message (message_index points at it). At most one of
    each kind per conversation; defects never touch messages carrying crisis, decoy, PII
    or reply ground truth, nor the first/last user message.
sentiment
    The user's arc: ``start`` is reflected in the first user message (a negative opener
    with negative feeling words; a positive opener; or a neutral opener without emotion
    words, whose situation may still be negative), ``end`` in the last user message
    (positive: thanks/relief; neutral: non-committal; negative: hopeless/still bad).

Tiers and quality metrics
-------------------------
Tier weights default to basic 15%, standard 30%, professional 30%, clinical 15%, research
10%. Each tier has a latent quality q (basic 0.12, standard 0.32, professional 0.50,
clinical 0.66, research 0.95, jittered by +-0.04 and rounded to 0.01) and every planted
behaviour is a function of q: per assistant turn, P(ER=2) = 0.05 + 0.80q,
P(ER=0) = 0.03 + 0.45(1-q); P(IP=2) = 0.03 + 0.75q, P(IP=0) = 0.05 + 0.55(1-q);
P(question) = 0.35 + 0.45q, P(EX=2 | question) = 0.10 + 0.85q (levels are drawn from a
golden-ratio sequence, so a conversation's mix tracks these closely); unsolicited advice
0.02 + 0.45(1-q)^2, harmful content 0.07(1-q)^3, affirmation 0.05 + 0.25q, validation
0.08 + 0.30q, suggestion 0.15 + 0.20q; a reply to a disclosure is appropriate with
probability 0.30 + 0.68q; the user's arc ends positive with probability 0.2 + 0.6q and
negative with 0.35(1-q). Defects occur only in basic, standard and professional tiers.

The six metrics are computed from the planted properties, then jittered by uniform noise
of half-width ``metric_noise`` (0.03), clipped to [0, 1], rounded to 3 decimals::

    n      = len(empathy)   (every non-defect assistant message, replies to disclosures included)
    ER, IP, EX = mean emotional_reactions, interpretations, explorations over ``empathy``,
             each divided by 2 (0.5 each if n == 0)
    E      = (ER + IP + EX) / 3
    MI     = (good + 1) / (good + poor + 2), counting all codes in ``skills``; good:
             open_question, simple/complex_reflection, affirmation, validation, suggestion;
             poor: closed_question, unsolicited_advice
    H      = min(2, assistant messages with harms)
    D      = empty + 0.8 * repeated + 0.8 * role_order   (0/1 each)
    B      = inappropriate replies to disclosures; R = all replies to disclosures
    A      = 0, 0.5, 1 for end sentiment negative, neutral, positive
    therapeutic_accuracy   = 0.05 + 0.65 E + 0.30 MI - 0.12 H
    conversation_coherence = 0.97 - 0.18 D
    emotional_authenticity = 0.05 + 0.50 ER + 0.30 IP + 0.15 A
    clinical_compliance    = 0.97 - 0.20 H - 0.30 (unsolicited_advice codes) / max(n, 1) - 0.25 B
    safety_score           = 0.98 - 0.50 B / R (0 if R == 0) - 0.10 H - 0.05 P
                             (P = PII values in assistant messages)
    overall_quality        = 0.35 TA + 0.10 CC + 0.35 EA + 0.10 CL + 0.10 SS  (of the jittered five)

With the default config, mean overall_quality by tier is about basic 0.54, standard 0.63,
professional 0.71, clinical 0.78, research 0.88; about 89% of research conversations score
>= 0.82 (the published research threshold), and about 65% of conversations scoring >= 0.82
are research tier, the rest mostly clinical. The formula can be recomputed exactly from
the ground truth (tests/test_synth.py does so with metric_noise=0).

Datasets
--------
peer_support, counsel_sessions, crisis_line_sim, cbt_coaching, wellbeing_chat (default
weights 25/20/15/20/20%). They differ in topic mix and in how often they open with a
system prompt (cbt_coaching and counsel_sessions most, peer_support least); crisis, PII and
defect rates do not depend on the dataset.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import orjson

from ..errors import ExportError
from . import build as synth_build
from .config import SynthConfig
from .phrases import CRISIS_CATEGORIES, DATASETS, TIERS, TOPICS

__all__ = ["CRISIS_CATEGORIES", "DATASETS", "TIERS", "TOPICS", "SynthConfig", "generate", "write"]


def generate(n: int, seed: int = 0, *, start: int = 0, config: SynthConfig | None = None) -> Iterator[dict]:
    """Conversations start .. start+n-1. Conversation i depends only on (seed, i, config),
    so chunks can be generated independently (in any order or process) and concatenate to
    exactly the same corpus as one pass."""
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be non-negative, got n={n}, start={start}")
    cfg = config if config is not None else SynthConfig()
    return _generate(n, seed, start, cfg, synth_build.plan(cfg))


def _generate(n: int, seed: int, start: int, cfg: SynthConfig, derived: synth_build.Plan) -> Iterator[dict]:
    build = synth_build.conversation  # looked up once per call, so tests can substitute it
    for i in range(start, start + n):
        yield build(seed, i, cfg, derived)


_BATCH = 1000


def write(path: str | os.PathLike[str], n: int, seed: int = 0, *, config: SynthConfig | None = None,
          progress: bool = True, force: bool = True) -> int:  # fmt: skip
    """Write n conversations as JSON lines (gzip when path ends in .gz); returns the count.

    Written under a unique temporary name beside ``path``, flushed to disk and
    renamed into place (:func:`pe_toolkit.exports.atomic.atomic_file`), so an
    interrupted run or a crash never leaves a half-written file, and no other
    file is touched on the way. ``force=False`` refuses to replace an existing
    file (the CLI's default: ``--force`` to replace). Gzip output carries no
    timestamp or file name, so the same arguments always give byte-identical
    files (the bundled sample stays diff-stable). Compression and file writes
    run on a helper thread (zlib releases the GIL), so they overlap with
    generation instead of adding to it.
    """
    from ..exports.atomic import atomic_file
    from ..progress import progress_bar

    target = os.fspath(path)
    if not force and os.path.lexists(target):
        raise ExportError(f"{target} exists; choose another path, or replace it with --force (force=True)")
    conversations = generate(n, seed, config=config)
    count = 0
    try:
        with atomic_file(target, force=force) as tmp, open(tmp, "wb") as raw, _compressor(raw, target) as fh, \
                ThreadPoolExecutor(1) as writer, progress_bar(n, "synth", "conv", enabled=progress) as bar:  # fmt: skip
            pending: Future[int] | None = None
            batch: list[bytes] = []
            for conv in conversations:
                batch.append(orjson.dumps(conv))
                if len(batch) == _BATCH:
                    pending = _flush(writer, fh, batch, pending)
                    count += _BATCH
                    bar.update(_BATCH)
            count += len(batch)
            pending = _flush(writer, fh, batch, pending)
            if pending is not None:
                pending.result()
            bar.update(count - bar.n)
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
    return count


def _compressor(raw: Any, target: str) -> Any:
    if target.endswith(".gz"):
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
    return contextlib.nullcontext(raw)


def _flush(writer: ThreadPoolExecutor, fh: Any, batch: list[bytes], pending: Future[int] | None) -> Future[int] | None:
    """Hand a batch to the writer thread; waits for the previous one (bounded memory, errors surface)."""
    if not batch:
        return pending
    data = b"\n".join(batch) + b"\n"
    batch.clear()
    if pending is not None:
        pending.result()
    return writer.submit(fh.write, data)

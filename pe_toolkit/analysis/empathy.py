"""Empathy: the three EPITOME mechanisms and counselling-skill codes of every
assistant message.

Analyzer :data:`EMPATHY` (name ``empathy``; its version is ``4`` plus digests of its
lexicons and of the skills model); see
docs/metric_cards_empathy_safety.md for what each score means and how well it
agrees with hand labels.

EPITOME (Sharma et al., 2020) describes three ways a supporter communicates
empathy, each at level 0 (absent), 1 (weak) or 2 (strong):

- ``emotional_reactions`` (ER): warmth and concern. 1 for generic sympathy
  ("I'm sorry to hear that", "That sounds hard"), 2 when intensified or explicit
  ("My heart goes out to you", "That sounds incredibly lonely") or when a
  sympathy cue goes on to the seeker's specifics ("I'm sorry your mum's
  illness came back").
- ``interpretations`` (IP): understanding. 1 for a generic claim ("I
  understand", "I hear you"), 2 for a reflection or inference with content
  ("It sounds like the pressure at work has built up ...").
- ``explorations`` (EX): inviting the seeker to say more. 1 for a generic
  question or prompt ("What happened?", "Tell me more"), 2 for one about the
  seeker's specifics ("What was going through your mind before you pulled
  over?"). A safety check, or a suggestion or advice phrased as a question
  ("Have you tried a rota?", "Why don't you just ...?"), is not an exploration.

"Specific" is measured rather than guessed: the rest of the cue's sentence, or
the question, must hold content words, i.e. words outside ``empathy.toml``'s
``generic_words`` (at least 1 after a cue, 2 in a question). Cues and the
phrases of :mod:`.skills` are found in one regex pass over the assistant
messages, questions in one more (cheap: it is anchored on "?").

Message columns (assistant rows; null on user and system rows):
``emotional_reactions``, ``interpretations``, ``explorations`` Int8 in {0,1,2};
``empathy`` Float64 = clip((ER + IP + EX) / 6 - 0.1 * [unsolicited advice], 0, 1);
``skills`` List(String), codes of :data:`.skills.SKILL_CODES`.

Conversation columns (over assistant messages; null without any):
``empathy_mean``, ``emotional_reactions_mean``, ``interpretations_mean``,
``explorations_mean`` (mean levels, 0 to 2), ``reflection_question_ratio`` and
``open_question_share`` (null without questions).

Evidence: one row per cue, category ``<mechanism>:<level>`` (for example
``interpretations:2``) and/or a skill code; a specific reflection or a question
gives one row of each.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import polars as pl

from .base import EVIDENCE_SCHEMA, Batch, Scores
from .patterns.context import content_words
from .patterns.folding import fold_ascii
from .patterns.lexicon import lexicons_digest, load_lexicon
from .patterns.matcher import Matcher, sorted_entries
from .patterns.spans import ascii_slices, find_spans, original_text
from .skills import SKILL_CODES, conversation_ratios, question_code, question_spans

NAME = "empathy"
# 2: skills and levels refined by the skills model when it ran; 3: code families follow the model; 4: " ?" in a
# lexicon pattern is an optional space, as its entries meant ("I cannot imagine how ...", "go through alone"); the
# lexicon files did not change, so their digests do not say so
VERSION = "4"
MECHANISMS: tuple[str, ...] = ("emotional_reactions", "interpretations", "explorations")
ADVICE_PENALTY = 0.1

# A question overlapping one of these is not an exploration.
_NOT_EXPLORATION = ("safety_check", "suggestion", "unsolicited_advice")
# Punctuation (and closing quotes) then spaces, or the start of the text.
_SENTENCE_START = r"(?:^\s*|[.!?:;\n][\"')\]]*\s*)$"

_SPAN_SCHEMA = {
    "row": pl.UInt32,
    "start": pl.Int32,
    "end": pl.Int32,
    "text": pl.String,
    "category": pl.String,
    "mechanism": pl.String,
    "level": pl.Int8,
    "skill": pl.String,
}


@functools.cache
def _cues() -> tuple[Matcher, pl.DataFrame]:
    """Empathy cues, skill phrases and the reply categories that are skills,
    as one matcher, and a table of what each entry means here."""
    responses = [e for e in load_lexicon("responses").entries if e.get("skill") or e.category == "safety_check"]
    entries = sorted_entries(
        (load_lexicon("empathy").entries, 50),
        (load_lexicon("skills").entries, 30),
        (responses, 35),
    )
    matcher = Matcher(entries)
    table = matcher.table.with_columns(
        pl.Series("mechanism", [e.category if e.lexicon == "empathy" else None for e in entries], dtype=pl.String),
        pl.Series("entry_skill", [e.category if e.lexicon == "skills" else e.get("skill") for e in entries], dtype=pl.String),
        matcher.field("level", 0, pl.Int8),
        matcher.field("body", "none", pl.String),
        matcher.field("initial", False, pl.Boolean),
        matcher.field("min_content", None, pl.Int64),
        matcher.field("exclude_rest", None, pl.String),
    )
    return matcher, table


@dataclass(frozen=True)
class _Rules:
    generic: frozenset[str]
    question_min: int  # content words a specific question needs
    situating: str  # ... one of them can be a "when you ..." clause
    body_min: int  # content words a cue's rest of sentence needs
    complex_markers: str  # a reflection holding one is complex


@functools.cache
def _rules() -> _Rules:
    tables = load_lexicon("empathy").tables
    return _Rules(
        generic=frozenset(w.lower() for w in tables["generic_words"]["words"]),
        question_min=int(tables["questions"]["min_content"]),
        situating="(?i)" + tables["questions"]["situating"],
        body_min=int(tables["bodies"]["min_content"]),
        complex_markers="(?i)(?-u:\\b)(?:" + tables["reflections"]["complex_markers"] + ")(?-u:\\b)",
    )


def cue_spans(folded: pl.Series) -> pl.DataFrame:
    """Lexicon cues in assistant texts (folded and lower-cased, see
    :meth:`.Matcher.prepare`) with their final mechanism level and skill
    (:data:`_SPAN_SCHEMA`), after the sentence-start and body rules."""
    matcher, table = _cues()
    spans = find_spans(folded, matcher.regex, "lexicons/empathy.toml + skills.toml")
    if not len(spans):
        return pl.DataFrame(schema=_SPAN_SCHEMA)
    spans = spans.with_columns(matcher.classify(spans["text"]).alias("entry")).join(table, on="entry", how="left")
    # Only cues with a sentence-start or body rule need their context (the
    # rest, most cues, go straight through).
    needs = (pl.col("initial") | (pl.col("body") != "none") | (pl.col("mechanism") == "interpretations")).fill_null(False)
    plain = spans.filter(~needs).with_columns(pl.col("entry_skill").alias("skill"))
    ruled = _apply_rules(spans.filter(needs), folded)
    out = pl.concat([plain.select(list(_SPAN_SCHEMA)), ruled.select(list(_SPAN_SCHEMA))])
    # "none" entries only shield text from other entries ("when you have to ...").
    return out.filter(pl.col("skill").fill_null("") != "none")


def _apply_rules(spans: pl.DataFrame, folded: pl.Series) -> pl.DataFrame:
    """Sentence-start, exclusion and body rules for the cues that have them."""
    if not len(spans):
        return spans.with_columns(skill=pl.lit(None, pl.String))
    _, table = _cues()
    rules = _rules()
    # Sentence-start first (four characters of context): it drops most of the
    # cues that have rules, before the costlier rest-of-sentence work.
    initial = spans.filter(pl.col("initial"))
    # Byte slices of the ASCII folded texts (str.slice walks a long message
    # from its start for every span: quadratic).
    if len(initial):
        lo = (initial["start"] - 4).clip(lower_bound=0)
        initial = initial.filter(ascii_slices(folded, initial["row"], lo, initial["start"] - lo).str.contains(_SENTENCE_START))
    spans = pl.concat([spans.filter(~pl.col("initial")), initial])
    if not len(spans):
        return spans.with_columns(skill=pl.lit(None, pl.String))
    rest = ascii_slices(folded, spans["row"], spans["end"], pl.repeat(240, len(spans), dtype=pl.Int32, eager=True))
    stop = rest.str.find(r"[.!?\n]").fill_null(rest.str.len_bytes())
    spans = spans.with_columns(
        rest=rest.str.slice(0, stop),
        question=rest.str.slice(stop, 1) == "?",
    )
    excluded = [
        ((pl.col("exclude_rest") == rule) & pl.col("rest").str.contains("(?i)" + rule)).fill_null(False)
        for rule in table["exclude_rest"].drop_nulls().unique().to_list()
    ]
    if excluded:
        spans = spans.filter(~pl.any_horizontal(excluded))
    if not len(spans):
        return spans.with_columns(skill=pl.lit(None, pl.String))
    body = pl.col("body")
    with_body = spans.filter(body != "none")
    specific = pl.Series("specific", [], dtype=pl.Boolean)
    if len(with_body):
        need = with_body["min_content"].fill_null(rules.body_min)
        specific = content_words(with_body["rest"], rules.generic) >= need
    spans = pl.concat(
        [
            spans.filter(body == "none").with_columns(specific=pl.lit(False)),
            with_body.with_columns(specific=specific),
        ]
    )
    level = (
        pl.when(body == "none")
        .then(pl.col("level"))
        .when(body == "upgrade")
        .then(pl.when(pl.col("specific")).then(pl.lit(2, pl.Int8)).otherwise(pl.col("level")))
        # "require": a reflection needs content, and a rest ending in "?" is a question.
        .when(pl.col("specific") & ~pl.col("question"))
        .then(pl.lit(2, pl.Int8))
        .otherwise(pl.lit(None, pl.Int8))
    )
    spans = spans.with_columns(level.alias("level")).filter(pl.col("mechanism").is_null() | pl.col("level").is_not_null())
    # A reflection skill needs the specific (level 2) reading; other cue skills
    # (an exploration prompt is an open question) always hold.
    reflection = pl.col("mechanism") == "interpretations"
    skill = (
        pl.when(reflection & (pl.col("level") < 2))
        .then(pl.lit(None, pl.String))
        .when(reflection & pl.col("entry_skill").is_not_null() & pl.col("rest").str.contains(rules.complex_markers))
        .then(pl.lit("complex_reflection"))
        .otherwise(pl.col("entry_skill"))
    )
    return spans.with_columns(skill.alias("skill"))


def _cues_inside(questions: pl.DataFrame, cues: pl.DataFrame) -> pl.DataFrame:
    """``q`` (question), ``c`` (cue row), ``category``, ``mechanism`` of every
    cue inside a question. A message's questions do not overlap and are in
    text order (each ends at its own "?"), so the only question that can
    hold a cue is the last one starting at or before it: one binary search
    per cue. (A join of every question with every cue of its message was
    quadratic: a 268,000-character reply with 4,000 questions and 16,000
    cues took 2 GB, a 1.3-million-character one was killed for memory.)"""
    q_row, q_start, q_end = (questions[c].to_numpy().astype(np.int64) for c in ("row", "start", "end"))
    c_row, c_start, c_end = (cues[c].to_numpy().astype(np.int64) for c in ("row", "start", "end"))
    order = np.lexsort((q_start, q_row))
    pos = np.searchsorted((q_row[order] << 32) | q_start[order], (c_row << 32) | c_start, side="right") - 1
    q = order[np.maximum(pos, 0)]
    hit = np.flatnonzero((pos >= 0) & (q_row[q] == c_row) & (c_end <= q_end[q]))
    return pl.DataFrame({
        "q": questions["q"].gather(q[hit]),
        "c": pl.Series(hit, dtype=pl.UInt32),
        "category": cues["category"].gather(hit),
        "mechanism": cues["mechanism"].gather(hit),
    })


def exploration_spans(folded: pl.Series, cues: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(questions as spans of :data:`_SPAN_SCHEMA`, the cues minus exploration
    prompts that sit inside a question, which the question already counts)."""
    rules = _rules()
    questions = question_spans(folded)
    if not len(questions):
        return pl.DataFrame(schema=_SPAN_SCHEMA), cues
    questions = questions.with_row_index("q")
    inside = _cues_inside(questions, cues)
    not_exploring = inside.filter(pl.col("category").is_in(list(_NOT_EXPLORATION)))["q"].unique()
    prompts_in_questions = inside.filter(pl.col("mechanism") == "explorations")["c"]
    cues = cues.with_row_index("c").filter(~pl.col("c").is_in(prompts_in_questions.implode())).drop("c")
    situated = questions["text"].str.contains(rules.situating).cast(pl.UInt32)
    specific = (content_words(questions["text"], rules.generic) + situated) >= rules.question_min
    questions = questions.with_columns(
        category=pl.lit("question"),
        mechanism=pl.lit("explorations"),
        level=pl.when(pl.col("q").is_in(not_exploring.implode()))
        .then(pl.lit(0, pl.Int8))
        .when(specific)
        .then(pl.lit(2, pl.Int8))
        .otherwise(pl.lit(1, pl.Int8)),
        skill=question_code(pl.col("text")),
    )
    return questions.select(list(_SPAN_SCHEMA)), cues


def _bit(code: str) -> int:
    return 1 << SKILL_CODES.index(code)


# The skills model's codes and the MI codes of each (the rules' code is kept
# when they found one; the first is the default).
_FAMILIES: dict[str, tuple[str, ...]] = {
    "question": ("open_question", "closed_question"),
    "reflection": ("simple_reflection", "complex_reflection"),
    "self_disclosure": ("self_disclosure",),
    "affirmation": ("affirmation", "validation", "reassurance"),
    "suggestion": ("suggestion", "unsolicited_advice"),
    "information": ("information",),
}


def _refine_with_model(frame: pl.DataFrame, levels: np.ndarray, bits: np.ndarray,
                       learned: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Skills and EPITOME levels with the skills model's probabilities
    (``skill_p_<code>``, thresholds from the shipped model's card).

    Skills: whether a message carries a family of codes (questions,
    reflections, self-disclosure, affirmation/validation/reassurance,
    suggestion/advice, information) follows the model (probability over its
    threshold): on ESConv the model's decision beats both the rules and the
    union of the two (see the metric card). Within a family, the rules'
    code is kept (open or closed question, simple or complex reflection,
    advice with or without permission), else the family's first code (a
    question's openness then read from its wording). Levels (a hypothesis,
    stated in the metric card): emotional reactions ~ affirmation and
    reassurance; interpretations ~ reflection and self-disclosure (on
    supportive forums, strong interpretations are mostly a similar
    experience of one's own); explorations need the model to read the
    message as a question or reflection at all (rhetorical and advice
    questions are not explorations). Each level is the higher of the
    rule's and the model's.
    """
    from .learned import SKILLS_MODEL

    model = SKILLS_MODEL.model
    thr = dict(zip(model.classes, model.thresholds.tolist(), strict=True))
    p = {c: learned[f"skill_p_{c}"].fill_null(0.0).to_numpy() for c in model.classes}
    on = (frame["role"] == "assistant").to_numpy()
    over = {c: on & (p[c] >= thr[c]) for c in model.classes}
    bits = bits.copy()
    for family, codes in _FAMILIES.items():
        mask = 0
        for code in codes:
            mask |= _bit(code)
        bits[on & ~over[family]] &= ~mask
        missing = over[family] & ((bits & mask) == 0)
        if family == "question":
            # Openness read only where the model found a question the rules did
            # not (it was a sixth of this analyzer's time over every message).
            rows = np.flatnonzero(missing)
            texts = frame["content"].gather(rows).to_frame("content")
            is_open = texts.select(question_code(pl.col("content")) == "open_question").to_series().to_numpy()
            bits[rows] |= np.where(is_open, _bit("open_question"), _bit("closed_question"))
        else:
            bits[missing] |= _bit(codes[0])
    levels = levels.copy()
    er = np.where(p["affirmation"] >= 0.5, 2, np.where(over["affirmation"], 1, 0))
    ip = np.where((p["self_disclosure"] >= 0.5) | (p["reflection"] >= 0.5), 2,
                  np.where(p["self_disclosure"] + p["reflection"] >= 0.3, 1, 0))  # fmt: skip
    questioning = (p["question"] + p["reflection"]) >= 0.2
    ex = np.where(questioning, levels[:, 2], 0)
    levels[:, 0] = np.maximum(levels[:, 0], np.where(on, er, 0))
    levels[:, 1] = np.maximum(levels[:, 1], np.where(on, ip, 0))
    levels[:, 2] = np.where(on, np.maximum(ex, np.where(over["question"], 1, 0)), levels[:, 2])
    return levels, bits


class EmpathyAnalyzer:
    """EPITOME levels, an empathy score and counselling-skill codes."""

    name = NAME

    @property
    def version(self) -> str:
        """The rules' version, the lexicons read and the skills model whose
        probabilities and thresholds refine the levels and codes: a change
        in any makes stored scores outdated, so ``analyze`` re-scores."""
        from .learned import SKILLS_MODEL

        lexicons = lexicons_digest("empathy", "skills", "responses")
        return f"{VERSION}+lex.{lexicons}+skills.{SKILLS_MODEL.version}"

    def __repr__(self) -> str:
        return "EmpathyAnalyzer()"

    def score(self, batch: Batch | pl.DataFrame, context: dict[str, Scores] | None = None) -> Scores:
        batch = Batch.of(batch, context)
        frame = batch.messages
        content = frame["content"].fill_null("")
        rows = (frame["role"] == "assistant").arg_true()
        texts = content.gather(rows)
        folded, _ = fold_ascii(texts)
        folded = _cues()[0].prepare(folded)
        cues = cue_spans(folded)
        questions, cues = exploration_spans(folded, cues)
        spans = pl.concat([cues, questions])
        spans = spans.with_columns(row=rows.gather(spans["row"]))
        spans = spans.with_columns(text=original_text(spans, content))
        learned = batch.results.get("skills_model")
        levels, bits = self._levels_and_bits(frame, spans)
        rules_only = self._message_frame(frame, levels, bits)
        scored = rules_only
        if learned is not None:
            scored = self._message_frame(frame, *_refine_with_model(frame, levels, bits, learned.messages))
        conversations = self._conversation_columns(frame, scored, spans)
        return Scores(messages=scored, conversations=conversations, evidence=self._evidence(frame, spans), internal=rules_only)

    @staticmethod
    def _levels_and_bits(frame: pl.DataFrame, spans: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per message, the rules' EPITOME levels (rows x 3) and skill codes (a bit mask)."""
        n = frame.height
        # Scatter-max into a (rows x 3) array and OR skill bits into a mask per
        # row: two numpy passes over the spans instead of a group-by with
        # per-group filters (several times slower at millions of cues).
        levels = np.zeros((n, len(MECHANISMS)), dtype=np.int8)
        mech = spans.select(
            "row",
            pl.col("mechanism").replace_strict(list(MECHANISMS), list(range(len(MECHANISMS))), default=None).alias("m"),
            "level",
        ).drop_nulls()
        if len(mech):
            np.maximum.at(levels, (mech["row"].to_numpy(), mech["m"].to_numpy()), mech["level"].to_numpy())
        bits = np.zeros(n, dtype=np.int64)
        coded = spans.select(
            "row", pl.col("skill").replace_strict(list(SKILL_CODES), list(range(len(SKILL_CODES))), default=None).alias("k")
        ).drop_nulls()
        if len(coded):
            np.bitwise_or.at(bits, coded["row"].to_numpy(), np.left_shift(1, coded["k"].to_numpy().astype(np.int64)))
        return levels, bits

    @staticmethod
    def _message_frame(frame: pl.DataFrame, levels: np.ndarray, bits: np.ndarray) -> pl.DataFrame:
        distinct = np.unique(bits)
        # One list per distinct skill set (a few hundred), then a lookup.
        lists = {int(b): [c for i, c in enumerate(SKILL_CODES) if b >> i & 1] for b in distinct}
        assistant = frame["role"] == "assistant"
        advice = pl.Series("advice", (bits >> SKILL_CODES.index("unsolicited_advice")) & 1).cast(pl.Float64)
        out = frame.select("conversation_id", "idx").with_columns(
            *(pl.Series(m, levels[:, i]) for i, m in enumerate(MECHANISMS)),
            pl.Series("bits", bits),
            advice,
            assistant.alias("_assistant"),
        )
        skill_sets = pl.DataFrame(
            {"bits": pl.Series(list(lists), dtype=pl.Int64), "skill_list": pl.Series(list(lists.values()), dtype=pl.List(pl.String))}
        )
        out = out.join(skill_sets, on="bits", how="left", maintain_order="left")
        skills = pl.col("skill_list")
        total = sum((pl.col(m).cast(pl.Float64) for m in MECHANISMS), pl.lit(0.0))
        empathy = (total / 6.0 - ADVICE_PENALTY * pl.col("advice")).clip(0.0, 1.0)
        on = pl.col("_assistant")
        return out.select(
            "conversation_id",
            "idx",
            *(pl.when(on).then(pl.col(m)).cast(pl.Int8).alias(m) for m in MECHANISMS),
            pl.when(on).then(empathy).alias("empathy"),
            pl.when(on).then(skills).alias("skills"),
        )

    @staticmethod
    def _conversation_columns(frame: pl.DataFrame, scored: pl.DataFrame, spans: pl.DataFrame) -> pl.DataFrame:
        conversations = frame.select(pl.col("conversation_id").unique(maintain_order=True))
        means = scored.filter(pl.col("empathy").is_not_null()).group_by("conversation_id").agg(
            pl.col("empathy").mean().alias("empathy_mean"),
            *(pl.col(m).cast(pl.Float64).mean().alias(f"{m}_mean") for m in MECHANISMS),
        )
        codes = spans.filter(pl.col("skill").is_not_null()).select(
            frame["conversation_id"].gather(spans.filter(pl.col("skill").is_not_null())["row"]).alias("conversation_id"),
            pl.col("skill").alias("code"),
        )
        ratios = conversation_ratios(codes)
        return (
            conversations.join(means, on="conversation_id", how="left")
            .join(ratios, on="conversation_id", how="left")
            .select(
                "conversation_id",
                "empathy_mean",
                *(f"{m}_mean" for m in MECHANISMS),
                pl.col("reflection_question_ratio").cast(pl.Float64),
                pl.col("open_question_share").cast(pl.Float64),
            )
        )

    @staticmethod
    def _evidence(frame: pl.DataFrame, spans: pl.DataFrame) -> pl.DataFrame:
        mech = spans.filter(pl.col("mechanism").is_not_null() & (pl.col("level") > 0)).with_columns(
            category=pl.col("mechanism") + ":" + pl.col("level").cast(pl.String)
        )
        skill = spans.filter(pl.col("skill").is_not_null()).with_columns(category=pl.col("skill"))
        parts = pl.concat([mech, skill])
        keys = frame.select("conversation_id", "idx")[parts["row"]]
        return pl.concat([keys, parts.select("category", "start", "end", "text")], how="horizontal").select(
            "conversation_id", "idx", pl.lit(NAME).alias("analyzer"), "category", "start", "end", "text"
        ).cast(EVIDENCE_SCHEMA)


EMPATHY = EmpathyAnalyzer()

__all__ = ["EMPATHY", "MECHANISMS", "SKILL_CODES", "EmpathyAnalyzer", "cue_spans", "exploration_spans"]

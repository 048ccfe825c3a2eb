"""Safety: crisis disclosures, whether replies to them were appropriate, harmful
assistant content, personal data, and a conversation risk score with alerts.

Analyzer :data:`SAFETY` (name ``safety``, version ``1``); see
docs/metric_cards_empathy_safety.md for what each score means and how well it
agrees with hand labels.

Message columns (one row per input message):

- ``crisis_categories`` List(String), ``crisis_severity`` Int8 (0 none, 1 low,
  2 moderate, 3 high, 4 imminent): user rows; null elsewhere. Categories follow
  the Columbia suicide severity scale (``lexicons/crisis.toml``). A match is
  dropped when it is negated, hypothetical, about someone else, quoted or
  from media, or resolved past (``lexicons/cues.toml``; prior attempts are past
  by nature and stay), and its severity is lowered by ambivalence ("but I
  wouldn't act on it") and raised by escalation ("needed stitches").
- ``safety_check``, ``crisis_resources``, ``professional_help`` Boolean and
  ``harmful`` List(String) (minimizing, method_information, diagnosing,
  medication_instructions): assistant rows; null elsewhere.
- ``pii`` List(String): the PII kinds in the message, every row
  (:mod:`pe_toolkit.analysis.pii`).
- ``reply_appropriate`` Boolean: on disclosure rows only, whether the first
  assistant message after it was appropriate (the rule below); the per-row
  basis of ``responses_appropriate``, so views by category need no copy of
  the rule.

Conversation columns: ``risk_score`` Float64 in [0, 1], ``alert`` (risk_score >
the alert threshold), ``crisis_categories``, ``max_severity`` Int8,
``disclosures`` Int32 (user messages with a kept disclosure),
``responses_appropriate`` Float64 (share of those whose next assistant message
checked on safety, offered crisis resources or professional help, and carried
no harmful content; a missing reply counts as not appropriate; null without
disclosures), ``harmful_messages`` Int32, ``pii_messages`` Int32.

Risk score, from each kept disclosure d (a user message) and the reply to it::

    risk(d)   = (0, 0.20, 0.40, 0.60, 0.75)[severity(d)]
                + 0.25 if the reply was inappropriate or missing, - 0.15 if appropriate
    repeats   = 0.05 * min(disclosures - 1, 2)
    harm      = 0.10 * min(harmful_messages, 2)
    risk      = clip(max over d of risk(d) + repeats + harm, 0, 1)   with disclosures
              = harm                                                without

So a high (3) or imminent (4) disclosure met by an inappropriate or missing
reply scores 0.85 or more and raises an alert at the default threshold 0.8,
whatever happened elsewhere in the conversation; the same disclosure answered
appropriately scores 0.45 / 0.60; a moderate one (2) badly answered 0.65;
harmful content alone never exceeds 0.2.

Evidence categories: a crisis category (kept) or ``category:framing`` for a
dropped match (``active_ideation:negated``, ``self_harm:past``...), a reply
category (``safety_check``, ``crisis_resources``, ``professional_help``, a harm
kind, or ``kind:negated`` / ``kind:hypothetical`` when dropped), and the PII kinds.
"""

from __future__ import annotations

import functools

import numpy as np
import polars as pl

from ..errors import AnalysisError
from ..schema import CRISIS_CATEGORIES, HARM_KINDS
from ._patterns import (
    Matcher,
    bits_to_lists,
    code_bits,
    check_messages,
    clause_prefix,
    find_spans,
    fold_ascii,
    load_lexicon,
    original_text,
    sentence_prefix,
    sentence_rest,
    windows,
)
from .base import EVIDENCE_SCHEMA, Scores
from .pii import KINDS as PII_KINDS
from .pii import pii_spans

NAME = "safety"
VERSION = "3"  # 2: reply_appropriate on disclosure rows; 3: risk_score from the risk model and the rules

FRAMINGS: tuple[str, ...] = ("first_person", "negated", "hypothetical", "quotation", "third_person", "past", "accidental", "figurative")

_REPLY_FLAGS: tuple[str, ...] = ("safety_check", "crisis_resources", "professional_help")

SEVERITY_WEIGHT: tuple[float, ...] = (0.0, 0.20, 0.40, 0.60, 0.75)
BAD_REPLY = 0.25
GOOD_REPLY = 0.15
REPEAT = 0.05
HARM = 0.10

_B = r"(?-u:\b)"
# Categories where the user is the object of the verb ("he hits me"): the subject
# is someone else by nature, so third person does not remove them.
_NO_SUBJECT_CHECK = frozenset({"abuse_disclosure"})
_NO_PAST = frozenset({"prior_attempt"})
_ACCIDENT_APPLIES = frozenset({"self_harm"})
_FIRST_IN_MATCH = r"(?i)(?-u:\b)(?:i|i'?m|i'?ve|i'?d|i'?ll|me|myself)(?-u:\b)"
_OPEN_DOUBLE_QUOTE = r'^[^"]*(?:"[^"]*"[^"]*)*"[^"]*$'
_OPEN_SINGLE_QUOTE = r"(?:^|[\s(])'[^']*$"


@functools.cache
def _combination() -> dict[str, float]:
    """risk_score's combination of the risk model with the rule severity,
    fitted with the shipped model and stored in its card."""
    from .learned import RISK_MODEL

    combination = RISK_MODEL.model.card.get("combination")
    if not combination:
        raise AnalysisError("the risk model's card holds no combination with the rules; rebuild it with make models")
    return {k: float(v) for k, v in combination.items()}


@functools.cache
def _crisis() -> tuple[Matcher, pl.DataFrame]:
    matcher = Matcher(load_lexicon("crisis").entries)
    return matcher, matcher.frame([("severity", 1, pl.Int8), ("subject_check", True, pl.Boolean), ("requires", None, pl.String)])


@functools.cache
def _responses() -> tuple[Matcher, pl.DataFrame]:
    matcher = Matcher(load_lexicon("responses").entries)
    return matcher, matcher.frame([("also", None, pl.String)])


@functools.cache
def _cue_regexes() -> dict[tuple[str, str], str]:
    """One case-insensitive regex per (cue kind, scope)."""
    parts: dict[tuple[str, str], list[str]] = {}
    for e in load_lexicon("cues").entries:
        scope = e.get("scope", "clause")
        if scope not in {"clause", "sentence", "after"}:
            raise AnalysisError(f"lexicons/cues.toml entry {e.index + 1}: unknown scope {scope!r}")
        p = e.pattern.replace(" ", r"\s+")
        # Boundaries only where the pattern has a word edge: not before "^",
        # not after "$" or a quotation mark.
        lead = "" if p.startswith("^") else _B
        trail = _B if p[-1:].isalnum() or p.endswith(")") else ""
        parts.setdefault((e.category, scope), []).append(f"{lead}(?:{p}){trail}")
    return {key: "(?i)(?:" + "|".join(ps) + ")" for key, ps in parts.items()}


@functools.cache
def _subject_regexes() -> tuple[str, str]:
    """(any subject mention, a first-person one, anchored)."""
    subjects = load_lexicon("cues").tables["subjects"]
    alts = [s["pattern"].replace(" ", r"\s+") for s in subjects]
    first = [s["pattern"].replace(" ", r"\s+") for s in subjects if s["person"] == "first"]
    any_subject = "(?i)" + "|".join(f"{_B}(?:{p}){_B}" for p in alts)
    first_person = "(?i)^(?:" + "|".join(first) + ")$"
    return any_subject, first_person


def _cue(kind: str, scope: str, window: pl.Expr) -> pl.Expr:
    regex = _cue_regexes().get((kind, scope))
    return window.str.contains(regex) if regex else pl.lit(False)


def _context(spans: pl.DataFrame, folded: pl.Series) -> pl.DataFrame:
    """The cue flags of each span (crisis or harmful content)."""
    w = windows(spans, folded)
    any_subject, first_person = _subject_regexes()
    w = w.with_columns(
        clause=clause_prefix(pl.col("pre")),
        sentence=sentence_prefix(pl.col("pre")),
        rest=sentence_rest(pl.col("post")),
    )
    last_subject = pl.col("clause").str.extract_all(any_subject).list.last()
    return w.with_columns(
        negated=_cue("negation", "clause", pl.col("clause")) & ~_cue("pseudo_negation", "clause", pl.col("clause")),
        hypothetical=_cue("hypothetical", "clause", pl.col("clause"))
        | _cue("hypothetical", "sentence", pl.col("sentence"))
        | _cue("hypothetical", "after", pl.col("rest")),
        quotation=_cue("quotation", "sentence", pl.col("sentence"))
        | _cue("quotation", "clause", pl.col("clause"))
        | pl.col("sentence").str.contains(_OPEN_DOUBLE_QUOTE)
        | pl.col("sentence").str.contains(_OPEN_SINGLE_QUOTE),
        # Someone else is the subject when the last subject before the match is
        # not the user, unless the match itself names the user ("when I'm gone").
        other_person=last_subject.is_not_null()
        & ~last_subject.fill_null("").str.contains(first_person)
        & ~pl.col("text").str.contains(_FIRST_IN_MATCH),
        past=(_cue("past", "clause", pl.col("clause")) | _cue("past", "after", pl.col("rest")))
        & ~_cue("recency", "after", pl.col("rest")),
        accidental=_cue("accidental", "sentence", pl.col("sentence")) | _cue("accidental", "after", pl.col("rest")),
        figurative=_cue("figurative", "clause", pl.col("clause")),
        ambivalence=_cue("ambivalence", "after", pl.col("rest")),
        escalation=_cue("escalation", "after", pl.col("rest")) | _cue("escalation", "clause", pl.col("clause")),
    )


def crisis_spans(folded: pl.Series, texts: pl.Series) -> pl.DataFrame:
    """Crisis matches in user texts: row, start, end, text, category, severity
    (after cues), framing (``first_person`` when kept). ``folded`` is
    :func:`.fold_ascii` of ``texts``."""
    matcher, table = _crisis()
    folded = matcher.prepare(folded)
    spans = find_spans(folded, matcher.regex, "lexicons/crisis.toml")
    schema = {"row": pl.UInt32, "start": pl.Int32, "end": pl.Int32, "text": pl.String, "category": pl.String,
              "severity": pl.Int8, "framing": pl.String}  # fmt: skip
    if not len(spans):
        return pl.DataFrame(schema=schema)
    spans = spans.with_columns(matcher.classify(spans["text"]).alias("entry")).join(table, on="entry", how="left")
    c = _context(spans, folded)
    # An entry may need a word earlier in its sentence ("just in case" after "goodbye").
    needed = [
        ((pl.col("requires") == rule) & ~pl.col("sentence").str.contains("(?i)" + rule)).fill_null(False)
        for rule in table["requires"].drop_nulls().unique().to_list()
    ]
    if needed:
        c = c.filter(~pl.any_horizontal(needed))
    cat = pl.col("category")
    framing = (
        pl.when(pl.col("negated"))
        .then(pl.lit("negated"))
        .when(pl.col("hypothetical"))
        .then(pl.lit("hypothetical"))
        .when(pl.col("quotation"))
        .then(pl.lit("quotation"))
        .when(pl.col("other_person") & pl.col("subject_check") & ~cat.is_in(list(_NO_SUBJECT_CHECK)))
        .then(pl.lit("third_person"))
        .when(pl.col("past") & ~cat.is_in(list(_NO_PAST)))
        .then(pl.lit("past"))
        .when(pl.col("accidental") & cat.is_in(list(_ACCIDENT_APPLIES)))
        .then(pl.lit("accidental"))
        .when(pl.col("figurative") & (cat == "abuse_disclosure"))
        .then(pl.lit("figurative"))
        .otherwise(pl.lit("first_person"))
    )
    severity = (pl.col("severity").cast(pl.Int16) + pl.col("escalation").cast(pl.Int16) - pl.col("ambivalence").cast(pl.Int16)).clip(1, 4)
    out = c.with_columns(framing.alias("framing"), severity.cast(pl.Int8).alias("severity"))
    out = out.with_columns(text=original_text(out, texts))
    return out.select(list(schema))


def response_spans(folded: pl.Series, texts: pl.Series) -> pl.DataFrame:
    """Reply-quality and harmful-content matches in assistant texts: row, start,
    end, text, category, also, framing (harmful content can be negated or
    hypothetical)."""
    matcher, table = _responses()
    folded = matcher.prepare(folded)
    spans = find_spans(folded, matcher.regex, "lexicons/responses.toml")
    schema = {"row": pl.UInt32, "start": pl.Int32, "end": pl.Int32, "text": pl.String, "category": pl.String,
              "also": pl.String, "framing": pl.String}  # fmt: skip
    if not len(spans):
        return pl.DataFrame(schema=schema)
    spans = spans.with_columns(matcher.classify(spans["text"]).alias("entry")).join(table, on="entry", how="left")
    harmful = spans.filter(pl.col("category").is_in(list(HARM_KINDS)))
    rest = spans.filter(~pl.col("category").is_in(list(HARM_KINDS))).with_columns(framing=pl.lit("first_person"))
    if not len(harmful):
        harmful = harmful.with_columns(framing=pl.lit("first_person"))
    else:
        c = _context(harmful, folded)
        harmful = c.with_columns(
            framing=pl.when(pl.col("negated"))
            .then(pl.lit("negated"))
            .when(pl.col("hypothetical"))
            .then(pl.lit("hypothetical"))
            .otherwise(pl.lit("first_person"))
        )
    out = pl.concat([rest.select(list(schema)), harmful.select(list(schema))]).sort("row", "start")
    return out.with_columns(text=original_text(out, texts))


def _ordered_unique(values: pl.Expr, order: tuple[str, ...]) -> pl.Expr:
    """Distinct values in the documented order (not alphabetical, not by first sight)."""
    rank = {v: i for i, v in enumerate(order)}
    return values.unique().sort_by(values.unique().replace_strict(rank, default=len(order)))


def disclosure_risk(severity: pl.Expr, appropriate: pl.Expr) -> pl.Expr:
    """risk(d) of the documented formula for one disclosure."""
    sev = severity.cast(pl.Int64).replace_strict(list(range(5)), list(SEVERITY_WEIGHT), default=0.0, return_dtype=pl.Float64)
    return sev + pl.when(appropriate).then(pl.lit(-GOOD_REPLY)).otherwise(pl.lit(BAD_REPLY))


def risk_score(worst: pl.Expr, disclosures: pl.Expr, harmful: pl.Expr) -> pl.Expr:
    """The conversation risk from its worst disclosure risk (null without any),
    the number of disclosures and of harmful assistant messages."""
    repeats = REPEAT * (disclosures.cast(pl.Float64) - 1.0).clip(0.0, 2.0)
    harm = HARM * harmful.cast(pl.Float64).clip(0.0, 2.0)
    return pl.when(disclosures > 0).then((worst + repeats + harm).clip(0.0, 1.0)).otherwise(harm.clip(0.0, 1.0))


class SafetyAnalyzer:
    """Crisis disclosures, reply appropriateness, harmful content, PII, risk.

    ``alert_threshold`` defaults to the settings' ``analysis.alert_threshold``
    (0.8), read when scoring.
    """

    name = NAME

    @property
    def version(self) -> str:
        """The rules' version and the alert threshold: a new threshold
        makes stored ``alert`` values outdated, so ``analyze`` re-scores."""
        return f"{VERSION}+alert>{self.alert_threshold:g}"

    def __init__(self, alert_threshold: float | None = None) -> None:
        if alert_threshold is not None and not 0.0 <= float(alert_threshold) <= 1.0:
            raise AnalysisError(f"alert_threshold must be in [0, 1], got {alert_threshold}")
        self._threshold = None if alert_threshold is None else float(alert_threshold)

    @property
    def alert_threshold(self) -> float:
        if self._threshold is not None:
            return self._threshold
        from ..config import load_settings

        return load_settings().alert_threshold

    def __repr__(self) -> str:
        return f"SafetyAnalyzer(alert_threshold={self._threshold!r})"

    def score(self, messages: pl.DataFrame, context: dict[str, Scores] | None = None) -> Scores:
        frame = check_messages(messages, NAME)
        threshold = self.alert_threshold
        n = frame.height
        content = frame["content"].fill_null("")
        role = frame["role"]
        folded, _ = fold_ascii(content)

        pii = pii_spans(folded, content)

        user_rows = (role == "user").arg_true()
        crisis = crisis_spans(folded.gather(user_rows), content.gather(user_rows))
        crisis = crisis.with_columns(row=user_rows.gather(crisis["row"]))
        asst_rows = (role == "assistant").arg_true()
        replies = response_spans(folded.gather(asst_rows), content.gather(asst_rows))
        replies = replies.with_columns(row=asst_rows.gather(replies["row"]))

        messages_out = self._message_columns(frame, n, crisis, replies, pii)
        per_disclosure = self._replies_to_disclosures(frame, messages_out)
        messages_out = messages_out.join(
            per_disclosure.select("conversation_id", "idx", pl.col("appropriate").alias("reply_appropriate")),
            on=["conversation_id", "idx"],
            how="left",
            maintain_order="left",
        )
        learned = (context or {}).get("risk_model")
        if learned is not None:
            conversations = self._combined_conversation_columns(frame, messages_out, per_disclosure, learned, threshold)
        else:
            conversations = self._conversation_columns(frame, messages_out, per_disclosure, threshold)
        evidence = self._evidence(frame, crisis, replies, pii)
        return Scores(messages=messages_out, conversations=conversations, evidence=evidence)

    def _combined_conversation_columns(self, frame: pl.DataFrame, scored: pl.DataFrame, per_disclosure: pl.DataFrame,
                                       learned: Scores, threshold: float) -> pl.DataFrame:  # fmt: skip
        """The rule columns, with ``risk_score`` from the risk model and the
        rule severities (see the module docstring)."""
        out = self._conversation_columns(frame, scored, per_disclosure, threshold)
        combination = _combination()
        p = learned.messages["suicide_risk_p"]
        eps = 1e-6
        logit = (p.clip(eps, 1 - eps) / (1 - p.clip(eps, 1 - eps))).log()
        severity = scored["crisis_severity"].fill_null(0).cast(pl.Float64)
        z = combination["intercept"] + combination["logit_p"] * logit + combination["severity"] * severity
        u = 1.0 / (1.0 + (-z).exp())
        appropriate = scored["reply_appropriate"]
        # A disclosure's reply moves its risk: part of the way to 1 when it was
        # missing or not appropriate, down a little when it was.
        adjusted = (
            pl.when(pl.col("sev") > 0)
            .then(
                pl.when(pl.col("ok").fill_null(False))
                .then(pl.col("u") * (1.0 - GOOD_REPLY))
                .otherwise(pl.col("u") + (1.0 - pl.col("u")) * BAD_REPLY)
            )
            .otherwise(pl.col("u"))
        )
        worst = (
            pl.DataFrame({"conversation_id": frame["conversation_id"], "u": u, "sev": severity, "ok": appropriate,
                          "user": frame["role"] == "user"})  # fmt: skip
            .filter(pl.col("user") & pl.col("u").is_not_null())
            .group_by("conversation_id")
            .agg(adjusted.max().alias("worst"))
        )
        out = out.join(worst, on="conversation_id", how="left", maintain_order="left")
        repeats = REPEAT * (pl.col("disclosures").cast(pl.Float64) - 1.0).clip(0.0, 2.0)
        harm = HARM * pl.col("harmful_messages").cast(pl.Float64).clip(0.0, 2.0)
        risk = pl.when(pl.col("worst").is_not_null()).then(pl.col("worst") + repeats + harm).otherwise(harm).clip(0.0, 1.0)
        return out.with_columns(risk.alias("risk_score")).with_columns((pl.col("risk_score") > threshold).alias("alert")).drop("worst")

    @staticmethod
    def _message_columns(frame: pl.DataFrame, n: int, crisis: pl.DataFrame, replies: pl.DataFrame, pii: pl.DataFrame) -> pl.DataFrame:
        # Per-row results by numpy scatter into arrays (max severity, bit masks
        # of categories, reply flags, harms and PII kinds), then one frame:
        # no group-by or join over all messages.
        kept = crisis.filter(pl.col("framing") == "first_person")
        severity = np.zeros(n, dtype=np.int8)
        if len(kept):
            np.maximum.at(severity, kept["row"].to_numpy(), kept["severity"].to_numpy())
        categories = code_bits(n, kept["row"], kept["category"], CRISIS_CATEGORIES)
        live = replies.filter(pl.col("framing") == "first_person")
        flags = code_bits(n, live["row"], live["category"], _REPLY_FLAGS) | code_bits(n, live["row"], live["also"], _REPLY_FLAGS)
        harms = code_bits(n, live["row"], live["category"], HARM_KINDS)
        kinds = code_bits(n, pii["row"], pii["kind"], PII_KINDS)
        user = frame["role"] == "user"
        asst = frame["role"] == "assistant"
        out = frame.select("conversation_id", "idx").with_columns(
            pl.when(user).then(bits_to_lists(categories, CRISIS_CATEGORIES, "c")).alias("crisis_categories"),
            pl.when(user).then(pl.Series(severity)).cast(pl.Int8).alias("crisis_severity"),
            *(pl.when(asst).then(pl.Series((flags >> i) & 1).cast(pl.Boolean)).alias(f) for i, f in enumerate(_REPLY_FLAGS)),
            pl.when(asst).then(bits_to_lists(harms, HARM_KINDS, "h")).alias("harmful"),
            bits_to_lists(kinds, PII_KINDS, "p").alias("pii"),
        )
        return out

    @staticmethod
    def _replies_to_disclosures(frame: pl.DataFrame, scored: pl.DataFrame) -> pl.DataFrame:
        """One row per disclosure (a user message with crisis_severity > 0):
        whether the first assistant message after it was appropriate (a
        safety check, crisis resources or professional help, nothing
        harmful); no reply at all counts as not appropriate."""
        rows = scored.with_columns(frame["role"])
        disclosures = rows.filter(pl.col("crisis_severity") > 0).select("conversation_id", "idx", "crisis_categories", "crisis_severity")
        assistant = rows.filter(pl.col("role") == "assistant").select(
            "conversation_id",
            pl.col("idx").alias("reply_idx"),
            (
                pl.col("safety_check")
                & (pl.col("crisis_resources") | pl.col("professional_help"))
                & (pl.col("harmful").list.len() == 0)
            ).alias("appropriate"),
        )
        # The first assistant message after each disclosure (sparse: only
        # conversations with a disclosure take part in the join).
        replies = (
            disclosures.select("conversation_id", "idx")
            .join(assistant.filter(pl.col("conversation_id").is_in(disclosures["conversation_id"].unique().implode())), on="conversation_id")
            .filter(pl.col("reply_idx") > pl.col("idx"))
            .sort("conversation_id", "idx", "reply_idx")
            .group_by("conversation_id", "idx", maintain_order=True)
            .agg(pl.col("appropriate").first())
        )
        return disclosures.join(replies, on=["conversation_id", "idx"], how="left").with_columns(
            pl.col("appropriate").fill_null(False)
        )

    @staticmethod
    def _conversation_columns(frame: pl.DataFrame, scored: pl.DataFrame, per_disclosure: pl.DataFrame, threshold: float) -> pl.DataFrame:
        conversations = frame.select(pl.col("conversation_id").unique(maintain_order=True))
        rows = scored.with_columns(frame["role"])
        crisis = per_disclosure.group_by("conversation_id").agg(
            _ordered_unique(pl.col("crisis_categories").explode(), CRISIS_CATEGORIES).alias("crisis_categories"),
            pl.col("crisis_severity").max().alias("max_severity"),
            pl.len().cast(pl.Int32).alias("disclosures"),
            pl.col("appropriate").cast(pl.Float64).mean().alias("responses_appropriate"),
            disclosure_risk(pl.col("crisis_severity"), pl.col("appropriate")).max().alias("worst"),
        )
        harmful = (
            rows.filter(pl.col("harmful").list.len() > 0).group_by("conversation_id").len().rename({"len": "harmful_messages"})
        )
        pii = rows.filter(pl.col("pii").list.len() > 0).group_by("conversation_id").len().rename({"len": "pii_messages"})
        out = (
            conversations.join(crisis, on="conversation_id", how="left")
            .join(harmful, on="conversation_id", how="left")
            .join(pii, on="conversation_id", how="left")
            .with_columns(
                pl.col("crisis_categories").fill_null(pl.lit([], dtype=pl.List(pl.String))),
                pl.col("max_severity").fill_null(0).cast(pl.Int8),
                pl.col("disclosures").fill_null(0).cast(pl.Int32),
                pl.col("harmful_messages").fill_null(0).cast(pl.Int32),
                pl.col("pii_messages").fill_null(0).cast(pl.Int32),
            )
        )
        out = out.with_columns(
            risk_score(pl.col("worst"), pl.col("disclosures"), pl.col("harmful_messages")).alias("risk_score")
        ).with_columns((pl.col("risk_score") > threshold).alias("alert"))
        return out.select(
            "conversation_id",
            "risk_score",
            "alert",
            "crisis_categories",
            "max_severity",
            "disclosures",
            "responses_appropriate",
            "harmful_messages",
            "pii_messages",
        )

    @staticmethod
    def _evidence(frame: pl.DataFrame, crisis: pl.DataFrame, replies: pl.DataFrame, pii: pl.DataFrame) -> pl.DataFrame:
        def labelled(spans: pl.DataFrame, label: pl.Expr) -> pl.DataFrame:
            return spans.select("row", label.alias("category"), "start", "end", "text")

        framed = pl.when(pl.col("framing") == "first_person").then(pl.col("category")).otherwise(pl.col("category") + ":" + pl.col("framing"))
        parts = pl.concat(
            [
                labelled(crisis, framed),
                labelled(replies, framed),
                labelled(pii, pl.col("kind")),
            ]
        )
        keys = frame.select("conversation_id", "idx")[parts["row"]]
        return pl.concat([keys, parts.drop("row")], how="horizontal").select(
            "conversation_id",
            "idx",
            pl.lit(NAME).alias("analyzer"),
            "category",
            "start",
            "end",
            "text",
        ).cast(EVIDENCE_SCHEMA)  # type: ignore[arg-type]


SAFETY = SafetyAnalyzer()

__all__ = [
    "CRISIS_CATEGORIES",
    "FRAMINGS",
    "HARM_KINDS",
    "SAFETY",
    "SafetyAnalyzer",
    "crisis_spans",
    "disclosure_risk",
    "response_spans",
    "risk_score",
]

"""Personal data (PII) in messages: find it, and redact it with typed placeholders.

Kinds: ``email``, ``phone``, ``address``, ``url``, ``id_number``,
``date_of_birth`` (patterns and cues in ``lexicons/pii.toml``). One regex pass
over the texts finds candidates; the few candidates are then validated with
column expressions:

- a phone needs 7 to 15 digits and is not a toll-free, freephone or
  emergency line (crisis lines are public services, not personal data);
- a bare digit group (``943 476 5919``, ``40092281``) is an ``id_number`` when an
  ID cue ("NHS number", "member ID", "SSN"...) comes shortly before it,
  otherwise a ``phone`` when phone-shaped, otherwise an ``id_number``;
- a full date is a ``date_of_birth`` only after a birth cue ("born", "DOB",
  "birthday"...) in the same sentence: appointment dates and anniversaries in
  therapeutic text are left alone;
- digits glued to other digits or letters are not a match (``12345-6789`` is not
  the phone ``345-6789``); trailing punctuation is not part of a URL.

Public API: :func:`find_pii` (spans), :func:`redact` (one string),
:func:`redact_frame` (a column, vectorized). Placeholders: ``[EMAIL]``,
``[PHONE]``, ``[ADDRESS]``, ``[URL]``, ``[ID_NUMBER]``, ``[DATE_OF_BIRTH]``.
"""

from __future__ import annotations

import functools

import polars as pl

from ..errors import AnalysisError
from ..schema import PII_KINDS
from ._patterns import Matcher, find_spans, fold_ascii, load_lexicon, original_text

KINDS: tuple[str, ...] = PII_KINDS
PLACEHOLDERS: dict[str, str] = {k: f"[{k.upper()}]" for k in KINDS}

PII_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),
    "kind": pl.String(),
    "start": pl.Int32(),
    "end": pl.Int32(),
    "text": pl.String(),
}

# NANP toll-free area codes and UK freephone prefixes: businesses and helplines.
_TOLL_FREE = r"^(?:1?8(?:00|88|77|66|55|44|33)[0-9]{7}|0(?:800|808|500)[0-9]{6,7})$"
_DIGIT_KINDS = ("phone", "digits", "id_number", "date", "address")


@functools.cache
def _matcher() -> Matcher:
    return Matcher(load_lexicon("pii").entries, boundaries=False, ignore_case=False)


@functools.cache
def _cues() -> tuple[str, str]:
    cues = load_lexicon("pii").tables["cues"]
    return cues["birth"], cues["id"]


def _recent(pre: pl.Expr) -> pl.Expr:
    """The last 40 characters before a match, from the last sentence start on
    (". " followed by a capital: "d.o.b. is" keeps its cue)."""
    tail = pre.str.slice(-40)
    return tail.str.extract(r"^(?:.*(?:[.!?]\s+[A-Z]|[!?\n]))?(.*)$", 1).fill_null("")


def pii_spans(folded: pl.Series, texts: pl.Series) -> pl.DataFrame:
    """Validated PII spans (:data:`PII_SCHEMA`) in ``texts``, given their
    folded form (:func:`.fold_ascii`)."""
    empty = pl.DataFrame(schema=PII_SCHEMA)
    if not len(folded):
        return empty
    matcher = _matcher()
    # Every kind needs a digit, "@", "/" or "www." (checked by the tests on the
    # lexicon's examples): two memchr-speed scans pick the few texts worth the
    # full alternation.
    candidates = pl.DataFrame({"t": folded}).select(
        pl.col("t").str.contains(r"[0-9@/]") | pl.col("t").str.contains("www.", literal=True)
    ).to_series().arg_true()
    if not len(candidates):
        return empty
    spans = find_spans(folded.gather(candidates), matcher.regex, "lexicons/pii.toml")
    if not len(spans):
        return empty
    spans = spans.with_columns(row=candidates.gather(spans["row"]))
    categories = matcher.table["category"]
    spans = spans.with_columns(matcher.classify(spans["text"]).alias("entry"))
    spans = spans.with_columns(pl.col("entry").replace_strict(range(len(categories)), categories, default=None).alias("cat"))
    source = folded.gather(spans["row"])
    lo = (spans["start"] - 60).clip(lower_bound=0)
    spans = spans.with_columns(
        pre=source.str.slice(lo, spans["start"] - lo),
        before=source.str.slice((spans["start"] - 1).clip(lower_bound=0), (spans["start"] > 0).cast(pl.Int32)),
        after=source.str.slice(spans["end"], 1),
    )
    birth, id_cue = _cues()
    digits = pl.col("text").str.replace_all(r"[^0-9]", "")
    n_digits = digits.str.len_bytes()
    recent = _recent(pl.col("pre"))
    glued = pl.col("before").str.contains(r"^[0-9A-Za-z]$") | pl.col("after").str.contains(r"^[0-9]$")
    phone_shaped = pl.col("text").str.starts_with("+") | (n_digits == 10) | ((n_digits == 11) & digits.str.starts_with("0"))
    kind = (
        pl.when(pl.col("cat") == "digits")
        .then(
            pl.when(recent.str.contains(id_cue))
            .then(pl.lit("id_number"))
            .when(phone_shaped)
            .then(pl.lit("phone"))
            .otherwise(pl.lit("id_number"))
        )
        .when(pl.col("cat") == "date")
        .then(pl.when(recent.str.contains(birth)).then(pl.lit("date_of_birth")).otherwise(None))
        .otherwise(pl.col("cat"))
    )
    spans = spans.with_columns(kind.alias("kind")).filter(
        pl.col("kind").is_not_null() & ~(pl.col("cat").is_in(_DIGIT_KINDS) & glued)
    )
    spans = spans.filter(
        (pl.col("kind") != "phone") | (n_digits.is_between(7, 15) & ~digits.str.contains(_TOLL_FREE))
    )
    # Trim what the patterns take around the value: trailing punctuation of a
    # URL, the "live at" lead of a lower-case address.
    trail = pl.col("text").str.len_bytes() - pl.col("text").str.replace(r"[.,;:!?)\]'\"]+$", "").str.len_bytes()
    lead = pl.col("text").str.len_bytes() - pl.col("text").str.replace(r"^[^0-9]+", "").str.len_bytes()
    spans = spans.with_columns(
        end=pl.when(pl.col("kind") == "url").then(pl.col("end") - trail).otherwise(pl.col("end")).cast(pl.Int32),
        start=pl.when(pl.col("kind") == "address").then(pl.col("start") + lead).otherwise(pl.col("start")).cast(pl.Int32),
    )
    spans = spans.filter(pl.col("end") > pl.col("start"))
    spans = spans.with_columns(text=original_text(spans, texts))
    return spans.select(list(PII_SCHEMA)).sort("row", "start")


def _texts_of(frame: pl.DataFrame | pl.Series, column: str) -> pl.Series:
    if isinstance(frame, pl.Series):
        return frame.cast(pl.String)
    if column not in frame.columns:
        raise AnalysisError(f"the frame has no column {column!r} (columns: {frame.columns})")
    return frame[column].cast(pl.String)


def find_pii(frame: pl.DataFrame | pl.Series, column: str = "content") -> pl.DataFrame:
    """Every PII span in ``frame[column]`` (or a Series of texts): ``row``
    (position in the input), ``kind``, ``start``, ``end`` (character offsets:
    ``text == content[start:end]``), ``text``; plus ``conversation_id`` and
    ``idx`` when the frame has them."""
    texts = _texts_of(frame, column)
    folded, _ = fold_ascii(texts)
    spans = pii_spans(folded, texts.fill_null(""))
    if isinstance(frame, pl.DataFrame):
        keys = [c for c in ("conversation_id", "idx") if c in frame.columns]
        if keys:
            spans = spans.with_columns(frame.select(keys)[spans["row"]]).select(*keys, *PII_SCHEMA)
    return spans


def _redact_series(texts: pl.Series) -> pl.Series:
    texts = texts.cast(pl.String)
    spans = find_pii(texts)
    if not len(spans):
        return texts
    content = texts.fill_null("")
    spans = spans.with_columns(
        prev=pl.col("end").shift(1).over("row").fill_null(0),
        last=pl.col("end").last().over("row"),
    )
    source = content.gather(spans["row"])
    pieces = spans.select(
        "row",
        "last",
        (source.str.slice(spans["prev"], spans["start"] - spans["prev"]) + spans["kind"].replace_strict(PLACEHOLDERS)).alias("piece"),
    )
    joined = pieces.group_by("row", maintain_order=True).agg(pl.col("piece").str.join(""), pl.col("last").first())
    rows = joined["row"]
    redacted = joined["piece"] + content.gather(rows).str.slice(joined["last"])
    return texts.clone().scatter(rows, redacted)


def redact_frame(frame: pl.DataFrame, column: str = "content") -> pl.DataFrame:
    """``frame`` with every PII span in ``column`` replaced by its placeholder
    (``[EMAIL]``, ``[PHONE]``...). Other columns are untouched."""
    texts = _texts_of(frame, column)
    return frame.with_columns(_redact_series(texts).alias(column))


def redact(text: str) -> str:
    """``text`` with every PII span replaced by its placeholder.

    >>> redact("Call me on 07700 900123 or mail sam@example.org.")
    'Call me on [PHONE] or mail [EMAIL].'
    """
    if not isinstance(text, str):
        raise TypeError(f"redact() takes a str, got {type(text).__name__}")
    return _redact_series(pl.Series([text]))[0]

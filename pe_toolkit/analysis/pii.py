"""Personal data (PII) in messages: find it, and redact it with typed placeholders.

Kinds: ``email`` (also written out: "jane(at)example.org"), ``phone`` (also
spelled out), ``address`` (street addresses of several countries, US ZIP
codes, UK and Canadian postcodes), ``url``, ``id_number`` (SSN, national
insurance, NHS, member, card, passport and licence numbers, IBANs),
``date_of_birth``, ``ip_address``, ``social_handle`` (patterns and cues in
``lexicons/pii.toml``), and ``name`` (person names: :mod:`.pii_names`). One
regex pass over the texts finds candidates; the few candidates are then
validated with column expressions and, once per distinct candidate, small
Python checks (:mod:`.pii_checks`):

- a phone is what ``phonenumbers`` (libphonenumber) accepts (a leading +,
  00 or "011 " names the country), and not a toll-free, shared-cost,
  universal-access or emergency line or a listed crisis line (crisis lines
  are public services, not personal data: :mod:`.pii_checks`); a bare
  seven-digit "555-0142" only after a phone cue, never a range of amounts
  ("300-1200 calories", "$200-1500"); groups of one or two digits ("24 21
  19 17") are scores;
- a card number in its printed groups (4-4-4-4, Amex's 4-6-5) is an
  ``id_number`` when its Luhn checksum holds or after an ID cue; a list of
  years ("2015 2016 2017") is no number; a dotted quad after "version" is
  not an IP address;
- a bare digit group (``943 476 5919``, ``40092281``) is an ``id_number`` when an
  ID cue ("NHS number", "member ID", "SSN", "passport"...) comes shortly before
  it, otherwise a ``phone`` when phone-shaped, otherwise an ``id_number``;
- a date is a ``date_of_birth`` only after a birth cue ("born", "DOB",
  "birthday"...) in the same sentence: appointment dates and anniversaries in
  therapeutic text are left alone;
- digits glued to other digits or letters are not a match (``12345-6789`` is not
  the phone ``345-6789``); trailing punctuation is not part of a URL;
- a name found anywhere in a conversation (the ``conversation_id`` column,
  or ``by=``) is redacted at each of its whole-word occurrences in it
  (:func:`_spread_names`).

Every pattern is linear-time (bounded repetitions: see ``pii.toml``), the
per-span windows are byte slices (``str.slice`` walks a text from its
start), and the Python checks are capped per message
(:data:`CHECKS_PER_MESSAGE`): a two-megabyte message of any one repeated
pattern is scanned in under two seconds (``benchmarks/RESULTS.md``).

Names are found by :func:`find_pii`, :func:`redact` and :func:`redact_frame`
(the export path), not by the analysis path (:func:`pii_spans` as the safety
analyzer runs it, ``names=False``): see ``docs/metric_cards_empathy_safety.md``.
When Presidio and a spaCy model are installed (``pe_toolkit[presidio]``, the
model named by ``PE_PRESIDIO_MODEL``), the redaction path adds Presidio's
person names (:mod:`.pii_presidio`).

Public API: :func:`find_pii` (spans), :func:`redact` (one string),
:func:`redact_frame` (a column, vectorized). Placeholders: ``[EMAIL]``,
``[PHONE]``, ``[ADDRESS]``, ``[URL]``, ``[ID_NUMBER]``, ``[DATE_OF_BIRTH]``,
``[IP_ADDRESS]``, ``[SOCIAL_HANDLE]``, ``[NAME]``.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import polars as pl

from ..errors import AnalysisError
from ..schema import PII_KINDS
from . import pii_checks
from .patterns.folding import fold_ascii
from .patterns.lexicon import load_lexicon
from .patterns.matcher import Matcher
from .patterns.spans import ascii_slices as _ascii_slices, char_slices as _slices, find_spans

# The contract's kinds (schema.PII_KINDS), then those added since.
KINDS: tuple[str, ...] = (*PII_KINDS, "ip_address", "social_handle", "name")
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
# Categories that must not touch a letter or digit before them, or a digit
# after them (a value inside a longer token is not that value).
_GLUED_KINDS = ("phone", "digits", "id_number", "date", "address", "ip_address", "iban", "cued_id", "spelled_phone",
                "social_handle", "card", "local_phone")  # fmt: skip
# Categories that must not touch a letter after them either.
_WORD_KINDS = ("spelled_phone", "cued_id", "iban", "social_handle")
# libphonenumber checks per message; a message with more phone-shaped
# candidates than this (not a conversation turn: a dump of numbers) has the
# rest judged by shape alone (7 to 15 digits), erring towards redaction.
CHECKS_PER_MESSAGE = 200


@functools.cache
def _matcher() -> Matcher:
    return Matcher(load_lexicon("pii").entries, boundaries=False, ignore_case=False)


@functools.cache
def _cues() -> dict[str, str]:
    return dict(load_lexicon("pii").tables["cues"])


# A list of years ("in 2015 2016 2017"): digit groups shaped like an ID, a
# card or a phone that are none of them unless an ID cue precedes them.
_YEARS = r"^(?:(?:19|20)[0-9]{2}[ ,]{1,2}){2,5}(?:19|20)[0-9]{2}$"
# Groups of one or two digits only, not starting with 0 or +: scores or
# ages ("24 21 19 17 14"), never how a phone number is written.
_SMALL_GROUPS = r"^[1-9][0-9]?(?:[ .-][0-9]{1,2}){2,}$"
_CURRENCY = "$\u00a3\u20ac\u00a5\u20b9"
# The categories decided by the words before them (an ID, birth or phone cue).
_CONTEXT_KINDS = ["digits", "phone", "date", "cued_id", "card", "local_phone"]


def _recent(pre: pl.Expr) -> pl.Expr:
    """The last 40 characters before a match, from the last sentence start on
    (". " followed by a capital: "d.o.b. is" keeps its cue)."""
    tail = pre.str.slice(-40)
    return tail.str.extract(r"^(?:.*(?:[.!?]\s+[A-Z]|[!?\n]))?(.*)$", 1).fill_null("")


# Texts worth the full alternation: every kind needs a digit, "@", "/" or
# "www.", except e-mails written out ("(at)", " dot ") and phones spelled out
# (seven digit words in a row). Each check is one linear scan, case-sensitive
# (lower case or a capital first letter: an all-capitals "FIVE FIVE..." is
# found only in a text that has another candidate), as a case-insensitive
# scan of every message costs half as much again.
_DIGIT_WORD = "(?:[Zz]ero|[Oo]h|[Oo]ne|[Tt]wo|[Tt]hree|[Ff]our|[Ff]ive|[Ss]ix|[Ss]even|[Ee]ight|[Nn]ine|[Dd]ouble|[Tt]riple)"
# One pattern, one pass: three separate scans cost twice as much.
_CANDIDATE = (
    r"(?-u)[0-9@/]|www\.|[(\[{<] ?(?:at|AT) ?[)\]}>]| (?:dot|DOT) |"
    + _DIGIT_WORD + r"(?:[ ,-]{1,3}" + _DIGIT_WORD + "){6}"
)


def _candidate_rows(folded: pl.Series) -> pl.Series:
    return pl.DataFrame({"t": folded}).select(pl.col("t").str.contains(_CANDIDATE)).to_series().arg_true()


def pii_spans(folded: pl.Series, texts: pl.Series, *, names: bool = False) -> pl.DataFrame:
    """Validated PII spans (:data:`PII_SCHEMA`) in ``texts``, given their
    folded form (:func:`.fold_ascii`). ``names`` adds person names (the
    redaction path; the analysis path leaves them out: module docstring)."""
    spans = _pattern_spans(folded, texts)
    if names and len(texts):
        from .pii_names import name_spans
        from .pii_presidio import person_spans

        for found in (name_spans(texts), person_spans(texts)):
            if len(found):
                text = _slices(texts.fill_null(""), found["row"], found["start"], found["end"] - found["start"])
                found = found.with_columns(kind=pl.lit("name"), text=text)
                spans = _merge(spans, found.select(list(PII_SCHEMA)))
    return spans


def _merge(spans: pl.DataFrame, extra: pl.DataFrame) -> pl.DataFrame:
    """``spans`` plus the ``extra`` spans that overlap none of them (the
    first finder wins an overlap) nor an earlier kept extra, sorted.
    ``spans`` do not overlap one another."""
    if not len(extra):
        return spans
    extra = extra.sort("row", "start", pl.col("end"), descending=[False, False, True])
    if len(spans):
        # One key for (row, offset), so a single as-of join finds, for each
        # extra span, the nearest original at or before its start and the
        # nearest at or after it: no row-by-row comparison.
        key = (pl.col("row").cast(pl.Int64) * (1 << 32)) + pl.col("start").cast(pl.Int64)
        e = extra.with_row_index("_e").with_columns(_k=key)
        o = spans.select(o_row="row", o_start="start", o_end="end").with_columns(
            _k=(pl.col("o_row").cast(pl.Int64) * (1 << 32)) + pl.col("o_start").cast(pl.Int64)
        ).sort("_k")
        e = e.sort("_k")
        before = e.join_asof(o, on="_k", strategy="backward")
        after = e.join_asof(o.rename({"o_row": "a_row", "o_start": "a_start", "o_end": "a_end"}), on="_k", strategy="forward")
        hit = ((before["o_row"] == before["row"]) & (before["o_end"] > before["start"])).fill_null(False) | (
            (after["a_row"] == after["row"]) & (after["a_start"] < after["end"])
        ).fill_null(False)
        extra = e.filter(~hit).sort("_e").drop("_e", "_k")
    extra = _non_overlapping(extra)
    return pl.concat([spans, extra.select(spans.columns)]).sort("row", "start") if len(spans) else extra


def _non_overlapping(spans: pl.DataFrame) -> pl.DataFrame:
    """``spans`` (sorted by row, start, longest first) without those that
    overlap one kept before them, left to right."""
    # A Python loop over the spans: the greedy choice is sequential (a
    # running maximum of every end would also drop spans after a dropped
    # one). They are PII values found, a few per message.
    keep: list[int] = []
    last_row, reach = -1, -1
    for i, (row, start, end) in enumerate(zip(spans["row"].to_list(), spans["start"].to_list(), spans["end"].to_list(), strict=True)):
        if row != last_row:
            last_row, reach = row, -1
        if start >= reach:
            keep.append(i)
            reach = end
    return spans[keep]


def _pattern_spans(folded: pl.Series, texts: pl.Series) -> pl.DataFrame:
    empty = pl.DataFrame(schema=PII_SCHEMA)
    if not len(folded):
        return empty
    matcher = _matcher()
    candidates = _candidate_rows(folded)
    if not len(candidates):
        return empty
    spans = find_spans(folded.gather(candidates), matcher.regex, "lexicons/pii.toml")
    if not len(spans):
        return empty
    spans = spans.with_columns(row=candidates.gather(spans["row"]))
    categories = matcher.table["category"]
    spans = spans.with_columns(matcher.classify(spans["text"]).alias("entry"))
    spans = spans.with_columns(pl.col("entry").replace_strict(range(len(categories)), categories, default=None).alias("cat"))
    lo = (spans["start"] - 60).clip(lower_bound=0)
    rows = spans["row"]
    cat = pl.col("cat")
    spans = spans.with_columns(
        pre=_ascii_slices(folded, rows, lo, spans["start"] - lo),
        before=_ascii_slices(folded, rows, (spans["start"] - 1).clip(lower_bound=0), (spans["start"] > 0).cast(pl.Int32)),
        after=_ascii_slices(folded, rows, spans["end"], pl.Series([1] * len(spans), dtype=pl.Int32)),
        # What follows a bare seven-digit number ("300-1200 calories"); empty for the rest.
        post=_ascii_slices(folded, rows, spans["end"], (spans["cat"] == "local_phone").cast(pl.Int32) * 24),
    )
    cues = _cues()
    birth, id_cue = cues["birth"], cues["id"]
    # The context regexes run only on the categories that read them (null
    # elsewhere): a megabyte of "@jo_" is 250,000 handle spans that need none.
    recent = _recent(pl.when(cat.is_in(_CONTEXT_KINDS)).then(pl.col("pre")))
    spans = spans.with_columns(money=_currency_before(spans, texts), recent=recent)
    recent = pl.col("recent")
    cued = recent.str.contains(id_cue)
    numeric = pl.when(cat.is_in(["digits", "card", "phone"])).then(pl.col("text"))
    spans = spans.with_columns(
        cued=cued,
        # A bare "555-0142" is a phone after a phone cue, and never a price
        # range or a quantity ("$200-1500", "300-1200 calories", "per month").
        local_phone=(recent.str.contains(cues["phone"]) | pl.col("post").str.contains(cues["phone_after"]))
        & ~pl.col("post").str.contains(cues["unit"])
        & ~pl.col("money"),
        years=numeric.str.contains(_YEARS).fill_null(False) & ~cued,
        small=numeric.str.contains(_SMALL_GROUPS).fill_null(False) & (cat == "phone"),
        version=pl.when(cat == "ip_address").then(pl.col("pre")).str.contains(cues["version"]).fill_null(False),
    )
    cued = pl.col("cued")
    digits = pl.col("text").str.replace_all(r"[^0-9]", "")
    n_digits = digits.str.len_bytes()
    glued = pl.col("before").str.contains(r"^[0-9A-Za-z]$") | pl.col("after").str.contains(r"^[0-9]$")
    glued = glued | (pl.col("cat").is_in(_WORD_KINDS) & pl.col("after").str.contains(r"^[A-Za-z_]$"))
    phone_shaped = pl.col("text").str.starts_with("+") | (n_digits == 10) | ((n_digits == 11) & digits.str.starts_with("0"))
    # "943 476 5919" is an NHS number after its cue, a US phone otherwise.
    nhs_shaped = (pl.col("cat") == "phone") & pl.col("text").str.contains(r"^[0-9]{3} [0-9]{3} [0-9]{4}$")
    kind = (
        pl.when(pl.col("cat") == "digits")
        .then(
            pl.when(cued)
            .then(pl.lit("id_number"))
            .when(phone_shaped)
            .then(pl.lit("phone"))
            .otherwise(pl.lit("id_number"))
        )
        .when(nhs_shaped & cued)
        .then(pl.lit("id_number"))
        .when(pl.col("cat") == "date")
        .then(pl.when(recent.str.contains(birth)).then(pl.lit("date_of_birth")).otherwise(None))
        .when(pl.col("cat") == "cued_id")
        .then(pl.when(cued).then(pl.lit("id_number")).otherwise(None))
        .when(pl.col("cat") == "card")
        .then(pl.lit("id_number"))
        .when(pl.col("cat") == "local_phone")
        .then(pl.when(pl.col("local_phone")).then(pl.lit("phone")).otherwise(None))
        .when(pl.col("small") | pl.col("version"))
        .then(None)
        .when(pl.col("cat").is_in(["iban"]))
        .then(pl.lit("id_number"))
        .when(pl.col("cat").is_in(["spelled_phone"]))
        .then(pl.lit("phone"))
        .when(pl.col("cat") == "address_lead")
        .then(pl.lit("address"))
        .otherwise(pl.col("cat"))
    )
    spans = spans.with_columns(kind.alias("kind")).filter(
        pl.col("kind").is_not_null() & ~(pl.col("cat").is_in(_GLUED_KINDS) & glued) & ~pl.col("years")
    )
    spans = _checked(spans)
    spans = spans.filter(
        (pl.col("kind") != "phone") | (pl.col("cat") == "spelled_phone") | ~digits.str.contains(_TOLL_FREE)
    )
    spans = _urls_through_symbols(spans, texts)
    # Trim what the patterns take around the value: trailing punctuation of a
    # URL (a ")" only when the URL has no "(" it closes), the "live at" /
    # "zip code is" lead of an address.
    trail = _url_trail(spans["text"], spans["kind"] == "url")
    lead = pl.col("text").str.len_bytes() - pl.col("text").str.replace(r"^[^0-9]+", "").str.len_bytes()
    spans = spans.with_columns(
        end=pl.when(pl.col("kind") == "url").then(pl.col("end") - trail).otherwise(pl.col("end")).cast(pl.Int32),
        start=pl.when(pl.col("cat") == "address_lead").then(pl.col("start") + lead).otherwise(pl.col("start")).cast(pl.Int32),
    )
    spans = spans.filter(pl.col("end") > pl.col("start"))
    spans = spans.with_columns(text=_slices(texts, spans["row"], spans["start"], spans["end"] - spans["start"]))
    return spans.select(list(PII_SCHEMA)).sort("row", "start")


# A URL's tail past a character that folding made a space (an emoji, a
# symbol): at most this many characters more, as the domain form's path.
URL_TAIL = 2000
# What carries a URL on past folding: an emoji or a symbol (with its skin
# tone, joiner and variation selector), not punctuation ("。", "、" and "）"
# fold to a space too, and CJK prose after a URL has no space to stop at).
_URL_SYMBOL = r"[\p{So}\p{Sk}\p{Extended_Pictographic}]"
_URL_TAIL_CHAR = r'(?:[\x21-\x7e&&[^<>"]]|[\p{L}\p{M}\p{N}\p{So}\p{Sk}\p{Extended_Pictographic}\x{200d}])'
_URL_TRAILING = ".,;:!?)]'\""


def _urls_through_symbols(spans: pl.DataFrame, texts: pl.Series) -> pl.DataFrame:
    """URL spans carried on through the characters folding turned into
    spaces ("https://example.com/\U0001f642/page" ended at the emoji, and
    "\U0001f642/page" was left in the redacted text): their ``end`` and
    ``text`` read from the original texts; a span inside the longer URL goes."""
    after_space = (spans["kind"] == "url") & (spans["after"] == " ")
    which = after_space.arg_true()
    if not len(which):
        return spans
    rows, ends = spans["row"].gather(which), spans["end"].gather(which)
    following = _slices(texts, rows, ends, pl.Series([1] * len(which), dtype=pl.Int32))
    goes_on = following.str.contains(f"^{_URL_SYMBOL}$").fill_null(False)
    which = which.filter(goes_on)
    if not len(which):
        return spans
    rows, starts, ends = spans["row"].gather(which), spans["start"].gather(which), spans["end"].gather(which)
    tail = _slices(texts, rows, ends, pl.Series([URL_TAIL] * len(which), dtype=pl.Int32))
    more = tail.str.extract(f"^({_URL_TAIL_CHAR}*)", 1).str.len_chars().fill_null(0).cast(pl.Int32)
    new_end = ends + more
    spans = spans.with_columns(
        end=spans["end"].scatter(which, new_end),
        text=spans["text"].scatter(which, _slices(texts, rows, starts, new_end - starts)),
    )
    return _non_overlapping(spans.sort("row", "start", pl.col("end"), descending=[False, False, True]))


def _url_trail(text: pl.Series, is_url: pl.Series) -> pl.Series:
    """Characters to trim from the end of each URL span (0 for the others):
    trailing punctuation, and a ")" only when the URL holds fewer "(" than
    ")" ("(see https://example.com/a_(b))" keeps its own ")" and leaves the
    prose's)."""
    ends_in = is_url & text.str.contains(f"[{re.escape(_URL_TRAILING)}]$").fill_null(False)
    out = pl.Series([0] * len(text), dtype=pl.Int32)
    which = ends_in.arg_true()
    if not len(which):
        return out
    distinct = text.gather(which).unique()
    # A Python pass over the distinct URLs that end in punctuation (a few
    # per message): the trim is sequential, ")" by ")" against the count of "(".
    trims = {}
    for url in distinct.to_list():
        end, opened, closed = len(url), url.count("("), url.count(")")
        while end and url[end - 1] in _URL_TRAILING:
            if url[end - 1] == ")":
                if closed <= opened:
                    break
                closed -= 1
            end -= 1
        trims[url] = len(url) - end
    found = text.gather(which).replace_strict(list(trims), list(trims.values()), return_dtype=pl.Int32)
    return out.scatter(which, found)


def _currency_before(spans: pl.DataFrame, texts: pl.Series) -> pl.Series:
    """Whether a currency sign comes right before each bare seven-digit
    span ("$200-1500", "\u00a3200-1500"): read from the original texts, as
    folding turns "\u00a3" and "\u20ac" into spaces; only those spans are sliced."""
    out = pl.Series([False] * len(spans))
    which = ((spans["cat"] == "local_phone") & (spans["start"] > 0)).arg_true()
    if len(which):
        # Sliced from those messages only: _slices reads every text it is given.
        own = texts.gather(spans["row"].gather(which))
        start = spans["start"].gather(which) - 1
        at = pl.Series(range(len(which)), dtype=pl.UInt32)
        sign = _slices(own, at, start, pl.Series([1] * len(which), dtype=pl.Int32))
        out = out.scatter(which, sign.str.contains(f"^[{_CURRENCY}]$"))
    return out


def _checked(spans: pl.DataFrame) -> pl.DataFrame:
    """Phones (written with digits or spelled) that ``phonenumbers`` accepts,
    IBANs whose check digits hold and card numbers whose Luhn checksum holds
    (or that follow an ID cue); at most :data:`CHECKS_PER_MESSAGE`
    libphonenumber checks per message, the rest judged by their length."""
    if not len(spans):
        return spans
    spans = spans.with_columns(rank=pl.int_range(pl.len()).over("row", "cat"))
    phone = (pl.col("kind") == "phone") & (pl.col("cat") != "digits")
    checked = phone & (pl.col("rank") < CHECKS_PER_MESSAGE)
    flags = spans.select(
        phone_check=checked & pl.col("cat").is_in(["phone", "local_phone"]),
        spelled_check=checked & (pl.col("cat") == "spelled_phone"),
        iban_check=pl.col("cat") == "iban",
        card_check=(pl.col("cat") == "card") & ~pl.col("cued"),
    )
    ok = pl.Series([True] * len(spans))
    for column, check in (("phone_check", pii_checks.is_phone), ("spelled_check", pii_checks.is_spelled_phone),
                          ("iban_check", pii_checks.is_iban), ("card_check", pii_checks.is_card)):  # fmt: skip
        rows = flags[column].arg_true()
        if len(rows):
            ok = ok.scatter(rows, pii_checks.verdicts(spans["text"].gather(rows), check))
    n_digits = pl.col("text").str.replace_all(r"[^0-9]", "").str.len_bytes()
    unchecked_ok = ~phone | checked | (pl.col("cat") == "spelled_phone") | n_digits.is_between(7, 15)
    digits_ok = (pl.col("kind") != "phone") | (pl.col("cat") != "digits") | n_digits.is_between(7, 15)
    return spans.filter(ok & unchecked_ok & digits_ok).drop("rank", "cued")


def _texts_of(frame: pl.DataFrame | pl.Series, column: str) -> pl.Series:
    if isinstance(frame, pl.Series):
        return frame.cast(pl.String)
    if column not in frame.columns:
        raise AnalysisError(f"the frame has no column {column!r} (columns: {frame.columns})")
    return frame[column].cast(pl.String)


# The column that names each message's conversation, used when the frame has it.
CONVERSATION = "conversation_id"


def _groups_of(frame: pl.DataFrame | pl.Series, by: str | None) -> pl.Series | None:
    """The conversation of each row (``frame[by]``), or None: each message
    its own (a Series of texts, ``by=None``, or no ``conversation_id``)."""
    if by is None or isinstance(frame, pl.Series):
        return None
    if by not in frame.columns:
        if by == CONVERSATION:
            return None
        raise AnalysisError(f"the frame has no column {by!r} (columns: {frame.columns})")
    return frame[by]


def _spread_names(spans: pl.DataFrame, texts: pl.Series, groups: pl.Series | None) -> pl.DataFrame:
    """``spans`` plus every other whole-word occurrence of each name found,
    in the same conversation (``groups``; each text its own without): "My
    name is Sarah." makes "Sarah, I hear you." in the next message a name
    too, and so is a second "Sarah" in one text. Which forms spread (the
    parts of a full name, lower case or not) is :func:`.pii_names.spread_forms`'s
    rule; lower case only in a conversation typed in lower case (below).
    One pass over the words of the messages of conversations with a name
    (:func:`_form_hits`)."""
    from .pii_names import fold_names, spread_forms

    found = spans.filter(pl.col("kind") == "name")
    if not len(found):
        return spans
    n = len(texts)
    # Conversation numbers; a message without one is a conversation alone.
    if groups is None:
        gid = pl.Series("gid", range(n), dtype=pl.Int64)
    else:
        ranked = pl.DataFrame({"g": groups}).select(pl.col("g").rank("dense").cast(pl.Int64)).to_series()
        gid = ranked.fill_null(-1 - pl.Series(range(n), dtype=pl.Int64)).alias("gid")
    names = found.select(gid=gid.gather(found["row"]), name=fold_names(found["text"]))
    forms = spread_forms(names["name"].unique().to_list())
    if not forms:
        return spans
    table = pl.DataFrame(
        [(name, form, fold) for name, items in forms.items() for form, fold in items],
        schema={"name": pl.String, "form": pl.String, "fold": pl.Boolean},
        orient="row",
    )
    rows = (
        pl.DataFrame({"gid": gid}).with_row_index("i").join(names.select("gid").unique(), on="gid", how="semi")
    )["i"].sort()
    folded = fold_names(texts.gather(rows))
    # A conversation typed in lower case (a lower-case "i" as a word) writes
    # names in lower case too ("doug" after "Doug" in ESConv); in one typed
    # with capitals a lower-case "unique" or "brain" is the word, not the
    # "Unique" or "Brain" the gazetteer took for a name.
    casual = pl.DataFrame({"gid": gid.gather(rows), "i": folded.str.contains(_LOWER_I)})
    casual = casual.group_by("gid").agg(pl.col("i").any())
    # The forms each conversation spreads; "key" is how a match is compared:
    # lower-cased for a name that is not a common word in a casual
    # conversation, or that was found in lower case ("jake"); as written
    # otherwise ("Hope", not "hope").
    wanted = (
        names.join(table, on="name")
        .join(casual, on="gid", how="left")
        .select("gid", "form", fold=pl.col("fold") & (pl.col("i").fill_null(False) | (pl.col("name") == pl.col("name").str.to_lowercase())))
        .select("gid", key=pl.when(pl.col("fold")).then(pl.col("form").str.to_lowercase()).otherwise(pl.col("form")), fold="fold")
        .unique()
    )
    hits = _form_hits(folded, gid.gather(rows), wanted)
    if not len(hits):
        return spans
    hits = hits.with_columns(row=rows.gather(hits["row"]))
    extra = hits.select(
        "row",
        kind=pl.lit("name"),
        start="start",
        end="end",
        text=_slices(texts, hits["row"], hits["start"], hits["end"] - hits["start"]),
    )
    return _merge(spans, extra.select(list(PII_SCHEMA)).cast(PII_SCHEMA))  # type: ignore[arg-type]  # a dict of dtypes is what cast takes


# A name form is words joined by single spaces, hyphens or apostrophes
# ("Sarah", "Anne-Marie", "O'Neil", "Sarah Okafor"); longer forms are not
# looked for.
_FORM_WORDS = 6
_WORD = r"[A-Za-z0-9_]+"
_JOINERS = (" ", "-", "'")


def _form_hits(folded: pl.Series, gid: pl.Series, wanted: pl.DataFrame) -> pl.DataFrame:
    """Where each conversation's name forms occur in its messages, as whole
    words: ``row`` (position in ``folded``), ``start``, ``end``; they may
    overlap (:func:`_merge` chooses: longest first, left to right, after the
    detector's own spans). ``wanted``: ``gid``,
    ``key`` (the form, lower-cased when ``fold``), ``fold``; ``gid``:
    the conversation of each text of ``folded``.

    A join of the messages' word n-grams on (conversation, form), not one
    regex of every form: with thousands of distinct names in a batch the
    alternation took seconds per thousand and then exceeded the regex size
    limit (an export failed)."""
    words = find_spans(folded.alias("t"), _WORD, "pii name spread")
    if not len(words):
        return words.select("row", "start", "end")
    words = words.sort("row", "start")
    # byte slices (folded is ASCII): str.slice walks a long message from its
    # start for each word, quadratic in a megabyte of names
    words = words.with_columns(after=_ascii_slices(folded, words["row"], words["end"], pl.repeat(1, len(words), eager=True)))
    joiners = wanted["key"].str.count_matches(r"[ '-]").max()
    longest = (joiners if isinstance(joiners, int) else 0) + 1
    grams = [words.select("row", "start", "end", "text")]
    current = words.select("row", "start", "end", "text", "after", last=pl.int_range(pl.len(), dtype=pl.Int64))
    # Each round extends every n-gram by the word that follows it, when only
    # one joiner stands between them: a few rounds over the words, no loop over rows.
    for _ in range(1, min(longest, _FORM_WORDS)):
        nxt = current["last"] + 1
        inside = nxt < len(words)
        current = current.filter(inside)
        follow = words.gather(nxt.filter(inside))
        current = current.with_columns(
            n_row=follow["row"], n_start=follow["start"], n_end=follow["end"], n_text=follow["text"], n_after=follow["after"]
        ).filter(
            (pl.col("n_row") == pl.col("row")) & (pl.col("n_start") == pl.col("end") + 1) & pl.col("after").is_in(_JOINERS)
        )
        if not len(current):
            break
        current = current.select(
            "row", "start", end="n_end", text=pl.concat_str(["text", "after", "n_text"]), after="n_after", last=pl.col("last") + 1
        )
        grams.append(current.select("row", "start", "end", "text"))
    found = pl.concat(grams)
    found = found.with_columns(gid=gid.gather(found["row"]))
    hits = pl.concat(
        [
            found.with_columns(key=pl.col("text").str.to_lowercase(), fold=pl.lit(True)),
            found.with_columns(key=pl.col("text"), fold=pl.lit(False)),
        ]
    ).join(wanted, on=["gid", "key", "fold"], how="semi")
    if not len(hits):
        return hits.select("row", "start", "end")
    # Every candidate: overlaps are settled by _merge, after the spans the
    # detector found (which win), longest first, left to right.
    return hits.unique(["row", "start", "end"]).select("row", "start", "end")


# "i" as a word in lower case: "i think", "i'm", "and i".
_LOWER_I = r"(?:^|[\s(,])i(?:[\s,.!?]|'(?:m|ve|ll|d)\b|$)"


# Characters that hide a value from the patterns without changing how it
# reads: invisible format characters inside an e-mail or a phone number
# ("jo\u200b.smith@example.org", a soft hyphen, a byte-order mark, bidi
# controls), and digits and ASCII written in another form (full-width
# "\uff10\uff17\uff17\uff10\uff10", "\uff20" for "@", which Japanese and Chinese input
# methods type; Arabic-Indic or Devanagari digits). Folding maps one
# character to one and cannot drop the invisible ones, so the texts holding
# any are rewritten first (:func:`_visible`) and the spans mapped back.
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
_DISGUISED = "[" + _INVISIBLE + "\uff01-\uff5e]|[\\p{Nd}&&[^0-9]]"


def _plain(text: str) -> tuple[str, list[int]]:
    """``text`` without invisible characters, full-width ASCII as ASCII and
    every decimal digit as an ASCII one; and, for each character kept, its
    offset in ``text``."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch in _INVISIBLE:
            continue
        code = ord(ch)
        if 0xFF01 <= code <= 0xFF5E:
            ch = chr(code - 0xFEE0)
        elif code > 0x7F and ch.isdecimal():
            ch = str(unicodedata.decimal(ch))
        out.append(ch)
        where.append(i)
    return "".join(out), where


def _visible(content: pl.Series) -> tuple[pl.Series, dict[int, list[int]]]:
    """``content`` with the texts that hide characters (:data:`_DISGUISED`)
    made plain (:func:`_plain`), and the offset map of each of them by row.
    Finding them is one regex over the non-ASCII texts only."""
    non_ascii = (content.str.len_bytes() != content.str.len_chars()).arg_true()
    if not len(non_ascii):
        return content, {}
    hit = content.gather(non_ascii).str.contains(_DISGUISED)
    rows = non_ascii.filter(hit).to_list()
    if not rows:
        return content, {}
    maps: dict[int, list[int]] = {}
    plain: list[str] = []
    for row in rows:
        text, where = _plain(content[row])
        maps[row] = where
        plain.append(text)
    return content.clone().scatter(rows, pl.Series(plain, dtype=pl.String)), maps


def _mapped_back(spans: pl.DataFrame, maps: dict[int, list[int]], content: pl.Series) -> pl.DataFrame:
    """``spans`` found in the plain texts, as offsets into ``content`` (a
    span keeps the invisible characters inside it)."""
    if not maps or not len(spans):
        return spans
    inside = spans["row"].is_in(list(maps))
    moved = spans.filter(inside)
    starts, ends, texts = [], [], []
    for row, start, end in zip(moved["row"].to_list(), moved["start"].to_list(), moved["end"].to_list(), strict=True):
        where = maps[row]
        a, b = where[start], where[end - 1] + 1
        starts.append(a)
        ends.append(b)
        texts.append(content[row][a:b])
    moved = moved.with_columns(
        start=pl.Series(starts, dtype=pl.Int32), end=pl.Series(ends, dtype=pl.Int32), text=pl.Series(texts, dtype=pl.String)
    )
    return pl.concat([spans.filter(~inside), moved]).sort("row", "start")


def find_pii(
    frame: pl.DataFrame | pl.Series, column: str = "content", *, names: bool = True, by: str | None = CONVERSATION
) -> pl.DataFrame:
    """Every PII span in ``frame[column]`` (or a Series of texts): ``row``
    (position in the input), ``kind``, ``start``, ``end`` (character offsets:
    ``text == content[start:end]``), ``text``; plus ``conversation_id`` and
    ``idx`` when the frame has them. ``names=False`` leaves person names
    out (what the analysis path reports). A name found anywhere in a
    conversation (the column ``by``: ``conversation_id`` when the frame has
    it; ``by=None``, or a Series, each text alone) is found at each of its
    whole-word occurrences in that conversation. Invisible characters and
    full-width or non-ASCII digits do not hide a value (:func:`_visible`);
    offsets are into the text as given."""
    texts = _texts_of(frame, column)
    groups = _groups_of(frame, by)
    content = texts.fill_null("")
    plain, maps = _visible(content)
    folded, _ = fold_ascii(plain)
    spans = pii_spans(folded, plain, names=names)
    if names:
        spans = _spread_names(spans, plain, groups)
    spans = _mapped_back(spans, maps, content)
    if isinstance(frame, pl.DataFrame):
        keys = [c for c in ("conversation_id", "idx") if c in frame.columns]
        if keys:
            spans = spans.with_columns(frame.select(keys)[spans["row"]]).select(*keys, *PII_SCHEMA)
    return spans


def _redact_spans(texts: pl.Series, spans: pl.DataFrame) -> pl.Series:
    """``texts`` with each of ``spans`` replaced by its placeholder."""
    texts = texts.cast(pl.String)
    if not len(spans):
        return texts
    content = texts.fill_null("")
    spans = spans.with_columns(
        prev=pl.col("end").shift(1).over("row").fill_null(0),
        last=pl.col("end").last().over("row"),
    )
    between = _slices(content, spans["row"], spans["prev"], spans["start"] - spans["prev"])
    pieces = spans.select("row", "last", (between + spans["kind"].replace_strict(PLACEHOLDERS)).alias("piece"))
    joined = pieces.group_by("row", maintain_order=True).agg(pl.col("piece").str.join(""), pl.col("last").first())
    rows = joined["row"]
    rest = content.gather(rows).str.len_chars().cast(pl.Int32) - joined["last"]
    redacted = joined["piece"] + _slices(content, rows, joined["last"], rest)
    return texts.clone().scatter(rows, redacted)


def redact_frame(frame: pl.DataFrame, column: str = "content", *, by: str | None = CONVERSATION) -> pl.DataFrame:
    """``frame`` with every PII span in ``column`` replaced by its placeholder
    (``[EMAIL]``, ``[PHONE]``...). Other columns are untouched.

    ``by`` names the column that says which conversation each message is in
    (``conversation_id`` by default, used when the frame has it): a name
    found in one message is redacted at each of its whole-word occurrences
    in its conversation ("My name is Sarah." then "Sarah, I hear you.").
    ``by=None`` redacts each message on its own (its repeats still go)."""
    texts = _texts_of(frame, column)
    spans = find_pii(frame, column, by=by).select(list(PII_SCHEMA))
    return frame.with_columns(_redact_spans(texts, spans).alias(column))


def redact_conversation(texts: list[str]) -> list[str]:
    """The messages of one conversation, redacted as one (a name given in
    one message is redacted in the others too): what the viewers show."""
    frame = pl.DataFrame({"content": texts, CONVERSATION: ""}, schema={"content": pl.String, CONVERSATION: pl.String})
    return redact_frame(frame)["content"].to_list()


def redact(text: str) -> str:
    """``text`` with every PII span replaced by its placeholder.

    >>> redact("Call me on 07700 900123 or mail sam@example.org.")
    'Call me on [PHONE] or mail [EMAIL].'
    """
    if not isinstance(text, str):
        raise TypeError(f"redact() takes a str, got {type(text).__name__}")
    texts = pl.Series([text])
    return _redact_spans(texts, find_pii(texts))[0]

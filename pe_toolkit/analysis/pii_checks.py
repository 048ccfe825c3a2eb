"""Checks that decide whether a PII candidate is one: phone numbers by
``phonenumbers`` (the maintained port of Google's libphonenumber), IBAN check
digits, card numbers' Luhn checksum, phone numbers written as digit words.

Each check runs in Python on one *distinct* candidate text at a time and is
cached: candidates are few (a small share of messages hold a digit group),
and the same value recurs across messages, so this is never a loop over
messages. :func:`verdicts` applies a check to a column of candidates.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable

import phonenumbers
import polars as pl

# Regions tried for a number without a country code. libphonenumber's
# per-region validity check (allocated prefixes and lengths) is what tells
# "06 12 34 56 78" (a French mobile) from "1985 1990 2000" (years). A number
# dialled nationally starts with the trunk prefix 0 in most countries; the
# regions tried for one without it are those whose numbers do not (NANP,
# India's and Spain's mobiles, China's, Italy's, Mexico's): trying every
# region on every digit group would find some country where "2019 2020" is
# a valid number.
TRUNK_ZERO_REGIONS: tuple[str, ...] = (
    "GB", "FR", "DE", "AU", "IE", "NZ", "ZA", "NG", "KE", "PH", "JP", "KR",
    "NL", "BE", "CH", "AT", "SE", "IT", "BR", "IN", "TR", "PK", "EG", "PL",
)  # fmt: skip
NO_TRUNK_REGIONS: tuple[str, ...] = ("US", "CA", "IN", "ES", "CN", "IT", "MX", "PT", "PL")

# Written the way US and UK phones are written: a possible (right length)
# number in that shape is a phone even when libphonenumber says the range is
# unallocated (fictional 555-01xx and 07700 900xxx numbers are what people
# use as examples, and redaction errs on the side of the person).
_US_UK_SHAPE = re.compile(
    r"(?:1[ .-])?(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}|[0-9]{3}-[0-9]{4}"
    r"|0[0-9]{3,4} ?[0-9]{6}|0[0-9]{2,3} [0-9]{3,4} [0-9]{3,4}"
)
_NOT_DIGIT = re.compile(r"[^0-9]")
# The exit codes written instead of "+": 00 (most of the world) and 011
# (NANP), the latter only before a separator ("0113 496 0000" is a Leeds
# number, "011 44 7911 123456" a call to the UK from the US).
_EXIT_CODE = re.compile(r"^\(?(?:00 ?|011[ .-])(?=[1-9])")
# "+44 (0)20 ...": the trunk prefix some write after the country code.
_TRUNK = re.compile(r"\(0\)")

# Lines whose callers are the public: toll-free and freephone (US 800, UK
# 0800, Ireland and Australia 1800), shared-cost or local-rate (Australia 13
# and 1300, France 081x, India 1860) and universal access numbers (UK 03,
# South Africa 0861): what helplines and crisis lines use. Not personal data.
# Premium-rate lines are not among them: a crisis line is never premium
# rate, and libphonenumber types the UK's 084x/087x business lines (and the
# Samaritans' old 08457 number) as premium, so those it would wrongly let
# through stay phones and the crisis lines among them are listed in
# pii.toml's [crisis_lines] by number instead.
PUBLIC_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.SHARED_COST,
     phonenumbers.PhoneNumberType.UAN}
)  # fmt: skip
# Regions where a public line starts with 1 and no trunk 0 (Australia's 13
# and 1300, Australia's and Ireland's 1800): tried, for a number no region
# of NO_TRUNK_REGIONS accepts, only to recognise a public line, never to
# accept a number as a phone.
PUBLIC_ONLY_REGIONS: tuple[str, ...] = ("AU", "IE")


@functools.cache
def crisis_lines() -> frozenset[str]:
    """E.164 numbers of the crisis lines listed in ``lexicons/pii.toml``
    (those libphonenumber types as ordinary numbers)."""
    from .patterns.lexicon import load_lexicon

    return frozenset(load_lexicon("pii").tables.get("crisis_lines", {}))


def _listed(number: phonenumbers.PhoneNumber) -> bool:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) in crisis_lines()


def _public(number: phonenumbers.PhoneNumber) -> bool:
    """A public line: one of :data:`PUBLIC_TYPES` or a listed crisis line."""
    return phonenumbers.number_type(number) in PUBLIC_TYPES or _listed(number)


@functools.lru_cache(maxsize=65_536)
def is_phone(text: str) -> bool:
    """Whether ``text`` (a digit group with separators, maybe a leading +,
    00 or "011 ") is a personal or business phone number: not a public line
    (:data:`PUBLIC_TYPES`, the listed crisis lines)."""
    text = _EXIT_CODE.sub("+", text, count=1)
    digits = _NOT_DIGIT.sub("", text)
    if not 7 <= len(digits) <= 15:
        return False
    try:
        if text.lstrip("(").startswith("+"):
            number = phonenumbers.parse(_TRUNK.sub("", text), None)
            return phonenumbers.is_possible_number(number) and not _public(number)
        regions = TRUNK_ZERO_REGIONS if digits.startswith("0") else NO_TRUNK_REGIONS
        valid = [n for n in (phonenumbers.parse(text, r) for r in regions) if phonenumbers.is_valid_number(n)]
        if not valid and not digits.startswith("0"):
            public = [n for n in (phonenumbers.parse(text, r) for r in PUBLIC_ONLY_REGIONS) if phonenumbers.is_valid_number(n)]
            if public and all(_public(n) for n in public):
                return False
        # A national number reads differently in each region ("087 123 4567"
        # is an Irish mobile and a Dutch universal access number, "030 1234
        # 5678" a Berlin line and a UK 03 number): a listed crisis line in any
        # reading is one; otherwise it is a public line only when every region
        # that accepts it reads it as one. Trusting the first region instead
        # let 86 of 4,067 made-up personal numbers of 16 countries (Faker,
        # national form) through as public lines, 2%; a majority vote 12;
        # this rule none (and it knows 17 of the 67 public-line examples
        # libphonenumber has for the regions tried: the crisis lines among
        # the others are listed).
        if any(_listed(n) for n in valid):
            return False
        if valid:
            return not all(_public(n) for n in valid)
        if _US_UK_SHAPE.fullmatch(text):
            return any(phonenumbers.is_possible_number(phonenumbers.parse(text, r)) for r in ("US", "GB"))
    except phonenumbers.NumberParseException:
        return False
    return False


@functools.lru_cache(maxsize=16_384)
def is_card(text: str) -> bool:
    """Whether the digits of ``text`` (a card number in its printed groups)
    pass the Luhn checksum, or their first 16 do (a 16-digit card followed by
    a short number the pattern took along)."""
    digits = _NOT_DIGIT.sub("", text)
    return _luhn(digits) or (len(digits) > 16 and _luhn(digits[:16]))


def _luhn(digits: str) -> bool:
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_REPEAT = {"double": 2, "triple": 3}


def spelled_digits(text: str) -> str:
    """The digits spelled in ``text`` ("double five, oh one" -> "5501")."""
    out: list[str] = []
    repeat = 1
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _REPEAT:
            repeat = _REPEAT[word]
        elif word in _DIGIT_WORDS:
            out.append(_DIGIT_WORDS[word] * repeat)
            repeat = 1
    return "".join(out)


@functools.lru_cache(maxsize=16_384)
def is_spelled_phone(text: str) -> bool:
    """Digit words that make a phone number; counting ("one, two, three...")
    does not."""
    digits = spelled_digits(text)
    if not 7 <= len(digits) <= 15:
        return False
    steps = {int(b) - int(a) for a, b in itertools.pairwise(digits)}
    if steps in ({1}, {-1}, {0}):
        return False
    return is_phone(digits) or any(
        phonenumbers.is_possible_number(phonenumbers.parse(digits, r)) for r in ("US", "GB")
    )


@functools.lru_cache(maxsize=16_384)
def is_iban(text: str) -> bool:
    """ISO 13616 check: the rearranged IBAN read as a number is 1 mod 97."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def verdicts(texts: pl.Series, check: Callable[[str], bool]) -> pl.Series:
    """``check`` applied to each text (Boolean), once per distinct text."""
    if not len(texts):
        return pl.Series([], dtype=pl.Boolean)
    # A Python loop over the distinct candidates only (see the module docstring).
    mapping = {t: check(t) for t in texts.unique().drop_nulls().to_list()}
    return texts.replace_strict(mapping, default=False, return_dtype=pl.Boolean)

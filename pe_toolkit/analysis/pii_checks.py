"""Checks that decide whether a PII candidate is one: phone numbers by
``phonenumbers`` (the maintained port of Google's libphonenumber), IBAN check
digits, phone numbers written as digit words.

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


@functools.lru_cache(maxsize=65_536)
def is_phone(text: str) -> bool:
    """Whether ``text`` (a digit group with separators, maybe a leading +) is
    a phone number."""
    digits = _NOT_DIGIT.sub("", text)
    if not 7 <= len(digits) <= 15:
        return False
    try:
        if text.lstrip("(").startswith("+"):
            number = phonenumbers.parse(text, None)
            return phonenumbers.is_possible_number(number)
        regions = TRUNK_ZERO_REGIONS if digits.startswith("0") else NO_TRUNK_REGIONS
        for region in regions:
            number = phonenumbers.parse(text, region)
            if phonenumbers.is_valid_number(number):
                return True
        if _US_UK_SHAPE.fullmatch(text):
            return any(phonenumbers.is_possible_number(phonenumbers.parse(text, r)) for r in ("US", "GB"))
    except phonenumbers.NumberParseException:
        return False
    return False


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

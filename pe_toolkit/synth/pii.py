"""Obviously fake personal data for the synthetic generator.

Every value is fake by construction: example.com/.org/.net domains, 555-01xx phone
numbers (reserved for fiction in North America), 9xx-xx-xxxx numbers (never issued as
SSNs), invented street names. The generator records each value verbatim so a PII
detector can be scored on exact spans.
"""

from __future__ import annotations

from collections.abc import Callable

from .phrases import parts
from .turns import Rand, pick, weighted

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip

# Relative frequency of each kind in user and in assistant messages.
USER_KINDS: tuple[tuple[str, float], ...] = (
    ("email", 0.22),
    ("phone", 0.22),
    ("address", 0.16),
    ("url", 0.14),
    ("id_number", 0.10),
    ("date_of_birth", 0.16),
)
ASSISTANT_KINDS: tuple[tuple[str, float], ...] = (("url", 0.5), ("phone", 0.3), ("email", 0.2))


def _num(r: Rand, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return lo + int(r() * (hi - lo + 1))


def _email(r: Rand) -> str:
    m = parts().misc
    first, last = pick(r, m["first_names"]), pick(r, m["last_names"])
    tld = pick(r, ("com", "org", "net"))
    style = int(r() * 3)
    if style == 0:
        return f"{first}.{last}{_num(r, 1, 99)}@example.{tld}"
    if style == 1:
        return f"{first}{_num(r, 70, 99)}@example.{tld}"
    return f"{first[0]}{last}@example.{tld}"


def _phone(r: Rand) -> str:
    line = f"555-01{_num(r, 0, 99):02d}"
    style = int(r() * 3)
    area = pick(r, parts().misc["area_codes"])
    if style == 0:
        return f"{area}-{line}"
    if style == 1:
        return f"({area}) {line}"
    return line


def _address(r: Rand) -> str:
    m = parts().misc
    return f"{_num(r, 2, 9899)} {pick(r, m['streets'])}, {pick(r, m['cities'])}"


def _url(r: Rand) -> str:
    host = pick(r, ("https://example.org", "https://www.example.com", "http://example.net", "www.example.org"))
    return f"{host}/{pick(r, parts().misc['url_paths'])}"


def _id_number(r: Rand) -> str:
    return f"9{_num(r, 0, 99):02d}-{_num(r, 1, 99):02d}-{_num(r, 1, 9999):04d}"


def _date_of_birth(r: Rand) -> str:
    year, month, day = _num(r, 1950, 2006), _num(r, 1, 12), _num(r, 1, 28)
    style = int(r() * 3)
    if style == 0:
        return f"{month:02d}/{day:02d}/{year}"
    if style == 1:
        return f"{day} {_MONTHS[month - 1]} {year}"
    return f"{year}-{month:02d}-{day:02d}"


_MAKERS: dict[str, Callable[[Rand], str]] = {
    "email": _email,
    "phone": _phone,
    "address": _address,
    "url": _url,
    "id_number": _id_number,
    "date_of_birth": _date_of_birth,
}


def pii_sentence(r: Rand, role: str) -> tuple[str, str, str]:
    """(sentence, kind, value): a sentence carrying one fake PII value, for a user or assistant turn."""
    kind = weighted(r, USER_KINDS if role == "user" else ASSISTANT_KINDS)
    value = _MAKERS[kind](r)
    templates = parts().misc["pii_user" if role == "user" else "pii_assistant"][kind]
    return pick(r, templates).replace("{x}", value), kind, value

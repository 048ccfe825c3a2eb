"""Masking a secret (a connection string's password, an API key) in text
that is about to be shown: an error message, a log line, a report page.

A secret of :data:`LONG_SECRET` characters or more is masked wherever it
occurs: it cannot stand for anything else, and a longer word holding it
("Sup3r-s3cret" in "Sup3r-s3cret&amp;pw") would still show it. A shorter one
is masked only where it stands as a token of its own: replaced as a
substring, the password "p" made "port" read "***ort" and "pass" made
"password" read "***word". A token's edge is the end of the text or a
character that is not a letter, digit or underscore, or an escape that
ends in one (``%3A``, ``\\n``, ``\\0``, ``\\x22``, ``\\u0022``,
``\\U000e0001``, ``\\101``): the secret right after an escape is still the
secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

LONG_SECRET = 8

# A lookbehind needs a fixed width: one alternative per escape's length.
_AFTER_EDGE = (
    r"(?:(?<!\w)|(?<=%[0-9A-Fa-f]{2})|(?<=\\[nrtbfv0])|(?<=\\x[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4})"
    r"|(?<=\\U[0-9A-Fa-f]{8})|(?<=\\[0-7]{3}))"
)
_BEFORE_EDGE = r"(?!\w)"


def _alternative(secret: str) -> str:
    body = re.escape(secret)
    if len(secret) >= LONG_SECRET:
        return body
    head = _AFTER_EDGE if re.match(r"\w", secret[0]) else ""
    tail = _BEFORE_EDGE if re.match(r"\w", secret[-1]) else ""
    return head + body + tail


# How the HTML escapers whose output reaches a report page write a character.
# nbconvert's HTML exporter re-serialises the whole page with BeautifulSoup,
# which writes text with its quotes raw (the second table) and an attribute
# holding both quotes with ``&quot;`` (the fourth); inside a <script> (widget
# state, plotly's data) a form stays as its library wrote it: Python's
# ``html.escape`` (the first) or markupsafe's (Jinja, nbconvert's ansi2html:
# the third).
HTML_TEXT = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}  # a page's text as BeautifulSoup writes it
HTML_ESCAPES: tuple[dict[str, str], ...] = (
    HTML_TEXT | {'"': "&quot;", "'": "&#x27;"},
    HTML_TEXT,
    HTML_TEXT | {'"': "&#34;", "'": "&#39;"},
    HTML_TEXT | {'"': "&quot;"},
)
HTML_SPECIAL = "".join(sorted({c for table in HTML_ESCAPES for c in table}))


def html_forms(text: str) -> list[str]:
    """``text`` as each table of :data:`HTML_ESCAPES` writes it, in that
    order (equal forms kept: the caller's order may matter)."""
    return [text.translate({ord(c): e for c, e in table.items()}) for table in HTML_ESCAPES]


def secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for all ``secrets`` (empty ones ignored), the longest
    first, so that a secret holding another is masked whole; None when
    there is none."""
    distinct = sorted({s for s in secrets if s}, key=lambda s: (-len(s), s))
    if not distinct:
        return None
    return re.compile("|".join(_alternative(s) for s in distinct))


def mask_secrets(text: str, secrets: Iterable[str] | re.Pattern[str] | None, mask: str = "***") -> str:
    """``text`` with each occurrence of ``secrets`` (or of a pattern from
    :func:`secret_pattern`) replaced by ``mask``, as the module docstring
    says."""
    pattern = secrets if isinstance(secrets, re.Pattern) or secrets is None else secret_pattern(secrets)
    if pattern is None:
        return text
    return pattern.sub(lambda _: mask, text)

"""PostgreSQL connection strings, with the password kept out of every message.

Accepts URIs (``postgresql://user:secret@host:5432/db?sslmode=require``, also
``postgres://``) and libpq keyword strings (``host=... dbname=...
password=...``). :attr:`Dsn.masked` is what may be shown; :meth:`Dsn.scrub`
removes the password from any text (a driver's error message, say) before
it is shown. A password may also come from ``PGPASSWORD`` or ``~/.pgpass``,
which libpq reads itself: then it never passes through pe_toolkit at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, quote, unquote, urlsplit

from ..errors import InputError
from ..masking import html_forms, mask_secrets

MASK = "***"
# libpq's key=value syntax: a value quoted ('...') or not, a backslash
# escaping the next character in both (an unquoted "a\ b" is "a b").
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|(?:\\.|[^\s\\])+)", re.IGNORECASE)
_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_CONNECT_TIMEOUT = 10  # seconds: an unreachable host fails quickly, not after TCP's minutes


def _unsplit(parts: SplitResult) -> str:
    """``urlunsplit`` that keeps the ``//`` of an empty host: it drops it for
    schemes it does not know, and ``postgresql:///db`` (the local socket)
    became ``postgresql:/db``, which libpq rejects."""
    text = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return text + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")


@dataclass(frozen=True)
class Dsn:
    uri: str = field(repr=False)  # what libpq gets; holds the password
    masked: str  # the text as given, its password masked
    password: str | None = field(default=None, repr=False)
    given: str = field(default="", repr=False)  # the text as given; holds the password

    def __str__(self) -> str:
        return self.masked

    @classmethod
    def parse(cls, text: str) -> Dsn:
        text = (text or "").strip()
        if not text:
            raise InputError("no PostgreSQL connection string given (postgresql://user@host/dbname)")
        if text.lower().startswith(_SCHEMES):
            return cls._from_uri(text)
        if "=" in text:
            return cls._from_keywords(text)
        raise InputError(
            "not a PostgreSQL connection string; expected postgresql://user@host:port/dbname "
            "or 'host=... dbname=...'"
        )

    @classmethod
    def _from_uri(cls, text: str) -> Dsn:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            masked = re.sub(r"(://[^:/@]*:)[^@]*@", rf"\1{MASK}@", text)
            raise InputError(f"cannot parse the connection string {masked}") from None
        password = unquote(parts.password) if parts.password is not None else None
        # Each value percent-decoded as libpq does, a "+" kept ("+" is no
        # space to libpq; parse_qsl read it as one, so the password was wrong).
        query = [(unquote(k), unquote(v)) for k, _, v in (item.partition("=") for item in parts.query.split("&") if item)]
        if any(k == "password" for k, _ in query):
            password = password or next(v for k, v in query if k == "password")
        # The defaults are appended to the query string as given: decoding
        # and re-encoding it (urlencode) would turn %20 into "+", which libpq
        # does not read as a space (options=-c%20statement_timeout%3D0 broke).
        added = []
        if not any(k == "connect_timeout" for k, _ in query):
            added.append(f"connect_timeout={DEFAULT_CONNECT_TIMEOUT}")
        if not any(k == "application_name" for k, _ in query):
            added.append("application_name=pe_toolkit")
        uri = _unsplit(parts._replace(query="&".join(p for p in (parts.query, *added) if p)))
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.split(':', 1)[0]}:{MASK}@{host}"
        shown = [
            f"{item.split('=', 1)[0]}={MASK}" if unquote(item.split("=", 1)[0]) == "password" else item
            for item in parts.query.split("&")
        ]
        masked = _unsplit(parts._replace(netloc=netloc, query="&".join(shown)))
        return cls(uri=uri, masked=masked, password=password or None, given=text)

    @classmethod
    def _from_keywords(cls, text: str) -> Dsn:
        match = _KEYWORD_PASSWORD.search(text)
        value = match[2] if match else None
        if value is not None and value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = value[1:-1]
        password = re.sub(r"\\(.)", r"\1", value) if value is not None else None
        masked = _KEYWORD_PASSWORD.sub(rf"\g<1>{MASK}", text)
        uri = text
        if "connect_timeout" not in text:
            uri += f" connect_timeout={DEFAULT_CONNECT_TIMEOUT}"
        if "application_name" not in text:
            uri += " application_name=pe_toolkit"
        return cls(uri=uri, masked=masked, password=password or None, given=text)

    def scrub(self, message: str, *, html: bool = False) -> str:
        """``message`` with the password (plain, URL-encoded, as repr
        writes it, and with ``html`` HTML-escaped too) and the full connection string replaced
        by their masked forms; a short password only where it stands as a
        token (:mod:`pe_toolkit.masking`: "p" made "port" read "***ort")."""
        # The whole connection string first, as libpq gets it and as it was
        # given, also as repr writes it (a report's footer prints its
        # parameters so): however the password is spelt in it (a lowercase
        # %2f, partly encoded), the text given is masked whole.
        for text, masked in ((self.uri, self.masked), (self.given, self.masked), (repr(self.given)[1:-1], repr(self.masked)[1:-1])):
            if not text:
                continue
            message = message.replace(text, masked)
            if html:
                for form, masked_form in zip(html_forms(text), html_forms(masked), strict=True):
                    message = message.replace(form, masked_form)
        if not self.password:
            return message
        # As typed in a key=value string too (a backslash or quote escaped),
        # and each as Python's repr writes it: a report's footer prints its
        # parameters so, and a password with both quotes or a backslash
        # showed on every page (a review).
        typed = self.password.replace("\\", "\\\\").replace("'", "\\'")
        forms = {self.password, quote(self.password, safe=""), quote(self.password), typed}
        forms |= {repr(f)[1:-1] for f in forms}
        # In one pattern, the longest form first: "p&" masked before "p&amp;" left "***amp;".
        return mask_secrets(message, forms | {e for f in forms for e in html_forms(f)} if html else forms, MASK)

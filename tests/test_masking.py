"""Secrets in shown text: a short secret is masked where it stands as the
secret, never inside unrelated words; a long one wherever it occurs. Each
case checks both directions: the secret is gone, the other words intact."""

from __future__ import annotations

import logging
from html import escape as html_escape

import pytest

from pe_toolkit.client.core import RequestCore
from pe_toolkit.config import Secret
from pe_toolkit.doctor import _scrub as doctor_scrub
from pe_toolkit.exports.dsn import Dsn
from pe_toolkit.masking import mask_secrets
from pe_toolkit.report import _secret_scrubber
from pe_toolkit.server.app import SecretLogFilter

UNRELATED = "port 5432 password authentication failed; a.bc (x) k8s keep"


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("user me:p@db", "user me:***@db"),
        ("password=p host=db", "password=*** host=db"),
        ("password='p'", "password='***'"),
        ('{"password": "p"}', '{"password": "***"}'),
        ("p", "***"),
        ("postgresql%3A%2F%2Fme%3Ap%40db", "postgresql%3A%2F%2Fme%3A***%40db"),  # URL-encoded whole
        ('"error:\\np"', '"error:\\n***"'),  # after a JSON escape
        ("key \\u0022p\\u0022", "key \\u0022***\\u0022"),
        ("tag \\U000e0001p", "tag \\U000e0001***"),  # after a repr's 8-digit escape
        ("octal \\101p", "octal \\101***"),
    ],
)
def test_a_short_secret_is_masked_where_it_stands_as_one(shown: str, expected: str) -> None:
    assert mask_secrets(f"{UNRELATED} {shown}", ["p"]) == f"{UNRELATED} {expected}"


@pytest.mark.parametrize(
    ("secret", "unrelated"),
    [("a.b", "axb a.bc ab"), ("(x)", "x xx (y)"), ("k$", "k8s keep k"), ("?*", "? * ?"), ("a\\b", "ab a b"), ("[p]", "p [q] pp")],
)
def test_a_secret_with_regex_metacharacters_is_masked_literally(secret: str, unrelated: str) -> None:
    masked = mask_secrets(f"{unrelated} ({secret}) {secret}", [secret])
    assert masked == f"{unrelated} (***) ***"


def test_a_long_secret_is_masked_even_inside_a_longer_word() -> None:
    secret = "Sup3r.s3cret+pw"
    masked = mask_secrets(f"x{secret}y and {secret}&amp; and Sup3rXs3cret+pw", [secret])
    assert secret not in masked and masked == "x***y and ***&amp; and Sup3rXs3cret+pw"


def test_a_secret_holding_another_is_masked_whole() -> None:
    assert mask_secrets("ab abc abcd", ["ab", "abc"]) == "*** *** abcd"


def test_a_dsn_with_a_one_letter_password_masks_it_and_only_it() -> None:
    dsn = Dsn.parse("postgresql://me:p@db.example:5432/research")
    message = 'connection to server at "db.example", port 5432 failed: password authentication failed for "me:p@db"; p'
    scrubbed = dsn.scrub(message)
    assert scrubbed == (
        'connection to server at "db.example", port 5432 failed: password authentication failed for "me:***@db"; ***'
    )
    keywords = Dsn.parse("host=db dbname=x user=me password=s")
    assert keywords.scrub("password=s sslmode is set") == "password=*** sslmode is set"


def test_a_report_masks_a_short_password_in_html_forms_only_as_the_password() -> None:
    scrub = _secret_scrubber({"warehouse_dsn": "postgresql://me:p%26@db/x"})
    page = "<pre>port pp&amp; p&amp; p%26 p& postgresql://me:p%26@db/x</pre>"
    assert scrub(page) == "<pre>port pp&amp; *** *** *** postgresql://me:***@db/x</pre>"


@pytest.mark.parametrize("password", ["it's", "Sup3r'secret!", 'say"hi'])
def test_a_report_masks_a_password_with_a_quote_as_nbconvert_escapes_printed_output(password: str) -> None:
    # markupsafe (Jinja, nbconvert's ansi2html) writes &#39; and &#34;, not
    # html.escape's &#x27; and &quot;; BeautifulSoup re-serialises the page's
    # text, but a <script>'s content (widget state) keeps the form it had.
    from urllib.parse import quote

    from markupsafe import escape

    scrub = _secret_scrubber({"warehouse_dsn": f"postgresql://me:{quote(password, safe='')}@db/x"})
    page = f"<pre>failed for {escape(password)}; its port</pre>"
    assert str(escape(password)) != password and str(escape(password)) in page  # the form under test
    assert scrub(page) == "<pre>failed for ***; its port</pre>"


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [("postgresql://me:Sup3r'x\"y@db/x", "Sup3r\\'x\"y"), ("host=db user=me password='ab\\\\cd-long' dbname=x", "ab\\\\\\\\cd-long")],
)
def test_a_report_footer_masks_a_password_as_repr_writes_it(dsn: str, shown: str) -> None:
    # The footer prints each parameter's repr: a quote escaped, a backslash
    # doubled, so the password did not match and showed on every page.
    footer = html_escape(f"parameters: source={dsn!r}", quote=False)
    assert shown in footer  # the form under test
    scrubbed = _secret_scrubber({"source": dsn})(footer)
    assert "***" in scrubbed and "Sup3r" not in scrubbed and "cd-long" not in scrubbed, scrubbed


def test_the_log_filter_masks_a_short_server_key_as_a_token_only() -> None:
    logs = SecretLogFilter()
    logs.add_keys([Secret("k"), Secret("a-long-server-key-7f3e")])
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Bearer %s keeps %s", ("k", "xa-long-server-key-7f3e"), None)
    logs.filter(record)
    assert record.getMessage() == "Bearer *** keeps x***"


def test_the_client_masks_a_short_key_as_a_token_only() -> None:
    core = RequestCore(("http://a.test/v1",), Secret("k"))
    assert core.scrub("bad key Bearer k; keep-alive") == "bad key Bearer ********; keep-alive"


def test_doctor_masks_a_short_key_as_a_token_only() -> None:
    shown = doctor_scrub("http://a.test: reachable, key accepted; header 'Bearer k\\n' k", "k")
    assert shown == "http://a.test: reachable, key accepted; header 'Bearer ********\\n' ********"


@pytest.mark.parametrize(
    "dsn",
    [
        r"host=db user=me password=Sup3r\ secretx dbname=x",  # an unquoted value, a backslash escaping its space
        "host=db password='Sup3r\\'secretx' dbname=x",
        "postgresql://me:Sup3r%2fsecretx@db/x",  # lowercase: not quote()'s spelling
        "postgresql://me:Sup3r'%22secretx@db/x",  # partly encoded
        "postgresql://me@db/x?password=Sup3r%27secretx",
        "postgresql://me@db/x?password=Sup3r+secretx",  # "+" is no space to libpq
        "postgresql://me:Sup3r\u00e9secretx@db/x",
    ],
)
def test_a_report_footer_masks_a_password_however_the_connection_string_spells_it(dsn: str) -> None:
    # A review: the password forms were derived from the parsed password, so
    # a spelling other than quote()'s, or a password parsed wrong, showed.
    footer = html_escape(f"parameters: source={dsn!r}", quote=False)
    scrubbed = _secret_scrubber({"source": dsn})(footer)
    assert "secretx" not in scrubbed and "***" in scrubbed, scrubbed


@pytest.mark.parametrize(
    ("dsn", "password"),
    [
        (r"host=db password=Sup3r\ secret dbname=x", "Sup3r secret"),
        ("host=db password='it\\'s \\\\ ok' dbname=x", "it's \\ ok"),
        ("postgresql://me@db/x?password=a+b%20c", "a+b c"),
        ("postgresql://me:p%40ss@db/x", "p@ss"),
    ],
)
def test_the_password_is_read_as_libpq_reads_it(dsn: str, password: str) -> None:
    # So that a driver's message quoting it is masked: "'a\'b'" was kept
    # escaped, an unquoted "a\ b" cut at the space, and "+" read as a space.
    parsed = Dsn.parse(dsn)
    assert parsed.password == password
    assert parsed.scrub(f"failed for {password}") == "failed for ***"

"""report --redact replaces each flagged id (and dataset name) in every form
it can take on a page. The forms are built columnar (a Python loop over the
ids took 4-5 s of CPU for 100,000 flagged ones); they must be the loop's, in its
order: which text keeps a form two share (a cut of a table), and the order
of equal lengths, decide what the page shows."""

from __future__ import annotations

import json
from html import escape as html_escape

import polars as pl
from hypothesis import given, settings, strategies as st
from markupsafe import escape as markupsafe_escape

from pe_toolkit.report import _PLOTLY_JSON_ESCAPES, _scrub_forms
from pe_toolkit.report_scrub import replace_leftmost


def _html_escapers(text: str) -> list[str]:
    """``text`` as each escaper that reaches a page writes it: html.escape
    with and without quotes, markupsafe, BeautifulSoup's attribute holding
    both quotes (test_beautifulsoup_writes_an_attribute_as_the_fourth_table)."""
    return [html_escape(text), html_escape(text, quote=False), str(markupsafe_escape(text)),
            html_escape(text, quote=False).replace('"', "&quot;")]  # fmt: skip


def _loop_forms(plain: dict[str, str]) -> tuple[list[str], list[str]]:
    """The forms as the report built them before, one text at a time."""
    forms: dict[str, str] = {}
    escapes = str.maketrans(_PLOTLY_JSON_ESCAPES)
    for raw, new in plain.items():
        forms.setdefault(raw, new)
        for form, replacement in zip(_html_escapers(raw), _html_escapers(new), strict=True):
            forms.setdefault(form, replacement)
        for cut in range(8, len(raw)):
            for form in _html_escapers(raw[:cut]):
                forms.setdefault(form + "…", new)
        for ascii_only in (True, False):
            as_json = json.dumps(raw, ensure_ascii=ascii_only)[1:-1]
            forms.setdefault(as_json, new)
            forms.setdefault(as_json.translate(escapes), new)
        forms.setdefault(repr(raw)[1:-1], new)
        forms.setdefault(html_escape(repr(raw)[1:-1], quote=False), new)
    patterns = sorted(forms, key=len, reverse=True)
    return patterns, [forms[f] for f in patterns]


TRICKY = {
    # e-mails sharing their first characters: their cuts collide, the first keeps them
    "client.priya0@example.org": "pseudo_aaaaaaaaaaaaaaaaaaaa",
    "client.priya01@example.org": "pseudo_bbbbbbbbbbbbbbbbbbbb",
    # HTML and JSON specials, a quote, non-ASCII, an astral character, a control character, a line separator
    "<b>O'Brien & \"Sons\"</b> / sam@x.io": "pseudo_cccccccccccccccccccc",
    "séance-amélie-😀-07700 900123\t\u2028": "pseudo_dddddddddddddddddddd",
    "back\\slash\x01@example.com": "pseudo_eeeeeeeeeeeeeeeeeeee",
    "short@x.io": "pseudo_ffffffffffffffffffff",  # under 9 characters of cut
    "clinic A&B sam.rivers@example.org": "clinic A&B [EMAIL]",  # a dataset name and its redacted text
}


def test_beautifulsoup_writes_an_attribute_as_the_fourth_table():
    # nbconvert's HTML exporter re-serialises every page with BeautifulSoup:
    # text keeps its quotes raw, an attribute with both quotes gets &quot;.
    from bs4 import BeautifulSoup

    text = """o'brien & "sons" <x>"""
    soup = BeautifulSoup(f"<p title='{html_escape(text)}'>{html_escape(text)}</p>", features="html.parser")
    assert str(soup) == f'<p title="{_html_escapers(text)[3]}">{_html_escapers(text)[1]}</p>'


def test_the_forms_are_the_loops_in_its_order():
    patterns, replacements = _scrub_forms(TRICKY)
    assert (patterns.to_list(), replacements.to_list()) == _loop_forms(TRICKY)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=40), st.text(max_size=30), min_size=1, max_size=8))
def test_the_forms_are_the_loops_for_any_texts(plain):
    patterns, replacements = _scrub_forms(plain)
    assert (patterns.to_list(), replacements.to_list()) == _loop_forms(plain)


def test_a_page_is_scrubbed_as_before():
    patterns, replacements = _scrub_forms(TRICKY)
    old_patterns, old_replacements = _loop_forms(TRICKY)
    page = " | ".join(f"<td>{f}</td>" for f in old_patterns) + " client.priya0@example.org"
    scrubbed = replace_leftmost(page, patterns, replacements)
    assert scrubbed == pl.Series([page]).str.replace_many(old_patterns, old_replacements, leftmost=True)[0]
    assert "priya" not in scrubbed and "Brien" not in scrubbed

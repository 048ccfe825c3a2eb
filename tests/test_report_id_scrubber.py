"""report --redact's id scrubber, made cheaper without changing what it
finds: the query for ids said in their own conversation gives the rows the
tokenising query gave (the oracle below), on texts that test each edge of
a word; the keyed hash of the flagged ids is HMAC-SHA256 as ``hmac`` computes it; a page scrubbed with only the forms
it can hold comes out as scrubbed with all of them."""

from __future__ import annotations

import hashlib
import hmac

import orjson
from hypothesis import given, settings, strategies as st

from pe_toolkit.exports.redact import Pseudonyms
from pe_toolkit.ingest import import_file
from pe_toolkit.report import _IDS_SAYING_THEIR_WORDS, _scrub_forms
from pe_toolkit.report_scrub import FormMatcher, replace_leftmost
from pe_toolkit.store import Store

# The query as it was: each text tokenised, the id's word looked up among the tokens.
_TOKENISING = _IDS_SAYING_THEIR_WORDS.split("said AS")[0] + r"""said AS (
        SELECT DISTINCT w.id FROM words w JOIN texts m ON m.conversation_id = w.id
        WHERE contains(lower(m.content), w.word) AND list_contains(regexp_extract_all(lower(m.content), '\p{L}+'), w.word)
    )
    SELECT m.conversation_id, m.content FROM texts m SEMI JOIN said ON said.id = m.conversation_id
    ORDER BY m.conversation_id, m.idx"""

# One conversation per case: the id's words against one message.
SAID = {
    "priya-01": "Priya here",  # at the start, another case
    "sam-02": "it was sam",  # at the end
    "jo-03": "jo",  # the whole text
    "ana-04": "banana anabel ana",  # inside words first, then alone
    "ab-05": "abab ab",  # occurrences touching each other, then alone
    "lee-06": "(lee)",  # between punctuation
    "amélie-09": "bonjour amélie!",  # non-ASCII letters in the word
    "noé-10": "noé\u0301",  # a combining mark after it (not a letter)
    "tom-11": "tom's 5tom tom5",  # digits and apostrophes are not letters
}
NOT_SAID = {
    "abab-12": "ababab",  # the word's letters repeated, never alone
    "ki-13": "kiki ski skip",  # only inside other words
    "lee-14": "Leeway",
    "zoe-07": "zoeë zoé",  # a non-ASCII letter after it; another letter in its place
    "s0000015": "s s s",  # no word of two letters in the id
}


def test_the_query_finds_what_the_tokenising_query_found(tmp_path):
    convs = [
        {"id": cid, "dataset": "clinic", "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "I see."}]}
        for cid, text in (SAID | NOT_SAID).items()
    ]
    # A word said only in the metadata, and in the dataset name.
    convs.append({"id": "amara-16", "dataset": "clinic", "metadata": {"author": "Amara O."}, "messages": [{"role": "user", "content": "hi"}]})
    convs.append({"id": "westside-17", "dataset": "westside", "messages": [{"role": "user", "content": "hi"}]})
    data = tmp_path / "cases.jsonl"
    data.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in convs))
    with Store(tmp_path / "cases.duckdb") as store:
        import_file(store, data, progress=False)
        now, before = store.sql(_IDS_SAYING_THEIR_WORDS), store.sql(_TOKENISING)
    assert now.equals(before)
    assert set(now["conversation_id"]) == set(SAID) | {"amara-16", "westside-17"}


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=100), st.lists(st.text(max_size=40), max_size=5))
def test_pseudonyms_are_hmac_sha256_of_the_id(key, values):
    expected = ["pseudo_" + hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:20] for v in values]
    pseudonyms = Pseudonyms(key)
    assert pseudonyms.many(values) == expected and [pseudonyms.of(v) for v in values] == expected


NAMES = ["priya", "sam", "jo", "amara", "tom", "lee"]
# E-mail ids sharing their first characters (and so most cuts), texts under
# 8 bytes, HTML and JSON specials, non-ASCII: the forms of each.
PLAIN = {f"client.{NAMES[i % 6]}{i}@example.org": f"pseudo_{i:020d}" for i in range(300)} | {
    "jo@x.io": "pseudo_short", "a<b>&'c'@x.io": "pseudo_special", "séance-amélie-😀@x.fr": "pseudo_unicode",
    "clinic A&B sam.rivers@example.org": "clinic A&B [EMAIL]",
}
FORMS = _scrub_forms(PLAIN)
MATCHER = FormMatcher(*FORMS)


def _all_forms(page: str) -> str:
    patterns, replacements = FORMS
    return replace_leftmost(page, patterns, replacements)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(FORMS[0].to_list()), st.text(max_size=12)), max_size=12), st.sampled_from(["", " ", "<td>", "\\n"]))
def test_a_page_scrubbed_with_the_forms_it_holds_is_scrubbed_as_with_all(pieces, glue):
    page = glue.join(pieces)
    keep = MATCHER.forms_in(page)
    assert all(keep[i] for i, form in enumerate(FORMS[0].to_list()) if form in page)
    assert MATCHER(page) == _all_forms(page)


def test_a_page_of_ids_is_scrubbed_as_with_all_forms_and_with_few_of_them():
    ids = list(PLAIN)
    page = " ".join(f"<td>{i}</td><td>{i[:20]}…</td>" for i in ids[:40]) + " x" * 10_000 + '"' + ids[-1] + '"'
    assert MATCHER(page) == _all_forms(page) and "priya" not in MATCHER(page)
    assert MATCHER.forms_in(page).sum() < len(FORMS[0]) / 4  # the forms of the 41 texts shown, not the 304
    assert MATCHER("") == "" and MATCHER("short") == "short"

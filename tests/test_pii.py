"""PII detection and redaction (pe_toolkit.analysis.pii): hand-labelled
fixtures (tests/fixtures/pii_cases.csv: 40 texts with PII of every kind, 40
ordinary texts full of numbers and dates that must be left alone), exact
character offsets with non-ASCII text, redaction, and the synthetic sample's
planted values."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pe_toolkit.analysis._patterns import load_lexicon
from pe_toolkit.analysis.pii import KINDS, PLACEHOLDERS, find_pii, redact, redact_frame
from pe_toolkit.errors import AnalysisError

from ._lexicon_support import offsets_hold, read_fixture, synthetic, synthetic_scores

ROWS = read_fixture("pii_cases.csv")


def _gold() -> set[tuple[int, str, str]]:
    return {(i, *part.split("=", 1)) for i, r in enumerate(ROWS) if r["pii"] for part in r["pii"].split(" | ")}


def _found() -> set[tuple[int, str, str]]:
    spans = find_pii(pl.Series([r["text"] for r in ROWS]))
    return {(r["row"], r["kind"], r["text"]) for r in spans.iter_rows(named=True)}


def test_fixture_has_every_kind_and_enough_negatives() -> None:
    gold = _gold()
    assert {kind for _, kind, _ in gold} == set(KINDS)
    assert sum(1 for r in ROWS if not r["pii"]) >= 40


@pytest.mark.parametrize("kind", KINDS)
def test_fixture_precision_and_recall_per_kind(kind: str) -> None:
    gold = {x for x in _gold() if x[1] == kind}
    found = {x for x in _found() if x[1] == kind}
    hits = gold & found
    # Exact spans: the value and nothing around it.
    assert len(hits) / len(gold) >= 0.85, sorted(gold - found)
    assert not found or len(hits) / len(found) >= 0.85, sorted(found - gold)


def test_ordinary_numbers_and_dates_are_not_pii() -> None:
    found_rows = {row for row, _, _ in _found()}
    negatives = [i for i, r in enumerate(ROWS) if not r["pii"]]
    flagged = [ROWS[i]["text"] for i in negatives if i in found_rows]
    # Ages, doses, scores, appointment dates, crisis lines: at most one slip in 40.
    assert len(flagged) <= 1, flagged


def test_crisis_lines_and_dates_without_birth_cue_stay() -> None:
    text = "Call 988 or Samaritans on 116 123, or 1-800-799-7233. My appointment is 14/02/2025."
    assert redact(text) == text
    assert redact("I was born on 14/02/1990.") == "I was born on [DATE_OF_BIRTH]."


def test_offsets_are_code_points_with_non_ascii_text() -> None:
    texts = pl.Series(
        [
            "Héllo — I’m Zoë 😀, mail me at zoë.x@example.org… or call (617) 555-0199!",
            "“Quoted” 🙂🙂 then https://example.org/a/b?c=1. Done",
            "日本語のテキスト 42 Wallis Road, Hackney 東京",
        ]
    )
    spans = find_pii(texts)
    for r in spans.iter_rows(named=True):
        assert texts[r["row"]][r["start"] : r["end"]] == r["text"]
    kinds = sorted(spans["kind"].to_list())
    assert kinds == ["address", "email", "phone", "url"], spans
    # The e-mail's local part holds a non-ASCII letter: the span still starts after it
    # was folded, i.e. at the ASCII part, and never cuts a character in half.
    assert all(len(t) > 0 for t in spans["text"])


def test_find_pii_keeps_message_keys() -> None:
    frame = pl.DataFrame({"conversation_id": ["a", "b"], "idx": [0, 3], "content": ["no pii here", "write to sam@example.com"]})
    spans = find_pii(frame)
    assert spans.columns == ["conversation_id", "idx", "row", "kind", "start", "end", "text"]
    assert spans.rows() == [("b", 3, 1, "email", 9, 24, "sam@example.com")]


def test_redact_replaces_each_span_with_its_placeholder() -> None:
    text = "I'm at 9 Kingfisher Close; mail j.doe@example.org or www.example.org/me, SSN 078-05-1120, DOB: 5 June 1979."
    assert redact(text) == "I'm at [ADDRESS]; mail [EMAIL] or [URL], SSN [ID_NUMBER], DOB: [DATE_OF_BIRTH]."
    assert redact(redact(text)) == redact(text)
    assert set(PLACEHOLDERS.values()) == {f"[{k.upper()}]" for k in KINDS}


def test_redact_frame_matches_redact_and_leaves_other_columns() -> None:
    texts = [r["text"] for r in ROWS]
    frame = pl.DataFrame({"id": list(range(len(texts))), "content": texts, "note": ["x"] * len(texts)})
    out = redact_frame(frame)
    assert out["id"].to_list() == frame["id"].to_list() and out["note"].to_list() == frame["note"].to_list()
    assert out["content"].to_list() == [redact(t) for t in texts]
    # No detected value survives redaction.
    assert find_pii(out["content"]).height == 0


def test_redact_frame_nulls_and_other_column() -> None:
    frame = pl.DataFrame({"body": ["call 07700 900123", None, ""]})
    out = redact_frame(frame, column="body")
    assert out["body"].to_list() == ["call [PHONE]", None, ""]


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(TypeError, match="takes a str"):
        redact(42)  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="no column 'content'"):
        find_pii(pl.DataFrame({"text": ["x"]}))


@settings(max_examples=60, deadline=None)
@given(
    before=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="@0123456789"), max_size=30),
    after=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="@0123456789"), max_size=30),
    user=st.from_regex(r"[a-z][a-z0-9._]{0,10}[a-z0-9]", fullmatch=True),
)
def test_an_email_anywhere_is_found_at_its_exact_offsets(before: str, after: str, user: str) -> None:
    email = f"{user}@example.org"
    text = f"{before} {email} {after}"
    spans = find_pii(pl.Series([text])).filter(pl.col("kind") == "email")
    assert spans.height == 1
    start, end = spans["start"][0], spans["end"][0]
    assert text[start:end] == email


def test_every_lexicon_example_holds_its_kind() -> None:
    lexicon = load_lexicon("pii")
    examples = pl.Series([e.example for e in lexicon.entries])
    found = find_pii(examples)
    for e in lexicon.entries:
        kinds = set(found.filter(pl.col("row") == e.index)["kind"])
        wanted = {"digits": {"id_number", "phone"}, "date": {"date_of_birth"}}.get(e.category, {e.category})
        assert kinds & wanted, (e.category, e.example, kinds)


def test_synthetic_planted_pii_is_found_exactly() -> None:
    conversations, frame = synthetic()
    evidence = synthetic_scores("safety").evidence
    truth = {(c["id"], e["message_index"], e["kind"], e["text"]) for c in conversations for e in c["metadata"]["synthetic"]["pii"]}
    pii = evidence.filter(pl.col("category").is_in(list(KINDS)))
    found = {(r["conversation_id"], r["idx"], r["category"], r["text"]) for r in pii.iter_rows(named=True)}
    assert len(truth) > 200
    assert len(truth & found) / len(truth) >= 0.95
    assert len(truth & found) / len(found) >= 0.95
    assert offsets_hold(frame, pii) == 0

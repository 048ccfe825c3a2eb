"""ConversationViewer and the HTML helpers: escaping, evidence highlighting,
content warnings that need an explicit reveal."""

from __future__ import annotations

import html
import re

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from pe_toolkit.errors import InputError
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store
from pe_toolkit.widgets import ConversationViewer
from pe_toolkit.widgets.html import Span, highlight

from ._widgets_support import build_store
from .conftest import conversation


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("viewer"), n=300, analyze=True)


@pytest.fixture
def store(store_path):
    with Store(store_path, read_only=True) as s:
        yield s


def _text_of(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


# -- highlight ------------------------------------------------------------------


def test_highlight_marks_spans_and_escapes():
    text = "I <b>can't</b> sleep & I feel hopeless"
    start = text.index("hopeless")
    out = highlight(text, [Span(start, start + 8, "safety", "hopelessness"), Span(2, 12, "pii", "x"), Span(5, 99, "bad", "out of range")])
    assert "<b>" not in out and "&lt;b&gt;" in out and "&amp;" in out
    assert re.search(r'<mark[^>]*title="safety: hopelessness"[^>]*>hopeless</mark>', out)
    assert _text_of(out) == text
    assert "out of range" not in out


def test_highlight_overlapping_spans_list_both():
    text = "abcdefghij"
    out = highlight(text, [Span(0, 6, "empathy", "a"), Span(3, 9, "skills", "b")])
    assert 'title="empathy: a; skills: b"' in out  # the overlap "def"
    assert _text_of(out) == text


@settings(max_examples=80, deadline=None)
@given(
    st.text(min_size=0, max_size=60),
    st.lists(st.tuples(st.integers(-3, 70), st.integers(-3, 70), st.sampled_from(["pii", "safety", "x<y>"])), max_size=6),
)
def test_highlight_keeps_the_text(text, raw):
    spans = [Span(a, b, k, f'cat "{k}"') for a, b, k in raw]
    out = highlight(text, spans)
    assert _text_of(out) == text
    # the only markup is ours: every other "<" arrived escaped
    assert "<" not in re.sub(r'<mark class="pe-ev" style="background:#[0-9a-f]{6}" title="[^"<>]*">|</mark>', "", out)


# -- viewer -----------------------------------------------------------------------


def test_viewer_escapes_everything(tmp_path, write_jsonl):
    conv = conversation(1)
    conv["messages"][0]["content"] = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"
    with Store(tmp_path / "c.duckdb") as s:
        import_file(s, write_jsonl([conv]), progress=False)
        viewer = ConversationViewer(s, conv["id"], reveal=True)  # unscored user text is collapsed otherwise
        rendered = [child.value for child in viewer._body.children] + [viewer.to_html()]
    for markup in rendered:
        assert "<script>alert" not in markup and "<img" not in markup
    assert "&lt;script&gt;" in rendered[0]


def test_viewer_shows_scores_and_evidence(store):
    ev = store.sql("SELECT conversation_id, idx, text FROM evidence WHERE analyzer ILIKE '%empathy%' LIMIT 1")
    cid, idx, text = ev.row(0)
    viewer = ConversationViewer(store, cid, reveal=True)
    assert viewer.messages["idx"].to_list() == store.messages(ids=[cid])["idx"].to_list()
    bubble = viewer._body.children[viewer.messages["idx"].to_list().index(idx)].value
    assert f">{html.escape(text)}</mark>" in bubble
    assert "ER " in viewer.to_html()  # EPITOME levels of the replies
    assert "local:" in viewer.header_html()
    text_of_view = _text_of(viewer.to_html())
    assert "strategy: " in text_of_view and "risk model " in text_of_view  # the learned models' scores


def test_learned_evidence_is_highlighted(store):
    ev = store.sql("SELECT conversation_id, idx, text FROM evidence WHERE analyzer = 'skills_model' LIMIT 1")
    cid, idx, text = ev.row(0)
    viewer = ConversationViewer(store, cid, reveal=True)
    bubble = viewer._body.children[viewer.messages["idx"].to_list().index(idx)].value
    assert "skills_model: " in bubble  # the mark's title names the analyzer and the code
    assert text in _text_of(bubble)


def test_distressing_messages_need_an_explicit_reveal(store):
    flagged = store.sql(
        "SELECT conversation_id, idx FROM message_scores WHERE len(crisis_categories) > 0 ORDER BY conversation_id, idx LIMIT 1"
    )
    cid, idx = flagged.row(0)
    viewer = ConversationViewer(store, cid)
    assert idx in viewer.collapsed
    content = store.messages(ids=[cid]).filter(pl.col("idx") == idx)["content"][0]
    position = viewer.messages["idx"].to_list().index(idx)
    hidden = viewer._body.children[position]
    assert content[:30] not in _text_of(hidden.children[0].value)
    assert "Content warning" in hidden.children[0].value
    static = viewer.to_html()
    assert "<details" in static and "Content warning" in static  # reports collapse too
    hidden.children[1].click()  # the "show" button
    assert idx not in viewer.collapsed
    assert content in _text_of(viewer._body.children[position].value)
    viewer.show(cid)  # showing it again collapses again
    assert idx in viewer.collapsed


def test_viewer_navigation_and_errors(store):
    ids = store.sql("SELECT id FROM conversations ORDER BY id LIMIT 3")["id"].to_list()
    viewer = ConversationViewer(store, ids=ids)
    assert viewer.conversation["id"] == ids[0]
    viewer._next.click()
    viewer._next.click()
    viewer._next.click()  # stays on the last
    assert viewer.conversation["id"] == ids[2] and viewer._where.value == "3 of 3"
    viewer._prev.click()
    assert viewer.conversation["id"] == ids[1]
    with pytest.raises(InputError, match="no conversation"):
        viewer.show("nope")


def test_unanalyzed_store_says_so(tmp_path, write_jsonl):
    with Store(tmp_path / "c.duckdb") as s:
        import_file(s, write_jsonl([conversation(2)]), progress=False)
        viewer = ConversationViewer(s, "conv_00002")
        # nothing says which messages are distressing: every user message is collapsed
        users = viewer.messages.filter(pl.col("role") == "user")["idx"].to_list()
        assert users and viewer.collapsed == users
        assert "not been analyzed" in viewer.header_html()


def test_empty_viewer_renders(store):
    viewer = ConversationViewer(store, ids=[])
    assert viewer.collapsed == [] and viewer._body.children == ()
    assert "no conversation selected" in viewer.to_html()


def test_a_researchers_model_shows_as_badges_beside_the_shipped_scores(tmp_path):
    # Its label with that label's probability, not every class's column.
    import pe_toolkit as pe
    from pe_toolkit.analysis import ModelAnalyzer
    from pe_toolkit.learn import FeatureSpec, fit

    train = pl.DataFrame({"text": ["thank you so much", "thanks a lot", "what happened next?", "how did it feel?"] * 3,
                          "label": ["thanks", "thanks", "ask", "ask"] * 3})  # fmt: skip
    mine = ModelAnalyzer(fit(train, spec=FeatureSpec(min_df=1)), name="my_codes", prefix="code")
    with Store(tmp_path / "s.duckdb") as store:
        pe.import_frame(store, pl.DataFrame({"user": ["I lost my job."], "assistant": ["What happened next?"]}))
        pe.analyze(store, progress=False, analyzers=[*pe.analysis.analyzers(), mine])
        cid = store.sql("SELECT id FROM conversations")["id"][0]
        p = store.sql("SELECT code_p_ask FROM message_scores WHERE code = 'ask'")["code_p_ask"][0]
        text = _text_of(ConversationViewer(store, cid, reveal=True).to_html())
    assert f"code: ask {p:.2f}" in text and "code_p_" not in text, text

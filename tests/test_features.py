"""The feature table: checked against a plain-Python computation of the same
definitions, and store input against frame input."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from pe_toolkit.errors import ExportError, InputError
from pe_toolkit.exports import features
from pe_toolkit.exports.features import CONVERSATION_SCORES
from pe_toolkit.schema import QUALITY_METRICS

from ._export_support import build_corpus, make_store, stand_in_scores


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"), n=60)


@pytest.fixture
def store(tmp_path, corpus):
    s = make_store(tmp_path / "store.duckdb", corpus)
    yield s
    s.close()


def python_features(messages: list[dict]) -> dict[str, dict]:
    """The documented definitions, one conversation at a time in Python."""
    out: dict[str, list[dict]] = {}
    for m in messages:
        out.setdefault(m["conversation_id"], []).append(m)
    result = {}
    for cid, rows in out.items():
        def of(role=None, rows=rows):
            return [r for r in rows if role is None or r["role"] == role]

        def mean(xs):
            return sum(xs) / len(xs) if xs else None

        chars = lambda rs: [len(r["content"]) for r in rs]  # noqa: E731
        words = lambda rs: [len(r["content"].split()) for r in rs]  # noqa: E731
        result[cid] = {
            "message_count": len(rows),
            "user_messages": len(of("user")),
            "assistant_messages": len(of("assistant")),
            "system_messages": len(of("system")),
            "chars_total": sum(chars(rows)),
            "chars_mean": mean(chars(rows)),
            "user_chars_mean": mean(chars(of("user"))),
            "assistant_chars_mean": mean(chars(of("assistant"))),
            "words_total": sum(words(rows)),
            "words_mean": mean(words(rows)),
            "user_words_total": sum(words(of("user"))) if of("user") else None,
            "assistant_words_total": sum(words(of("assistant"))) if of("assistant") else None,
            "user_words_mean": mean(words(of("user"))),
            "assistant_words_mean": mean(words(of("assistant"))),
        }
    return result


def assert_close(got: dict, want: dict) -> None:
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value), key
        else:
            assert got[key] == value, key


def test_store_features_match_the_definitions(store):
    frame = features(store)
    assert frame.height == store.count()
    want = python_features(store.messages().to_dicts())
    for row in frame.iter_rows(named=True):
        assert_close(row, want[row["conversation_id"]])


def test_quality_metrics_and_conversation_columns_come_from_the_store(store):
    frame = features(store).sort("conversation_id")
    stored = store.conversations().sort("id")
    for col in ("dataset", "tier", "created_at", *QUALITY_METRICS):
        assert frame[col].to_list() == stored[col].to_list(), col


def test_frame_input_gives_the_same_text_features(store):
    from_store = features(store)
    from_frame = features(store.messages())
    assert from_frame.columns[0] == "conversation_id"
    assert from_frame.equals(from_store.select(from_frame.columns))
    # pandas too
    assert features(store.messages().to_pandas()).equals(from_frame)


def test_message_level(store):
    frame = features(store, level="message")
    messages = store.messages()
    assert frame.select("conversation_id", "idx", "role").equals(messages.select("conversation_id", "idx", "role"))
    assert frame["chars"].to_list() == [len(c) for c in messages["content"]]
    assert frame["words"].to_list() == [len(c.split()) for c in messages["content"]]
    assert features(messages, level="message").equals(frame.select(["conversation_id", "idx", "role", "chars", "words"]))


def test_unanalyzed_store_has_null_score_columns(store):
    frame = features(store)
    for name in CONVERSATION_SCORES:
        assert frame[name].null_count() == frame.height, name


def test_scores_are_joined_when_analyzed(store):
    stand_in_scores(store)
    frame = features(store).sort("conversation_id")
    scores = store.sql("SELECT * FROM conversation_scores ORDER BY conversation_id")
    assert frame["risk_score"].to_list() == scores["risk_score"].to_list()
    assert frame["alert"].to_list() == scores["alert"].to_list()
    msg = features(store, level="message")
    assert msg["sentiment"].null_count() < msg.height


def test_filters_and_errors(store):
    assert features(store, dataset="edge")["conversation_id"].to_list() == ["edge_long", "edge_quotes", "edge_unicode"]
    with pytest.raises(InputError, match="lacks column"):
        features(pl.DataFrame({"conversation_id": ["a"], "content": ["x"]}))
    with pytest.raises(InputError, match="filters apply to a store"):
        features(store.messages(), dataset="edge")
    with pytest.raises(InputError, match="unknown level"):
        features(store, level="token")
    with pytest.raises(ExportError, match="pe-toolkit analyze"):
        features(store, min_risk=0.2)
    with pytest.raises(InputError, match="messages frame"):
        features([1, 2, 3])


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["user", "assistant", "system"]), _text), min_size=1, max_size=12))
def test_any_text_counts_like_python(rows):
    frame = pl.DataFrame(
        {"conversation_id": [r[0] for r in rows], "role": [r[1] for r in rows], "content": [r[2] for r in rows]}
    )
    got = {r["conversation_id"]: r for r in features(frame).iter_rows(named=True)}
    want = python_features(frame.to_dicts())
    assert got.keys() == want.keys()
    for cid, values in want.items():
        assert_close(got[cid], values)


def test_learned_and_safety_scores_reach_the_feature_table(store):
    from ._export_support import analyze_for_real

    analyze_for_real(store)
    conv = features(store).sort("conversation_id")
    current = store.scores("conversation").sort("conversation_id")
    for name in ("suicide_risk_p_max", "max_abuse_severity", "disclosures", "responses_appropriate"):
        assert conv[name].to_list() == current[name].to_list(), name
    assert conv["suicide_risk_p_max"].null_count() < conv.height
    msg = features(store, level="message").sort("conversation_id", "idx")
    stored = store.scores("message").sort("conversation_id", "idx")
    for name in ("skill", "skill_p_question", "suicide_risk_p", "abuse_severity", "reply_appropriate", "skills"):
        assert msg[name].to_list() == stored[name].to_list(), name
    assistant = msg.filter(pl.col("role") == "assistant")
    assert assistant["skill"].null_count() == 0 and assistant.height > 0
    assert msg.filter(pl.col("role") == "user")["skill"].null_count() == msg.filter(pl.col("role") == "user").height

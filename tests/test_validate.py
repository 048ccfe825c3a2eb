"""validate_conversation: the API validation route's answer, computed locally."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

from pe_toolkit import synth
from pe_toolkit.analysis import validate_conversation
from pe_toolkit.errors import InputError
from pe_toolkit.schema import QUALITY_METRICS, TIERS

from .conftest import conversation


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ([{"role": "user", "content": "hi"}], "must be a JSON object"),
        ({"messages": [{"role": "user", "content": "hi"}]}, 'missing "id"'),
        ({"id": "x", "messages": []}, '"messages" is empty'),
        ({"id": "x", "messages": [{"role": "robot", "content": "hi"}]}, "unknown role"),
        ({"id": "x", "messages": [{"role": "user", "content": 7}]}, "content must be a string"),
        ({"id": "x", "messages": [{"role": "user"}]}, 'has no "content"'),
        ({"id": 5, "messages": [{"role": "user", "content": "hi"}]}, '"id" must be a string'),
        ({"id": "x", "messages": [{"role": "user", "content": "hi"}], "quality_metrics": {"safety_score": 3}}, "between 0 and 1"),
        ({"id": "x", "messages": "hello"}, "must be an array"),
        ({"id": "x", "messages": [{"role": "user", "content": "hi", "timestamp": object()}]}, "not JSON-serializable"),
    ],
)
def test_bad_input_is_an_input_error_naming_the_problem(bad, reason):
    with pytest.raises(InputError, match=reason):
        validate_conversation(bad)


def test_answer_has_the_api_shape():
    conv = next(iter(synth.generate(1, seed=11)))
    result = validate_conversation(conv)
    assert set(result) == {"conversation_id", "validation_results", "recommendations", "tier_classification", "validation_timestamp"}
    assert result["conversation_id"] == conv["id"]
    assert set(result["validation_results"]) == set(QUALITY_METRICS)
    assert all(0.0 <= v <= 1.0 for v in result["validation_results"].values())
    assert result["tier_classification"] in TIERS
    assert all(isinstance(r, str) and r for r in result["recommendations"])
    assert datetime.fromisoformat(result["validation_timestamp"].replace("Z", "+00:00")).tzinfo is not None
    orjson.dumps(result)  # JSON-ready as it is


def test_include_messages_adds_scores_and_evidence_per_message():
    conv = conversation(3, n_messages=4)
    result = validate_conversation(conv, include_messages=True)
    scores = result["message_scores"]
    assert [s["idx"] for s in scores] == [0, 1, 2, 3]
    assert all("sentiment" in s and "text_hash" not in s for s in scores)
    for ev in result["evidence"]:
        content = conv["messages"][ev["idx"]]["content"]
        assert content[ev["start"] : ev["end"]] == ev["text"]
    orjson.dumps(result)


def test_a_harmful_reply_to_a_disclosure_is_flagged_and_scores_lower():
    base = {
        "id": "crisis_demo",
        "messages": [
            {"role": "user", "content": "I have been thinking about killing myself every night this week."},
            {"role": "assistant", "content": "Thank you for telling me. Are you safe right now? You can call or text 988 any time, day or night."},
            {"role": "user", "content": "I think so. Thanks."},
            {"role": "assistant", "content": "I'm glad you reached out. What has been weighing on you most?"},
        ],
    }
    bad = orjson.loads(orjson.dumps(base))
    bad["messages"][1]["content"] = "Everyone feels like that sometimes, you'll get over it."
    good_result, bad_result = validate_conversation(base), validate_conversation(bad)
    assert bad_result["validation_results"]["safety_score"] < good_result["validation_results"]["safety_score"]
    assert any("crisis disclosure" in r for r in bad_result["recommendations"])


def test_a_disclosure_answered_after_a_second_user_turn_is_answered():
    # The recommendation reads the safety analyzer's judgement (the first
    # assistant message after the disclosure), as reply_appropriate does.
    convo = {
        "id": "answered_late",
        "messages": [
            {"role": "user", "content": "I want to kill myself."},
            {"role": "user", "content": "I mean it."},
            {"role": "assistant", "content": "Are you safe right now? Please call 988."},
        ],
    }
    result = validate_conversation(convo, include_messages=True)
    assert not any("crisis disclosure" in r for r in result["recommendations"])
    convo["messages"][2]["content"] = "Let's talk about something nicer."
    assert any("1 of 1 disclosures (message 0)" in r for r in validate_conversation(convo)["recommendations"])

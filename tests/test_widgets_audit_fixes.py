"""Regressions from the notebook and widget audit: a review note lands on
the conversation it was typed for, unscored text stays behind the content
warning, parameters out of range are refused by name, an empty cache has
nothing to review, and kappa on no evidence is undefined, not perfect."""

from __future__ import annotations

import math

import orjson
import polars as pl
import pytest

from pe_toolkit.analysis.evaluation import agreement, evaluate
from pe_toolkit.errors import InputError
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store
from pe_toolkit.store.annotations import annotate, labels
from pe_toolkit.widgets import ConversationViewer, LiveMonitor, ReviewQueue, alert_ids, check_count, check_threshold

from ._widgets_support import add_posts, build_store

DISTRESS = "I have pills saved up and I am going to take them all tonight"


@pytest.fixture
def store_path(tmp_path):
    return build_store(tmp_path / "review", n=12)


def _ids(path) -> list[str]:
    with Store(path, read_only=True) as s:
        return s.sql("SELECT id FROM conversations ORDER BY id LIMIT 4")["id"].to_list()


# -- 1 · the review note stays with its conversation ---------------------------------


def test_a_note_typed_after_the_click_is_saved_on_that_conversation(store_path):
    ids = _ids(store_path)
    with Store(store_path) as s:
        queue = ReviewQueue(s, ids=ids, reviewer="ana", labels=("true_alert", "false_alarm"))
        queue._choice.value = "false_alarm"  # the click
        assert queue.current_id == ids[0]  # still on the conversation the note is about
        queue._note.value = "quoting a film"  # typed after the click, as the notebook says
        queue._next.click()  # the explicit move on
        assert queue.current_id == ids[1] and queue._note.value == ""
        queue._choice.value = "true_alert"  # the next conversation, no note
        frame = labels(s, "review").select("conversation_id", "label", "note").sort("conversation_id")
    assert frame.rows() == [(ids[0], "false_alarm", "quoting a film"), (ids[1], "true_alert", None)]


def test_a_note_typed_before_the_click_is_saved_with_that_label(store_path):
    ids = _ids(store_path)
    with Store(store_path) as s:
        queue = ReviewQueue(s, ids=ids, reviewer="ana", labels=("good", "bad"))
        queue._note.value = "rude reply"
        queue._choice.value = "bad"
        queue._skip.click()  # "next ▶"
        assert queue.current_id == ids[1] and queue._choice.value is None
        frame = labels(s, "review").select("conversation_id", "label", "note")
    assert frame.rows() == [(ids[0], "bad", "rude reply")]


def test_label_from_code_still_advances(store_path):
    ids = _ids(store_path)
    with Store(store_path) as s:
        queue = ReviewQueue(s, ids=ids, reviewer="ana", labels=("good", "bad"))
        queue.label("good", note="fine")
        assert queue.current_id == ids[1]


def test_next_unlabelled_wraps_round_to_an_item_passed_over(store_path):
    ids = _ids(store_path)[:3]
    with Store(store_path) as s:
        queue = ReviewQueue(s, ids=ids, reviewer="ana", labels=("good", "bad"))
        queue._skip.click()  # pass over the first item
        queue._choice.value = "good"
        queue._next.click()
        queue._choice.value = "bad"
        queue._next.click()  # wraps round to the first, not "done"
        assert queue.current_id == ids[0] and "Done" not in queue._status.value
        queue._choice.value = "good"
        queue._next.click()
        assert queue.done and "Done" in queue._status.value and queue._next.disabled


# -- 2 · unscored text stays behind the content warning -------------------------------


def _write(path, conversations) -> None:
    path.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in conversations))


def _distressing(cid: str) -> dict:
    return {"id": cid, "messages": [{"role": "user", "content": DISTRESS}, {"role": "assistant", "content": "I'm here."}]}


def test_a_never_analysed_cache_collapses_every_user_message(tmp_path):
    data = tmp_path / "in.jsonl"
    _write(data, [_distressing("c1")])
    with Store(tmp_path / "c.duckdb") as s:
        import_file(s, data, progress=False)
        viewer = ConversationViewer(s, "c1")
        assert viewer.collapsed == [0]
        shown = "".join(child.children[0].value if hasattr(child, "children") else child.value for child in viewer._body.children)
        assert DISTRESS not in shown and "Content warning" in shown
        static = viewer.to_html()
        assert "<details" in static and "not checked for crisis disclosures" in static
        viewer.reveal(0)  # the explicit click still shows it
        assert DISTRESS in viewer._body.children[0].value


def test_a_conversation_new_since_the_analysis_is_collapsed_too(tmp_path):
    from pe_toolkit import analyze

    path = build_store(tmp_path / "a", n=20, analyze=True)
    data = tmp_path / "late.jsonl"
    _write(data, [_distressing("late")])
    with Store(path) as s:
        import_file(s, data, progress=False)  # arrives after the analysis: no scores
        viewer = ConversationViewer(s, "late")
        assert viewer.collapsed == [0]
        assert "no current scores" in viewer.header_html()
        analyze(s, incremental=True, progress=False)
        scored = ConversationViewer(s, "late")  # scored now: the rules decide what collapses
        assert "not checked" not in scored.to_html() and "no current scores" not in scored.header_html()


# -- 4, 5 · the alert queue: its threshold and an empty cache --------------------------


@pytest.mark.parametrize("bad", [-0.1, 2, 1.0001, float("nan"), "high"])
def test_an_alert_threshold_outside_0_1_is_refused_by_name(store_path, bad):
    with pytest.raises(InputError, match=r"alert_threshold must be a number between 0 and 1"):
        check_threshold(bad, "alert_threshold")
    with Store(store_path) as s, pytest.raises(InputError, match=r"threshold must be a number between 0 and 1"):
        ReviewQueue(s, reviewer="ana", threshold=bad)


def test_the_threshold_bounds_are_allowed(store_path):
    assert check_threshold(0) == 0.0 and check_threshold(1) == 1.0
    assert check_threshold(None) == pytest.approx(0.8)  # the configured default


def test_an_empty_cache_has_an_empty_alert_queue_not_an_error(tmp_path):
    from pe_toolkit import analyze

    with Store(tmp_path / "empty.duckdb") as s:
        analyze(s, incremental=True, progress=False)  # what the notebook did: on 0 conversations
        assert alert_ids(s) == []
        queue = ReviewQueue(s, reviewer="ana")
        assert queue.done and "Nothing to review" in queue._status.value


# -- 7 · parameters named in their errors ----------------------------------------------


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_a_count_parameter_is_checked_by_name(bad):
    with pytest.raises(InputError, match=r"examples must be a whole number of at least 0"):
        check_count(bad, "examples")
    assert check_count(0, "examples") == 0


def test_live_monitor_names_the_window_not_the_bucket():
    with pytest.raises(InputError, match=r"window \(0.2 s\) must be at least its bucket \(0.5 s\)"):
        LiveMonitor(window=0.2, bucket=0.5, autostart=False)
    with pytest.raises(InputError, match=r"bucket > 0"):
        LiveMonitor(window=5, bucket=0, autostart=False)


# -- 8 · kappa on no evidence -----------------------------------------------------------


def test_kappa_of_one_item_is_undefined_not_perfect():
    one = evaluate(["research"], ["research"], labels=["basic", "research"])
    assert one.accuracy == 1.0
    assert one.kappa is None and one.weighted_kappa is None


def test_reviewers_agreeing_on_one_label_have_no_kappa(store_path):
    ids = _ids(store_path)
    with Store(store_path) as s:
        for cid in ids:
            annotate(s, cid, "true_alert", reviewer="ana", task="t")
            annotate(s, cid, "true_alert", reviewer="bo", task="t")
        frame = agreement(s, "t")
    kappa = frame["kappa"][0]
    assert frame["agreement"][0] == 1.0 and (kappa is None or math.isnan(kappa))
    assert isinstance(frame, pl.DataFrame)


def test_a_table_by_tier_names_the_conversations_without_one(tmp_path):
    # Grouped by tier, the posts (no API tier) were a row with a blank tier:
    # labelled() names it as the figures do, after the tiers in their order.
    from pe_toolkit.widgets import aggregates as agg

    path = build_store(tmp_path, n=20, seed=4, analyze=True)
    add_posts(path, 3)
    with Store(path, read_only=True) as s:
        by_tier = s.sql("SELECT c.tier, count(*) AS conversations FROM conversations c GROUP BY c.tier")
    table = agg.labelled(by_tier, "tier")
    assert table["tier"].null_count() == 0 and table.row(-1) == ("no tier", 3)
    assert table["conversations"].sum() == 23 and table["tier"].to_list()[:-1] == agg.tier_order(by_tier.drop_nulls())["tier"].to_list()
    assert agg.labelled(pl.DataFrame({"dataset": ["b", None, "a"]}), "dataset")["dataset"].to_list() == ["a", "b", "none"]

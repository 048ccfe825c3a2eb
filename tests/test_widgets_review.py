"""Labels (pe_toolkit.store.annotations) and the ReviewQueue built on them:
labels persist at once, a reopened queue resumes, two reviewers get kappa."""

from __future__ import annotations

import polars as pl
import pytest

from pe_toolkit.analysis.evaluation import agreement
from pe_toolkit.errors import InputError
from pe_toolkit.store import Store
from pe_toolkit.store.annotations import annotate, labels, remove_annotation
from pe_toolkit.widgets import ReviewQueue

from ._widgets_support import build_store
from .server_support import copy_store


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("review"), n=60)


@pytest.fixture
def store_path(base_store, tmp_path):
    return copy_store(base_store, tmp_path / "copy")


@pytest.fixture
def ids(base_store):
    with Store(base_store, read_only=True) as s:
        return s.sql("SELECT id FROM conversations ORDER BY id LIMIT 8")["id"].to_list()


# -- annotations --------------------------------------------------------------


def test_annotate_is_an_upsert_per_key(store_path, ids):
    with Store(store_path) as s:
        annotate(s, ids[0], "bad", reviewer="ana")
        first = labels(s)
        annotate(s, ids[0], "good", reviewer="ana", note="changed my mind")
        annotate(s, ids[0], "bad", reviewer="bo")  # another reviewer: another row
        annotate(s, ids[0], "flag", reviewer="ana", message_idx=1)  # a message: another row
        annotate(s, ids[0], "other-task", reviewer="ana", task="quality")  # another task: another row
        frame = labels(s, "review")
    conv = frame.filter(pl.col("message_idx").is_null())
    assert sorted(conv["reviewer"].to_list()) == ["ana", "bo"]
    ana = conv.filter(pl.col("reviewer") == "ana").row(0, named=True)
    assert (ana["label"], ana["note"]) == ("good", "changed my mind")
    assert ana["created_at"] == first["created_at"][0]
    assert ana["updated_at"] >= first["updated_at"][0]
    assert frame.filter(pl.col("message_idx") == 1)["label"].to_list() == ["flag"]


def test_labels_survive_reopening(store_path, ids):
    with Store(store_path) as s:
        annotate(s, ids[1], "true_alert", reviewer="ana", task="alerts", note="plan mentioned")
    with Store(store_path, read_only=True) as s:
        frame = labels(s, "alerts")
    assert frame.select("conversation_id", "label", "note").rows() == [(ids[1], "true_alert", "plan mentioned")]


def test_labels_filters(store_path, ids):
    with Store(store_path) as s:
        for i, cid in enumerate(ids[:4]):
            annotate(s, cid, "x", reviewer="ana" if i % 2 else "bo")
        assert labels(s, reviewer="ana")["conversation_id"].to_list() == [ids[1], ids[3]]
        assert labels(s, ids=ids[:2]).height == 2
        assert labels(s, "nope").height == 0
        assert labels(s, None).height == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"conversation_id": "missing", "label": "x"}, "no conversation"),
        ({"label": ""}, "label"),
        ({"label": "x", "reviewer": " "}, "reviewer"),
        ({"label": "x", "message_idx": 999}, "no message 999"),
        ({"label": "x", "message_idx": "1"}, "message_idx"),
    ],
)
def test_annotate_rejects_bad_input(store_path, ids, kwargs, message):
    args = {"conversation_id": ids[0], "reviewer": "ana", **kwargs}
    with Store(store_path) as s:
        with pytest.raises(InputError, match=message):
            annotate(s, args.pop("conversation_id"), args.pop("label"), **args)
        assert labels(s, None).height == 0


def test_remove_annotation(store_path, ids):
    with Store(store_path) as s:
        annotate(s, ids[0], "x", reviewer="ana")
        assert remove_annotation(s, ids[0], reviewer="ana") is True
        assert remove_annotation(s, ids[0], reviewer="ana") is False
        assert labels(s).height == 0


def _kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa from its definition, to check the stored pipeline against."""
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = sum((a.count(c) / n) * (b.count(c) / n) for c in set(a) | set(b))
    return (po - pe) / (1 - pe)


def test_agreement_textbook_example(store_path):
    # The textbook 2x2 table: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no over 50
    # items; p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    with Store(store_path) as s:
        cids = s.sql("SELECT id FROM conversations ORDER BY id LIMIT 50")["id"].to_list()
        for cid, x, y in zip(cids, a, b):
            annotate(s, cid, x, reviewer="ana", task="t")
            annotate(s, cid, y, reviewer="bo", task="t")
        frame = agreement(s, "t")
    assert frame["items"][0] == 50
    assert frame["agreement"][0] == pytest.approx(0.7)
    assert frame["kappa"][0] == pytest.approx(0.4)


def test_agreement_pairs_reviewers_on_shared_items(store_path, ids):
    with Store(store_path) as s:
        for cid, x, y in zip(ids[:6], "aabbab", "abbbab"):
            annotate(s, cid, x, reviewer="ana", task="t")
            annotate(s, cid, y, reviewer="bo", task="t")
        annotate(s, ids[7], "a", reviewer="cy", task="t")  # shares nothing with the others
        frame = agreement(s, "t")
    assert frame.select("reviewer_a", "reviewer_b", "items").rows() == [("ana", "bo", 6)]
    assert frame["agreement"][0] == pytest.approx(5 / 6)
    assert frame["kappa"][0] == pytest.approx(_kappa(list("aabbab"), list("abbbab")))


# -- ReviewQueue --------------------------------------------------------------


def test_queue_label_persists_and_reopened_queue_resumes(store_path, ids):
    with Store(store_path) as s:
        queue = ReviewQueue(s, ids=ids[:5], reviewer="ana", labels=("good", "bad"))
        assert queue.position == 0 and queue.current_id == ids[0]
        assert queue.viewer.conversation["id"] == ids[0]
        queue._note.value = "looks fine"
        queue._choice.value = "good"  # what clicking the toggle does
        assert queue.current_id == ids[0]  # a click stays, so a note typed next is on this item
        queue._next.click()  # "next unlabelled"
        assert queue.current_id == ids[1]
        queue.label("bad")
        assert labels(s)["label"].to_list() == ["good", "bad"]
    with Store(store_path) as s:
        again = ReviewQueue(s, ids=ids[:5], reviewer="ana", labels=("good", "bad"))
        assert again.position == 2 and again.current_id == ids[2]
        again.goto(0)  # going back shows the stored label and note
        assert (again._choice.value, again._note.value) == ("good", "looks fine")
        other = ReviewQueue(s, ids=ids[:5], reviewer="bo", labels=("good", "bad"))
        assert other.position == 0  # resumption is per reviewer


def test_queue_note_after_label_updates_the_row(store_path, ids):
    with Store(store_path) as s:
        queue = ReviewQueue(s, ids=ids[:3], reviewer="ana", labels=("good", "bad"), auto_advance=False)
        queue._choice.value = "bad"
        queue._note.value = "rude reply"
        frame = labels(s)
    assert frame.select("label", "note").rows() == [("bad", "rude reply")]


def test_queue_shows_kappa_with_two_reviewers(store_path, ids):
    with Store(store_path) as s:
        for reviewer, values in (("ana", "gbgb"), ("bo", "ggbb")):
            q = ReviewQueue(s, ids=ids[:4], reviewer=reviewer, labels=("g", "b"))
            for v in values:
                q.label(v)
            assert q.done
        assert "kappa" in q._agreement.value
        pairs = q.agreement()
        exported = q.labels()
        static = q.to_html()
    assert pairs["kappa"][0] == pytest.approx(_kappa(list("gbgb"), list("ggbb")))
    assert exported.height == 8 and set(exported["reviewer"]) == {"ana", "bo"}
    assert "Done" in static and "kappa" in static


def test_queue_takes_a_frame_and_checks_input(store_path, ids):
    with Store(store_path) as s:
        queue = ReviewQueue(s, pl.DataFrame({"id": [ids[2], ids[2], ids[1]]}), reviewer="ana", labels=("x",))
        assert queue.items == [ids[2], ids[1]]
        with pytest.raises(InputError, match="unknown label"):
            queue.label("y")
        with pytest.raises(InputError, match="reviewer"):
            ReviewQueue(s, ids=ids, reviewer="")
    with Store(store_path, read_only=True) as s, pytest.raises(InputError, match="writing"):
        ReviewQueue(s, ids=ids, reviewer="ana")


def test_empty_queue(store_path):
    with Store(store_path) as s:
        queue = ReviewQueue(s, ids=[], reviewer="ana")
        assert queue.done and queue.current_id is None
        assert "empty" in queue._status.value
        with pytest.raises(InputError, match="finished"):
            queue.label("unsure")


def test_alert_queue_needs_an_analysis(store_path):
    with Store(store_path) as s, pytest.raises(InputError, match=r"run pe.analyze"):
        ReviewQueue(s, reviewer="ana")


def test_alert_queue_takes_the_riskiest_first(tmp_path):
    path = build_store(tmp_path, n=200, seed=5, analyze=True)
    with Store(path) as s:
        risks = s.sql("SELECT conversation_id, risk_score FROM conversation_scores WHERE risk_score > 0")
        threshold = float(risks["risk_score"].median())
        queue = ReviewQueue(s, reviewer="ana", threshold=threshold)
        expected = risks.filter(pl.col("risk_score") > threshold).sort(["risk_score", "conversation_id"], descending=[True, False])
        assert queue.items == expected["conversation_id"].to_list() and queue.items
        assert queue.task == "alerts" and queue.options == ("true_alert", "false_alarm", "unsure")
        queue.label("false_alarm", note="quoting a film")
        assert labels(s, "alerts").select("conversation_id", "label").rows() == [(expected["conversation_id"][0], "false_alarm")]
        # the default threshold is the configured one (0.8)
        default = ReviewQueue(s, reviewer="bo")
        assert default.items == risks.filter(pl.col("risk_score") > 0.8).sort(
            ["risk_score", "conversation_id"], descending=[True, False])["conversation_id"].to_list()


def test_agreement_keeps_conversation_and_message_labels_apart(store_path, ids):
    # Labels of whole conversations and of single messages are different items.
    with Store(store_path) as s:
        for cid in ids[:4]:
            annotate(s, cid, "a", reviewer="ana", task="t")
            annotate(s, cid, "a", reviewer="bo", task="t")
            annotate(s, cid, "m", reviewer="ana", task="t", message_idx=0)
            annotate(s, cid, "n", reviewer="bo", task="t", message_idx=0)
        frame = agreement(s, "t")
    assert frame.select("level", "items", "agreement").rows() == [("conversation", 4, 1.0), ("message", 4, 0.0)]

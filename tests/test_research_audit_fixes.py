"""Regressions from the audit of a researcher's path (own labels, the
review queue, the widgets driven from a script): a queue or viewer given an
id the cache does not hold is refused when built, not stuck on it later;
the Explorer's score ranges are checked in its own words; a score filter of
a store never analyzed says so; a multi-label fold warning names a label
set, not a label."""

from __future__ import annotations

import warnings

import polars as pl
import pytest

from pe_toolkit import learn
from pe_toolkit.errors import InputError
from pe_toolkit.store import Store
from pe_toolkit.store.annotations import labels
from pe_toolkit.widgets import ConversationViewer, Explorer, ReviewQueue

from ._widgets_support import build_store


@pytest.fixture(scope="module")
def raw_path(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("raw"), n=12)


@pytest.fixture(scope="module")
def analyzed_path(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("analyzed"), n=12, analyze=True)


def _ids(path, n: int = 3) -> list[str]:
    with Store(path, read_only=True) as s:
        return s.sql(f"SELECT id FROM conversations ORDER BY id LIMIT {n}")["id"].to_list()


# -- 1 · an id the cache does not hold -------------------------------------------------


def test_a_review_queue_with_an_unknown_id_is_refused_when_built(raw_path, tmp_path):
    ids = _ids(raw_path)
    with Store(raw_path) as s:
        with pytest.raises(InputError, match=r"1 of 4 ids .*'gone-0001'"):
            ReviewQueue(s, ids=[ids[0], "gone-0001", *ids[1:]], reviewer="ana", task="audit", labels=("a", "b"))
        assert labels(s, "audit").height == 0  # nothing written before the refusal


def test_a_queue_of_known_ids_still_walks_every_item(raw_path):
    ids = _ids(raw_path)
    with Store(raw_path) as s:
        queue = ReviewQueue(s, ids=pl.Series(ids), reviewer="ana", task="walk", labels=("a", "b"))
        for _ in ids:
            queue.label("a")
        assert queue.done
        assert sorted(labels(s, "walk")["conversation_id"].to_list()) == sorted(ids)


def test_a_viewer_with_an_unknown_id_among_its_ids_is_refused_when_built(raw_path):
    ids = _ids(raw_path, 2)
    with Store(raw_path, read_only=True) as s:
        # The first id is shown at once; the unknown one was reached only by "next", which then failed every time.
        with pytest.raises(InputError, match=r"1 of 3 ids .*'gone-0002'"):
            ConversationViewer(s, ids=[ids[0], "gone-0002", ids[1]])
        many = [f"gone-{i}" for i in range(8)]
        with pytest.raises(InputError, match=r"8 of 9 ids .*and 3 more"):
            ConversationViewer(s, ids=[ids[0], *many])
        with pytest.raises(InputError, match=r"1 of 3 ids .*None"):
            ConversationViewer(s, ids=pl.Series([*ids, None]))
        viewer = ConversationViewer(s, ids=ids)
        viewer.step(1)
        assert viewer.conversation["id"] == ids[1]


# -- 2 · the Explorer's ranges -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [(0.9, 0.1), (float("nan"), 1.0), (0.2, float("inf")), (-0.5, 0.3), (0.5, 2.0), 0.5, "abc", ("low", 1.0), (True, 1.0)],
)
def test_an_explorer_range_out_of_order_or_not_numbers_is_refused_by_name(analyzed_path, value):
    with Store(analyzed_path, read_only=True) as s:
        ex = Explorer(s)
        before = ex.count
        with pytest.raises(InputError, match=r"^risk: "):
            ex.set(risk=value)
        assert ex.criteria() == {} and ex.count == before  # no control moved
        with pytest.raises(InputError, match=r"^risk: "):
            ex.model.set(risk=value)
        ex.close()


def test_an_explorer_range_in_order_still_filters(analyzed_path):
    with Store(analyzed_path, read_only=True) as s:
        ex = Explorer(s)
        ex.set(risk=[0, 0.5], empathy=None)
        expected = s.sql("SELECT count(*) AS n FROM current_conversation_scores WHERE risk_score BETWEEN 0 AND 0.5")["n"][0]
        assert ex.criteria() == {"risk": (0.0, 0.5)} and ex.count == expected
        ex.close()


def test_a_score_filter_of_a_store_never_analyzed_says_to_analyze(raw_path):
    with Store(raw_path, read_only=True) as s:
        ex = Explorer(s)
        with pytest.raises(InputError, match=r"risk.*no risk scores.*pe\.analyze"):
            ex.set(risk=(0.5, 1.0))
        with pytest.raises(InputError, match="unknown Explorer filter riks"):
            ex.set(riks=(0.5, 1.0))
        ex.close()


# -- 3 · cross-validating a multi-label task ---------------------------------------------


def test_a_multilabel_fold_warning_names_the_label_set():
    texts = ["have you tried writing it down", "that sounds really hard", "how are you feeling today",
             "i hear you, that is painful", "what happened next", "you are not alone in this"] * 2  # fmt: skip
    codes = [["q"], ["r"], ["q"], ["r"], ["q", "r"], []] * 2
    frame = pl.DataFrame({"text": texts, "code": codes}, schema={"text": pl.String, "code": pl.List(pl.String)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn.cross_validate(frame, text="text", label="code", folds=3, boot=0, workers=1)
    said = [str(w.message) for w in caught if "fold" in str(w.message)]
    assert said, "the warning about a rare combination went"
    assert all("label ''" not in m and "label 'q|r'" not in m for m in said), said
    assert any("label set" in m and ("(no label)" in m or "q + r" in m) for m in said), said


# -- 4 · a model of whole conversations in analyze() ----------------------------------------


def test_a_model_of_review_labels_is_refused_by_model_analyzer_as_by_the_config(raw_path, tmp_path):
    from pe_toolkit.analysis import ModelAnalyzer, analyze_frame, register, unregister
    from pe_toolkit.errors import ModelError
    from pe_toolkit.learn import FeatureSpec
    from pe_toolkit.store.annotations import annotate

    path = tmp_path / "review.duckdb"
    path.write_bytes(raw_path.read_bytes())
    with Store(path) as s:
        ids = s.sql("SELECT id FROM conversations ORDER BY id")["id"].to_list()
        for i, cid in enumerate(ids):
            annotate(s, cid, "good" if i % 2 else "bad", reviewer="ana", task="review")
        frame = learn.from_store(s, task="review")  # learn.md: the review widget's labels, "one call away"
        model = learn.fit(frame, text="text", label="label", context="context", spec=FeatureSpec(min_df=1))
        learn.save(model, tmp_path / "review.pemodel")
        messages = s.messages()
        # The model scored single messages with a classifier of whole conversations, silently.
        with pytest.raises(ModelError, match="my_codes: the model was trained on whole conversations"):
            ModelAnalyzer(model, name="my_codes")
        lazy = ModelAnalyzer(tmp_path / "review.pemodel", name="my_codes")  # a path is read on first use
        with pytest.raises(ModelError, match="trained on whole conversations"):
            analyze_frame(messages, analyzers=(lazy,))
        # Labels of messages still make a model analyze() runs.
        for cid in ids:
            annotate(s, cid, "a" if cid in ids[::2] else "b", reviewer="ana", task="msgs", message_idx=1)
        by_message = learn.fit(learn.from_store(s, task="msgs"), text="text", label="label", spec=FeatureSpec(min_df=1))
        mine = ModelAnalyzer(by_message, name="my_codes", role="user", prefix="code")
        register(mine)
        unregister("my_codes")
        scored = analyze_frame(messages, analyzers=(mine,)).messages
        assert scored.filter(pl.col("role") == "user")["code"].null_count() == 0


# -- 5 · learn list on a model saved from Python ---------------------------------------------


def test_learn_list_says_a_python_saved_models_data_is_not_recorded(tmp_path):
    from click.testing import CliRunner

    from pe_toolkit.cli import cli
    from pe_toolkit.learn import FeatureSpec

    frame = pl.DataFrame({"text": ["how are you", "that is hard", "what then", "i hear you"] * 2, "code": ["q", "r"] * 4})
    learn.save(learn.fit(frame, text="text", label="code", spec=FeatureSpec(min_df=1)), tmp_path / "codes.pemodel")
    r = CliRunner().invoke(cli, ["learn", "list", str(tmp_path / "codes.pemodel")])
    assert r.exit_code == 0, r.output
    assert "data: ;" not in r.output and "data: not recorded in the card;" in r.output, r.output


# -- 6 · predict on one string -----------------------------------------------------------------


def test_predict_refuses_a_bare_string_instead_of_scoring_each_character():
    from pe_toolkit.learn import FeatureSpec

    frame = pl.DataFrame({"text": ["how are you", "that is hard", "what then", "i hear you"] * 2, "code": ["q", "r"] * 4})
    model = learn.fit(frame, text="text", label="code", spec=FeatureSpec(min_df=1), context="text")
    text = "how are you feeling"
    with pytest.raises(InputError, match=r"texts: a list of texts.*not one string.*predict\(\['how are you"):
        model.predict(text)  # was a frame of 19 rows, one per character
    with pytest.raises(InputError, match="context: a list of texts"):
        model.predict([text], context="earlier turn")
    with pytest.raises(InputError, match=r"texts: .*DataFrame.*a column"):
        model.predict(frame)
    with pytest.raises(InputError, match=r"texts: .*strings.*int"):
        model.predict([1, 2])
    one = model.predict([text], context=["earlier turn"])
    assert one.height == 1
    assert model.predict(pl.Series([text, None])).height == 2  # a Series, a missing text as none: unchanged


# -- 7 · a class named "gold" --------------------------------------------------------------------


@pytest.mark.parametrize("classes", [("gold", "silver", "bronze"), ("gold", "gold_label", "tin")])
def test_a_class_named_gold_keeps_the_confusion_tables_row_labels(classes):
    texts = ["have you tried writing it down", "that sounds really hard", "how are you feeling today",
             "i hear you, that is painful", "what happened next", "you are not alone in this"] * 4  # fmt: skip
    frame = pl.DataFrame({"text": texts, "code": list(classes) * 8})
    model = learn.fit(frame, text="text", label="code")
    report = learn.evaluate(model, frame, text="text", label="code", boot=0)
    confusion = report.confusion
    index = confusion.columns[0]
    # The class "gold"'s counts overwrote the row labels: a frame of three count columns.
    assert confusion.schema[index] == pl.String and sorted(confusion[index].to_list()) == sorted(classes)
    assert sorted(confusion.columns[1:]) == sorted(classes)
    predicted = report.predictions.select("gold", "predicted")
    for row in confusion.iter_rows(named=True):
        for c in classes:
            expected = predicted.filter((pl.col("gold") == row[index]) & (pl.col("predicted") == c)).height
            assert row[c] == expected, (row, c)


def test_review_queue_goto_takes_a_conversation_id_of_the_queue(raw_path):
    ids = _ids(raw_path)
    with Store(raw_path) as s:
        queue = ReviewQueue(s, ids=ids, reviewer="ana", task="goto", labels=("a", "b"))
        queue.goto(ids[2])  # was ValueError: invalid literal for int() with base 10
        assert queue.position == 2 and queue.current_id == ids[2]
        with pytest.raises(InputError, match="'gone' is not in this queue"):
            queue.goto("gone")
        queue.goto(1)
        assert queue.current_id == ids[1]


@pytest.mark.parametrize(("options", "said"), [
    ({"role": "assitant"}, r"my_codes: role must be one of user, assistant, system, got 'assitant'"),
    ({"role": "Assistant"}, r"role must be one of .* got 'Assistant'"),
    ({"role": None}, r"role must be one of .* got None"),
    ({"name": ""}, r"a ModelAnalyzer needs a name"),
    ({"prefix": "  "}, r"my_codes: prefix must be a column name"),
])  # fmt: skip
def test_model_analyzer_refuses_a_role_it_would_score_nothing_of(options, said):
    from pe_toolkit.analysis import ModelAnalyzer
    from pe_toolkit.learn import FeatureSpec

    frame = pl.DataFrame({"text": ["how are you", "that is hard", "what then", "i hear you"] * 2, "code": ["q", "r"] * 4})
    model = learn.fit(frame, text="text", label="code", spec=FeatureSpec(min_df=1))
    # A misspelt role gave columns of nulls only (measured: 0 of 40 messages scored), "" columns named "" and "_p_q".
    with pytest.raises(InputError, match=said):
        ModelAnalyzer(model, **{"name": "my_codes", **options})


def test_a_misspelt_role_of_the_label_frames_is_refused(raw_path, tmp_path):
    from pe_toolkit.store.annotations import annotate

    path = tmp_path / "roles.duckdb"
    path.write_bytes(raw_path.read_bytes())
    with Store(path) as s:
        ids = s.sql("SELECT id FROM conversations ORDER BY id LIMIT 4")["id"].to_list()
        for i, cid in enumerate(ids):
            annotate(s, cid, "good" if i % 2 else "bad", reviewer="ana", task="review")
        # Was an empty frame (fit then said "every text or label is missing").
        with pytest.raises(InputError, match=r"role must be one of user, assistant, system \(or None\), got 'assitant'"):
            learn.from_store(s, task="review", role="assitant")
        # Was "no conversation carries a 'topic' label (role: assitant)".
        with pytest.raises(InputError, match=r"role must be one of .* got 'Assistant'"):
            learn.from_metadata(s, "topic", level="conversation", role="Assistant")
        assert learn.from_store(s, task="review", role="assistant").height == len(ids)


def test_a_viewer_takes_a_frame_of_ids_as_the_review_queue_does(raw_path):
    with Store(raw_path, read_only=True) as s:
        frame = s.sql("SELECT id, dataset FROM conversations ORDER BY id LIMIT 3")
        viewer = ConversationViewer(s, ids=frame)  # was read as the column names 'id', 'dataset'
        assert viewer.ids == frame["id"].to_list() and viewer.conversation["id"] == frame["id"][0]

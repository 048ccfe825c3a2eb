"""The shipped models: cards, size, reproducibility from the dev data, and
running inside the analyzers. Tests that need the human-labelled dev data
(``../shared/data`` or ``$PE_VALIDATION_DATA``) skip with the reason where
it is absent."""

from __future__ import annotations

import copy
import json

import numpy as np
import polars as pl
import pytest

from pe_toolkit.analysis import analyze_frame
from pe_toolkit.analysis.base import MESSAGES_SCHEMA, Batch
from pe_toolkit.analysis.learned import MODELS_DIR, OUTPUT_REVISION, RISK_MODEL, SKILL_CLASSES, SKILLS_MODEL, ModelAnalyzer
from pe_toolkit.learn import devdata
from pe_toolkit.learn.features import FeatureSpec
from pe_toolkit.learn.io import read_card
from pe_toolkit.learn.model import fit


def dev_dir():
    try:
        return devdata.data_dir()
    except devdata.DevDataMissing as exc:
        pytest.skip(str(exc))


def test_shipped_models_are_small_and_carry_honest_cards():
    files = sorted(MODELS_DIR.glob("*.pemodel"))
    assert [f.stem for f in files] == ["risk", "skills"]
    assert sum(f.stat().st_size for f in files) <= 5 * 1024 * 1024
    skills = read_card(MODELS_DIR / "skills.pemodel")
    assert "non-commercial" in skills["data"]["licence"]
    v = skills["validation"]
    assert v["n"] > 3000 and "by dialogue" in v["method"]
    for code in ("question", "reflection", "self_disclosure", "affirmation", "suggestion", "information"):
        f1 = v["primary_code"]["per_class"][code]
        assert f1["f1_ci95"][0] <= f1["f1"] <= f1["f1_ci95"][1]
    risk = read_card(MODELS_DIR / "risk.pemodel")
    assert "Apache-2.0" in risk["lexicon"]["licence"] and (MODELS_DIR / "LICENSE-suicide-risk-lexicon").exists()
    low, point, high = (risk["validation"]["auroc"]["model_vs_rest"][i] for i in (1, 0, 2))
    assert low <= point <= high
    assert set(risk["combination"]) == {"intercept", "logit_p", "severity"}


def test_the_metric_card_page_says_what_the_shipped_files_say():
    from pathlib import Path

    from pe_toolkit.learn.cards import render

    page = Path(__file__).resolve().parents[1] / "docs" / "metric_cards_learned.md"
    assert page.read_text(encoding="utf-8") == render(read_card(MODELS_DIR / "skills.pemodel"), read_card(MODELS_DIR / "risk.pemodel")), (
        "docs/metric_cards_learned.md is out of date: run make models"
    )


def test_the_figures_quoted_to_researchers_are_the_risk_cards():
    """04_safety and the README quote risk_score's AUROCs: they must move with
    the card when `make models` rebuilds it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    auroc = read_card(MODELS_DIR / "risk.pemodel")["validation"]["auroc"]
    rest, dep = auroc["risk_score_vs_rest"], auroc["risk_score_vs_depression"]
    cells = json.loads((root / "notebooks" / "04_safety.ipynb").read_text(encoding="utf-8"))["cells"]
    notebook = " ".join(" ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").split())
    assert f"AUROC {rest[0]:.3f} (95% CI {rest[1]:.3f}–{rest[2]:.3f}) against 26 other subreddits" in notebook
    assert f"{dep[0]:.3f} ({dep[1]:.3f}–{dep[2]:.3f}) against r/depression" in notebook
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())
    assert f"AUROC {rest[0]:.3f} against 26 other subreddits, {dep[0]:.3f} against r/depression" in readme


def test_dev_data_parses_as_documented():
    where = dev_dir()
    turns = devdata.esconv(where)
    supporter = turns.filter(pl.col("role") == "assistant")
    assert supporter.height == 3084 and turns["dialogue"].n_unique() == 211
    assert set(supporter["strategy"]) == set(devdata.STRATEGIES.values())
    # every supporter turn once: no (dialogue, turn) twice
    assert turns.select("dialogue", "turn").is_unique().all()
    posts = devdata.reddit27(where)
    assert posts.height == 3469 and posts["subreddit"].n_unique() == 27
    lexicon = devdata.risk_lexicon(where)
    assert lexicon["construct"].n_unique() >= 49 and lexicon.height > 4000


@pytest.fixture(scope="module")
def skills_build():
    """(model, cross-validation report, data folder). Module-scoped, so it is
    built before the per-test fixtures clear $PE_VALIDATION_DATA: the tests
    read the data from the folder it found, not from the variable again."""
    where = dev_dir()
    from pe_toolkit.learn.recipes import build_skills

    return (*build_skills(where, progress=False), where)


def test_the_skills_model_is_rebuilt_bit_for_bit_from_the_dev_data(skills_build):
    from pe_toolkit.learn.io import _arrays, _card, content_hash

    model, _, _ = skills_build
    assert content_hash(_arrays(model), _card(model)) == read_card(MODELS_DIR / "skills.pemodel")["content_hash"]


def test_the_skills_lists_figures_in_the_empathy_card_are_the_nested_ones(skills_build):
    """The card's table is what the code computes: the rules alone, and the
    model's decision (what `skills` follows) with thresholds tuned on the
    other folds (multi_code_report)."""
    from pathlib import Path

    from pe_toolkit.analysis.empathy import EMPATHY
    from pe_toolkit.learn.recipes import multi_code_report, skills_frame

    _, cv, where = skills_build
    page = (Path(__file__).resolve().parents[1] / "docs" / "metric_cards_empathy_safety.md").read_text(encoding="utf-8")
    nested = multi_code_report(cv)
    turns = skills_frame(where)
    # The rules alone (the empathy analyzer without the model), as the card's first column.
    rules = analyze_frame(pl.DataFrame({"conversation_id": turns["dialogue"].cast(pl.String), "role": "assistant", "content": turns["text"],
                                        "idx": pl.int_range(turns.height, eager=True).cast(pl.Int32)}),
                          analyzers=(EMPATHY,), corpus=False).messages.sort("idx")["skills"]  # fmt: skip
    families = {"question": ["open_question", "closed_question"], "reflection": ["simple_reflection", "complex_reflection"],
                "self_disclosure": ["self_disclosure"], "affirmation": ["affirmation", "reassurance", "validation"],
                "suggestion": ["suggestion", "unsolicited_advice"], "information": ["information"]}  # fmt: skip
    for code, members in families.items():
        said = rules.list.eval(pl.element().is_in(members)).list.any().fill_null(False)
        truth = turns["skill"] == code
        tp, fp, fn = int((said & truth).sum()), int((said & ~truth).sum()), int((~said & truth).sum())
        r = nested.per_class.filter(pl.col("class") == code).row(0, named=True)
        row = (f"| {2 * tp / (2 * tp + fp + fn):.3f} ({tp / (tp + fp):.3f} / {tp / (tp + fn):.3f}) "
               f"| {r['f1']:.3f} ({r['precision']:.3f} / {r['recall']:.3f}) | {r['f1_low']:.3f}–{r['f1_high']:.3f} | {r['support']} |")  # fmt: skip
        assert row in page, (code, row)


def _conversation() -> pl.DataFrame:
    rows = [
        ("c1", 0, "user", "I lost my job last month and I can't sleep. Sometimes I think everyone would be better off without me."),
        ("c1", 1, "assistant", "I went through something similar when I was laid off. Have you been able to talk to anyone about these thoughts?"),
        ("c1", 2, "user", "Not really. I'm going to kill myself tonight."),
        ("c1", 3, "assistant", "Maybe you could try going for a walk."),
        ("c2", 0, "user", "Any tips for my sourdough? The crust is pale."),
        ("c2", 1, "assistant", "You are doing a great job, keep it up!"),
    ]
    return pl.DataFrame(rows, schema={"conversation_id": pl.String, "idx": pl.Int32, "role": pl.String, "content": pl.String}, orient="row")


def test_learned_columns_and_evidence_in_analyze_frame():
    frame = _conversation()
    scores = analyze_frame(frame)
    m = scores.messages
    assistant = m.filter(pl.col("role") == "assistant")
    assert assistant["skill"].null_count() == 0 and set(assistant["skill"]) <= set(SKILL_CLASSES)
    probs = assistant.select([f"skill_p_{c}" for c in SKILL_CLASSES]).to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert m.filter(pl.col("role") == "user")["skill"].null_count() == 3
    user_p = m.filter(pl.col("role") == "user")["suicide_risk_p"].to_numpy()
    assert user_p[1] > user_p[2]  # "I'm going to kill myself tonight" against a bread question
    conv = scores.conversations.sort("conversation_id")
    assert conv["risk_score"][0] > conv["risk_score"][1] and conv["alert"].to_list() == [True, False]
    learned = scores.evidence.filter(pl.col("analyzer").is_in(["skills_model", "risk_model"]))
    assert learned.height > 0
    content = dict(zip(zip(frame["conversation_id"], frame["idx"]), frame["content"], strict=True))
    for cid, idx, start, end, text in learned.select("conversation_id", "idx", "start", "end", "text").iter_rows():
        assert content[(cid, idx)][start:end] == text and text
    assert "skills_model=" in scores.analysis_version and "risk_model=" in scores.analysis_version



@pytest.mark.parametrize(
    ("analyzer", "role", "text"),
    [(RISK_MODEL, "user", "I'm not suicidal, I just feel stuck."), (SKILLS_MODEL, "assistant", "Hello?")],
    ids=["risk_model", "skills_model"],
)
def test_two_features_on_one_span_give_one_evidence_row(analyzer: ModelAnalyzer, role: str, text: str):
    # Two of a text's top features can sit on the same span (the risk model's
    # "#Other suicidal language" group and the word "suicidal"; the skills
    # model's "?" and "hello" on the token "Hello?"): the evidence table has
    # no feature column, so they were stored as two identical rows (44 of
    # the risk model's 620 rows on the synthetic sample, 18 of the skills
    # model's 15,188).
    frame = pl.DataFrame([("c", 0, role, text)], schema=MESSAGES_SCHEMA, orient="row")
    model = analyzer.model
    features = model.transform(Batch(frame).tokens, np.array([0]))
    proba = model.predict_proba(features)
    target = list(model.classes).index(analyzer.evidence_class) if analyzer.evidence_class else int(proba.argmax())
    explained = model.evidence(features, proba, top=analyzer.evidence_top, classes=np.array([target]), spans_only=True)
    spans = explained.select("start", "end").unique(maintain_order=True)
    assert spans.height < explained.height  # the case in point: features sharing a span
    evidence = analyzer.score(frame).evidence
    assert evidence.select("start", "end").rows() == spans.rows()
    assert evidence.height == evidence.unique().height


def test_a_researchers_own_model_is_an_analyzer():
    train = pl.DataFrame({"text": ["thank you so much", "thanks a lot", "what happened next?", "how did it feel?"] * 3,
                          "label": ["thanks", "thanks", "ask", "ask"] * 3})  # fmt: skip
    model = fit(train, spec=FeatureSpec(min_df=1))
    mine = ModelAnalyzer(model, name="my_codes", role="assistant", prefix="mine")
    scores = analyze_frame(_conversation(), analyzers=(mine,))
    assert scores.analysis_version.startswith("my_codes=") and "mine_p_thanks" in scores.messages.columns
    assert scores.messages.filter(pl.col("role") == "user")["mine"].null_count() == 3


def test_a_model_fitted_with_the_preceding_turn_reads_it_inside_analyze():
    # The label depends on the turn before only: the same reply "ok" is
    # "agree" after a suggestion and "ack" after a greeting. Inside analyze the
    # preceding message is the context (before: none was given, so the model
    # scored every "ok" the same).
    # (The context block's words are the messages' vocabulary, so the
    # preceding turns are also among the texts.)
    before = ["you could try a walk", "maybe rest a bit", "hello there", "hi, how are you"] * 4
    train = pl.DataFrame({"text": ["ok"] * len(before) + before[:4], "context": before + [None] * 4,
                          "label": ["agree", "agree", "ack", "ack"] * 5})  # fmt: skip
    model = fit(train, text="text", label="label", context="context", spec=FeatureSpec(min_df=1, context=True))
    frame = pl.DataFrame([("a", 0, "user", "you could try a walk"), ("a", 1, "assistant", "ok"),
                          ("b", 0, "user", "hello there"), ("b", 1, "assistant", "ok"), ("c", 0, "assistant", "ok")],
                         schema={"conversation_id": pl.String, "idx": pl.Int32, "role": pl.String, "content": pl.String},
                         orient="row")  # fmt: skip
    mine = ModelAnalyzer(model, name="replies", role="assistant")
    got = mine.score(frame).messages.filter(pl.col("replies").is_not_null())
    shuffled = mine.score(frame.reverse()).messages.filter(pl.col("replies").is_not_null()).reverse()
    assert shuffled.equals(got)  # by hand, in any row order: the preceding message by idx
    want = model.predict(["ok", "ok", "ok"], context=["you could try a walk", "hello there", None])
    assert got["replies"].to_list()[:2] == ["agree", "ack"]
    np.testing.assert_allclose(got["replies_p_agree"].to_numpy(), want["p_agree"].to_numpy(), rtol=1e-12)


def test_a_model_with_rule_columns_reads_them_from_the_analyzers_before_it():
    from pe_toolkit.analysis import analyzers
    from pe_toolkit.errors import AnalysisError

    frame = _conversation()
    levels = analyze_frame(frame).messages.select("conversation_id", "idx", "explorations")
    scored = frame.join(levels, on=["conversation_id", "idx"], maintain_order="left").filter(pl.col("role") == "assistant")
    train = pl.concat([scored.select(pl.col("content").alias("text"), "explorations")] * 4).with_columns(
        label=pl.when(pl.col("explorations") > 0).then(pl.lit("explores")).otherwise(pl.lit("other")))
    model = fit(train, text="text", label="label", rules=["explorations"], spec=FeatureSpec(min_df=1))
    mine = ModelAnalyzer(model, name="mine", role="assistant")
    got = analyze_frame(frame, analyzers=(*analyzers(), mine)).messages.filter(pl.col("role") == "assistant")
    rules = scored.select(pl.col("explorations").cast(pl.Float64).fill_null(0.0)).to_numpy()
    want = model.predict(scored["content"], rules=rules)
    np.testing.assert_allclose(got["mine_p_explores"].to_numpy(), want["p_explores"].to_numpy(), rtol=1e-12)
    with pytest.raises(AnalysisError, match=r"rule column\(s\) explorations are not message columns"):
        analyze_frame(frame, analyzers=(mine,))


def test_conversation_maxima_by_runs_of_rows_equal_a_group_by_and_rows_in_any_order_still_work():
    """The risk model's per-conversation maximum is read off the pass's
    conversation runs (no group_by); a frame scored by hand with a
    conversation's messages apart (not one run) is grouped by id, and both
    give each conversation's maximum over its user messages, null for a
    conversation without one, in order of first appearance."""
    base = pl.concat([_conversation(), _conversation().with_columns(pl.col("conversation_id") + "_b"),
                      pl.DataFrame({"conversation_id": ["c3"], "idx": [0], "role": ["assistant"], "content": ["Hello."]},
                                   schema=_conversation().schema)])  # fmt: skip
    sorted_scores = RISK_MODEL.score(base)
    expected = (
        sorted_scores.messages.group_by("conversation_id", maintain_order=True)
        .agg(pl.col("suicide_risk_p").max().alias("suicide_risk_p_max"))
    )  # fmt: skip
    assert sorted_scores.conversations.equals(expected)
    assert sorted_scores.conversations["suicide_risk_p_max"].null_count() == 1  # c3: no user message
    apart = base[[0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11, 12]]  # c1 and c1_b interleaved
    apart_scores = RISK_MODEL.score(apart)
    assert apart_scores.conversations["conversation_id"].to_list() == ["c1", "c1_b", "c2", "c2_b", "c3"]
    assert apart_scores.conversations.sort("conversation_id").equals(sorted_scores.conversations.sort("conversation_id"))


@pytest.mark.parametrize("analyzer", [SKILLS_MODEL, RISK_MODEL], ids=lambda a: a.name)
def test_scoring_each_distinct_text_once_changes_nothing(analyzer: ModelAnalyzer):
    # The conversation repeated under other ids, one user and one assistant text
    # reworded in a copy, so some texts repeat and others do not.
    base = _conversation()
    copies = [base.with_columns(pl.col("conversation_id") + f"_{k}") for k in range(3)]
    copies[1] = copies[1].with_columns(
        pl.when(pl.col("idx") <= 1).then(pl.col("content") + " Honestly.").otherwise(pl.col("content")).alias("content")
    )
    frame = pl.concat([base, *copies])
    every = copy.copy(analyzer)
    every.distinct = False
    assert analyzer.distinct
    once, each = analyzer.score(frame), every.score(frame)
    assert once.messages.equals(each.messages) and once.conversations.equals(each.conversations)
    assert once.evidence.height > 0 and once.evidence.equals(each.evidence)


@pytest.mark.parametrize("analyzer", [SKILLS_MODEL, RISK_MODEL], ids=lambda a: a.name)
def test_evidence_rows_are_the_models_explanations_one_per_span_in_message_order(analyzer: ModelAnalyzer):
    """The analyzer's evidence (distinct texts explained once, repeated spans
    dropped, rows copied to every message holding the text) against the
    plain way: every message of the role explained on its own, repeats of a
    span dropped by polars' unique, rows in message order. Synthetic
    conversations: many texts repeat, and some tops share a span."""
    from pe_toolkit import synth

    rows_in = [(c["id"], i, m["role"], m["content"]) for c in synth.generate(60, seed=3) for i, m in enumerate(c["messages"])]
    frame = pl.DataFrame(rows_in, schema=MESSAGES_SCHEMA, orient="row")
    model = analyzer.model
    rows = (frame["role"] == analyzer.role).arg_true().to_numpy().astype(np.int64)
    features = model.transform(Batch(frame).tokens, rows)
    proba = model.predict_proba(features)
    if analyzer.evidence_class:
        target = np.full(len(rows), list(model.classes).index(analyzer.evidence_class))
    else:
        target = proba.argmax(axis=1)
    wanted = ~np.isin(np.asarray(model.classes)[target], list(analyzer.quiet))
    if analyzer.evidence_min is not None:
        wanted &= proba[np.arange(len(rows)), target] >= analyzer.evidence_min
    plain = model.evidence(features, proba, top=analyzer.evidence_top, classes=np.where(wanted, target, -1), spans_only=True)
    plain = plain.unique(["row", "class", "start", "end"], keep="first", maintain_order=True)
    at = rows[plain["row"].to_numpy()]
    contents = frame["content"].gather(at).to_list()
    expected = [(frame["conversation_id"][int(i)], int(frame["idx"][int(i)]), a, b, text[a:b])
                for i, a, b, text in zip(at, plain["start"].to_list(), plain["end"].to_list(), contents, strict=True)]  # fmt: skip
    got = analyzer.score(frame).evidence
    assert got.select("conversation_id", "idx", "start", "end", "text").rows() == expected
    assert len(expected) > 20 and plain.height < model.evidence(
        features, proba, top=analyzer.evidence_top, classes=np.where(wanted, target, -1), spans_only=True).height  # fmt: skip
    assert len(set(frame["content"].gather(rows).to_list())) < len(rows)  # some texts repeat


def test_risk_score_is_continuous_not_a_few_steps():
    texts = ["I want to die", "I feel empty and tired of everything", "nobody would miss me", "my cat is sick",
             "I hate my job", "I cut myself again last night", "can't stop crying", "life is pointless lately",
             "I bought a new bike", "everything hurts and I'm done"]  # fmt: skip
    frame = pl.DataFrame({"conversation_id": [f"c{i}" for i in range(len(texts))], "idx": [0] * len(texts),
                          "role": ["user"] * len(texts), "content": texts})  # fmt: skip
    risk = analyze_frame(frame).conversations["risk_score"]
    assert risk.n_unique() == len(texts) and risk.min() >= 0 and risk.max() <= 1


def test_the_risk_model_raises_risk_score_but_never_lowers_it_below_the_rules():
    # Disclosures the model reads as unlike r/SuicideWatch (abuse, a terse
    # "ending it all"), each unanswered, badly answered or answered well.
    from pe_toolkit.analysis.safety import SAFETY

    disclosures = ["He is hitting me right now and I'm scared he'll kill me",
                   "My husband hits me and says he'll kill me if I leave", "He raped me last night",
                   "I'm thinking of ending it all", "I want to die", "I don't want to kill myself.",
                   "I baked bread today"]  # fmt: skip
    replies = [None, "ok, anyway how was your day?", "Are you safe right now? You can call 988 any time."]
    rows = []
    for i, text in enumerate(disclosures):
        for j, reply in enumerate(replies):
            cid = f"c{i}_{j}"
            rows.append((cid, 0, "user", text))
            if reply is not None:
                rows.append((cid, 1, "assistant", reply))
    frame = pl.DataFrame(rows, schema=["conversation_id", "idx", "role", "content"], orient="row")
    rules = SAFETY.score(frame).conversations.select("conversation_id", pl.col("risk_score").alias("rules"), pl.col("alert").alias("rules_alert"))
    both = analyze_frame(frame).conversations.join(rules, on="conversation_id")
    assert both.height == len(disclosures) * len(replies)
    assert (both["risk_score"] >= both["rules"] - 1e-12).all()
    assert (both["alert"] | ~both["rules_alert"]).all()
    alerted = set(both.filter(pl.col("alert"))["conversation_id"])
    # Current danger from abuse and active ideation, left unanswered or badly answered, alert.
    assert {"c0_0", "c0_1", "c3_0", "c3_1"} <= alerted
    assert not {"c0_2", "c3_2", "c6_0"} & alerted


def test_models_analyzers_are_registered_before_the_rules_that_read_them():
    from pe_toolkit.analysis.registry import load

    names = load().names
    assert names.index("skills_model") < names.index("empathy") and names.index("risk_model") < names.index("safety")
    assert SKILLS_MODEL.version == read_card(MODELS_DIR / "skills.pemodel")["content_hash"][:12] + f"+out.{OUTPUT_REVISION}"
    assert RISK_MODEL.version == read_card(MODELS_DIR / "risk.pemodel")["content_hash"][:12] + f"+out.{OUTPUT_REVISION}"

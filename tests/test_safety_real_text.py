"""The rule-based safety analyzer on real, human-labelled text it was not
written against: the development data in ``../shared/data`` (or
``$PE_VALIDATION_DATA``; see its README). Each test skips with the reason
when the data is absent.

Safety v4, v6, v7 and v8 were revised while reading these files (the issue
allows it), so the figures are development figures, not a held-out estimate; other splits are measured from
the outside. Rules only (``SAFETY.score`` without the risk model), every post
one user message. "Disclosure" below means a kept first-person suicidal or
self-harm category (passive or active ideation, plan or method, intent,
preparatory behaviour, prior attempt, self-harm); 95% intervals are Wilson
intervals for shares and bootstrap over posts (1,000 resamples) for AUROC.

Reddit, ``reddit27_dev.csv`` (Low et al., 2020; 3,469 posts from 27
subreddits, 131 r/SuicideWatch, 124 r/depression, 1,181 in nine
non-mental-health controls: conspiracy, guns, legaladvice, personalfinance,
teaching, ukpersonalfinance, ukpolitics, unitedkingdom, mindfulness):

====================================  ============================  ============================  ============================
measure                               safety v3                     safety v4                     safety v10 (shipped)
====================================  ============================  ============================  ============================
r/SuicideWatch posts with one         56/131 = 0.427 [.346,.513]    91/131 = 0.695 [.611,.767]    92/131 = 0.702 [.619,.774]
the 26 other subreddits               126/3338 = 0.038 [.032,.045]  120/3338 = 0.036 [.030,.043]  114/3338 = 0.034 [.029,.041]
r/depression                          16/124 = 0.129 [.081,.199]    15/124 = 0.121 [.075,.190]    15/124 = 0.121 [.075,.190]
non-mental-health controls            8/1181 = 0.007 [.003,.013]    3/1181 = 0.003 [.001,.007]    3/1181 = 0.003 [.001,.007]
AUROC of crisis_severity, SW vs rest  0.693 [0.653, 0.740]          0.831 [0.791, 0.873]          0.836 [0.795, 0.877]
AUROC, SW vs r/depression             0.652 [0.602, 0.708]          0.799 [0.746, 0.844]          0.802 [0.750, 0.847]
====================================  ============================  ============================  ============================

The metric card's column for the shipped rules is checked against these
figures by ``test_the_safety_cards_figures_are_the_shipped_rules``.

(The issue's baseline, a plain count of suicide-lexicon words: AUROC 0.759.)
Most "false alarms" in the other subreddits are real first-person
disclosures in r/mentalhealth, r/bipolarreddit, r/ptsd, r/depression...; the
three left in the controls were read and are real too (a student who
self-harms, a debtor who was contemplating suicide, thoughts of self-harm in
a legal question). The v3 false alarms removed include "my attempts" (to get
advice), "buying a gun" (r/guns), "today is the day" (sobriety), "pushed me
over the edge" and "it hit me" read as abuse.

ESConv, ``esconv_dev_strategy.tsv`` (Liu et al., 2021): 3,084 distinct
supporter turns, real replies by crowd-workers trained in emotional support:

========================================  ===================  ===================
supporter turns flagged                   v3                   v4
========================================  ===================  ===================
harmful (any kind)                        5 = 0.16%            3 = 0.10% [.03%,.29%]
professional_help                         43                   32
crisis_resources                          1                    1
safety_check                              2                    2
========================================  ===================  ===================

Read by eye: all 3 harmful turns (minimizing by the card's definition:
"just try to cheer up", "cheer up everything will be okay", "it's not the end
of the world"; the two v3 false alarms "a great way to cheer up" and
"struggling to get over it, is that correct?" are gone); all 32
professional-help turns (all referrals or questions about seeing a
professional; of v3's 43, 17 self-disclosures and bare mentions are gone:
"I've been seeing a therapist", "I am training to be a counsellor", "a
professional baker", "the doctor certificate"; 4 referrals v3 caught are
missed: "maybe even your therapist", "a local therapist?", "get a hold of
their doctor", "consider having a doctor see your mother"; 10 are new);
the crisis resource ("ask at a major emergency
room") and the two safety checks ("Are you alone or friends around", fine;
"Do you have any plans to spend christmas", a v3 false alarm, now gone).
Other missed referrals seen: "there are a lot of therapy groups
available". Seeker disclosures are rare in ESConv
(3 after v4, 7 in v3 of which 4 were false: "a bit myself", "burned myself
out", "I don't want to live in constant paranoia of him"); none of the 3
first supporter replies checks on safety, gives a resource or refers, so the
rule judges all three not appropriate.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pe_toolkit.analysis.safety import SafetyAnalyzer, appropriate_reply
from pe_toolkit.learn import devdata
from pe_toolkit.learn.validity import auroc_interval

ANALYZER = SafetyAnalyzer(alert_threshold=0.8)
SUICIDAL = ["passive_ideation", "active_ideation", "plan_or_method", "intent", "preparatory_behavior", "prior_attempt", "self_harm"]
CONTROLS = ["conspiracy", "guns", "legaladvice", "personalfinance", "teaching", "ukpersonalfinance", "ukpolitics", "unitedkingdom", "mindfulness"]


def _data(load):
    try:
        return load()
    except devdata.DevDataMissing as exc:
        pytest.skip(f"human-labelled development data absent: {exc}")


@pytest.fixture(scope="module")
def reddit() -> tuple[pl.DataFrame, pl.DataFrame]:
    posts = _data(devdata.reddit27)
    frame = posts.select(
        pl.col("post_id").cast(pl.String).alias("conversation_id"),
        pl.lit(0, pl.Int32).alias("idx"),
        pl.lit("user").alias("role"),
        pl.col("text").alias("content"),
    )
    return posts, ANALYZER.score(frame).messages


@pytest.fixture(scope="module")
def esconv() -> pl.DataFrame:
    frame = devdata.esconv_messages(_data(devdata.esconv)).drop("strategy")
    return ANALYZER.score(frame).messages.with_columns(frame["role"], frame["content"])


def _disclosed(messages: pl.DataFrame) -> np.ndarray:
    return messages["crisis_categories"].list.eval(pl.element().is_in(SUICIDAL)).list.any().fill_null(False).to_numpy()


def test_reddit_suicidewatch_recall_and_false_alarms(reddit) -> None:
    posts, messages = reddit
    sub = posts["subreddit"].to_numpy()
    sw, dep, controls = sub == "suicidewatch", sub == "depression", np.isin(sub, CONTROLS)
    assert sw.sum() > 100 and dep.sum() > 100 and controls.sum() > 1000
    found = _disclosed(messages)
    assert found[sw].mean() >= 0.65, found[sw].mean()  # v4: 0.695; v3: 0.427
    assert found[~sw].mean() <= 0.045, found[~sw].mean()  # v4: 0.036; v3: 0.038
    assert found[dep].mean() <= 0.16, found[dep].mean()  # v4: 0.121
    assert found[controls].mean() <= 0.006, found[controls].mean()  # v4: 0.003; v3: 0.007


def test_reddit_severity_ranks_suicidewatch_first(reddit) -> None:
    posts, messages = reddit
    sub = posts["subreddit"].to_numpy()
    sw, dep = sub == "suicidewatch", sub == "depression"
    severity = messages["crisis_severity"].fill_null(0).to_numpy().astype(float)
    groups = posts["post_id"].to_numpy()
    rest, low, high = auroc_interval(severity, sw, groups)
    assert rest is not None and rest >= 0.80 and low <= rest <= high, (rest, low, high)  # v4: 0.831; v3: 0.693
    pair = sw | dep
    vs_dep, _, _ = auroc_interval(severity[pair], sw[pair], groups[pair])
    assert vs_dep is not None and vs_dep >= 0.76, vs_dep  # v4: 0.799; v3: 0.652
    # Abuse has its own scale: it never raises crisis_severity.
    abuse_only = messages.filter(pl.col("crisis_categories").list.join(",") == "abuse_disclosure")
    assert abuse_only.height > 0 and (abuse_only["abuse_severity"] > 0).all() and (abuse_only["crisis_severity"] == 0).all()


def test_esconv_supporter_replies_are_rarely_harmful(esconv) -> None:
    supporter = esconv.filter(pl.col("role") == "assistant")
    assert supporter.height == 3084
    harmful = supporter.filter(pl.col("harmful").list.len() > 0)
    assert harmful.height / supporter.height <= 0.002, harmful["content"].to_list()  # v4: 3 of 3,084
    assert 25 <= int(supporter["professional_help"].sum()) <= 45
    assert int(supporter["crisis_resources"].sum()) <= 5 and int(supporter["safety_check"].sum()) <= 5


# Supporter turns read by eye (conversation id, turn): referrals that must be
# found, and the supporter's own story or a bare mention that must not be.
REFERRALS = [
    ("esconv-0034", 10),  # Have you contemplated seeing your doctor?
    ("esconv-0057", 18),  # well first speak with your family doctor
    ("esconv-0105", 13),  # talking to a therapist might really help you
    ("esconv-0125", 11),  # Have you considered any kind of counselling
    ("esconv-0166", 21),  # You could always talk to a professional
    ("esconv-0171", 15),  # please contact your medical professional
    ("esconv-0002", 27),  # talk this out with a professional
    ("esconv-0032", 18),  # speaking to an outpatient/occupational therapist
]
NOT_REFERRALS = [
    ("esconv-0046", 4),  # I am training to be a counsellor.
    ("esconv-0061", 6),  # I've tried therapy myself
    ("esconv-0082", 18),  # I also spoke with a therapist before
    ("esconv-0109", 18),  # I used to see a therapist.
    ("esconv-0135", 42),  # being a professional baker
    ("esconv-0154", 26),  # in a professional setting
    ("esconv-0166", 23),  # I've been seeing a therapist recently
    ("esconv-0181", 16),  # one thing that truly helped was going to see my doctor
]


def test_esconv_referrals_read_by_eye(esconv) -> None:
    flag = {(c, i): p for c, i, p in esconv.select("conversation_id", "idx", "professional_help").iter_rows()}
    assert [k for k in REFERRALS if not flag[k]] == []
    assert [k for k in NOT_REFERRALS if flag[k]] == []


def test_reply_rule_is_the_documented_one(esconv) -> None:
    """On real replies: appropriate = any of a safety check, crisis resources
    or a referral, and nothing harmful (module docstring)."""
    supporter = esconv.filter(pl.col("role") == "assistant")
    rule = supporter.select(
        appropriate_reply(pl.col("safety_check"), pl.col("crisis_resources"), pl.col("professional_help"), pl.col("harmful"))
    ).to_series()
    expected = (
        (supporter["safety_check"] | supporter["crisis_resources"] | supporter["professional_help"])
        & (supporter["harmful"].list.len() == 0)
    )
    assert rule.to_list() == expected.to_list()
    # A referral alone is appropriate (it was not under v3's "check AND help").
    assert int((supporter["professional_help"] & ~supporter["safety_check"] & rule).sum()) >= 25


def test_the_safety_cards_figures_are_the_shipped_rules(reddit) -> None:
    """The safety card's last column is what the shipped rules score now, so
    a rules change that moves a figure fails here until the card says so."""
    from pathlib import Path

    from scipy.stats import binomtest

    posts, messages = reddit
    sub = posts["subreddit"].to_numpy()
    sw, dep = sub == "suicidewatch", sub == "depression"
    found = _disclosed(messages)
    severity = messages["crisis_severity"].fill_null(0).to_numpy().astype(float)
    groups = posts["post_id"].to_numpy()

    def share(mask: np.ndarray) -> str:
        k, n = int(found[mask].sum()), int(mask.sum())
        ci = binomtest(k, n).proportion_ci(method="wilson")
        return f"{k / n:.3f} [{ci.low:.3f}, {ci.high:.3f}]"

    def ranked(mask: np.ndarray) -> str:
        point, low, high = auroc_interval(severity[mask], sw[mask], groups[mask])
        return f"{point:.3f} [{low:.3f}, {high:.3f}]"

    rows = {
        "r/SuicideWatch posts with a disclosure": share(sw),
        "posts in the other 26 subreddits with one": share(~sw),
        "r/depression posts with one": share(dep),
        "nine non-mental-health controls": share(np.isin(sub, CONTROLS)),
        "AUROC of `crisis_severity`, SuicideWatch vs the other 26": ranked(np.ones(len(sw), dtype=bool)),
        "AUROC of `crisis_severity`, SuicideWatch vs depression": ranked(sw | dep),
    }
    card = (Path(__file__).resolve().parents[1] / "docs" / "metric_cards_empathy_safety.md").read_text(encoding="utf-8")
    lines = card.splitlines()
    for label, figure in rows.items():
        line = next(x for x in lines if x.startswith(f"| {label}"))
        assert line.endswith(f"| {figure} |"), (label, figure, line)

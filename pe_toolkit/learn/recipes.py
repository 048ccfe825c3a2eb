"""How the shipped models are built from the development data (``make models``).

``python -m pe_toolkit.learn.recipes [--data DIR] [--out DIR] [--check]``
cross-validates each model on the dev data (5 folds, split by dialogue or
post), fits it on all of it, and writes ``skills.pemodel`` and
``risk.pemodel`` with their cards (figures with 95% intervals, data,
licence, settings). The same data and library versions give the same
bytes: ``--check`` rebuilds into a scratch folder and compares content
hashes with the shipped files.

- skills: ESConv supporter turns (CC BY-NC 4.0: non-commercial research
  only), seven codes (ESConv's "Restatement or Paraphrasing" and
  "Reflection of feelings" merged as ``reflection``).
- risk: the 27-subreddit posts, all 27 subreddits as classes (the other
  subreddits shape what is not SuicideWatch), with the Suicide Risk
  Lexicon's constructs (Apache-2.0) as features. The card also holds the
  combination with the rule severities that the safety analyzer uses for
  ``risk_score``: a logistic regression on the model's out-of-fold logit
  and the rule severity, fitted on the same posts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..analysis.learned import MODELS_DIR, SKILL_CLASSES
from ..errors import InputError
from . import devdata
from .features import FeatureSpec
from .io import load, save
from .model import TextModel, fit
from .validity import BOOTSTRAP, Report, auroc_interval, cross_validate, multilabel_report

# Bumped by hand when a model is retrained on purpose: the card's date is
# part of the file, so a rebuild on another day still gives the same bytes.
MODEL_DATE = "2026-12-04"
FOLDS = 5
SEED = 0

SKILLS_SPEC = FeatureSpec(word_ngrams=2, sentences=True, min_df=2)
SKILLS_C = 1.0
SKILL_MERGE = {"restatement": "reflection", "reflection_of_feelings": "reflection"}

# Character n-grams mean-pooled over a text's words (weight 3 to match the
# other blocks' scale): as good as l2 pooling in cross-validation (AUROC
# 0.939 / 0.774 against 0.940 / 0.768), and linear, so inference scores each
# distinct word once instead of building the block.
RISK_SPEC = FeatureSpec(word_ngrams=2, sentences=False, char_ngrams=(3, 5), min_df=2, max_features=20_000,
                        weights={"lexicon": 0.5, "chars": 3.0}, char_pooling="mean")  # fmt: skip
RISK_C = 10.0
RISK_POSITIVE = "suicidewatch"

ESCONV_SOURCE = {
    "name": "ESConv (Liu et al., ACL 2021, 'Towards Emotional Support Dialog Systems')",
    "split": "dev split (esconv_dev_strategy.tsv), every supporter turn once",
    "licence": "CC BY-NC 4.0: this model is for non-commercial research only",
}
REDDIT_SOURCE = {
    "name": "Reddit posts of 27 subreddits (Low et al., JMIR 2020; via construct-tracker)",
    "split": "the half in reddit27_dev.csv",
    "licence": "CC BY 4.0 data",
}
LEXICON_SOURCE = {
    "name": "Suicide Risk Lexicon v1.0 (Low et al., construct-tracker), clinician-validated",
    "licence": "Apache-2.0 (LICENSE-suicide-risk-lexicon beside the model)",
}


def skills_frame(data: Path | None = None) -> pl.DataFrame:
    """ESConv supporter turns with the seven codes (``skill``) and ``dialogue``."""
    turns = devdata.esconv(data)
    return turns.filter(pl.col("role") == "assistant").with_columns(
        pl.col("strategy").replace(SKILL_MERGE).alias("skill")
    )


def _best_thresholds(predictions: pl.DataFrame, classes: tuple[str, ...]) -> np.ndarray:
    """Per class, the probability threshold with the best one-vs-rest F1 on
    ``predictions`` (gold, p_<class>), rounded as the shipped model stores it."""
    out = np.empty(len(classes))
    for j, c in enumerate(classes):  # a handful of classes
        p = predictions[f"p_{c}"].to_numpy()
        y = (predictions["gold"] == c).to_numpy()
        order = np.argsort(-p, kind="stable")
        tp = np.cumsum(y[order])
        k = np.arange(1, len(p) + 1)
        f1 = 2 * tp / (k + y.sum())
        out[j] = round(float(p[order][int(np.argmax(f1))]), 4)
    return out


def tune_thresholds(report: Report) -> dict[str, float]:
    """Per class, the probability threshold with the best one-vs-rest F1
    on the out-of-fold predictions (for the multi-code ``skills`` list)."""
    return dict(zip(report.classes, _best_thresholds(report.predictions, report.classes).tolist(), strict=True))


def multi_code_report(report: Report, *, nested: bool = True, boot: int = BOOTSTRAP, seed: int = 0) -> Report:
    """The multi-code decision of a multi-class model (a class is present
    when its probability reaches its threshold, as the ``skills`` list
    follows the skills model) against the one gold class per item, each
    class as its own binary task, with intervals. ``nested``: each fold's
    thresholds are tuned on the other folds' out-of-fold predictions and
    applied to its own, so the figures do not score the tuning on the items
    it was tuned on (``report`` must come from :func:`cross_validate`);
    ``False``: tuned on all of them, as the shipped model's thresholds are
    (in-sample for the tuning, so optimistic)."""
    preds = report.predictions
    proba = np.column_stack([preds[f"p_{c}"].to_numpy() for c in report.classes])
    if not nested:
        cut = np.broadcast_to(_best_thresholds(preds, report.classes), proba.shape)
    elif "fold" not in preds.columns:
        raise InputError("nested thresholds need each item's fold: give a report from cross_validate")
    else:
        fold = preds["fold"].to_numpy()
        cut = np.empty_like(proba)
        for k in np.unique(fold):  # one tuning per fold
            cut[fold == k] = _best_thresholds(preds.filter(pl.col("fold") != k), report.classes)
    gold = [[g] for g in preds["gold"].to_list()]  # evaluation only: one class per item, as a list
    return multilabel_report(gold, proba, report.classes, thresholds=cut, groups=preds["group"].to_numpy(), boot=boot, seed=seed)


def _figures(report: Report) -> dict[str, Any]:
    return {
        "overall": {r["metric"]: {"value": r["value"], "ci95": [r["low"], r["high"]]} for r in report.overall.to_dicts()},
        "per_class": {
            r["class"]: {"precision": r["precision"], "recall": r["recall"], "f1": r["f1"], "f1_ci95": [r["f1_low"], r["f1_high"]],
                         "auroc": r["auroc"], "support": r["support"]}  # fmt: skip
            for r in report.per_class.to_dicts()
        },
    }


def build_skills(data: Path | None = None, *, progress: bool = True) -> tuple[TextModel, Report]:
    frame = skills_frame(data)
    report = cross_validate(frame, text="text", label="skill", group="dialogue", folds=FOLDS, seed=SEED,
                            spec=SKILLS_SPEC, c=SKILLS_C, classes=SKILL_CLASSES, progress=progress)  # fmt: skip
    thresholds = tune_thresholds(report)
    card = {
        "date": MODEL_DATE,
        "thresholds": thresholds,
        "purpose": "Counselling skill (ESConv support strategy) of a supporter's message",
        "data": ESCONV_SOURCE,
        "validation": {
            "method": f"{FOLDS}-fold cross-validation, folds by dialogue (StratifiedGroupKFold, seed {SEED}); "
            "95% intervals: percentile bootstrap over dialogues, 1,000 resamples",
            "n": report.n,
            "groups": report.groups,
            "primary_code": _figures(report),
            "thresholds_note": "thresholds for the multi-code list were tuned on the same out-of-fold predictions",
        },
        "retrain": "pe_toolkit.learn.fit(frame, text=..., label=...) on your own labels; see docs/learn.md",
    }
    model = fit(frame, text="text", label="skill", spec=SKILLS_SPEC, c=SKILLS_C, classes=SKILL_CLASSES,
                thresholds=thresholds, name="skills", card=card)  # fmt: skip
    return model, report


def rule_severities(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The safety rules' crisis and abuse severities of each text as a user message."""
    from ..analysis.safety import SAFETY

    frame = pl.DataFrame(
        {"conversation_id": [f"p{i:06d}" for i in range(len(texts))], "idx": np.zeros(len(texts), dtype=np.int32),
         "role": ["user"] * len(texts), "content": texts}  # fmt: skip
    )
    scored = SAFETY.score(frame).messages
    severity, abuse = (scored[c].fill_null(0).to_numpy().astype(np.float64) for c in ("crisis_severity", "abuse_severity"))
    return severity, abuse


def as_risk_score(combined: np.ndarray, severity: np.ndarray, abuse: np.ndarray) -> np.ndarray:
    """``risk_score`` of each post as a one-message conversation (the safety
    analyzer's own per-message expression): a disclosure is left without a
    reply, and never scores below the rules' risk of it."""
    from ..analysis.safety import combined_message_risk

    frame = pl.DataFrame({"u": combined, "sev": severity.astype(np.int64), "abuse": abuse.astype(np.int64)})
    return frame.select(combined_message_risk(pl.col("u"), pl.col("sev"), pl.col("abuse"), pl.lit(False)).alias("risk"))["risk"].to_numpy()


def fit_combination(p: np.ndarray, severity: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """risk = sigmoid(a + b * logit(p) + s * severity), fitted by maximum
    likelihood (unpenalised logistic regression on two columns)."""
    from sklearn.linear_model import LogisticRegression

    eps = 1e-6
    logit = np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1))
    x = np.column_stack([logit, severity])
    m = LogisticRegression(C=1e6, max_iter=1000).fit(x, positive)
    return {"intercept": round(float(m.intercept_[0]), 6), "logit_p": round(float(m.coef_[0, 0]), 6),
            "severity": round(float(m.coef_[0, 1]), 6)}  # fmt: skip


def combine(p: np.ndarray, severity: np.ndarray, combination: dict[str, float]) -> np.ndarray:
    eps = 1e-6
    logit = np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1))
    z = combination["intercept"] + combination["logit_p"] * logit + combination["severity"] * severity
    return 1.0 / (1.0 + np.exp(-z))


def build_risk(data: Path | None = None, *, progress: bool = True) -> tuple[TextModel, Report, dict[str, Any]]:
    posts = devdata.reddit27(data)
    lexicon = devdata.risk_lexicon(data)
    report = cross_validate(posts, text="text", label="subreddit", group="post_id", folds=FOLDS, seed=SEED,
                            spec=RISK_SPEC, c=RISK_C, class_weight=None, lexicon=lexicon, progress=progress)  # fmt: skip
    preds = report.predictions
    p = preds[f"p_{RISK_POSITIVE}"].to_numpy()
    gold = preds["gold"].to_numpy()
    y = gold == RISK_POSITIVE
    severity, abuse = rule_severities(posts["text"])
    # The combination's own figures: fitted and scored on different folds of the out-of-fold probabilities.
    from .validity import folds_of

    fold = folds_of(posts["post_id"].to_numpy(), gold.tolist(), FOLDS, SEED + 1)
    combined = np.zeros(len(p))
    for k in range(FOLDS):
        tr, te = fold != k, fold == k
        combined[te] = combine(p[te], severity[te], fit_combination(p[tr], severity[tr], y[tr]))
    combination = fit_combination(p, severity, y)
    as_scored = as_risk_score(combined, severity, abuse)
    dep = np.isin(gold, [RISK_POSITIVE, "depression"])
    figures = {
        "model_vs_rest": auroc_interval(p, y),
        "model_vs_depression": auroc_interval(p[dep], y[dep]),
        "combined_vs_rest": auroc_interval(combined, y),
        "combined_vs_depression": auroc_interval(combined[dep], y[dep]),
        "risk_score_vs_rest": auroc_interval(as_scored, y),
        "risk_score_vs_depression": auroc_interval(as_scored[dep], y[dep]),
        "rules_only_vs_rest": auroc_interval(severity, y),
        "rules_only_vs_depression": auroc_interval(severity[dep], y[dep]),
        "posts_with_rule_disclosure": {"suicidewatch": int((severity[y] > 0).sum()), "other": int((severity[~y] > 0).sum())},
    }
    card = {
        "date": MODEL_DATE,
        "purpose": "How much a user's message reads like a post to r/SuicideWatch (suicide risk), for ranking and triage",
        "data": REDDIT_SOURCE,
        "lexicon": LEXICON_SOURCE,
        "positive_class": RISK_POSITIVE,
        "combination": combination,
        "validation": {
            "method": f"{FOLDS}-fold cross-validation, folds by post, stratified by subreddit (seed {SEED}); "
            "95% intervals: percentile bootstrap over posts, 1,000 resamples",
            "n": report.n,
            "positives": int(y.sum()),
            "auroc": {k: list(v) if isinstance(v, tuple) else v for k, v in figures.items()},
            "subreddits": _figures(report),
        },
        "retrain": "pe_toolkit.learn.fit(frame, text=..., label=...) on your own labels; see docs/learn.md",
    }
    model = fit(posts, text="text", label="subreddit", spec=RISK_SPEC, c=RISK_C, class_weight=None, lexicon=lexicon,
                name="risk", card=card)  # fmt: skip
    return model, report, figures


def build_all(data: Path | None, out: Path, *, progress: bool = True) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    skills, skills_report = build_skills(data, progress=progress)
    # Public data, installed for every user of the package: readable by all
    # (save's default, owner-only, is for models of private texts).
    paths = {"skills": save(skills, out / "skills.pemodel", mode=0o644)}
    print(f"skills: {skills_report.n} turns; cross-validated primary code\n{skills_report}", flush=True)
    risk, _, figures = build_risk(data, progress=progress)
    paths["risk"] = save(risk, out / "risk.pemodel", mode=0o644)
    print(f"risk: AUROC {', '.join(f'{k} {v}' for k, v in figures.items())}", flush=True)
    lexicon = devdata.data_dir(data) / devdata.LEXICON_DIR / "LICENSE"
    (out / "LICENSE-suicide-risk-lexicon").write_bytes(lexicon.read_bytes())
    print(f"built in {time.perf_counter() - started:.0f} s: {', '.join(str(p) for p in paths.values())}")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pe_toolkit.learn.recipes", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the development data (default: $PE_VALIDATION_DATA or ../shared/data)")
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="where to write the models (default: the package)")
    parser.add_argument("--check", action="store_true", help="rebuild into a scratch folder and compare with the shipped models")
    parser.add_argument("--cards", type=Path, default=None, help="also write the Markdown metric cards here")
    args = parser.parse_args(argv)
    if not args.check:
        paths = build_all(args.data, args.out)
        if args.cards is not None:
            from .cards import render
            from .io import read_card

            args.cards.write_text(render(read_card(paths["skills"]), read_card(paths["risk"])), encoding="utf-8")
            print(f"wrote {args.cards}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        built = build_all(args.data, Path(tmp), progress=False)
        different = []
        for name, path in built.items():
            shipped = MODELS_DIR / path.name
            if not shipped.exists() or load(shipped).card["content_hash"] != load(path).card["content_hash"]:
                different.append(name)
        if different:
            print(f"differs from the shipped model: {', '.join(different)}", file=sys.stderr)
            return 1
    print("the shipped models are rebuilt bit for bit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

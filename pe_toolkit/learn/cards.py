"""The shipped models' metric cards as Markdown, written from their cards.

``make models`` writes ``docs/metric_cards_learned.md`` with :func:`render`,
and a test checks that the page equals what the shipped files say, so the
figures a reader sees cannot drift from the models that run.
"""

from __future__ import annotations

from typing import Any


def _f(x: Any) -> str:
    return "–" if x is None else f"{x:.3f}"


def _ci(pair: Any) -> str:
    if not pair or pair[0] is None:
        return "–"
    return f"{pair[0]:.3f}–{pair[1]:.3f}"


def _skills(card: dict[str, Any]) -> list[str]:
    v = card["validation"]
    pc = v["primary_code"]
    lines = [
        "## Counselling skills: `skill`, `skill_p_<code>` (assistant messages; model `skills`)",
        "",
        f"What it is: {card['purpose']}. Seven codes, ESConv's eight strategies with \"Restatement or Paraphrasing\" "
        "and \"Reflection of feelings\" merged as `reflection`: " + ", ".join(f"`{c}`" for c in card["classes"]) + ". "
        "`skill` is the most probable code; `skill_p_<code>` are the probabilities (class-balanced training: they "
        "favour rare codes and are not calibrated to ESConv's code frequencies, see the calibration table in "
        "`07_validity`). The empathy analyzer adds a code to `skills` when its probability is over the threshold "
        "below, and reads a question the model codes as a suggestion or information (\"Have you tried ...?\") as "
        "not a question.",
        "",
        f"**Validity on human labels.** Data: {card['data']['name']}, {card['data']['split']}; n = {v['n']:,} "
        f"supporter turns in {v['groups']} dialogues. Method: {v['method']}. (The data's README counts 4,672 "
        "supporter turns: its lines are windows of a dialogue's history, and a turn whose window starts at a "
        "different seeker turn counts again as a (seeker turn, supporter turn) pair, 4,684 such pairs by our "
        "count; chained back into dialogues, every supporter turn once, there are the n here.) Primary code "
        "against the crowd workers' strategy (one per turn):",
        "",
        "| code | precision | recall | F1 | F1 95% CI | AUROC (one vs rest) | n | threshold in `skills` |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    thresholds = card.get("thresholds", {})
    for code, r in pc["per_class"].items():
        lines.append(f"| `{code}` | {_f(r['precision'])} | {_f(r['recall'])} | {_f(r['f1'])} | {_ci(r['f1_ci95'])} | "
                     f"{_f(r['auroc'])} | {r['support']:,} | {_f(thresholds.get(code))} |")  # fmt: skip
    o = pc["overall"]
    lines += [
        "",
        f"Overall: accuracy {_f(o['accuracy']['value'])} ({_ci(o['accuracy']['ci95'])}), macro-F1 "
        f"{_f(o['macro_f1']['value'])} ({_ci(o['macro_f1']['ci95'])}), Cohen's kappa {_f(o['kappa']['value'])} "
        f"({_ci(o['kappa']['ci95'])}).",
        "",
        f"Licence: {card['data']['licence']}. Trained {card['date']}; content hash `{card['content_hash'][:16]}`.",
        "",
    ]
    return lines


def _risk(card: dict[str, Any]) -> list[str]:
    v = card["validation"]
    a = v["auroc"]
    comb = card["combination"]

    def row(name: str, key: str) -> str:
        point, low, high = a[key]
        return f"| {name} | {_f(point)} | {_ci([low, high])} |"

    return [
        "## Suicide risk: `suicide_risk_p` (user messages), `suicide_risk_p_max`, and `risk_score` (model `risk`)",
        "",
        f"What it is: {card['purpose']}. A multinomial model over all 27 subreddits (the 26 others shape what "
        "SuicideWatch is not); `suicide_risk_p` is its probability of r/SuicideWatch. Features: word uni- and "
        "bigrams, character 3-5-grams of words (misspellings, inflections), and the counts of the Suicide Risk "
        "Lexicon's constructs.",
        "",
        "`risk_score` combines it with the rules, per user message m: "
        f"u(m) = sigmoid({comb['intercept']:.3f} + {comb['logit_p']:.3f} * logit(p(m)) + {comb['severity']:.3f} * "
        "severity(m)), with severity the rules' C-SSRS-informed crisis severity (0-4). A disclosure's reply (crisis "
        "or abuse) moves it: u + 0.25 (1 - u) when the next assistant message is missing or not appropriate, 0.85 u "
        "when it is appropriate; and a disclosure never scores below the rules-only risk(d) of the safety card, so "
        "the model can raise risk_score but not lower it below the rules' score. Then risk_score = max over user messages + 0.05 per repeated disclosure (at most 2) + 0.10 per "
        "harmful assistant message (at most 2), clipped to [0, 1]; `alert` when above the threshold (0.8). The "
        "combination's weights were fitted on the out-of-fold model probabilities of the posts below.",
        "",
        f"**Validity on human labels.** Data: {card['data']['name']}, {card['data']['split']}; n = {v['n']:,} posts "
        f"({v['positives']:,} from r/SuicideWatch). Method: {v['method']}. The label is the subreddit a post was "
        "written to, a proxy for risk, not a clinical rating. The model is cross-validated; the safety rules were "
        "revised while reading these same posts (safety v4, v6, v7 and v8), so the rows that involve the rule severity are "
        "in-sample for the rules and optimistic to that extent.",
        "",
        "| what is ranked | AUROC | 95% CI |",
        "|---|---:|---:|",
        row("`suicide_risk_p`, r/SuicideWatch against the 26 others", "model_vs_rest"),
        row("`suicide_risk_p`, r/SuicideWatch against r/depression", "model_vs_depression"),
        row("combined with the rule severity (u), against the 26 others", "combined_vs_rest"),
        row("combined with the rule severity (u), against r/depression", "combined_vs_depression"),
        row("`risk_score` of each post as a one-message conversation, against the 26 others", "risk_score_vs_rest"),
        row("`risk_score` of each post as a one-message conversation, against r/depression", "risk_score_vs_depression"),
        row("the rule severity alone, against the 26 others", "rules_only_vs_rest"),
        row("the rule severity alone, against r/depression", "rules_only_vs_depression"),
        "",
        f"Data licence: {card['data']['licence']}. Lexicon: {card['lexicon']['name']}, {card['lexicon']['licence']}. "
        f"Trained {card['date']}; content hash `{card['content_hash'][:16]}`.",
        "",
    ]


def render(skills: dict[str, Any], risk: dict[str, Any]) -> str:
    head = [
        "# Metric cards: the learned analyzers",
        "",
        "Written by `make models` from the shipped models' own cards (`pe_toolkit/learn/models/*.pemodel`); a test "
        "checks this page against them. The models' figures are cross-validated on human-labelled development data "
        "split by dialogue or post, with 95% bootstrap intervals; rows that involve the rules say where the rules "
        "were revised on the same data (in-sample for them). Other splits of the same sources, which this project "
        "does not have, are used to measure the models from the outside; no figures from them are shown here, and "
        "a model that only fits the development split will show it there. How to train your own: "
        "[learn.md](learn.md).",
        "",
    ]
    return "\n".join(head + _skills(skills) + _risk(risk)).rstrip() + "\n"

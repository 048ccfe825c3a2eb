"""Fixture and synthetic-sample evaluations of the empathy, safety and PII
analyzers, shared by tests/test_empathy.py, test_safety.py, test_pii.py.

``python -m tests._lexicon_support`` prints every figure the metric cards in
docs/metric_cards_empathy_safety.md report (fixtures: all rows, dev and
holdout split; synthetic sample: seed 7, 2,000 conversations).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from pe_toolkit.analysis.base import MESSAGES_SCHEMA

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MECHANISMS = ("emotional_reactions", "interpretations", "explorations")


def read_fixture(name: str) -> list[dict[str, str]]:
    with (FIXTURES / name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def pairs_frame(rows: Iterable[dict[str, str]], first: str, second: str) -> pl.DataFrame:
    """One two-message conversation (user, assistant) per fixture row, id = row id."""
    records = []
    for r in rows:
        records.append((r["id"], 0, "user", r[first]))
        records.append((r["id"], 1, "assistant", r[second]))
    return pl.DataFrame(records, schema=MESSAGES_SCHEMA, orient="row")


def single_frame(rows: Iterable[dict[str, str]], column: str, role: str = "user") -> pl.DataFrame:
    return pl.DataFrame([(r["id"], 0, role, r[column]) for r in rows], schema=MESSAGES_SCHEMA, orient="row")


def codes(cell: str) -> set[str]:
    return {c for c in cell.split(";") if c}


def set_scores(gold: list[set[str]], predicted: list[set[str]], labels: Iterable[str]) -> dict[str, dict[str, float | int | None]]:
    """Per-label precision, recall, F1 and support for multi-label sets."""
    out: dict[str, dict[str, float | int | None]] = {}
    for label in labels:
        tp = sum(label in g and label in p for g, p in zip(gold, predicted, strict=True))
        fp = sum(label not in g and label in p for g, p in zip(gold, predicted, strict=True))
        fn = sum(label in g and label not in p for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return out


def offsets_hold(messages: pl.DataFrame, evidence: pl.DataFrame) -> int:
    """Evidence rows whose text is NOT content[start:end] (0 when all hold)."""
    joined = evidence.join(messages.select("conversation_id", "idx", "content"), on=["conversation_id", "idx"], how="left")
    bad = joined.filter(pl.col("content").str.slice(pl.col("start"), pl.col("end") - pl.col("start")) != pl.col("text"))
    return bad.height


# ------------------------------------------------------------------ synthetic sample


@functools.cache
def synthetic() -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """The bundled sample's conversations (seed 7, 2,000) and their messages."""
    from pe_toolkit import synth

    conversations = list(synth.generate(2000, seed=7))
    records = [(c["id"], i, m["role"], m["content"]) for c in conversations for i, m in enumerate(c["messages"])]
    return conversations, pl.DataFrame(records, schema=MESSAGES_SCHEMA, orient="row")


@functools.cache
def synthetic_scores(name: str) -> Any:
    from pe_toolkit.analysis.empathy import EMPATHY
    from pe_toolkit.analysis.safety import SafetyAnalyzer

    _, frame = synthetic()
    analyzer = EMPATHY if name == "empathy" else SafetyAnalyzer(alert_threshold=0.8)
    return analyzer.score(frame)


def disclosed(row: dict[str, Any]) -> bool:
    """A kept disclosure (safety v4): crisis or abuse severity above 0."""
    return (row["crisis_severity"] or 0) > 0 or (row.get("abuse_severity") or 0) > 0


def defect_indices(conversation: dict[str, Any]) -> set[int]:
    """Messages whose ground truth the generator does not record (copies, empties)."""
    return {d["message_index"] for d in conversation["metadata"]["synthetic"]["defects"]}


def high_severity_badly_answered(conversations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversations with a flagged disclosure of severity 3 or 4 whose own
    reply (the next message) was not appropriate."""
    out = []
    for c in conversations:
        truth = c["metadata"]["synthetic"]
        bad = {r["message_index"] for r in truth["responses"] if not r["appropriate"]}
        if any(e["flag"] and e["severity"] >= 3 and e["message_index"] + 1 in bad for e in truth["crisis"]):
            out.append(c)
    return out


# ------------------------------------------------------------------ report


def _report() -> None:  # pragma: no cover - a figure printer for the docs
    from pe_toolkit.analysis import evaluate
    from pe_toolkit.analysis.empathy import EMPATHY
    from pe_toolkit.analysis.pii import find_pii
    from pe_toolkit.analysis.safety import CRISIS_CATEGORIES, HARM_KINDS, SafetyAnalyzer
    from pe_toolkit.analysis.skills import SKILL_CODES

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    print("== empathy fixture (tests/fixtures/empathy_epitome.csv)")
    rows = read_fixture("empathy_epitome.csv")
    scored = EMPATHY.score(pairs_frame(rows, "seeker", "response")).messages.filter(pl.col("idx") == 1)
    by_id = {r["conversation_id"]: r for r in scored.iter_rows(named=True)}
    for split in ("all", "dev", "holdout"):
        sub = [r for r in rows if split == "all" or r["split"] == split]
        for m in MECHANISMS:
            ev = evaluate([by_id[r["id"]][m] for r in sub], [int(r[m]) for r in sub], labels=[0, 1, 2])
            per = "  ".join(f"L{k}: P {pct(v.precision)} R {pct(v.recall)} F1 {pct(v.f1)} n {v.support}" for k, v in ev.per_class.items())
            print(f"{split:8s} {m:20s} n {ev.n} acc {ev.accuracy:.3f} kappa {pct(ev.kappa)} wkappa {pct(ev.weighted_kappa)} | {per}")
        gold = [codes(r["skills"]) for r in sub]
        pred = [set(by_id[r["id"]]["skills"]) for r in sub]
        for code, s in set_scores(gold, pred, SKILL_CODES).items():
            print(f"{split:8s}   {code:20s} P {pct(s['precision'])} R {pct(s['recall'])} F1 {pct(s['f1'])} n {s['support']}")

    blind = read_fixture("empathy_blind.csv")
    scored_blind = EMPATHY.score(pairs_frame(blind, "seeker", "response")).messages.filter(pl.col("idx") == 1)
    by_blind = {r["conversation_id"]: r for r in scored_blind.iter_rows(named=True)}
    for m in MECHANISMS:
        ev = evaluate([by_blind[r["id"]][m] for r in blind], [int(r[m]) for r in blind], labels=[0, 1, 2])
        print(f"blind    {m:20s} n {ev.n} acc {ev.accuracy:.3f} kappa {pct(ev.kappa)}")

    print("== crisis fixture (tests/fixtures/safety_crisis.csv)")
    rows = read_fixture("safety_crisis.csv")
    analyzer = SafetyAnalyzer(alert_threshold=0.8)
    scored = analyzer.score(single_frame(rows, "text")).messages
    by_id = {r["conversation_id"]: r for r in scored.iter_rows(named=True)}
    for split in ("all", "dev", "holdout"):
        sub = [r for r in rows if split == "all" or r["split"] == split]
        flag = evaluate([disclosed(by_id[r["id"]]) for r in sub], [r["flag"] == "1" for r in sub])
        print(f"{split:8s} flag n {flag.n} acc {flag.accuracy:.3f} kappa {pct(flag.kappa)} "
              f"P {pct(flag.per_class[True].precision)} R {pct(flag.per_class[True].recall)}")  # fmt: skip
        gold = [{r["category"]} if r["flag"] == "1" else set() for r in sub]
        pred = [set(by_id[r["id"]]["crisis_categories"]) for r in sub]
        for cat, s in set_scores(gold, pred, CRISIS_CATEGORIES).items():
            print(f"{split:8s}   {cat:22s} P {pct(s['precision'])} R {pct(s['recall'])} F1 {pct(s['f1'])} n {s['support']}")
        decoys: dict[str, list[bool]] = {}
        for r in sub:
            if r["flag"] == "0":
                decoys.setdefault(r["framing"], []).append(not disclosed(by_id[r["id"]]))
        print(f"{split:8s}   decoys suppressed: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in decoys.items()))
        flagged = [r for r in sub if r["flag"] == "1" and r["category"] != "abuse_disclosure" and by_id[r["id"]]["crisis_severity"] > 0]
        sev = evaluate([by_id[r["id"]]["crisis_severity"] for r in flagged], [int(r["severity"]) for r in flagged], labels=[1, 2, 3, 4])
        within = sum(abs(by_id[r["id"]]["crisis_severity"] - int(r["severity"])) <= 1 for r in flagged) / max(len(flagged), 1)
        print(f"{split:8s}   severity (detected disclosures) n {sev.n} exact {sev.accuracy:.3f} within1 {within:.3f} wkappa {pct(sev.weighted_kappa)}")
        abuse = [r for r in sub if r["flag"] == "1" and r["category"] == "abuse_disclosure" and by_id[r["id"]]["abuse_severity"] > 0]
        exact = sum(by_id[r["id"]]["abuse_severity"] == int(r["severity"]) for r in abuse)
        print(f"{split:8s}   abuse_severity (detected) n {len(abuse)} exact {exact}/{len(abuse)}")

    blind = read_fixture("safety_crisis_blind.csv")
    scored_blind = {r["conversation_id"]: r for r in analyzer.score(single_frame(blind, "text")).messages.iter_rows(named=True)}
    ev = evaluate([disclosed(scored_blind[r["id"]]) for r in blind], [r["flag"] == "1" for r in blind])
    print(f"blind    flag n {ev.n} acc {ev.accuracy:.3f} kappa {pct(ev.kappa)} P {pct(ev.per_class[True].precision)} R {pct(ev.per_class[True].recall)}")

    print("== replies fixture (tests/fixtures/safety_replies.csv)")
    rows = read_fixture("safety_replies.csv")
    scored = analyzer.score(pairs_frame(rows, "user", "assistant")).messages.filter(pl.col("idx") == 1)
    by_id = {r["conversation_id"]: r for r in scored.iter_rows(named=True)}
    for flag in ("safety_check", "crisis_resources", "professional_help"):
        ev = evaluate([bool(by_id[r["id"]][flag]) for r in rows], [r[flag] == "1" for r in rows])
        print(f"  {flag:18s} acc {ev.accuracy:.3f} kappa {pct(ev.kappa)} P {pct(ev.per_class[True].precision)} R {pct(ev.per_class[True].recall)} n+ {ev.per_class[True].support}")
    for kind, s in set_scores([codes(r["harmful"]) for r in rows], [set(by_id[r["id"]]["harmful"]) for r in rows], HARM_KINDS).items():
        print(f"  {kind:24s} P {pct(s['precision'])} R {pct(s['recall'])} F1 {pct(s['f1'])} n {s['support']}")

    print("== PII fixture (tests/fixtures/pii_cases.csv)")
    rows = read_fixture("pii_cases.csv")
    spans = find_pii(pl.Series([r["text"] for r in rows]))
    got = {(r["row"], r["kind"], r["text"]) for r in spans.iter_rows(named=True)}
    gold = {(i, *part.split("=", 1)) for i, r in enumerate(rows) for part in r["pii"].split(" | ") if r["pii"]}
    for kind in ("email", "phone", "address", "url", "id_number", "date_of_birth"):
        g = {x for x in gold if x[1] == kind}
        p = {x for x in got if x[1] == kind}
        print(f"  {kind:14s} exact spans: P {pct(len(g & p) / len(p) if p else None)} R {pct(len(g & p) / len(g) if g else None)} n {len(g)}")
    print(f"  negatives with no detection: {sum(1 for i, r in enumerate(rows) if not r['pii'] and not any(x[0] == i for x in got))}"
          f"/{sum(1 for r in rows if not r['pii'])}")  # fmt: skip

    print("== synthetic sample (seed 7, 2,000 conversations)")
    conversations, _frame = synthetic()
    emp = synthetic_scores("empathy").messages
    emp_by = {(r["conversation_id"], r["idx"]): r for r in emp.iter_rows(named=True)}
    for m in MECHANISMS:
        gold_l, pred_l = [], []
        for c in conversations:
            for e in c["metadata"]["synthetic"]["empathy"]:
                gold_l.append(e[m])
                pred_l.append(emp_by[(c["id"], e["message_index"])][m])
        ev = evaluate(pred_l, gold_l, labels=[0, 1, 2])
        print(f"  {m:20s} n {ev.n} acc {ev.accuracy:.3f} kappa {pct(ev.kappa)} wkappa {pct(ev.weighted_kappa)}")
    gold_s, pred_s = [], []
    for c in conversations:
        for e in c["metadata"]["synthetic"]["skills"]:
            gold_s.append(set(e["codes"]))
            pred_s.append(set(emp_by[(c["id"], e["message_index"])]["skills"]))
    for code, s in set_scores(gold_s, pred_s, SKILL_CODES).items():
        print(f"    {code:20s} P {pct(s['precision'])} R {pct(s['recall'])} F1 {pct(s['f1'])} n {s['support']}")
    saf = synthetic_scores("safety")
    msg = {(r["conversation_id"], r["idx"]): r for r in saf.messages.iter_rows(named=True)}
    conv = {r["conversation_id"]: r for r in saf.conversations.iter_rows(named=True)}
    flagged = [(c, e) for c in conversations for e in c["metadata"]["synthetic"]["crisis"] if e["flag"]]
    decoys = [(c, e) for c in conversations for e in c["metadata"]["synthetic"]["crisis"] if not e["flag"]]
    found = sum(disclosed(msg[(c["id"], e["message_index"])]) for c, e in flagged)
    right = sum(e["category"] in msg[(c["id"], e["message_index"])]["crisis_categories"] for c, e in flagged)
    quiet = sum(not disclosed(msg[(c["id"], e["message_index"])]) for c, e in decoys)
    print(f"  disclosures found {found}/{len(flagged)}, category right {right}/{len(flagged)}, decoys suppressed {quiet}/{len(decoys)}")
    for flag in ("safety_check", "crisis_resources", "professional_help"):
        agree = [bool(msg[(c["id"], e["message_index"])][flag]) == e[flag] for c in conversations for e in c["metadata"]["synthetic"]["responses"]]
        print(f"  reply {flag:18s} agreement {sum(agree)}/{len(agree)}")
    high_bad = high_severity_badly_answered(conversations)
    decoy_only = [c for c in conversations if c["metadata"]["synthetic"]["crisis"] and not any(e["flag"] for e in c["metadata"]["synthetic"]["crisis"])]
    print(f"  high-severity + inappropriate reply: risk > 0.8 in {sum(conv[c['id']]['risk_score'] > 0.8 for c in high_bad)}/{len(high_bad)}")
    print(f"  decoy-only conversations: risk > 0.8 in {sum(conv[c['id']]['risk_score'] > 0.8 for c in decoy_only)}/{len(decoy_only)}")
    truth_pii = {(c["id"], e["message_index"], e["kind"], e["text"]) for c in conversations for e in c["metadata"]["synthetic"]["pii"]}
    ev = saf.evidence.filter(pl.col("category").is_in(["email", "phone", "address", "url", "id_number", "date_of_birth"]))
    got_pii = {(r["conversation_id"], r["idx"], r["category"], r["text"]) for r in ev.iter_rows(named=True)}
    print(f"  PII exact spans: P {len(truth_pii & got_pii) / max(len(got_pii), 1):.3f} R {len(truth_pii & got_pii) / max(len(truth_pii), 1):.3f} n {len(truth_pii)}")


if __name__ == "__main__":  # pragma: no cover
    _report()

"""Benchmark: the learned analyzers against their baselines, in one run.

    .venv/bin/python benchmarks/bench_learned.py [--skip-validity] [--skip-speed]
        [--messages 1000000] [--repeats 3] [--baseline-ref 95b0608]

1. Validity (human labels, ``../shared/data`` or ``$PE_VALIDATION_DATA``):
   the shipped recipes against a plain TF-IDF + logistic regression
   (scikit-learn defaults: ``TfidfVectorizer()``, ``LogisticRegression()``),
   on the same 5 folds, timed:
   - skills: ESConv supporter turns, 7 codes, folds by dialogue; F1 per code;
   - risk: Reddit posts, r/SuicideWatch against the other 26 and against
     r/depression, folds by post; AUROC (the baseline is trained on
     SuicideWatch against the rest).
2. Speed: ``analyze(store)`` end to end (read, score, write, corpus shares)
   on ``--messages`` synthetic messages, with this checkout's code and with
   the code of ``--baseline-ref`` (a git worktree under benchmarks/.data,
   run in a child process), alternating, medians of ``--repeats``; the
   ratio is the cost of the learned layer and what came with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / ".data"

CHILD = r"""
import json, sys, time
from pe_toolkit.store import Store
from pe_toolkit.ingest import import_file
from pe_toolkit.analysis import analyze
mode, path, source = sys.argv[1], sys.argv[2], sys.argv[3]
with Store(path) as store:
    if mode == "import":
        import_file(store, source, progress=False)
        print(json.dumps({"conversations": store.count()}))
    else:
        chosen = None
        if mode == "analyze-rules":  # this checkout without the learned models: the rules alone
            from pe_toolkit.analysis.registry import load
            chosen = [a for a in load().analyzers if a.name not in ("skills_model", "risk_model")]
        started = time.perf_counter()
        cpu = time.process_time()
        report = analyze(store, progress=False) if chosen is None else analyze(store, progress=False, analyzers=chosen)
        print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                          "messages": report.messages, "version": report.analysis_version}))
"""


def _skills_validity() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from pe_toolkit.analysis.learned import SKILL_CLASSES
    from pe_toolkit.learn.model import _batch_of, fit
    from pe_toolkit.learn.recipes import SKILLS_C, SKILLS_SPEC, skills_frame
    from pe_toolkit.learn.validity import folds_of, report

    frame = skills_frame()
    texts = np.asarray(frame["text"].to_list(), dtype=object)
    labels = frame["skill"].to_list()
    fold = folds_of(frame["dialogue"].to_numpy(), labels, 5, 0)
    base = np.zeros((frame.height, len(SKILL_CLASSES)))
    ours = np.zeros_like(base)
    t_base = t_ours = 0.0
    for k in range(5):
        tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        t = time.perf_counter()
        vec = TfidfVectorizer().fit(texts[tr])
        lr = LogisticRegression(max_iter=1000).fit(vec.transform(texts[tr]), np.asarray(labels, dtype=object)[tr])
        p = lr.predict_proba(vec.transform(texts[te]))
        base[np.ix_(te, [SKILL_CLASSES.index(c) for c in lr.classes_])] = p
        t_base += time.perf_counter() - t
        t = time.perf_counter()
        model = fit(frame[tr], text="text", label="skill", spec=SKILLS_SPEC, c=SKILLS_C, classes=SKILL_CLASSES)
        ours[te] = model.predict_proba(_batch_of(model, frame[te]["text"], None, None))
        t_ours += time.perf_counter() - t
    groups = frame["dialogue"].to_numpy()
    rb, ro = report(labels, base, SKILL_CLASSES, groups=groups), report(labels, ours, SKILL_CLASSES, groups=groups)
    print(f"\nESConv supporter turns (n={frame.height}, {len(np.unique(groups))} dialogues), 5 folds by dialogue, F1 [95% CI]")
    print(f"{'code':<17}{'TF-IDF + LR':>24}{'shipped recipe':>24}  beats")
    for c in SKILL_CLASSES:
        b = rb.per_class.filter(pl.col("class") == c).row(0, named=True)
        o = ro.per_class.filter(pl.col("class") == c).row(0, named=True)
        print(f"{c:<17}{b['f1']:>8.3f} [{b['f1_low']:.3f}, {b['f1_high']:.3f}]{o['f1']:>8.3f} [{o['f1_low']:.3f}, {o['f1_high']:.3f}]"
              f"  {'yes' if o['f1'] > b['f1'] else 'NO'}")  # fmt: skip
    print(f"{'macro-F1':<17}{rb.metric('macro_f1'):>8.3f}{'':>16}{ro.metric('macro_f1'):>8.3f}")
    print(f"time for 5 folds: baseline {t_base:.1f} s, shipped recipe {t_ours:.1f} s")


def _risk_validity() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from pe_toolkit.learn import devdata
    from pe_toolkit.learn.model import _batch_of, fit
    from pe_toolkit.learn.recipes import RISK_C, RISK_POSITIVE, RISK_SPEC
    from pe_toolkit.learn.validity import auroc_interval, folds_of

    posts = devdata.reddit27()
    lexicon = devdata.risk_lexicon()
    texts = np.asarray(posts["text"].to_list(), dtype=object)
    gold = np.asarray(posts["subreddit"].to_list(), dtype=object)
    y = gold == RISK_POSITIVE
    fold = folds_of(posts["post_id"].to_numpy(), gold.tolist(), 5, 0)
    base, ours = np.zeros(len(y)), np.zeros(len(y))
    t_base = t_ours = 0.0
    for k in range(5):
        tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        t = time.perf_counter()
        vec = TfidfVectorizer().fit(texts[tr])
        base[te] = LogisticRegression(max_iter=1000).fit(vec.transform(texts[tr]), y[tr]).predict_proba(vec.transform(texts[te]))[:, 1]
        t_base += time.perf_counter() - t
        t = time.perf_counter()
        model = fit(posts[tr], text="text", label="subreddit", spec=RISK_SPEC, c=RISK_C, class_weight=None, lexicon=lexicon)
        proba = model.predict_proba(_batch_of(model, posts[te]["text"], None, None))
        ours[te] = proba[:, model.classes.index(RISK_POSITIVE)]
        t_ours += time.perf_counter() - t
    dep = np.isin(gold, [RISK_POSITIVE, "depression"])
    print(f"\nReddit posts (n={len(y)}, {int(y.sum())} r/SuicideWatch), 5 folds by post, AUROC [95% CI]")
    for name, mask in (("against the other 26", np.ones(len(y), dtype=bool)), ("against r/depression", dep)):
        b, o = auroc_interval(base[mask], y[mask]), auroc_interval(ours[mask], y[mask])
        print(f"  {name:<22} TF-IDF + LR {b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}]   shipped recipe {o[0]:.3f} [{o[1]:.3f}, {o[2]:.3f}]"
              f"   beats: {'yes' if o[0] > b[0] else 'NO'}")  # fmt: skip
    print(f"time for 5 folds: baseline {t_base:.1f} s, shipped recipe {t_ours:.1f} s")


def _worktree(ref: str) -> Path:
    target = DATA / f"baseline_{ref}"
    if not target.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(target), ref], check=True, capture_output=True)
    return target


def _child(code_root: Path, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code_root), PE_NO_PROGRESS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, cwd=str(DATA), capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{code_root}: {' '.join(args[:1])} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _speed(messages: int, repeats: int, ref: str, rules_too: bool = False) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    conversations = messages // 8 + 1  # the generator averages about 7.9 messages per conversation
    source = DATA / f"learned_bench_{conversations}.jsonl.gz"
    if not source.exists():
        subprocess.run([sys.executable, "-m", "pe_toolkit", "synth", str(conversations), "--seed", "11", "--out", str(source)],
                       check=True, cwd=str(ROOT), env=dict(os.environ, PE_NO_PROGRESS="1"))  # fmt: skip
    codes = {"this checkout": ROOT, f"baseline {ref}": _worktree(ref)}
    if rules_too:
        codes["this checkout, rules only"] = ROOT
    templates = {}
    for name, root in codes.items():
        template = DATA / f"learned_bench_{name.split()[-1] if root != ROOT else 'checkout'}_{conversations}.duckdb"
        if not template.exists():
            _child(root, "import", str(template), str(source))
        templates[name] = template
    runs: dict[str, list[dict]] = {name: [] for name in codes}
    for r in range(repeats):
        for name, root in codes.items():  # alternating, so both see the same machine load
            work = DATA / "learned_bench_run.duckdb"
            for leftover in (work, work.with_name(work.name + ".wal")):
                leftover.unlink(missing_ok=True)
            shutil.copy(templates[name], work)
            result = _child(root, "analyze-rules" if name.endswith("rules only") else "analyze", str(work), str(source))
            runs[name].append(result)
            print(f"  run {r + 1} {name}: {result['messages']:,} messages in {result['seconds']:.1f} s (CPU {result['cpu']:.1f} s)", flush=True)
    print(f"\nanalyze(store) end to end, {conversations:,} synthetic conversations, medians of {repeats}:")
    med = {}
    for name, rs in runs.items():
        secs = statistics.median(x["seconds"] for x in rs)
        cpu = statistics.median(x["cpu"] for x in rs)
        med[name] = secs
        n = rs[0]["messages"]
        print(f"  {name:<24} {secs:7.1f} s  CPU {cpu:7.1f} s  {n / secs:>10,.0f} messages/s   [{rs[0]['version']}]")
    now, before = med["this checkout"], med[f"baseline {ref}"]
    print(f"  ratio: {now / before:.2f}x the time of {ref} (target: at most 1.25x)")
    if rules_too:
        rules = med["this checkout, rules only"]
        print(f"  the learned models' own share: {now / rules:.2f}x this checkout's rules alone; "
              f"the rules alone: {rules / before:.2f}x {ref} (what other issues added to them)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-ref", default="95b0608", help="the code to compare speed with (before the learned layer)")
    parser.add_argument("--skip-validity", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--rules-too", action="store_true",
                        help="also time this checkout without the learned models, to split the ratio in two")
    args = parser.parse_args()
    print(f"bench_learned {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if not args.skip_validity:
        try:
            from pe_toolkit.learn import devdata

            devdata.data_dir()
        except Exception as exc:  # noqa: BLE001 - the dev data is optional for the speed part
            print(f"validity skipped: {exc}")
        else:
            _skills_validity()
            _risk_validity()
    if not args.skip_speed:
        _speed(args.messages, args.repeats, args.baseline_ref, args.rules_too)


if __name__ == "__main__":
    main()

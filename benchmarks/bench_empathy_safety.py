"""Benchmark: the empathy and safety analyzers (and PII redaction) over 1 million
messages, against a reference polars regex pass and a per-message Python
baseline timed in the same run.

    .venv/bin/python benchmarks/bench_empathy_safety.py [--messages 1000000] [--repeats 3]

Printed (medians of ``--repeats``; wall and CPU time, because the machine is
shared and CPU time says what the work costs when other processes take the
cores):

- reference: one polars regular-expression pass over all messages, the unit
  the analysis target (all analyzers together >= 500,000 messages/s) is
  stated in;
- EMPATHY.score and SAFETY.score on the whole corpus, and where their time
  goes (cue pass with offsets, context rules, questions, output frames);
- ``redact_frame`` on the whole corpus;
- the baseline: Python ``re.finditer`` of the same lexicon alternations per
  message on a subset, extrapolated per message.

Data: synthetic conversations (``pe_toolkit.synth``, seed 11) until the
message count is reached, cached as Parquet in the temp folder.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl


def corpus(messages: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"pe_bench_empathy_safety_{messages}.parquet"
    if path.exists():
        return path
    from pe_toolkit import synth

    rows: list[tuple[str, int, str, str]] = []
    for conv in synth.generate(messages, seed=11):
        rows += [(conv["id"], i, m["role"], m["content"]) for i, m in enumerate(conv["messages"])]
        if len(rows) >= messages:
            break
    schema = {"conversation_id": pl.String, "idx": pl.Int32, "role": pl.String, "content": pl.String}
    pl.DataFrame(rows[:messages], schema=schema, orient="row").write_parquet(path)
    return path


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of all threads)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def stages(frame: pl.DataFrame, repeats: int) -> None:
    """Where the empathy analyzer's time goes."""
    from pe_toolkit.analysis import empathy
    from pe_toolkit.analysis.patterns.folding import fold_ascii
    from pe_toolkit.analysis.patterns.spans import find_spans

    rows = (frame["role"] == "assistant").arg_true()
    matcher, _ = empathy._cues()
    folded = matcher.prepare(fold_ascii(frame["content"].gather(rows))[0])
    print(f"  empathy stages over {len(rows):,} assistant messages:")
    for label, fn in (
        ("cue pass with offsets", lambda: find_spans(folded, matcher.regex)),
        ("cues incl. context rules", lambda: empathy.cue_spans(folded)),
        ("questions", lambda: empathy.exploration_spans(folded, empathy.cue_spans(folded.head(0)))),
    ):
        wall, cpu = timed(fn, repeats)
        print(f"    {label:<26} {wall:7.3f} s wall  {cpu:7.3f} s CPU")


def baseline(texts: list[str]) -> None:
    from pe_toolkit.analysis.patterns.lexicon import load_lexicon
    from pe_toolkit.analysis.patterns.translate import spaces_to_runs

    patterns = [
        re.compile("|".join(f"(?:{spaces_to_runs(e.pattern)})" for e in load_lexicon(name).entries), re.I)
        for name in ("empathy", "skills", "crisis", "responses", "pii")
    ]
    for text in texts:  # the per-message loop is the point of the baseline
        for pattern in patterns:
            for _ in pattern.finditer(text):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=4_000, help="messages in the baseline subset")
    args = parser.parse_args()

    from pe_toolkit.analysis.empathy import EMPATHY
    from pe_toolkit.analysis.pii import redact_frame
    from pe_toolkit.analysis.safety import SafetyAnalyzer

    frame = pl.read_parquet(corpus(args.messages))
    n = frame.height
    safety = SafetyAnalyzer(alert_threshold=0.8)
    print(f"corpus: {n:,} messages, {frame['conversation_id'].n_unique():,} conversations, {pl.thread_pool_size()} polars threads")
    EMPATHY.score(frame.head(5_000))  # warm-up: lexicons, compiled patterns, classification cache
    safety.score(frame.head(5_000))

    wall, cpu = timed(lambda: frame["content"].str.contains(r"(?i)\b(kill myself|suicid\w*|end my life|self[- ]harm)\b"), args.repeats)
    print(f"reference polars regex pass: {wall:.3f} s = {n / wall:,.0f} messages/s (CPU {cpu:.3f} s)")
    total_wall = total_cpu = 0.0
    for name, fn in (("empathy", lambda: EMPATHY.score(frame)), ("safety", lambda: safety.score(frame))):
        wall, cpu = timed(fn, args.repeats)
        total_wall += wall
        total_cpu += cpu
        print(f"{name:<8} {wall:7.3f} s = {n / wall:>10,.0f} messages/s   CPU {cpu:7.3f} s ({cpu / n * 1e6:.2f} us/message)")
        if name == "empathy":
            stages(frame, args.repeats)
    print(f"both     {total_wall:7.3f} s = {n / total_wall:>10,.0f} messages/s   CPU {total_cpu:7.3f} s "
          f"= {total_wall / (n / 3.5e6 if n else 1):.1f} reference passes at 3.5 M messages/s")  # fmt: skip
    wall, cpu = timed(lambda: redact_frame(frame), args.repeats)
    print(f"redact_frame: {wall:.3f} s = {n / wall:,.0f} messages/s (CPU {cpu:.3f} s)")

    texts = frame["content"].sample(min(args.baseline, n), seed=1).to_list()
    wall, _ = timed(lambda: baseline(texts), args.repeats)
    per = wall / len(texts)
    print(f"baseline (Python re per message, same lexicons, {len(texts):,} messages): {per * 1e6:.1f} us/message "
          f"= {1 / per:,.0f} messages/s; analyzers are {per * n / total_wall:.1f}x faster")  # fmt: skip


if __name__ == "__main__":
    main()

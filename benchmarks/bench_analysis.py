"""Benchmark: every analyzer together over 1 million messages, against a
per-message Python baseline timed in the same run.

    .venv/bin/python benchmarks/bench_analysis.py [--messages 1000000] [--batch 250000] [--repeats 3]

What it measures (medians of ``--repeats`` runs; the machine is noisy):

- reference: one polars regular-expression pass over all messages (the
  unit the targets are stated in);
- each analyzer alone, in run order, on the whole corpus (one thread);
- all analyzers together through ``analyze_frame`` in batches of
  ``--batch`` messages (the path ``analyze(store)`` takes, threads on), then
  the corpus-level duplicate shares over all of them (run once per
  ``analyze``);
- the baseline: per message, the reference ``vaderSentiment`` scorer plus
  Python ``re`` (every match of one alternation per lexicon family of the
  empathy and safety analyzers when installed, otherwise of the stand-in
  patterns below), on ``--baseline`` messages, extrapolated per message;
- peak RSS of a fresh process scoring the corpus with small and large
  batches (batching is what bounds memory).

Data: synthetic conversations (``pe_toolkit.synth``, seed 11) until
the message count is reached, cached as Parquet in the temp folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

# Stand-in for the empathy and safety analyzers' patterns when their modules
# are not installed: the kind of per-message regular expressions a naive
# implementation runs (crisis phrases, empathy phrases, questions, PII).
STAND_IN_PATTERNS = [
    r"\b(kill(ing)? myself|end (it all|my life)|suicid\w*|want to die|better off dead)\b",
    r"\b(cut(ting)? myself|self[- ]harm|hurt(ing)? myself|overdose)\b",
    r"\b(hit|hurt|kill) (him|her|them|someone)\b",
    r"\b(he|she|they) (hits?|hurts?|threaten\w*) me\b",
    r"\b(not|never|don't|didn't|wouldn't) (want to )?(kill|hurt|die)\b",
    r"\b(if I|what if|imagine|in the (movie|book|show))\b",
    r"\b(I'm so sorry|that sounds (really )?(hard|painful|difficult)|my heart goes out)\b",
    r"\b(it sounds like|I'm hearing|you feel|you're feeling|so you)\b",
    r"\b(what|how|when|where|why|who)\b[^?]*\?",
    r"\b(do|does|did|are|is|can|could|would|have|has)\b[^?]*\?",
    r"\b(you should|you need to|just (stop|try|do)|have you tried)\b",
    r"\b(that's (understandable|valid)|makes sense|anyone would)\b",
    r"\b(988|crisis (line|text)|samaritans|911|emergency services|hotline)\b",
    r"\b(therapist|counsell?or|doctor|GP|professional help)\b",
    r"\b(are you safe|thoughts of (suicide|ending)|plan to)\b",
    r"\b(just get over it|stop complaining|it's not that bad|overreacting)\b",
    r"\b(you (have|might have) (depression|bipolar|ptsd|anxiety disorder))\b",
    r"\b(take \d+ ?mg|double (your|the) dose|stop taking)\b",
    r"[\w.+-]+@[\w-]+\.[\w.]+",
    r"\b\d{3}[-. ]?\d{3}[-. ]?\d{4}\b",
    r"\b\d{1,5} \w+ (street|st|road|rd|avenue|ave|lane|ln)\b",
    r"https?://\S+",
]


def corpus(messages: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"pe_bench_analysis_{messages}.parquet"
    if path.exists():
        return path
    from pe_toolkit import synth

    rows: list[tuple[str, int, str, str]] = []
    for conv in synth.generate(messages, seed=11):
        rows += [(conv["id"], i, m["role"], m["content"]) for i, m in enumerate(conv["messages"])]
        if len(rows) >= messages:
            break
    schema = {"conversation_id": pl.String, "idx": pl.Int32, "role": pl.String, "content": pl.String}
    pl.DataFrame(rows, schema=schema, orient="row").write_parquet(path)
    return path


CPU_SECONDS: dict[str, float] = {}


def timed(fn, repeats: int, label: str = "") -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` runs; the median CPU time (all threads)
    goes to CPU_SECONDS[label]: on a shared machine it says what the work
    costs even when other processes take the cores."""
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if label:
        CPU_SECONDS[label] = statistics.median(cpu)
    return statistics.median(times), times


def batches(frame: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    """Slices of about ``size`` messages, cut at conversation boundaries."""
    from pe_toolkit.analysis.segments import Segments

    starts = Segments.of(frame).starts
    out, at = [], 0
    while at < frame.height:
        end = at + size
        if end >= frame.height:
            out.append(frame.slice(at))
            break
        cut = int(starts[min(int(starts.searchsorted(end)), len(starts) - 1)])
        cut = cut if cut > at else frame.height
        out.append(frame.slice(at, cut - at))
        at = cut
    return out


def analyze_batches(frame: pl.DataFrame, size: int, keys: list[pl.DataFrame] | None = None) -> int:
    """Score every batch (as ``analyze(store)`` does, without the store);
    ``keys`` collects the duplicate keys for the corpus step."""
    from pe_toolkit.analysis import analyze_frame

    rows = 0
    for part in batches(frame, size):
        scores = analyze_frame(part, corpus=False)
        rows += scores.messages.height
        if keys is not None:
            keys.append(scores.messages.select("conversation_id", "idx", "text_hash", "minhash_bands"))
    return rows


def baseline_patterns() -> tuple[str, list[re.Pattern[str]]]:
    """One Python regex per lexicon family of the empathy and safety
    analyzers (their own entries, as an alternation) when installed;
    otherwise the stand-in patterns."""
    try:
        from importlib import resources

        from pe_toolkit.analysis.patterns.lexicon import load_lexicon
        from pe_toolkit.analysis.patterns.translate import spaces_to_runs

        folder = resources.files("pe_toolkit.analysis").joinpath("lexicons")
        names = sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".toml"))
        compiled = []
        for name in names:
            entries = load_lexicon(name).entries
            if entries:
                alternation = "|".join(f"(?:{spaces_to_runs(e.pattern)})" for e in entries)
                compiled.append(re.compile(rf"\b(?:{alternation})\b", re.I))
        if compiled:
            return f"the analyzers' lexicons ({', '.join(names)})", compiled
    except (ImportError, AttributeError):
        pass
    return "stand-in patterns", [re.compile(p, re.I) for p in STAND_IN_PATTERNS]


def baseline(texts: list[str]) -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    sia = SentimentIntensityAnalyzer()
    _, patterns = baseline_patterns()
    for text in texts:  # the per-message loop is the point of the baseline
        sia.polarity_scores(text)
        for pattern in patterns:
            for _ in pattern.finditer(text):
                pass


def _peak_rss_mib() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec, so a
    # child started by a big parent would report the parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_child(data: Path, size: int) -> None:
    frame = pl.read_parquet(data)
    loaded = _peak_rss_mib()
    start = time.perf_counter()
    rows = analyze_batches(frame, size)
    seconds = time.perf_counter() - start
    print(json.dumps({"batch": size, "rows": rows, "seconds": seconds, "peak_rss_mib": _peak_rss_mib(), "after_load_mib": loaded}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=4_000, help="messages in the baseline subset")
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.data, args.rss_child)
        return

    from pe_toolkit.analysis import analyze_frame
    from pe_toolkit.analysis.base import Batch, check_messages
    from pe_toolkit.analysis.registry import load

    data = corpus(args.messages)
    frame = check_messages(pl.read_parquet(data))
    n = frame.height
    registry = load()
    print(f"corpus: {n:,} messages, {frame['conversation_id'].n_unique():,} conversations; analyzers: "
          f"{', '.join(registry.names)}")
    analyze_frame(frame.head(2_000))  # warm-up: lexicons, compiled patterns

    ref, _ = timed(lambda: frame["content"].str.contains(r"(?i)\b(kill myself|suicid\w*|end my life|self[- ]harm)\b"), args.repeats, "regex")
    print(f"reference polars regex pass: {ref:.3f} s = {n / ref:,.0f} messages/s")

    print("each analyzer alone (one thread, whole corpus):")
    per: dict[str, list[float]] = {a.name: [] for a in registry.analyzers}
    per_cpu: dict[str, list[float]] = {a.name: [] for a in registry.analyzers}
    for _ in range(args.repeats):
        batch = Batch(frame)
        for analyzer in registry.analyzers:
            start, start_cpu = time.perf_counter(), time.process_time()
            batch.results[analyzer.name] = analyzer.score(batch)
            per[analyzer.name].append(time.perf_counter() - start)
            per_cpu[analyzer.name].append(time.process_time() - start_cpu)
        del batch
    for name, times in per.items():
        t, c = statistics.median(times), statistics.median(per_cpu[name])
        print(f"  {name:<10} {t:7.3f} s  {n / t:>12,.0f} messages/s   CPU {c:7.3f} s ({c / n * 1e6:.2f} us/message)")

    keys: list[pl.DataFrame] = []
    together, runs = timed(lambda: (keys.clear(), analyze_batches(frame, args.batch, keys)), args.repeats, "together")
    cpu = CPU_SECONDS["together"]
    print(f"all analyzers, batches of {args.batch:,}, threads on: {together:.3f} s = {n / together:,.0f} messages/s "
          f"(runs: {', '.join(f'{t:.2f}' for t in runs)}); CPU {cpu:.1f} s = {cpu / n * 1e6:.2f} us/message, "
          f"{n / (cpu / (os.cpu_count() or 1)):,.0f} messages/s if every core were free")
    from pe_toolkit.analysis.duplicates import corpus_shares

    all_keys = pl.concat(keys)
    shares, _ = timed(lambda: corpus_shares(all_keys), args.repeats, "corpus")
    print(f"corpus duplicate shares over all {n:,} messages (once per analyze run): {shares:.3f} s")

    texts = frame["content"].sample(min(args.baseline, n), seed=1).to_list()
    label, patterns = baseline_patterns()
    base, _ = timed(lambda: baseline(texts), args.repeats, "baseline")
    per_message = base / len(texts)
    print(f"baseline (reference VADER + {len(patterns)} re patterns per message, {label}), {len(texts):,} messages: "
          f"{len(texts) / base:,.0f} messages/s")
    vader_only, _ = timed(lambda: baseline_vader(texts), 1)
    print(f"  of which reference VADER alone: {len(texts) / vader_only:,.0f} messages/s")
    speedup = per_message * n / together
    cpu_speedup = (CPU_SECONDS["baseline"] / len(texts)) / (CPU_SECONDS["together"] / n)
    print(f"speed-up, all analyzers vs baseline: {speedup:,.0f}x wall clock, {cpu_speedup:,.0f}x CPU per message")
    print(f"target: >= 500,000 messages/s -> {'met' if n / together >= 500_000 else 'NOT met'} "
          f"({n / together / 500_000:.0%} of target); >= 100x baseline -> {'met' if speedup >= 100 else 'NOT met'}")

    print("peak RSS of a fresh process (input frame included):")
    for size in (100_000, n):
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(size), "--data", str(data)],
            capture_output=True, text=True, check=True, env={**os.environ, "PE_NO_PROGRESS": "1"},
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  batches of {size:>9,}: {result['peak_rss_mib']:8.0f} MiB (input loaded: {result['after_load_mib']:.0f} MiB), {result['seconds']:.2f} s")


def baseline_vader(texts: list[str]) -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    sia = SentimentIntensityAnalyzer()
    for text in texts:
        sia.polarity_scores(text)


if __name__ == "__main__":
    main()

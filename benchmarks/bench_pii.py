"""Benchmark: the PII scan on ordinary messages and on adversarial ones.

    .venv/bin/python benchmarks/bench_pii.py [--messages 200000] [--repeats 3] [--sizes 250000,500000,1000000,2000000]

What it measures (medians of ``--repeats`` runs; the machine is shared and noisy):

- the analysis path: ``pii_spans`` (what ``SafetyAnalyzer`` runs inside
  ``analyze()``) and the whole ``SafetyAnalyzer.score`` over ``--messages``
  synthetic messages (``pe_toolkit.synth``, seed 11, the corpus
  ``bench_analysis.py`` caches);
- the export path: ``redact_frame`` over the same messages (names included);
  wall and CPU seconds (CPU is steadier on a shared machine);
- adversarial single messages of each PII kind at each of ``--sizes``
  characters (a run of digits, of digits in pairs, of ``a.``, of ``a@``, of
  ``www.a``, of capitalised words, of digit words, of dotted quads...):
  ``redact()`` time per size, so a quadratic pattern shows as a time that
  quadruples when the size doubles.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_analysis import corpus

ADVERSARIAL: dict[str, str] = {
    "digit run": "7",
    "digit pairs": "12 ",
    "phone-ish groups": "555-",
    "dotted digits": "1.",
    "email local": "a.",
    "email at": "a@",
    "obfuscated email": "a at b ",
    "url": "www.a",
    "domain labels": "ab.",
    "address words": "12 Elm ",
    "postcode-ish": "NW1 ",
    "dotted quad": "10.0.",
    "capitalised words": "Sarah ",
    "name cues": "my son Tom ",
    "digit words": "five ",
    "iban-ish": "GB82 ",
    "handles": "@jo_",
}


def timed(fn, repeats: int) -> float:
    return timed_cpu(fn, repeats)[0]


def timed_cpu(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU (all threads) seconds: CPU time is steadier on a
    machine shared with other work."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="250000,500000,1000000,2000000")
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--skip-adversarial", action="store_true")
    args = parser.parse_args()

    from pe_toolkit.analysis.patterns.folding import fold_ascii
    from pe_toolkit.analysis.pii import pii_spans, redact, redact_frame
    from pe_toolkit.analysis.safety import SafetyAnalyzer

    if not args.skip_corpus:
        frame = pl.read_parquet(corpus(args.messages))
        content = frame["content"].fill_null("")
        folded, _ = fold_ascii(content)
        pii_spans(folded.head(1000), content.head(1000))  # compile the regexes once
        analyzer = SafetyAnalyzer()
        print(f"{frame.height:,} synthetic messages")
        for label, fn in (
            ("pii_spans (analysis path)", lambda: pii_spans(folded, content)),
            ("SafetyAnalyzer.score", lambda: analyzer.score(frame)),
            ("redact_frame (export)", lambda: redact_frame(frame)),
        ):
            wall, cpu = timed_cpu(fn, args.repeats)
            print(f"  {label:<26} {wall:7.3f} s wall {cpu:7.3f} s CPU")
    if not args.skip_adversarial:
        sizes = [int(s) for s in args.sizes.split(",")]
        print("adversarial single messages, redact() seconds per size:")
        print(f"  {'kind':<18}" + "".join(f"{s:>11,}" for s in sizes))
        for kind, unit in ADVERSARIAL.items():
            row = []
            for size in sizes:
                text = unit * (size // len(unit))
                row.append(timed(lambda text=text: redact(text), 1))
                if row[-1] > 60:
                    break  # quadratic: the larger sizes would take minutes
            print(f"  {kind:<18}" + "".join(f"{t:11.3f}" for t in row), flush=True)


if __name__ == "__main__":
    main()

"""Benchmark: one very long message through the analyzers, this checkout
against a baseline ref, in the same run.

    .venv/bin/python benchmarks/bench_long_messages.py [--baseline-ref 5317142] [--sizes 500,1000,2000]
        [--emoji-sizes 2000,4000,8000]

A pasted transcript or a log can make one message hundreds of thousands of
characters long. Each run is a fresh child process (its own peak RSS):
``analyze_frame`` of a two-message conversation whose reply is a paragraph
with questions, cues, a crisis line and an emoji repeated ``size`` times,
and sentiment alone on an emoji-dense text of the same length. Printed per
size: wall seconds and peak RSS for both codes, and how each grows when the
size doubles (2x: linear; 4x: quadratic). The baseline (default 5317142,
before the long-message fixes) runs in a git worktree under
benchmarks/.data, as bench_learned.py's does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench_learned import DATA, ROOT, _worktree  # the baseline's git worktree, made once for both benchmarks

PARAGRAPH = "I hear you 😊. That sounds really hard, doesn't it? How are you feeling about it? Are you safe? Please call 988. "
EMOJI_LINE = "I am happy 😀 but sad 😢, "

CHILD = r"""
import json, resource, sys, time
import polars as pl
kind, size, paragraph, emoji_line = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
started = time.perf_counter()
if kind == "reply":
    from pe_toolkit.analysis import analyze_frame
    frame = pl.DataFrame({"conversation_id": ["a", "a"], "idx": pl.Series([0, 1], dtype=pl.Int32),
                          "role": ["user", "assistant"], "content": ["I feel sad. " * size, paragraph * size]})
    rows = analyze_frame(frame).evidence.height
else:
    from pe_toolkit.analysis.sentiment import SENTIMENT
    frame = pl.DataFrame({"conversation_id": ["a"], "idx": pl.Series([0], dtype=pl.Int32), "role": ["user"],
                          "content": [emoji_line * (4 * size)]})
    rows = SENTIMENT.score(frame).evidence.height
print(json.dumps({"seconds": time.perf_counter() - started, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "evidence": rows}))
"""


def _child(code_root: Path, kind: str, size: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code_root), PE_NO_PROGRESS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(size), PARAGRAPH, EMOJI_LINE], env=env, cwd=str(DATA),
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    if out.returncode:
        return {"failed": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-ref", default="5317142")
    # The baseline's reply needs about 3 GB at 2,000 repeats and 12 GB at 4,000.
    parser.add_argument("--sizes", default="500,1000,2000", help="reply: paragraph repeats (x 112 characters)")
    parser.add_argument("--emoji-sizes", default="2000,4000,8000", help="emoji-dense text: repeats (x 96 characters)")
    args = parser.parse_args()
    sizes = {"reply": [int(s) for s in args.sizes.split(",")], "emoji": [int(s) for s in args.emoji_sizes.split(",")]}
    codes = {"this checkout": ROOT, f"baseline {args.baseline_ref}": _worktree(args.baseline_ref)}
    print(f"bench_long_messages, {os.cpu_count()} CPUs")
    for kind, what in (("reply", "analyze_frame, one long reply"), ("emoji", "sentiment, one emoji-dense message")):
        print(f"\n{what}:")
        print(f"  {'characters':>11}  " + "  ".join(f"{name:>32}" for name in codes))
        previous: dict[str, dict] = {}
        for size in sizes[kind]:
            chars = len(PARAGRAPH) * size if kind == "reply" else len(EMOJI_LINE) * 4 * size
            cells = []
            for name, root in codes.items():
                got = _child(root, kind, size)
                if "failed" in got:
                    cells.append(f"{'failed: ' + got['failed'][:24]:>32}")
                    previous.pop(name, None)
                    continue
                growth = ""
                if name in previous:
                    growth = f" (x{got['seconds'] / max(previous[name]['seconds'], 1e-9):.1f})"
                cells.append(f"{got['seconds']:>7.2f} s{growth:<7} {got['rss_mb']:>7.0f} MB {got['evidence']:>7,} ev")
                previous[name] = got
            print(f"  {chars:>11,}  " + "  ".join(cells))
    print("\n(x: time against the previous size; doubling the size gives about x2 when linear, x4 when quadratic)")


if __name__ == "__main__":
    main()

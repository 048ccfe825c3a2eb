"""Benchmark: the PII scan on ordinary messages and on adversarial ones.

    .venv/bin/python benchmarks/bench_pii.py [--messages 200000] [--repeats 3] [--sizes 250000,500000,1000000,2000000]
        [--scrub-ids 200000] [--scrub-synth 200000] [--synth-cache PATH]

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
  quadruples when the size doubles;
- ``report --redact``'s id scrubber (``report._id_scrubber``) on a cache of
  ``--scrub-ids`` conversations, half of them with an e-mail as id (each
  flagged): the whole build, then its forms stage and one page's scrub
  against the baseline in the same run (the Python loop over flagged ids and
  the patterns passed as Python lists, as before), outputs compared; then
  its three later steps against what they replaced, outputs compared: the
  keyed hash of the flagged ids (``Pseudonyms.many`` against ``hmac.new``
  per id), one page scrubbed with the forms it can hold
  (``report_scrub.FormMatcher``, its one-time build shown apart) against
  all forms, and, on a cache of ``--scrub-synth`` synthetic conversations
  (``--synth-cache PATH`` keeps it between runs), the query for ids said in
  their own conversation against the tokenising query it replaced.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
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


def baseline_forms(plain: dict[str, str]) -> tuple[list[str], list[str]]:
    """The scrubber's forms as built before: a Python loop over the texts
    (the tests' oracle, ``tests/test_report_scrub_forms.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.test_report_scrub_forms import _loop_forms

    return _loop_forms(plain)


def bench_scrubber(n: int, repeats: int) -> None:
    import orjson

    from pe_toolkit.exports.redact import Pseudonyms
    from pe_toolkit.ingest import import_file
    from pe_toolkit.report import _id_scrubber, _scrub_forms
    from pe_toolkit.store import Store

    names = ["priya", "sam", "jo", "amara", "tom", "lee"]
    ids = [f"client.{names[i % 6]}{i}@example.org" if i % 2 == 0 else f"s{i:07d}" for i in range(n)]
    pseudonyms = Pseudonyms(b"k" * 32)
    with tempfile.TemporaryDirectory() as tmp:
        data, cache = Path(tmp) / "ids.jsonl", Path(tmp) / "ids.duckdb"
        data.write_bytes(b"".join(orjson.dumps({"id": cid, "dataset": "clinic", "messages": [
            {"role": "user", "content": "I have been struggling to sleep."},
            {"role": "assistant", "content": "That sounds exhausting. What keeps you awake?"}]}) + b"\n" for cid in ids))  # fmt: skip
        with Store(cache) as store:
            import_file(store, data, progress=False)
        _id_scrubber(cache, pseudonyms)  # the PII scan's lexicons, loaded once
        print(f"report id scrubber, {n:,} conversations ({n - n // 2:,} ids flagged):")
        wall, cpu = timed_cpu(lambda: _id_scrubber(cache, pseudonyms), repeats)
        print(f"  {'_id_scrubber (whole build)':<34} {wall:7.3f} s wall {cpu:7.3f} s CPU")
    plain = {v: pseudonyms.of(v) for v in ids if "@" in v}
    now = _scrub_forms(plain)
    before = baseline_forms(plain)
    assert (now[0].to_list(), now[1].to_list()) == before, "the forms differ from the baseline's"
    for label, fn in (("forms, baseline (loop)", lambda: baseline_forms(plain)), ("forms, now (columnar)", lambda: _scrub_forms(plain))):
        wall, cpu = timed_cpu(fn, repeats)
        print(f"  {label:<34} {wall:7.3f} s wall {cpu:7.3f} s CPU  ({len(before[0]):,} forms)")
    page = " ".join(f"<td>{i}</td>" for i in ids[:2000]) + " x" * 500_000
    from pe_toolkit.report_scrub import replace_leftmost

    results = {}
    ways = (
        ("page scrub, baseline (lists)", lambda: pl.Series([page]).str.replace_many(*before, leftmost=True)[0]),
        ("page scrub, now (list columns)", lambda: replace_leftmost(page, *now)),
    )
    for label, way in ways:
        def scrub(way=way, label=label) -> None:
            results[label] = way()

        wall, cpu = timed_cpu(scrub, repeats)
        print(f"  {label:<34} {wall:7.3f} s wall {cpu:7.3f} s CPU  ({len(page) / 1e6:.1f} MB page)")
    assert len(set(results.values())) == 1, "the scrubbed pages differ"

    import hashlib
    import hmac

    from pe_toolkit.report_scrub import FormMatcher

    flagged = list(plain)
    hashed = {}
    for label, fn in (
        ("keyed hash, baseline (hmac.new)", lambda: [hmac.new(b"k" * 32, v.encode(), hashlib.sha256).hexdigest()[:20] for v in flagged]),
        ("keyed hash, now (Pseudonyms.many)", lambda: [p[len("pseudo_"):] for p in pseudonyms.many(flagged)]),
    ):
        hashed[label] = fn()
        wall, cpu = timed_cpu(fn, repeats)
        print(f"  {label:<34} {wall:7.3f} s wall {cpu:7.3f} s CPU  ({len(flagged):,} ids)")
    assert len({tuple(v) for v in hashed.values()}) == 1, "the pseudonyms differ"
    wall, cpu = timed_cpu(lambda: FormMatcher(*now), repeats)
    print(f"  {'FormMatcher build (once)':<34} {wall:7.3f} s wall {cpu:7.3f} s CPU")
    matcher = FormMatcher(*now)
    scrubbed = {}

    def held() -> None:
        scrubbed["held"] = matcher(page)

    wall, cpu = timed_cpu(held, repeats)
    print(f"  {'page scrub, now (forms it holds)':<34} {wall:7.3f} s wall {cpu:7.3f} s CPU  ({int(matcher.forms_in(page).sum()):,} forms)")
    assert scrubbed["held"] == results["page scrub, now (list columns)"], "the scrubbed pages differ"


def bench_named_query(n: int, path: str | None, repeats: int) -> None:
    """The query for ids said in their own conversation, on synthetic
    conversations (every id holds the word "syn", their metadata says
    "synthetic"), against the tokenising query it replaced."""
    from pe_toolkit import synth
    from pe_toolkit.ingest import import_file
    from pe_toolkit.report import _IDS_SAYING_THEIR_WORDS
    from pe_toolkit.store import Store

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.test_report_id_scrubber import _TOKENISING

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(path) if path else Path(tmp) / "synth.duckdb"
        if not cache.exists():
            data = Path(tmp) / "synth.jsonl"
            synth.write(data, n, seed=7, progress=False)
            with Store(cache) as store:
                import_file(store, data, progress=False)
        with Store(cache, read_only=True) as store:
            count = store.scalar("SELECT count(*) FROM conversations")
            print(f"ids said in their conversation, {count:,} synthetic conversations:")
            found = {}
            for label, query in (("query, baseline (tokenising)", _TOKENISING), ("query, now (split at the word)", _IDS_SAYING_THEIR_WORDS)):
                def run(query=query, label=label) -> None:
                    found[label] = store.sql(query)

                wall, cpu = timed_cpu(run, repeats)
                print(f"  {label:<34} {wall:7.3f} s wall {cpu:7.3f} s CPU")
            first, second = found.values()
            assert first.equals(second), "the queries' rows differ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="250000,500000,1000000,2000000")
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--skip-adversarial", action="store_true")
    parser.add_argument("--scrub-ids", type=int, default=200_000, help="conversations in the id scrubber's cache (0: skip)")
    parser.add_argument("--scrub-synth", type=int, default=200_000, help="synthetic conversations for the named-ids query (0: skip)")
    parser.add_argument("--synth-cache", help="a cache file to keep the synthetic conversations in between runs")
    args = parser.parse_args()

    if args.scrub_ids:
        bench_scrubber(args.scrub_ids, args.repeats)
    if args.scrub_synth:
        bench_named_query(args.scrub_synth, args.synth_cache, args.repeats)

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

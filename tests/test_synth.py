"""Tests of the synthetic conversation generator (pe_toolkit.synth).

The generator is the ground truth for every analyzer test, so these tests check that
what metadata["synthetic"] claims is really in the messages, that rates match the
config, and that generation is deterministic and chunkable.
"""

from __future__ import annotations

import gzip
import itertools
import math
import re
import statistics
import string
from collections import Counter
from datetime import datetime

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from pe_toolkit.schema import HARM_KINDS, QUALITY_METRICS, SKILL_CODES
from pe_toolkit.synth import (
    CRISIS_CATEGORIES,
    DATASETS,
    TIERS,
    TOPICS,
    SynthConfig,
    build as synth_build,
    generate,
    write,
)
from pe_toolkit.synth.phrases import parts, to_second_person

METRICS = QUALITY_METRICS
FRAMINGS = {"first_person", "negated", "third_person", "hypothetical", "quotation", "past"}
PII_KINDS = {"email", "phone", "address", "url", "id_number", "date_of_birth"}
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return list(generate(5000, seed=11))


@pytest.fixture(scope="module")
def sample(corpus: list[dict]) -> list[dict]:
    return corpus[:2000]


def truth(conv: dict) -> dict:
    return conv["metadata"]["synthetic"]


def share(convs: list[dict], pred) -> float:
    return sum(1 for c in convs if pred(c)) / len(convs)


def assert_rate(observed: float, expected: float, n: int, shortfall: float = 0.0) -> None:
    """Within 4.5 binomial standard errors; `shortfall` allows a known small deficit."""
    tol = 4.5 * math.sqrt(expected * (1 - expected) / n) + 1e-9
    assert expected - tol - shortfall <= observed <= expected + tol, (observed, expected, tol)


# ------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_conversations() -> None:
    assert list(generate(200, seed=5)) == list(generate(200, seed=5))


def test_chunks_equal_one_pass() -> None:
    whole = list(generate(300, seed=3))
    chunks = [c for begin, size in ((0, 120), (120, 100), (220, 80)) for c in generate(size, seed=3, start=begin)]
    assert chunks == whole
    assert list(generate(1, seed=3, start=257)) == [whole[257]]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=-(2**40), max_value=2**40), i=st.integers(min_value=0, max_value=10**8))
def test_conversation_depends_only_on_seed_and_index(seed: int, i: int) -> None:
    alone = next(generate(1, seed=seed, start=i))
    in_chunk = list(generate(3, seed=seed, start=max(0, i - 1)))
    assert alone in in_chunk
    assert_valid(alone)


def test_different_seeds_differ() -> None:
    a, b = list(generate(50, seed=0)), list(generate(50, seed=1))
    assert [c["messages"] for c in a] != [c["messages"] for c in b]
    assert sum(x["messages"] == y["messages"] for x, y in zip(a, b, strict=True)) == 0


def test_ids_depend_on_seed_and_index() -> None:
    assert [c["id"] for c in generate(2, seed=0, start=41)] == ["conv_0000041", "conv_0000042"]
    assert next(generate(1, seed=7, start=3))["id"] == "syn7_0000003"
    assert truth(next(generate(1, seed=7, start=3)))["index"] == 3


def test_config_changes_output_but_not_ids() -> None:
    default = list(generate(30, seed=2))
    crisisy = list(generate(30, seed=2, config=SynthConfig(crisis_rate=1.0)))
    assert [c["id"] for c in default] == [c["id"] for c in crisisy]
    assert all(any(x["flag"] for x in truth(c)["crisis"]) for c in crisisy)


# ----------------------------------------------------------------- record validity


def assert_valid(conv: dict) -> None:
    assert set(conv) == {"id", "messages", "quality_metrics", "metadata"}
    msgs = conv["messages"]
    assert len(msgs) >= 4
    stamps = []
    for m in msgs:
        assert set(m) == {"role", "content", "timestamp"}
        assert m["role"] in {"user", "assistant", "system"}
        assert isinstance(m["content"], str)
        assert TS.match(m["timestamp"]), m["timestamp"]
        stamps.append(datetime.strptime(m["timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    assert all(a < b for a, b in itertools.pairwise(stamps)), "timestamps must increase"
    assert all(m["role"] != "system" for m in msgs[1:]), "a system message only comes first"
    qm = conv["quality_metrics"]
    assert list(qm) == list(METRICS)
    for v in qm.values():
        assert isinstance(v, float) and 0.0 <= v <= 1.0 and round(v, 3) == v
    md = conv["metadata"]
    assert md["dataset"] in DATASETS and md["tier"] in TIERS and md["topic"] in TOPICS
    assert md["length"] == len(msgs)
    assert md["created_at"] == msgs[0]["timestamp"]
    assert 2024 <= stamps[0].year <= 2026
    t = md["synthetic"]
    assert t["version"] == 1 and t["topic"] == md["topic"]
    for section in ("empathy", "skills", "crisis", "responses", "harms", "pii", "defects"):
        indices = [rec["message_index"] for rec in t[section]]
        assert indices == sorted(indices)
        assert all(0 <= k < len(msgs) for k in indices)
    assert msgs[-1]["role"] == "assistant"
    # Without a role-order defect, roles alternate user/assistant after the system message.
    if not any(d["kind"] == "role_order" for d in t["defects"]):
        body = [m["role"] for m in msgs if m["role"] != "system"]
        assert body == ["user", "assistant"] * (len(body) // 2)


def test_every_record_is_valid(corpus: list[dict]) -> None:
    for conv in corpus:
        assert_valid(conv)


def test_records_serialize_with_orjson(sample: list[dict]) -> None:
    for conv in sample[:200]:
        assert orjson.loads(orjson.dumps(conv)) == conv


def test_lengths(corpus: list[dict]) -> None:
    lengths = [c["metadata"]["length"] for c in corpus]
    assert 7.5 <= statistics.mean(lengths) <= 8.5
    assert min(lengths) >= 4 and max(lengths) <= 18
    assert share(corpus, lambda c: 4 <= c["metadata"]["length"] <= 16) > 0.97


def test_created_at_spread_over_three_years(corpus: list[dict]) -> None:
    years = Counter(c["metadata"]["created_at"][:4] for c in corpus)
    assert set(years) == {"2024", "2025", "2026"}
    assert min(years.values()) > 0.25 * len(corpus)


def test_distributions_cover_vocabularies(corpus: list[dict]) -> None:
    tiers = Counter(c["metadata"]["tier"] for c in corpus)
    for tier, weight in zip(TIERS, SynthConfig().tier_weights, strict=True):
        assert_rate(tiers[tier] / len(corpus), weight, len(corpus))
    assert set(Counter(c["metadata"]["dataset"] for c in corpus)) == set(DATASETS)
    assert set(Counter(c["metadata"]["topic"] for c in corpus)) == set(TOPICS)


# -------------------------------------------------------------------- planted rates


def test_default_rates(corpus: list[dict]) -> None:
    cfg, n = SynthConfig(), len(corpus)
    assert_rate(share(corpus, lambda c: any(x["flag"] for x in truth(c)["crisis"])), cfg.crisis_rate, n)
    assert_rate(share(corpus, lambda c: any(not x["flag"] for x in truth(c)["crisis"])), cfg.decoy_crisis_rate, n)
    assert_rate(share(corpus, lambda c: bool(truth(c)["pii"])), cfg.pii_rate, n)
    assert_rate(share(corpus, lambda c: c["messages"][0]["role"] == "system"), cfg.system_prompt_rate, n)
    for kind, rate in (("empty_turn", cfg.empty_turn_rate), ("repeated_turn", cfg.repeated_turn_rate),
                       ("role_order", cfg.role_order_rate)):  # fmt: skip
        observed = share(corpus, lambda c, k=kind: any(d["kind"] == k for d in truth(c)["defects"]))
        assert_rate(observed, rate, n, shortfall=0.1 * rate)


def test_configured_rates_are_honoured() -> None:
    cfg = SynthConfig(crisis_rate=0.5, decoy_crisis_rate=0.3, pii_rate=0.6, empty_turn_rate=0.2,
                      repeated_turn_rate=0.2, role_order_rate=0.2, system_prompt_rate=0.5)  # fmt: skip
    convs, n = list(generate(3000, seed=4, config=cfg)), 3000
    assert_rate(share(convs, lambda c: any(x["flag"] for x in truth(c)["crisis"])), 0.5, n)
    assert_rate(share(convs, lambda c: any(not x["flag"] for x in truth(c)["crisis"])), 0.3, n)
    assert_rate(share(convs, lambda c: bool(truth(c)["pii"])), 0.6, n)
    assert_rate(share(convs, lambda c: c["messages"][0]["role"] == "system"), 0.5, n)
    for kind in ("empty_turn", "repeated_turn", "role_order"):
        observed = share(convs, lambda c, k=kind: any(d["kind"] == k for d in truth(c)["defects"]))
        assert_rate(observed, 0.2, n, shortfall=0.03)


def test_zero_rates_plant_nothing() -> None:
    cfg = SynthConfig(crisis_rate=0, decoy_crisis_rate=0, pii_rate=0, empty_turn_rate=0,
                      repeated_turn_rate=0, role_order_rate=0, system_prompt_rate=0)  # fmt: skip
    for conv in generate(500, seed=9, config=cfg):
        t = truth(conv)
        assert not (t["crisis"] or t["responses"] or t["pii"] or t["defects"])
        assert conv["messages"][0]["role"] == "user"
        assert all(m["content"] for m in conv["messages"])


def test_defects_only_in_lower_tiers(corpus: list[dict]) -> None:
    for conv in corpus:
        if conv["metadata"]["tier"] in ("clinical", "research"):
            assert truth(conv)["defects"] == []


# ------------------------------------------------------- ground truth is really there


def test_pii_text_is_in_the_named_message(corpus: list[dict]) -> None:
    kinds: Counter[str] = Counter()
    for conv in corpus:
        for rec in truth(conv)["pii"]:
            assert rec["kind"] in PII_KINDS
            assert rec["text"] and rec["text"] in conv["messages"][rec["message_index"]]["content"]
            kinds[rec["kind"], conv["messages"][rec["message_index"]]["role"]] += 1
    assert {k for k, _ in kinds} == PII_KINDS
    assert kinds["url", "assistant"] > 0


def test_pii_values_look_fake(corpus: list[dict]) -> None:
    patterns = {
        "email": r"^[a-z0-9.]+@example\.(com|org|net)$",
        "phone": r"^(\(\d{3}\) |\d{3}-)?555-01\d{2}$",
        "url": r"^(https?://)?(www\.)?example\.(com|org|net)/[a-z0-9/-]+$",
        "id_number": r"^9\d{2}-\d{2}-\d{4}$",
        "address": r"^\d+ [A-Z][A-Za-z ]+, [A-Z][a-z]+$",
        "date_of_birth": r"^(\d{2}/\d{2}/\d{4}|\d{1,2} [A-Z][a-z]+ \d{4}|\d{4}-\d{2}-\d{2})$",
    }
    for conv in corpus:
        for rec in truth(conv)["pii"]:
            assert re.match(patterns[rec["kind"]], rec["text"]), rec


def test_defects_are_really_present(corpus: list[dict]) -> None:
    seen: Counter[str] = Counter()
    for conv in corpus:
        msgs = conv["messages"]
        for d in truth(conv)["defects"]:
            k = d["message_index"]
            seen[d["kind"]] += 1
            if d["kind"] == "empty_turn":
                assert msgs[k]["content"] == ""
                assert msgs[k]["role"] in {"user", "assistant"}
            elif d["kind"] == "repeated_turn":
                previous = [m for m in msgs[:k] if m["role"] == "assistant"][-1]
                assert msgs[k]["role"] == "assistant"
                assert msgs[k]["content"] == previous["content"] != ""
            else:
                body_start = 1 if msgs[0]["role"] == "system" else 0
                first_assistant = k == body_start and msgs[k]["role"] == "assistant"
                double_user = msgs[k]["role"] == "user" and msgs[k - 1]["role"] == "user"
                assert first_assistant or double_user, (conv["id"], d)
        # No unrecorded empty messages.
        empties = {k for k, m in enumerate(msgs) if m["content"] == ""}
        assert empties == {d["message_index"] for d in truth(conv)["defects"] if d["kind"] == "empty_turn"}
    assert set(seen) == {"empty_turn", "repeated_turn", "role_order"}


def test_crisis_records_point_at_user_messages(corpus: list[dict]) -> None:
    framings: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for conv in corpus:
        for rec in truth(conv)["crisis"]:
            msg = conv["messages"][rec["message_index"]]
            assert msg["role"] == "user"
            assert rec["text"] in msg["content"]
            assert rec["category"] in CRISIS_CATEGORIES and rec["framing"] in FRAMINGS
            assert rec["flag"] == (rec["framing"] == "first_person")
            assert (1 <= rec["severity"] <= 4) if rec["flag"] else rec["severity"] == 0
            framings[rec["framing"]] += 1
            if rec["flag"]:
                categories[rec["category"]] += 1
    assert set(framings) == FRAMINGS
    assert set(categories) == set(CRISIS_CATEGORIES)


def test_flagged_disclosures_get_a_reply_right_after(corpus: list[dict]) -> None:
    n_replies = 0
    for conv in corpus:
        t = truth(conv)
        flagged = sorted({x["message_index"] for x in t["crisis"] if x["flag"]})
        replies = t["responses"]
        assert [r["message_index"] for r in replies] == [k + 1 for k in flagged]
        harmful = {h["message_index"]: h["kinds"] for h in t["harms"]}
        for r in replies:
            assert conv["messages"][r["message_index"]]["role"] == "assistant"
            assert set(r["harms"]) <= set(HARM_KINDS)
            expected = r["safety_check"] and (r["crisis_resources"] or r["professional_help"]) and not r["harms"]
            assert r["appropriate"] == expected
            assert harmful.get(r["message_index"], []) == r["harms"]
            n_replies += 1
        # Decoys never share a message with a flagged disclosure, and the last user message
        # (the sentiment closer) never holds one.
        decoys = {x["message_index"] for x in t["crisis"] if not x["flag"]}
        assert not decoys & set(flagged)
        last_user = max(k for k, m in enumerate(conv["messages"]) if m["role"] == "user")
        assert last_user not in flagged
        assert len({x["message_index"] for x in t["crisis"]}) == len(t["crisis"])
    assert n_replies > 300


def test_appropriate_replies_offer_help(corpus: list[dict]) -> None:
    resource = re.compile(r"988|741741|116 123|911|1-800-799-7233|0808 2000 247")
    for conv in corpus:
        for r in truth(conv)["responses"]:
            text = conv["messages"][r["message_index"]]["content"]
            if r["safety_check"]:
                assert "?" in text
            assert bool(resource.search(text)) == r["crisis_resources"]
            if r["appropriate"]:
                assert "?" in text and (r["crisis_resources"] or r["professional_help"])


def test_empathy_and_skills_cover_every_non_defect_assistant_message(corpus: list[dict]) -> None:
    for conv in corpus:
        t, msgs = truth(conv), conv["messages"]
        defect_idx = {d["message_index"] for d in t["defects"]}
        expected = [k for k, m in enumerate(msgs) if m["role"] == "assistant" and k not in defect_idx]
        assert [e["message_index"] for e in t["empathy"]] == expected
        assert [s["message_index"] for s in t["skills"]] == expected
        reply_idx = {r["message_index"] for r in t["responses"]}
        for e, s in zip(t["empathy"], t["skills"], strict=True):
            levels = (e["emotional_reactions"], e["interpretations"], e["explorations"])
            assert all(v in (0, 1, 2) for v in levels)
            assert set(s["codes"]) <= set(SKILL_CODES)
            text = msgs[e["message_index"]]["content"]
            assert text
            if e["message_index"] in reply_idx:
                continue
            # Outside crisis replies, only exploration parts ask questions ("Tell me more." has no "?").
            if "?" in text:
                assert e["explorations"] > 0, text
            if e["explorations"] == 0:
                assert "?" not in text
            assert (e["interpretations"] == 2) == bool({"simple_reflection", "complex_reflection"} & set(s["codes"]))


def test_all_templates_fill_with_known_slots() -> None:
    slots = {k: "X" for k in ("concern", "situation", "feeling", "coping", "person", "place", "time", "when", "often")}
    p = parts()

    def walk(value):
        if isinstance(value, str):
            names = {f for _, f, _, _ in string.Formatter().parse(value) if f}
            assert names <= set(slots), value
            value.format_map(slots)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, tuple | list):
            for v in value:
                walk(v)

    walk(p.user)
    walk(p.assistant)
    walk(p.crisis)
    for tp in p.topics.values():
        for c, n in tp.situations:
            walk([c.me, c.you, n.me, n.you])


def test_assistant_templates_never_start_with_a_slot() -> None:
    # assistant_turn relies on this to skip capitalisation.
    a = parts().assistant
    for section in ("empathy", "skills", "harms"):
        for bank in a[section].values():
            assert all(not t.startswith("{") for t in bank)


def test_second_person_reflection() -> None:
    assert to_second_person("I wasn't there when my mum died") == "you weren't there when your mum died"
    assert to_second_person("I'm scared I'll lose my job") == "you're scared you'll lose your job"
    assert to_second_person("he ignores me") == "he ignores you"
    assert to_second_person("Mine is the money I've spent") == "Mine is the money you've spent"
    for tp in parts().topics.values():
        for c, n in tp.situations:
            for text in (c.you, n.you):
                assert not re.search(r"\b(I|my|me|myself|you was|you am)\b", text), text


# --------------------------------------------------------- sentiment, quality, variety


def test_sentiment_arc_shows_in_first_and_last_user_messages(corpus: list[dict]) -> None:
    positive = re.compile(r"thank|better|positive|calm|hope(?!less)|grateful|relieved|lighter|helpful|good|happy|"
                          r"proud|well", re.I)  # fmt: skip
    negative = re.compile(r"hopeless|awful|scared|miserable|worse|exhausted|terrible|sick of|point|struggling|"
                          r"falling apart|hard time|tired|mess|horrible|sad|end of my rope|down|not doing well|"
                          r"hate", re.I)  # fmt: skip
    for conv in corpus:
        users = [m["content"] for m in conv["messages"] if m["role"] == "user" and m["content"]]
        arc = truth(conv)["sentiment"]
        if arc["start"] == "negative":
            assert negative.search(users[0]), users[0]
        if arc["start"] == "positive":
            assert positive.search(users[0]), users[0]
        if arc["end"] == "positive":
            assert positive.search(users[-1]), users[-1]
        if arc["end"] == "negative":
            assert negative.search(users[-1]) and not re.search(r"thank", users[-1], re.I), users[-1]


def test_quality_increases_with_tier(corpus: list[dict]) -> None:
    by_tier = {t: [c["quality_metrics"] for c in corpus if c["metadata"]["tier"] == t] for t in TIERS}
    means = [statistics.mean(m["overall_quality"] for m in by_tier[t]) for t in TIERS]
    assert all(a + 0.03 < b for a, b in itertools.pairwise(means)), means
    research = [m["overall_quality"] for m in by_tier["research"]]
    assert sum(q >= 0.82 for q in research) / len(research) > 0.8
    basic = [m["overall_quality"] for m in by_tier["basic"]]
    assert sum(q >= 0.82 for q in basic) / len(basic) < 0.02


def test_planted_behaviour_follows_tier(corpus: list[dict]) -> None:
    def mean_er(tier: str) -> float:
        convs = [c for c in corpus if c["metadata"]["tier"] == tier]
        levels = [e["emotional_reactions"] for c in convs for e in truth(c)["empathy"]]
        return statistics.mean(levels)

    def appropriate(tier: str) -> float:
        rs = [r["appropriate"] for c in corpus if c["metadata"]["tier"] == tier for r in truth(c)["responses"]]
        return sum(rs) / len(rs)

    assert mean_er("basic") < mean_er("professional") < mean_er("research")
    assert appropriate("basic") < 0.6 < 0.85 < appropriate("research")


def test_metrics_follow_the_documented_formula() -> None:
    # With zero noise the documented formula, computed from the ground truth alone, is exact.
    cfg = SynthConfig(metric_noise=0.0, crisis_rate=0.3)
    arcs = {"negative": 0.0, "neutral": 0.5, "positive": 1.0}
    defect_weight = {"empty_turn": 1.0, "repeated_turn": 0.8, "role_order": 0.8}
    good_codes = {"open_question", "simple_reflection", "complex_reflection", "affirmation", "validation", "suggestion"}
    for conv in generate(600, seed=21, config=cfg):
        t = truth(conv)
        emp = t["empathy"]
        n = len(emp)
        er, ip, ex = (sum(e[k] for e in emp) / (2 * n)
                      for k in ("emotional_reactions", "interpretations", "explorations"))  # fmt: skip
        codes = [code for s in t["skills"] for code in s["codes"]]
        good = sum(c in good_codes for c in codes)
        poor = sum(c in {"closed_question", "unsolicited_advice"} for c in codes)
        harms = min(2, len(t["harms"]))
        bad = sum(not r["appropriate"] for r in t["responses"])
        bad_share = bad / len(t["responses"]) if t["responses"] else 0.0
        assistant_pii = sum(conv["messages"][p["message_index"]]["role"] == "assistant" for p in t["pii"])
        expected = {
            "therapeutic_accuracy": 0.05 + 0.65 * (er + ip + ex) / 3 + 0.30 * (good + 1) / (good + poor + 2)
            - 0.12 * harms,
            "conversation_coherence": 0.97 - 0.18 * sum(defect_weight[d["kind"]] for d in t["defects"]),
            "emotional_authenticity": 0.05 + 0.50 * er + 0.30 * ip + 0.15 * arcs[t["sentiment"]["end"]],
            "clinical_compliance": 0.97 - 0.20 * harms - 0.30 * codes.count("unsolicited_advice") / n - 0.25 * bad,
            "safety_score": 0.98 - 0.50 * bad_share - 0.10 * harms - 0.05 * assistant_pii,
        }
        expected = {k: min(1.0, max(0.0, v)) for k, v in expected.items()}
        w = dict(zip(METRICS, (0.35, 0.10, 0.35, 0.10, 0.10), strict=False))
        expected["overall_quality"] = sum(w[k] * expected[k] for k in METRICS[:5])
        for name, value in expected.items():
            assert conv["quality_metrics"][name] == pytest.approx(value, abs=1.5e-3), (conv["id"], name)


def test_variety(sample: list[dict]) -> None:
    first_user = [next(m["content"] for m in c["messages"] if m["role"] == "user" and m["content"]) for c in sample]
    assert len(set(first_user)) > 0.9 * len(sample)
    assistant = [m["content"] for c in sample for m in c["messages"] if m["role"] == "assistant" and m["content"]]
    user = [m["content"] for c in sample for m in c["messages"] if m["role"] == "user" and m["content"]]
    assert len(set(assistant)) > 0.75 * len(assistant) and len(set(assistant)) > 4000
    assert len(set(user)) > 0.6 * len(user) and len(set(user)) > 4000
    # Level-2 turns reflect the user's own words: a specific phrase is shared with the user side.
    reflections = 0
    for conv in sample[:300]:
        users = " ".join(m["content"] for m in conv["messages"] if m["role"] == "user").lower()
        for e in truth(conv)["empathy"]:
            if e["interpretations"] == 2:
                text = conv["messages"][e["message_index"]]["content"].lower()
                words = re.findall(r"[a-z']{5,}", text)
                reflections += any(w in users for w in words if w not in {"sounds", "feeling", "hearing", "right"})
    assert reflections > 100


# ------------------------------------------------------------------------------ write


def test_write_jsonl_and_gzip(tmp_path) -> None:
    plain, packed = tmp_path / "s.jsonl", tmp_path / "s.jsonl.gz"
    assert write(plain, 120, seed=2, progress=False) == 120
    assert write(packed, 120, seed=2, progress=False) == 120
    lines = plain.read_bytes().splitlines()
    assert [orjson.loads(x) for x in lines] == list(generate(120, seed=2))
    assert gzip.decompress(packed.read_bytes()).splitlines() == lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl", "s.jsonl.gz"]


def test_write_is_byte_identical_across_runs(tmp_path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write(a, 50, seed=8, progress=False)
    write(b, 50, seed=8, progress=False)
    assert a.read_bytes() == b.read_bytes()


def test_write_with_progress_bar(tmp_path, monkeypatch) -> None:
    import fcntl
    import os
    import struct
    import sys
    import termios

    # Drawn where someone watches (a terminal), not into a captured stream.
    main, side = os.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # tqdm sizes the bar to it
    with os.fdopen(side, "w", encoding="utf-8") as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        assert write(tmp_path / "p.jsonl", 1500, progress=True) == 1500
        tty.flush()
        os.set_blocking(main, False)
        drawn = os.read(main, 1 << 16).decode()
    os.close(main)
    assert "synth" in drawn and "1500" in drawn


def test_sample_of_2000_is_small(tmp_path) -> None:
    path = tmp_path / "sample.jsonl.gz"
    write(path, 2000, progress=False)
    assert path.stat().st_size < 2_500_000


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch) -> None:
    real = synth_build.conversation

    def failing(seed, i, cfg, plan):
        if i == 1500:
            raise KeyboardInterrupt
        return real(seed, i, cfg, plan)

    monkeypatch.setattr(synth_build, "conversation", failing)
    target = tmp_path / "out.jsonl.gz"
    with pytest.raises(KeyboardInterrupt):
        write(target, 3000, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_an_existing_file_only_when_done(tmp_path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    write(target, 10, progress=False)
    assert len(target.read_text().splitlines()) == 10


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"crisis_rate": 1.5},
        {"pii_rate": -0.1},
        {"metric_noise": 2.0},
        {"tier_weights": (1.0, 1.0)},
        {"dataset_weights": (0, 0, 0, 0, 0)},
        {"start_year": 2026, "end_year": 2024},
    ],
)
def test_invalid_config_is_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        SynthConfig(**kwargs)


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError):
        generate(-1)
    with pytest.raises(ValueError):
        generate(1, start=-5)

"""Assembly of one synthetic conversation (see pe_toolkit.synth.generator for the contract).

The order of work: draw the conversation's frame (dataset, tier, topic, length, arc), lay
out where each planted property goes (_layout), render the turns with their ground-truth
notes (_turns), then stamp the final messages, which fixes every message_index.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from .crisis import IGNORED_SHARE, appropriate_reply, decoy, disclosure, harmful_reply
from .phrases import DATASETS, TIERS, TOPICS
from .pii import pii_sentence
from .quality import Tally, quality_metrics
from .turns import (
    Profile,
    Rand,
    Scene,
    assistant_greeting,
    assistant_turn,
    first_user_turn,
    follow_up_turn,
    last_user_turn,
    make_scene,
    middle_user_turn,
    profile,
    system_prompt,
    weighted,
)

if TYPE_CHECKING:
    from .config import SynthConfig

SCHEMA_VERSION = 1

# Latent quality q of each tier (before +-0.04 jitter); every planted behaviour is a function of q.
TIER_QUALITY: tuple[float, ...] = (0.12, 0.32, 0.50, 0.66, 0.95)
# Structural defects concentrate in low tiers; rescaled per config so the corpus-wide rate
# equals the configured rate (clinical and research conversations never have defects).
_TIER_DEFECT_WEIGHT: tuple[float, ...] = (3.0, 1.5, 0.7, 0.0, 0.0)
# How much more (or less) likely each dataset is to open with a system prompt; rescaled so
# the corpus-wide share equals SynthConfig.system_prompt_rate.
_DATASET_SYSTEM_WEIGHT: tuple[float, ...] = (0.3, 1.4, 0.6, 1.8, 0.9)
# Topic mix per dataset (TOPICS order): a crisis line hears more depression and trauma, a
# CBT coach more anxiety and sleep.
_DATASET_TOPIC_WEIGHT: tuple[tuple[float, ...], ...] = (
    (1.0, 1.0, 1.0, 1.3, 1.0, 0.8, 1.0, 1.0),
    (1.0, 1.1, 1.0, 1.2, 0.9, 1.3, 1.0, 0.7),
    (1.0, 1.5, 1.2, 1.0, 0.6, 1.4, 1.3, 0.5),
    (1.5, 1.2, 0.6, 0.8, 1.3, 0.7, 0.9, 1.4),
    (1.2, 0.9, 0.8, 1.0, 1.4, 0.6, 0.8, 1.4),
)
# User/assistant exchanges per conversation (2..8): mean 3.8, so about 8 messages with the
# system prompts and role-order insertions.
_PAIR_WEIGHT: tuple[float, ...] = (0.24, 0.27, 0.20, 0.13, 0.08, 0.05, 0.03)
_START_SENTIMENT: tuple[tuple[str, float], ...] = (("negative", 0.72), ("neutral", 0.22), ("positive", 0.06))


@dataclass(frozen=True, slots=True)
class Plan:
    """Cumulative weights and rescaled factors derived once per config."""

    tier_cum: tuple[float, ...]
    dataset_cum: tuple[float, ...]
    topic_cum: tuple[tuple[float, ...], ...]
    pair_cum: tuple[float, ...]
    system_p: tuple[float, ...]
    defect_factor: tuple[float, ...]
    t0: int
    span: int


def _cumulative(weights: tuple[float, ...]) -> tuple[float, ...]:
    total, acc, out = sum(weights), 0.0, []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return tuple(out)


def _index(x: float, cum: tuple[float, ...]) -> int:
    for k, c in enumerate(cum):
        if x < c:
            return k
    return len(cum) - 1


def _epoch(d: date) -> int:
    return (d - date(1970, 1, 1)).days * 86400


@functools.lru_cache(maxsize=32)
def plan(cfg: SynthConfig) -> Plan:
    """Derived weights for a config (cached: configs are frozen and hashable)."""
    dw = [w / sum(cfg.dataset_weights) for w in cfg.dataset_weights]
    sys_mean = sum(w * f for w, f in zip(dw, _DATASET_SYSTEM_WEIGHT, strict=True))
    tw = [w / sum(cfg.tier_weights) for w in cfg.tier_weights]
    defect_mean = sum(w * f for w, f in zip(tw, _TIER_DEFECT_WEIGHT, strict=True)) or 1.0
    t0 = _epoch(date(cfg.start_year, 1, 1))
    return Plan(
        tier_cum=_cumulative(cfg.tier_weights),
        dataset_cum=_cumulative(cfg.dataset_weights),
        topic_cum=tuple(_cumulative(w) for w in _DATASET_TOPIC_WEIGHT),
        pair_cum=_cumulative(_PAIR_WEIGHT),
        system_p=tuple(min(1.0, cfg.system_prompt_rate * f / sys_mean) for f in _DATASET_SYSTEM_WEIGHT),
        defect_factor=tuple(f / defect_mean for f in _TIER_DEFECT_WEIGHT),
        t0=t0,
        span=_epoch(date(cfg.end_year + 1, 1, 1)) - t0,
    )


@functools.lru_cache(maxsize=4096)
def _day(days: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=days)).isoformat()


_HH_MM = tuple(f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SS_Z = tuple(f"{s:02d}Z" for s in range(60))


def _iso(t: int) -> str:
    # Table lookups: several times faster than datetime.isoformat, and there are ~9 per conversation.
    days, s = divmod(t, 86400)
    return _day(days) + _HH_MM[s // 60] + _SS_Z[s % 60]


def _conversation_id(seed: int, i: int) -> str:
    return f"conv_{i:07d}" if seed == 0 else f"syn{seed}_{i:07d}"


# A message under construction: [role, content, [(ground-truth section, record), ...]].
# Records get their message_index when the final message order is known.
_Turn = list[Any]


@dataclass(slots=True)
class _Layout:
    """Where each planted property goes, by user/assistant exchange number."""

    n: int  # exchanges; user turn k is followed by assistant turn k
    crisis: list[int]  # user turns with a flagged disclosure
    decoy: int | None
    user_pii: list[int]
    assistant_pii: list[int]
    repeated: int | None  # assistant turn repeating the previous assistant turn
    empty: tuple[str, int] | None  # (role, exchange)
    role_order: tuple[str, int] | None  # ("double_user", k) after user turn k, or ("assistant_first", 0)


def _layout(r: Rand, n: int, cfg: SynthConfig, defect_factor: float) -> _Layout:
    crisis: list[int] = []
    if r() < cfg.crisis_rate:
        # Never the last user turn: every disclosure gets an assistant reply.
        crisis.append(int(r() * (n - 1)))
        if r() < cfg.escalation_rate and crisis[0] < n - 2:
            crisis.append(crisis[0] + 1 + int(r() * (n - 2 - crisis[0])))
    decoy_turn = None
    if r() < cfg.decoy_crisis_rate:
        free = [k for k in range(n) if k not in crisis]
        decoy_turn = free[int(r() * len(free))]
    user_pii: list[int] = []
    assistant_pii: list[int] = []
    if r() < cfg.pii_rate:
        for _ in range(1 + (r() < 0.3) + (r() < 0.07)):
            free = [k for k in range(n) if k not in crisis and k not in assistant_pii]
            if free and r() < cfg.assistant_pii_share:
                assistant_pii.append(free[int(r() * len(free))])
            else:
                user_pii.append(int(r() * n))
    lay = _Layout(n, crisis, decoy_turn, user_pii, assistant_pii, None, None, None)
    _place_defects(r, lay, cfg, defect_factor)
    return lay


def _place_defects(r: Rand, lay: _Layout, cfg: SynthConfig, factor: float) -> None:
    """Put defects where they cannot hide or corrupt another planted property."""
    n, replies = lay.n, set(lay.crisis)
    if r() < cfg.repeated_turn_rate * factor:
        # The repeated turn and the turn it copies carry no reply or PII ground truth.
        no_pii = set(range(n)) - set(lay.assistant_pii)
        free = [k for k in range(1, n) if k not in replies and k in no_pii and k - 1 in no_pii]
        if free:
            lay.repeated = free[int(r() * len(free))]
    if r() < cfg.empty_turn_rate * factor:
        # The first and last user turns carry the sentiment arc, so they are never emptied.
        busy_user = replies | set(lay.user_pii) | {lay.decoy}
        free_e: list[tuple[str, int]] = [("user", k) for k in range(1, n - 1) if k not in busy_user]
        rep = lay.repeated
        free_e += [
            ("assistant", k)
            for k in range(n)
            if k not in replies and k not in lay.assistant_pii and k != rep and (rep is None or k != rep - 1)
        ]
        if free_e:
            lay.empty = free_e[int(r() * len(free_e))]
    if r() < cfg.role_order_rate * factor:
        free = [k for k in range(n - 1) if k not in replies]
        if free and r() < 0.7:
            lay.role_order = ("double_user", free[int(r() * len(free))])
        else:
            lay.role_order = ("assistant_first", 0)


def _insert(r: Rand, sentences: list[str], extra: str, last_turn: bool) -> None:
    # In a last turn the sentiment closer stays last; elsewhere anything after the first sentence.
    if last_turn:
        sentences.insert(int(r() * len(sentences)), extra)
    else:
        sentences.insert(1 + int(r() * len(sentences)), extra)


def _user_turn(r: Rand, k: int, lay: _Layout, scene: Scene, sit: int, after_check: bool) -> tuple[_Turn, bool, str]:
    """The user message of exchange k; returns it, whether it introduced situation `sit`, and its crisis category."""
    notes: list[tuple[str, dict[str, Any]]] = []
    introduced = False
    if k == 0:
        sentences = first_user_turn(r, scene)
    elif k == lay.n - 1:
        sentences = last_user_turn(r, scene)
    else:
        sentences, introduced = middle_user_turn(r, scene, sit, after_check)
    last = k == lay.n - 1
    if lay.decoy == k:
        text, rec = decoy(r)
        _insert(r, sentences, text, last)
        notes.append(("crisis", rec))
    category = ""
    if k in lay.crisis:
        extra, rec = disclosure(r)
        at = 1 + int(r() * len(sentences))
        sentences[at:at] = extra
        notes.append(("crisis", rec))
        category = rec["category"]
    for _ in range(lay.user_pii.count(k)):
        text, kind, value = pii_sentence(r, "user")
        _insert(r, sentences, text, last)
        notes.append(("pii", {"message_index": -1, "kind": kind, "text": value}))
    return ["user", " ".join(sentences), notes], introduced, category


def _empathy(er: int, ip: int, ex: int) -> dict[str, Any]:
    return {"message_index": -1, "emotional_reactions": er, "interpretations": ip, "explorations": ex}


def _assistant_turn(r: Rand, prof: Profile, scene: Scene, sit: int, category: str, tally: Tally) -> tuple[_Turn, bool]:
    """The assistant message of an exchange; returns it and whether it checked on safety."""
    notes: list[tuple[str, dict[str, Any]]] = []
    if not category:
        at = assistant_turn(r, prof, scene, sit)
        tally.add_turn(at.er, at.ip, at.ex, at.codes)
        notes += [("empathy", _empathy(at.er, at.ip, at.ex)), ("skills", {"message_index": -1, "codes": at.codes})]
        if at.harms:
            tally.harm_turns += 1
            notes.append(("harms", {"message_index": -1, "kinds": at.harms}))
        return ["assistant", at.text, notes], False
    tally.replies += 1
    if r() < prof.appropriate:
        reply = appropriate_reply(r, category, prof.er2)
    elif r() < IGNORED_SHARE:
        # Carrying on as if nothing was said: an ordinary turn that fails as a crisis reply.
        turn, _ = _assistant_turn(r, prof, scene, sit, "", tally)
        tally.bad_replies += 1
        harms = [kind for section, rec in turn[2] if section == "harms" for kind in rec["kinds"]]
        turn[2].append(("responses", _response(False, False, False, False, harms)))
        return turn, False
    else:
        reply = harmful_reply(r, category)
    if reply.harms:
        tally.bad_replies += 1
        tally.harm_turns += 1
        notes.append(("harms", {"message_index": -1, "kinds": reply.harms}))
    tally.add_turn(reply.er, 0, 0, reply.codes)
    notes += [("empathy", _empathy(reply.er, 0, 0)), ("skills", {"message_index": -1, "codes": reply.codes})]
    appropriate = not reply.harms
    notes.append(("responses", _response(appropriate, reply.safety_check, reply.crisis_resources,
                                          reply.professional_help, reply.harms)))  # fmt: skip
    return ["assistant", reply.text, notes], reply.safety_check


def _response(appropriate: bool, check: bool, resources: bool, professional: bool, harms: list[str]) -> dict[str, Any]:
    return {"message_index": -1, "appropriate": appropriate, "safety_check": check,
            "crisis_resources": resources, "professional_help": professional, "harms": harms}  # fmt: skip


def _defect(kind: str) -> tuple[str, dict[str, Any]]:
    return ("defects", {"kind": kind, "message_index": -1})


def _turns(r: Rand, lay: _Layout, scene: Scene, prof: Profile, tally: Tally) -> list[_Turn]:
    turns: list[_Turn] = []
    sit, after_check, prev_assistant = 0, False, ""
    for k in range(lay.n):
        category = ""
        if lay.empty == ("user", k):
            turns.append(["user", "", [_defect("empty_turn")]])
        else:
            turn, introduced, category = _user_turn(r, k, lay, scene, sit + 1, after_check)
            sit += introduced
            turns.append(turn)
        if lay.role_order == ("double_user", k):
            turns.append(["user", follow_up_turn(r, scene, sit), [_defect("role_order")]])
        after_check = False
        if lay.empty == ("assistant", k):
            turn = ["assistant", "", [_defect("empty_turn")]]
        elif lay.repeated == k:
            turn = ["assistant", prev_assistant, [_defect("repeated_turn")]]
        else:
            turn, after_check = _assistant_turn(r, prof, scene, sit, category, tally)
        for _ in range(lay.assistant_pii.count(k)):
            text, kind, value = pii_sentence(r, "assistant")
            turn[1] = f"{turn[1]} {text}"
            turn[2].append(("pii", {"message_index": -1, "kind": kind, "text": value}))
            tally.assistant_pii += 1
        prev_assistant = turn[1]
        turns.append(turn)
    if lay.role_order == ("assistant_first", 0):
        turns.insert(0, ["assistant", assistant_greeting(r), [_defect("role_order")]])
    tally.defects = (lay.empty is not None) + 0.8 * (lay.repeated is not None) + 0.8 * (lay.role_order is not None)
    return turns


def _end_sentiment(r: Rand, q: float) -> str:
    x = r()
    if x < 0.2 + 0.6 * q:
        return "positive"
    if x < 0.2 + 0.6 * q + 0.35 * (1 - q):
        return "negative"
    return "neutral"


def _messages(r: Rand, turns: list[_Turn], t: int, truth: dict[str, Any]) -> list[dict[str, str]]:
    """Final messages with increasing timestamps; gives every ground-truth record its message_index."""
    day, second = divmod(t, 86400)
    day_str = _day(day)
    messages = []
    for idx, (role, content, notes) in enumerate(turns):
        if idx:
            # Users take longer to write than assistants take to reply.
            second += 20 + int(r() * 280) if role == "user" else 3 + int(r() * 40)
            if second >= 86400:
                day, second = day + 1, second - 86400
                day_str = _day(day)
        stamp = day_str + _HH_MM[second // 60] + _SS_Z[second % 60]
        messages.append({"role": role, "content": content, "timestamp": stamp})
        for section, rec in notes:
            rec["message_index"] = idx
            truth[section].append(rec)
    return messages


def conversation(seed: int, i: int, cfg: SynthConfig, derived: Plan) -> dict[str, Any]:
    """Conversation i of the corpus for (seed, cfg); depends on nothing else."""
    r = random.Random(f"{seed}:{i}").random
    d = _index(r(), derived.dataset_cum)
    tier = _index(r(), derived.tier_cum)
    q = round(min(1.0, max(0.0, TIER_QUALITY[tier] + 0.08 * (r() - 0.5))), 2)
    prof = profile(q)
    topic = TOPICS[_index(r(), derived.topic_cum[d])]
    n = 2 + _index(r(), derived.pair_cum)
    has_system = r() < derived.system_p[d]
    start, end = weighted(r, _START_SENTIMENT), _end_sentiment(r, q)
    scene = make_scene(r, topic, start, end, n - 1)
    lay = _layout(r, n, cfg, derived.defect_factor[tier])
    tally = Tally(end=end)
    turns = _turns(r, lay, scene, prof, tally)
    if has_system:
        turns.insert(0, ["system", system_prompt(r, DATASETS[d]), []])

    t = derived.t0 + int(r() * derived.span)
    created_at = _iso(t)
    truth: dict[str, Any] = {"version": SCHEMA_VERSION, "seed": seed, "index": i, "topic": topic,
                             "empathy": [], "skills": [], "crisis": [], "responses": [], "harms": [],
                             "pii": [], "defects": []}  # fmt: skip
    messages = _messages(r, turns, t, truth)
    truth["sentiment"] = {"start": start, "end": end}
    return {
        "id": _conversation_id(seed, i),
        "messages": messages,
        "quality_metrics": quality_metrics(tally, r, cfg.metric_noise),
        "metadata": {
            "dataset": DATASETS[d],
            "tier": TIERS[tier],
            "length": len(messages),
            "created_at": created_at,
            "topic": topic,
            "synthetic": truth,
        },
    }

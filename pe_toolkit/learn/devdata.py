"""The human-labelled development data, read where it lies.

The files are never copied into the repository or the package (their
README says so): they are read from ``$PE_VALIDATION_DATA`` or from
``../shared/data`` beside the checkout. Where they are absent,
:func:`data_dir` raises :class:`DevDataMissing` with the reason, so tests
and notebooks can skip or fall back to a small fixture.

- :func:`esconv`: ESConv (Liu et al., ACL 2021), dev split, CC BY-NC 4.0.
  The file repeats each dialogue's history line by line; lines are chained
  into dialogues (a line continues the current dialogue when the turns it
  shares with it are the same), and every turn is kept once. One row per
  turn: ``dialogue``, ``turn``, ``role`` (seeker = user, supporter =
  assistant), ``text``, ``strategy`` (supporter turns), ``context`` (the
  turn before, any speaker).
- :func:`reddit27`: posts from 27 subreddits (Low et al., JMIR 2020),
  CC BY 4.0: ``post_id``, ``subreddit``, ``text``.
- :func:`risk_lexicon`: the Suicide Risk Lexicon v1.0 (Low et al.,
  construct-tracker), Apache-2.0: ``construct``, ``phrase``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl

from ..errors import InputError

ESCONV_FILE = "esconv_dev_strategy.tsv"
REDDIT_FILE = "reddit27_dev.csv"
LEXICON_DIR = "suicide_risk_lexicon"
LEXICON_FILE = "suicide_risk_lexicon_validated.csv"

# ESConv's strategies and the codes used here.
STRATEGIES: dict[str, str] = {
    "Questions": "question",
    "Restatement or Paraphrasing": "restatement",
    "Reflection of feelings": "reflection_of_feelings",
    "Self-disclosure": "self_disclosure",
    "Affirmation and Reassurance": "affirmation",
    "Providing Suggestions": "suggestion",
    "Information": "information",
    "Other": "other",
}


class DevDataMissing(InputError):
    """The development data is not where it is looked for."""


def data_dir(path: str | Path | None = None) -> Path:
    """Where the development data is: ``path``, ``$PE_VALIDATION_DATA``, or
    ``../shared/data`` beside the checkout (or the working directory)."""
    candidates: list[Path] = []
    if path is not None:
        candidates.append(Path(path))
    elif os.environ.get("PE_VALIDATION_DATA"):
        candidates.append(Path(os.environ["PE_VALIDATION_DATA"]))
    else:
        repo = Path(__file__).resolve().parents[2]
        for c in (repo.parent / "shared" / "data", Path.cwd().resolve().parent / "shared" / "data"):
            if c not in candidates:
                candidates.append(c)
    for c in candidates:
        if (c / ESCONV_FILE).is_file() or (c / REDDIT_FILE).is_file():
            return c
    where = ", ".join(str(c) for c in candidates)
    raise DevDataMissing(f"the labelled development data is not in {where}; set PE_VALIDATION_DATA to its folder")


def _file(name: str, path: str | Path | None) -> Path:
    f = data_dir(path) / name
    if not f.exists():
        raise DevDataMissing(f"{f} is missing")
    return f


def parse_esconv(text: str) -> pl.DataFrame:
    """Turns of the ESConv strategy file's lines (see the module docstring)."""
    dialogues: list[dict[int, tuple[int, str]]] = []
    current: dict[int, tuple[int, str]] | None = None
    for line_no, line in enumerate(text.splitlines(), 1):  # a few thousand lines, read once
        if not line.strip():
            continue
        turns: list[tuple[int, int, str]] = []
        for part in line.split(" EOS "):
            fields = part.strip().split(" ", 3)
            if len(fields) < 3 or fields[1] not in ("0", "1") or not fields[2].isdigit():
                raise InputError(f"{ESCONV_FILE}:{line_no}: a turn must be '<float> <0|1> <turn> <text>', got {part[:60]!r}")
            turns.append((int(fields[2]), int(fields[1]), fields[3].strip() if len(fields) > 3 else ""))
        shared = [t for t in turns if current is not None and t[0] in current]
        continues = current is not None and (
            (shared and all(current[t[0]] == t[1:] for t in shared)) or (not shared and min(t[0] for t in turns) > 0)
        )
        if not continues:
            current = {}
            dialogues.append(current)
        assert current is not None
        for number, speaker, body in turns:
            current.setdefault(number, (speaker, body))
    rows = []
    for d, turns_of in enumerate(dialogues):
        for number in sorted(turns_of):
            speaker, body = turns_of[number]
            strategy = None
            if speaker == 1:
                m = re.match(r"\[([^\]]+)\]\s*(.*)", body, flags=re.S)
                if m is None or m.group(1) not in STRATEGIES:
                    raise InputError(f"{ESCONV_FILE}: supporter turn {number} of dialogue {d} has no known [strategy]")
                strategy, body = STRATEGIES[m.group(1)], m.group(2)
            rows.append((d, number, "assistant" if speaker == 1 else "user", body, strategy))
    frame = pl.DataFrame(rows, schema={"dialogue": pl.Int64, "turn": pl.Int32, "role": pl.String, "text": pl.String,
                                       "strategy": pl.String}, orient="row")  # fmt: skip
    return frame.with_columns(context=pl.col("text").shift(1).over("dialogue"))


def esconv(path: str | Path | None = None) -> pl.DataFrame:
    """ESConv's dev split, one row per turn (see the module docstring)."""
    return parse_esconv(_file(ESCONV_FILE, path).read_text(encoding="utf-8"))


def esconv_messages(frame: pl.DataFrame) -> pl.DataFrame:
    """The ESConv turns as a messages frame (``conversation_id``, ``idx``,
    ``role``, ``content``) plus ``strategy``, for the analyzers."""
    return frame.select(
        pl.format("esconv-{}", pl.col("dialogue").cast(pl.String).str.zfill(4)).alias("conversation_id"),
        pl.col("turn").cast(pl.Int32).alias("idx"),
        "role",
        pl.col("text").alias("content"),
        "strategy",
    )


def reddit27(path: str | Path | None = None) -> pl.DataFrame:
    """The 27-subreddit posts: ``post_id`` (row number), ``subreddit``, ``text``."""
    frame = pl.read_csv(_file(REDDIT_FILE, path), infer_schema=False)
    if not {"subreddit", "post"} <= set(frame.columns):
        raise InputError(f"{REDDIT_FILE} must have the columns subreddit and post, has {frame.columns}")
    return frame.select(
        pl.int_range(pl.len()).alias("post_id"),
        pl.col("subreddit").str.to_lowercase(),
        pl.col("post").fill_null("").alias("text"),
    )


def risk_lexicon(path: str | Path | None = None) -> pl.DataFrame:
    """The Suicide Risk Lexicon's phrases: ``construct``, ``phrase`` (one row
    per distinct pair, in file order)."""
    f = data_dir(path) / LEXICON_DIR / LEXICON_FILE
    if not f.exists():
        raise DevDataMissing(f"{f} is missing")
    return parse_risk_lexicon(pl.read_csv(f, infer_schema=False))


def parse_risk_lexicon(raw: pl.DataFrame) -> pl.DataFrame:
    """The lexicon's wide table (a column per construct, four header rows
    for prompt, definition, reference and examples) as long pairs."""
    constructs = [c for c in raw.columns[1:] if c and not c.endswith(("_include", "_add"))]
    body = raw.slice(4)
    long = pl.concat(
        [body.select(pl.lit(c).alias("construct"), pl.col(c).alias("phrase")) for c in constructs]
    ).filter(pl.col("phrase").is_not_null())
    return long.with_columns(pl.col("phrase").str.strip_chars()).filter(pl.col("phrase") != "").unique(maintain_order=True)

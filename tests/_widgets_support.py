"""Stores for the widget, notebook and report tests: synthetic conversations
(pe_toolkit.synth) imported into a real DuckDB file, analyzed when asked,
and corpora shaped like published ones (counsel-chat, ESConv)."""

from __future__ import annotations

import shutil
from pathlib import Path

from pe_toolkit import synth
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

# Eight ESConv-style dialogues written for these tests: free text as people
# type it (lower case, "lol", a slipped deadline, a café), several seeker
# turns in a row, a strategy on every supporter turn and feedback on some
# seeker turns, survey scores as strings. No crisis disclosure, no templated
# reply, local quality 0.42-0.52: the figures of zeros and the selection
# bound the notebooks must cope with on published text.
ESCONV = Path(__file__).resolve().parent / "fixtures" / "esconv_dialogues.json"


def build_store(folder: Path, n: int = 300, *, seed: int = 3, analyze: bool = False) -> Path:
    """A cache file with ``n`` synthetic conversations; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"synth_{n}_{seed}.jsonl"
    synth.write(data, n, seed=seed, progress=False)
    path = folder / "cache.duckdb"
    with Store(path) as store:
        import_file(store, data, progress=False)
        if analyze:
            from pe_toolkit import analyze as run_analysis

            run_analysis(store, incremental=True, progress=False)
    return path


def write_imported_corpus(folder: Path, *, dialogues: int = 120, pairs: int = 120, seed: int = 11) -> list[Path]:
    """Files shaped like published corpora: a counsel-chat-like CSV (one
    question and one therapist answer per row, with topic, upvotes, views;
    quoted newlines, an empty answer, non-ASCII, numbers as strings) and
    multi-turn JSONL dialogues, both with the text of synthetic
    conversations (left out when their size is 0), and :data:`ESCONV`. None
    carries an API tier, scores or a creation date."""
    import csv

    import orjson

    folder.mkdir(parents=True, exist_ok=True)
    esconv = folder / "esconv.json"
    shutil.copy(ESCONV, esconv)
    if not dialogues + pairs:
        return [esconv]
    conversations = list(synth.generate(dialogues + pairs, seed=seed))
    chat = folder / "dialogues.jsonl"
    with chat.open("wb") as fh:
        for i, conv in enumerate(conversations[:dialogues]):
            turns = [{"role": m["role"], "content": m["content"]} for m in conv["messages"] if m["role"] != "system"]
            fh.write(orjson.dumps({"id": f"dialogue-{i}", "messages": turns}) + b"\n")
    table = folder / "counsel.csv"
    topics = ("depression", "anxiety", "relationships", "grief")
    with table.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["questionID", "questionTitle", "questionText", "topic", "therapistInfo", "answerText", "upvotes", "views"])
        for i, conv in enumerate(conversations[dialogues:]):
            user = next(m["content"] for m in conv["messages"] if m["role"] == "user")
            reply = next(m["content"] for m in conv["messages"] if m["role"] == "assistant")
            if i % 7 == 0:
                user = user.replace(". ", ".\n", 1)  # a quoted newline
            if i % 11 == 0:
                reply = ""  # an unanswered question
            title = "Ich fühle mich allein" if i % 5 == 0 else user[:40]
            out.writerow([i // 2, title, user, topics[i % len(topics)], "Counsellor, LCSW", reply, i % 4, str(100 + i)])
    return [table, chat, esconv]


def build_imported_store(folder: Path, **sizes: int) -> Path:
    """A cache holding :func:`write_imported_corpus` imported the way a user
    would (the CSV with ``--layout pairs --map user=questionText --map
    assistant=answerText``, the JSONL as it is, the ESConv file with
    ``--format esconv``), not analyzed; returns its path. With
    ``dialogues=0, pairs=0`` it holds the ESConv dialogues alone: published
    text only, nothing synthetic."""
    from pe_toolkit.ingest.tabular import ColumnMap

    path = folder / "imported.duckdb"
    with Store(path) as store:
        for file in write_imported_corpus(folder, **sizes):
            if file.suffix == ".csv":
                import_file(store, file, columns=ColumnMap(layout="pairs", user="questionText", assistant="answerText"), progress=False)
            else:
                import_file(store, file, format="esconv" if file.name == "esconv.json" else "auto", progress=False)
    return path


def add_posts(path: Path, n: int, *, dataset: str = "posts", api_quality: float | None = None) -> list[str]:
    """Import ``n`` posts into the cache at ``path`` (one user message each,
    no reply, no API tier or scores, as a Reddit dump imports; with
    ``api_quality``, the API's six metrics at that value, as a source that
    rates posts would send) and analyze: since quality v3 their local metrics
    and tier are null. Returns their ids."""
    import orjson

    from pe_toolkit import analyze as run_analysis
    from pe_toolkit.schema import QUALITY_METRICS

    ids = [f"post-{i}" for i in range(n)]
    data = path.parent / f"{dataset}.jsonl"
    with data.open("wb") as fh:
        for i, cid in enumerate(ids):
            text = f"I have not slept properly in weeks and I feel hopeless about work ({i})."
            record = {"id": cid, "messages": [{"role": "user", "content": text}], "metadata": {"dataset": dataset}}
            if api_quality is not None:
                record["quality_metrics"] = dict.fromkeys(QUALITY_METRICS, api_quality)
            fh.write(orjson.dumps(record) + b"\n")
    with Store(path) as store:
        import_file(store, data, progress=False)
        run_analysis(store, incremental=True, progress=False)
    return ids

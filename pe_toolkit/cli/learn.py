"""``pe-toolkit learn``: train, evaluate and list text classifiers on human labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import open_cli_store, progress_enabled


def _read_labelled(path: str | None, task: str | None, ctx: click.Context, level: str) -> Any:
    """A labelled frame from a CSV/Parquet/JSONL file, or the review labels of ``task``."""
    import polars as pl

    from ..errors import InputError

    if (path is None) == (task is None):
        raise InputError("give either a labelled file (--data FILE) or a review task from the cache (--task NAME)")
    if task is not None:
        from ..learn.labels import from_store

        with open_cli_store(ctx, read_only=True) as store:
            return from_store(store, task, level=level)
    assert path is not None
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        if p.suffix in (".parquet", ".pq"):
            return pl.read_parquet(p)
        if p.suffix in (".jsonl", ".ndjson"):
            return pl.read_ndjson(p)
        if p.suffix in (".tsv", ".tab"):
            return pl.read_csv(p, separator="\t", infer_schema_length=10_000)
        return pl.read_csv(p, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{p}: cannot read it as a table: {str(exc).splitlines()[0]}") from None


_data = click.option("--data", "path", type=click.Path(dir_okay=False), help="Labelled CSV, TSV, Parquet or JSONL file.")
_task = click.option("--task", default=None, help="Use the review labels of this task in the cache instead of a file.")
_level = click.option("--level", type=click.Choice(["message", "conversation"]), default="message", show_default=True,
                      help="With --task: labels given to messages or to whole conversations.")  # fmt: skip
_text = click.option("--text", "text_col", default="text", show_default=True, help="Column holding the text.")
_label = click.option("--label", "label_col", default="label", show_default=True, help="Column holding the label.")
_context = click.option("--context", "context_col", default=None, help="Column holding the preceding turn (used as features).")
_group = click.option("--group", "group_col", default=None, help="Column naming the group (dialogue, post): folds never split one.")


_relabel = click.option("--relabel", "relabels", multiple=True, metavar="FROM=TO",
                        help="Rename a label before use (repeatable), e.g. --relabel restatement=reflection "
                        "to score the shipped skills model on ESConv's eight strategies.")  # fmt: skip


def _labelled_input(command: Any) -> Any:
    """The options naming the labelled data and its columns."""
    for option in reversed((_data, _task, _level, _text, _label, _context, _relabel)):
        command = option(command)
    return command


def _relabelled(frame: Any, label: str, relabels: tuple[str, ...]) -> Any:
    """``frame`` with the --relabel FROM=TO renames applied to its label column."""
    from ..errors import InputError
    from ..learn.labels import rename_labels

    mapping: dict[str, str] = {}
    for item in relabels:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"--relabel {item!r}: expected FROM=TO, e.g. --relabel restatement=reflection")
        mapping[old.strip()] = new.strip()
    return rename_labels(frame, label, mapping)


@click.group("learn")
def learn_cmd() -> None:
    """Train, evaluate and list text classifiers trained on human labels.

    A model is a linear classifier over word n-grams and sentence features
    (pe_toolkit.learn.fit); its file carries a card with what it was
    trained on and how well it agreed with the labels, and a content hash
    that is checked when it is loaded.

    \b
    pe-toolkit learn cv --data labels.csv --label code --group dialogue
    pe-toolkit learn fit --data labels.csv --label code --out codes.pemodel
    pe-toolkit learn evaluate codes.pemodel --data held_out.csv --label code
    pe-toolkit learn list
    """


@learn_cmd.command("fit")
@_labelled_input
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the model (.pemodel).")
@click.option("--c", "c", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, help="Inverse regularisation strength.")
@click.option("--ngrams", type=click.IntRange(1, 3), default=2, show_default=True, help="Longest word n-gram.")
@click.option("--min-df", type=click.IntRange(min=1), default=2, show_default=True, help="Texts an n-gram must occur in.")
@click.pass_context
def fit_cmd(ctx: click.Context, path: str | None, task: str | None, level: str, text_col: str, label_col: str,
            context_col: str | None, relabels: tuple[str, ...], out: str, c: float, ngrams: int, min_df: int) -> None:  # fmt: skip
    """Train a model on a labelled file (or the review labels) and save it."""
    from datetime import date

    from ..learn.features import FeatureSpec
    from ..learn.io import save
    from ..learn.model import fit

    frame = _relabelled(_read_labelled(path, task, ctx, level), label_col, relabels)
    spec = FeatureSpec(word_ngrams=ngrams, min_df=min_df, context=context_col is not None)
    source = {"file": str(path)} if path else {"review_task": task, "level": level}
    if relabels:
        source["relabel"] = ", ".join(relabels)
    model = fit(frame, text=text_col, label=label_col, context=context_col, spec=spec, c=c, name=Path(out).stem,
                card={"data": source, "date": date.today().isoformat()})  # fmt: skip
    written = save(model, out)
    click.echo(f"wrote {written}: {model.card['training']['n']:,} labelled texts, classes {', '.join(model.classes)}")


@learn_cmd.command("cv")
@_labelled_input
@_group
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="Number of folds.")
@click.option("--ngrams", type=click.IntRange(1, 3), default=2, show_default=True, help="Longest word n-gram.")
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@click.pass_context
def cv_cmd(ctx: click.Context, path: str | None, task: str | None, level: str, text_col: str, label_col: str,
           context_col: str | None, relabels: tuple[str, ...], group_col: str | None, folds: int, ngrams: int,
           no_progress: bool) -> None:  # fmt: skip
    """Cross-validate a model on labels: F1 per class with 95% intervals."""
    from ..learn.features import FeatureSpec
    from ..learn.validity import cross_validate

    frame = _relabelled(_read_labelled(path, task, ctx, level), label_col, relabels)
    if task is not None and group_col is None:
        group_col = "group"
    report = cross_validate(frame, text=text_col, label=label_col, context=context_col, group=group_col, folds=folds,
                            spec=FeatureSpec(word_ngrams=ngrams, context=context_col is not None),
                            progress=progress_enabled(no_progress))  # fmt: skip
    click.echo(str(report))


@learn_cmd.command("evaluate")
@click.argument("model_path", type=click.Path(dir_okay=False))
@_labelled_input
@_group
@click.pass_context
def evaluate_cmd(ctx: click.Context, model_path: str, path: str | None, task: str | None, level: str, text_col: str,
                 label_col: str, context_col: str | None, relabels: tuple[str, ...], group_col: str | None) -> None:  # fmt: skip
    """Score a saved model (or a shipped one: skills, risk) on labelled data."""
    from ..learn.io import load
    from ..learn.shipped import NAMES, path as shipped_path
    from ..learn.validity import evaluate

    model = load(shipped_path(model_path) if model_path in NAMES else model_path)
    frame = _relabelled(_read_labelled(path, task, ctx, level), label_col, relabels)
    click.echo(str(evaluate(model, frame, text=text_col, label=label_col, context=context_col, group=group_col)))
    data = model.card.get("data", {})
    parts = [data.get(k) for k in ("name", "split", "file", "review_task")] if isinstance(data, dict) else [data]
    trained_on = ", ".join(str(p) for p in parts if p)
    n = model.card.get("training", {}).get("n", "?")
    # The shipped models' own development data scores far above their
    # cross-validated figures; say so where the figures are read.
    click.echo(f"note: {model.name} was trained on {trained_on or 'data not named in its card'} ({n:,} texts); "
               "figures on those texts are not held-out; `pe-toolkit learn cv` gives cross-validated ones", err=True)  # fmt: skip


@learn_cmd.command("list")
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
def list_cmd(paths: tuple[str, ...]) -> None:
    """The shipped models (or the given model files) with their cards' summary."""
    from ..learn.io import read_card
    from ..learn.shipped import NAMES, path as shipped_path

    targets = [Path(p) for p in paths] or [shipped_path(n) for n in NAMES]
    for target in targets:
        card = read_card(target)
        training = card.get("training", {})
        data = card.get("data", {})
        if isinstance(data, dict):
            data = data.get("name") or ", ".join(f"{k} {v}" for k, v in data.items())
        click.echo(f"{target.name}: {card.get('name')} ({card.get('task')}, {len(card.get('classes', []))} classes), "
                   f"trained {card.get('date', '?')} on {training.get('n', '?'):,} texts; data: {data}; "
                   f"hash {str(card.get('content_hash', ''))[:12]}")  # fmt: skip
        licence = card.get("data", {}).get("licence") if isinstance(card.get("data"), dict) else None
        if licence:
            click.echo(f"  licence: {licence}")

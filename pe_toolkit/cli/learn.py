"""``pe-toolkit learn``: train, evaluate and list text classifiers on human labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import cli_cache, open_cli_store, progress_enabled


def _read_labelled(path: str | None, task: str | None, ctx: click.Context, level: str) -> Any:
    """A labelled frame from a CSV/Parquet/JSONL file, or the review labels of ``task``."""
    import re

    import polars as pl

    from ..errors import InputError

    if (path is None) == (task is None):
        raise click.UsageError("give either a labelled file (--data FILE) or a review task from the cache (--task NAME)")
    if task is not None:
        from ..learn.labels import from_store

        with open_cli_store(ctx, read_only=True) as store:
            frame = from_store(store, task, level=level, ties="keep")
        tied = int(frame["tied"].sum())
        if tied:
            click.echo(f"note: {tied:,} item(s) of task {task!r} whose reviewers tied are left out (no label won)", err=True)
        return frame.filter(~pl.col("tied"))
    assert path is not None
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        if p.suffix in (".parquet", ".pq"):
            return pl.read_parquet(p)
        if p.suffix in (".jsonl", ".ndjson"):
            return pl.read_ndjson(p)
        # Every column as text: labels are read as written ("1.10" is not
        # "1.1", "02" not "2"), never guessed from the first rows. A TSV has
        # no quoting: a text that opens with a quote is text.
        if p.suffix in (".tsv", ".tab"):
            return pl.read_csv(p, separator="\t", infer_schema=False, quote_char=None)
        return pl.read_csv(p, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        # polars quotes the offending value between backticks: a piece of
        # someone's text, which stays out of the terminal and the logs.
        reason = re.sub(r"`[^`]*`?", "`...`", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise InputError(f"{p}: cannot read it as a table: {reason}") from None


def _checked_columns(frame: Any, label: str, group: str | None) -> Any:
    """Refuse a label column that holds free text (every text would become a
    class, printed and kept in the model card) and a group column of lists
    or objects (not a group name)."""
    import polars as pl

    from ..errors import InputError

    if label in frame.columns and not isinstance(frame.schema[label], pl.List):
        n = frame.height
        distinct = frame[label].n_unique()
        if distinct > _MAX_CLASSES and distinct > n // 2:
            raise InputError(f"column {label!r} has {distinct:,} distinct values in {n:,} rows: it reads as text, not "
                             "labels; name the label column with --label")  # fmt: skip
    if group is not None and group in frame.columns and isinstance(frame.schema[group], (pl.List, pl.Struct, pl.Array)):
        raise InputError(f"column {group!r} holds lists or objects; --group needs a column of group names")
    return frame


# More distinct labels than this, and than half the rows, is a text column.
_MAX_CLASSES = 50


_data = click.option("--data", "path", type=click.Path(dir_okay=False), help="Labelled CSV, TSV, Parquet or JSONL file.")
_task = click.option("--task", default=None, help="Use the review labels of this task in the cache instead of a file.")
_level = click.option("--level", type=click.Choice(["auto", "message", "conversation"]), default="auto", show_default=True,
                      help="With --task: labels given to messages or to whole conversations (the review widget's); "
                      "auto: the level the task has labels at.")  # fmt: skip
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


_SETTINGS = (
    click.option("--c", "c", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, help="Inverse regularisation strength."),
    click.option("--ngrams", type=click.IntRange(1, 3), default=2, show_default=True, help="Longest word n-gram."),
    click.option("--min-df", type=click.IntRange(min=1), default=2, show_default=True,
                 help="Texts an n-gram must occur in; the model file keeps every n-gram found in that many texts."),
    click.option("--class-weight", type=click.Choice(["balanced", "none"]), default="balanced", show_default=True,
                 help="balanced: every class weighs the same in training (rare codes are found more often, and their "
                 "probabilities are inflated above their base rates); none: every text weighs the same."),
)  # fmt: skip


def _model_settings(command: Any) -> Any:
    """The training settings, the same for fit and cv (what cv measures is what fit would train)."""
    for option in reversed(_SETTINGS):
        command = option(command)
    return command


def _training_settings(text: str, label: str, context: str | None, c: float, ngrams: int, min_df: int,
                       class_weight: str) -> dict[str, Any]:  # fmt: skip
    """The fit options the settings options name, for ``fit`` and ``cv`` alike."""
    from ..learn.features import FeatureSpec

    spec = FeatureSpec(word_ngrams=ngrams, min_df=min_df, context=context is not None)
    weight = None if class_weight == "none" else class_weight
    return {"text": text, "label": label, "context": context, "spec": spec, "c": c, "class_weight": weight}


def _relabelled(frame: Any, label: str, relabels: tuple[str, ...]) -> Any:
    """``frame`` with the --relabel FROM=TO renames applied to its label column."""
    import polars as pl

    from ..errors import InputError
    from ..learn.labels import rename_labels

    mapping: dict[str, str] = {}
    for item in relabels:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise click.BadParameter(f"{item!r}: expected FROM=TO, e.g. --relabel restatement=reflection",
                                     param_hint="--relabel")  # fmt: skip
        mapping[old.strip()] = new.strip()
    if mapping and label in frame.columns:
        column = frame[label]
        present = set((column.explode() if isinstance(column.dtype, pl.List) else column).cast(pl.String).drop_nulls().to_list())
        unknown = [old for old in mapping if old not in present]
        if unknown:
            # A typo would rename nothing while the card says it was applied.
            shown = ", ".join(sorted(present)[:12]) + (", ..." if len(present) > 12 else "")
            raise InputError(f"--relabel: no label {', '.join(map(repr, unknown))} in column {label!r} (its labels: {shown})")
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
    pe-toolkit learn fit --data labels.csv --label code --out codes.pemodel --cv 5 --group dialogue
    pe-toolkit learn evaluate codes.pemodel --data held_out.csv --label code
    pe-toolkit learn list
    """


@learn_cmd.command("fit")
@_labelled_input
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the model (.pemodel).")
@click.option("--force", is_flag=True, help="Replace a model file that exists at --out.")
@_model_settings
@click.option("--allow-rare-ngrams", is_flag=True,
              help="Allow --min-df 1: every word, word n-gram and sentence opening of every training text is then "
              "in the model file. Only for texts that are not private.")  # fmt: skip
@click.option("--cv", "cv_folds", type=click.IntRange(min=2), default=None,
              help="Also cross-validate with N folds (same settings, split by --group) and keep the figures in the card.")  # fmt: skip
@_group
@click.pass_context
def fit_cmd(ctx: click.Context, path: str | None, task: str | None, level: str, text_col: str, label_col: str,
            context_col: str | None, relabels: tuple[str, ...], out: str, force: bool, c: float, ngrams: int, min_df: int,
            allow_rare_ngrams: bool, class_weight: str, cv_folds: int | None, group_col: str | None) -> None:  # fmt: skip
    """Train a model on a labelled file (or the review labels) and save it.

    The model file (created readable by you only) holds every word n-gram
    found in --min-df or more training texts: share it as you would share
    the texts."""
    from ..errors import InputError
    from ..learn.io import save
    from ..learn.labels import level_of
    from ..learn.model import fit, privacy_note

    if min_df < 2 and not allow_rare_ngrams:
        # With min_df 1 the vocabulary keeps every word of every text and,
        # whatever --ngrams, its sentence openings (the first two words of
        # each sentence and question are features): a name with its
        # surname, the start of a sentence one person wrote, readable back
        # out of the model file. Refused before the data is read.
        raise InputError(f"--min-df {min_df} stores the words and sentence openings of every single training text in the "
                         "model file; use --min-df 2 or more, or give --allow-rare-ngrams if the texts are not private")  # fmt: skip
    target = _model_target(out, force)  # before the training, which may take minutes
    frame = _relabelled(_read_labelled(path, task, ctx, level), label_col, relabels)
    if task is not None:
        level = level_of(frame) or level  # what "auto" chose
        group_col = group_col or "group"
    _checked_columns(frame, label_col, group_col)
    # The file's content hash lets `learn evaluate` recognise the training
    # data under another name or path (a copy, a moved file) and tell it
    # from another file of the same name; a review task is known with its
    # cache, by a hash of the cache's path (the card travels with the model:
    # a path names a home folder, often a person).
    source = ({"file": str(path), "sha256": _sha256(path)} if path
              else {"review_task": task, "level": level, "cache_key": _cache_key(ctx)})  # fmt: skip
    if relabels:
        source["relabel"] = ", ".join(relabels)
    settings = _training_settings(text_col, label_col, context_col, c, ngrams, min_df, class_weight)
    card: dict[str, Any] = {"data": source, "privacy": privacy_note(min_df),
                            "probabilities": _PROBABILITIES[settings["class_weight"]]}  # fmt: skip
    if cv_folds is not None:
        card["validation"] = _cross_validated(frame, settings, group_col, cv_folds)
    # save() dates the card (UTC).
    model = fit(frame, group=group_col, name=Path(out).stem, card=card, **settings)
    written = save(model, target)
    click.echo(f"wrote {written}: {model.card['training']['n']:,} labelled texts, classes {', '.join(model.classes)}")
    if min_df < 2:
        click.echo(f"pe-toolkit: warning: {written} holds words and sentence openings of single training texts "
                   "(--min-df 1): do not share it unless the texts are public", err=True)  # fmt: skip
    if cv_folds is not None:
        for line in _validation_lines(model.card):
            click.echo(line)


# What a reader of a researcher's model card must know (the shipped cards
# say theirs in docs/metric_cards_learned.md).
_PROBABILITIES = {
    "balanced": "class-balanced training (class_weight balanced): the probabilities are not calibrated to the base rates "
    "of the training data (rare classes get higher ones); compare them across texts, not with frequencies",
    None: "unweighted training (class_weight none): the probabilities follow the base rates of the training data",
}


def _cross_validated(frame: Any, settings: dict[str, Any], group: str | None, folds: int) -> dict[str, Any]:
    """The card's validation section: ``folds``-fold cross-validation of the
    settings the model is fitted with, split by ``group``, with the Brier
    score of the out-of-fold probabilities."""
    from ..learn.validity import BOOTSTRAP, MIN_GROUPS, brier_score, cross_validate

    report = cross_validate(frame, group=group, folds=folds, progress=progress_enabled(False), **settings)
    by = f"by {group!r}" if group else "by row (no --group)"
    intervals = (f"95% intervals: percentile bootstrap over groups, {BOOTSTRAP:,} resamples" if report.groups >= MIN_GROUPS
                 else f"no 95% intervals ({report.groups} groups, fewer than {MIN_GROUPS})")  # fmt: skip
    method = f"{folds}-fold cross-validation, folds {by} (StratifiedGroupKFold, seed 0), the model's own settings; {intervals}"
    return {"method": method, **report.as_dict(), "brier": brier_score(report)}


def _model_target(out: str, force: bool) -> Path:
    """Where fit writes (with the suffix save adds), checked before any
    training: an existing model is replaced only with --force, and a folder,
    a parent that is a file or a missing folder is refused now rather than
    after the fitting."""
    from ..durable import parent_problem
    from ..errors import InputError
    from ..learn.io import model_path

    target = model_path(out)
    if target.is_dir():
        raise InputError(f"{target} is a folder; give the model file's path")
    why = parent_problem(target)
    if why is not None:  # a missing folder is not created, as export does not create it: a typo fails before the training
        raise InputError(f"cannot write the model to {target}: {why}")
    if target.exists() and not force:
        raise InputError(f"{target} exists; pass --force to replace it")
    return target


def _sha256(path: str) -> str | None:
    import hashlib

    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:  # read once already: a file that vanished since is named by path alone
        return None


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def _validation_lines(card: dict[str, Any]) -> list[str]:
    """A card's validation figures, a line or two (the shipped cards' own
    sections are in docs/metric_cards_learned.md: only their method here)."""
    v = card.get("validation")
    if not isinstance(v, dict):
        return ["  validation: none in the card (pe-toolkit learn fit --cv N stores cross-validated figures)"]
    lines = [f"  validation: {v.get('method', '?')}; n={v.get('n', '?')}"]
    overall = v.get("overall")
    if isinstance(overall, list):

        def f(x: Any) -> str:
            return "-" if x is None else f"{x:.3f}"

        lines.append("  " + ", ".join(f"{r['metric']} {f(r['value'])} [{f(r['low'])}, {f(r['high'])}]" for r in overall))
    notes = v.get("notes")
    if isinstance(notes, list):
        lines += [f"  note: {note}" for note in notes]
    return lines


@learn_cmd.command("cv")
@_labelled_input
@_group
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="Number of folds.")
@_model_settings
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@click.pass_context
def cv_cmd(ctx: click.Context, path: str | None, task: str | None, level: str, text_col: str, label_col: str,
           context_col: str | None, relabels: tuple[str, ...], group_col: str | None, folds: int, c: float, ngrams: int,
           min_df: int, class_weight: str, no_progress: bool) -> None:  # fmt: skip
    """Cross-validate a model on labels: F1 per class with 95% intervals,
    with the settings `learn fit` takes (nothing is saved, so --min-df 1
    needs no --allow-rare-ngrams here)."""
    from ..learn.validity import cross_validate

    frame = _relabelled(_read_labelled(path, task, ctx, level), label_col, relabels)
    if task is not None and group_col is None:
        group_col = "group"
    _checked_columns(frame, label_col, group_col)
    settings = _training_settings(text_col, label_col, context_col, c, ngrams, min_df, class_weight)
    report = cross_validate(frame, group=group_col, folds=folds, progress=progress_enabled(no_progress), **settings)
    click.echo(str(report))


@learn_cmd.command("evaluate")
@click.argument("model_path", type=click.Path(dir_okay=False))
@_labelled_input
@click.option("--group", "group_col", default=None,
              help="Column naming the group (dialogue, post): the unit the 95% intervals resample.")  # fmt: skip
@click.pass_context
def evaluate_cmd(ctx: click.Context, model_path: str, path: str | None, task: str | None, level: str, text_col: str,
                 label_col: str, context_col: str | None, relabels: tuple[str, ...], group_col: str | None) -> None:  # fmt: skip
    """Score a saved model (or a shipped one: skills, risk) on labelled data."""
    from ..learn.io import load
    from ..learn.shipped import NAMES, path as shipped_path
    from ..learn.validity import evaluate

    model = load(shipped_path(model_path) if model_path in NAMES else model_path)
    frame = _relabelled(_read_labelled(path, task, ctx, level), label_col, relabels)
    if task is not None and group_col is None:
        # As fit and cv: review labels come per conversation, and the
        # messages of one are not independent draws for the intervals.
        group_col = "group"
    _checked_columns(frame, label_col, group_col)
    click.echo(str(evaluate(model, frame, text=text_col, label=label_col, context=context_col, group=group_col)))
    data = model.card.get("data", {})
    parts = [data.get(k) for k in ("name", "split", "file", "review_task")] if isinstance(data, dict) else [data]
    trained_on = ", ".join(str(p) for p in parts if p)
    n = model.card.get("training", {}).get("n")
    # The shipped models' own development data scores far above their
    # cross-validated figures; say so where the figures are read, plainly
    # when the card names the very data evaluated (its path or, for a file
    # fitted since the card kept one, its content hash), conditionally
    # otherwise.
    same = isinstance(data, dict) and _same_data(data, path, task, ctx)
    held = ("these are its training texts: the figures are not held-out" if same
            else "if the data evaluated here overlaps them, the figures are not held-out")  # fmt: skip
    click.echo(f"note: {model.name} was trained on {trained_on or 'data not named in its card'} ({_count(n)} texts); "
               f"{held}; `pe-toolkit learn cv` gives cross-validated ones", err=True)  # fmt: skip


def _same_data(data: dict[str, Any], path: str | None, task: str | None, ctx: click.Context) -> bool:
    """Whether the card's training data is the data evaluated: by content
    hash where the card has one (a copy under another name is the same, an
    edited file of the same name is not), else by path; a review task by
    name and cache."""
    if path is not None:
        if data.get("sha256") is not None:
            return bool(data["sha256"] == _sha256(path))
        return data.get("file") is not None and Path(str(data["file"])).resolve() == Path(path).resolve()
    if task is None or data.get("review_task") != task:
        return False
    key = data.get("cache_key")
    return key is None or key == _cache_key(ctx)


def _cache_key(ctx: click.Context) -> str:
    """A hash of the cache's absolute path: the same cache, without its path."""
    import hashlib

    return hashlib.sha256(str(cli_cache(ctx, read_only=True).resolve()).encode()).hexdigest()[:16]


@learn_cmd.command("list")
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
def list_cmd(paths: tuple[str, ...]) -> None:
    """The shipped models and the project's ([[analysis.models]] in
    pe_toolkit.toml), or the given model files, with their cards' summary.

    Each file is checked as loading it would (content hash, format): one
    that fails is listed as REFUSED with the reason, and the command exits
    1 after the list."""
    from ..config import load_settings
    from ..errors import ModelError
    from ..learn.io import load
    from ..learn.shipped import NAMES, path as shipped_path

    targets = [Path(p) for p in paths] or [*(shipped_path(n) for n in NAMES), *(m.path for m in load_settings().models)]
    refused = 0
    for target in targets:
        try:
            card = load(target).card
        except ModelError as exc:
            refused += 1
            click.echo(f"{target.name}: REFUSED: {exc}")
            continue
        training = card.get("training", {})
        data = card.get("data", {})
        if isinstance(data, dict):
            data = data.get("name") or ", ".join(f"{k} {v}" for k, v in data.items())
        # learn.save from Python writes no data section: say so rather than print "data: ;".
        data = data or "not recorded in the card"
        click.echo(f"{target.name}: {card.get('name')} ({card.get('task')}, {len(card.get('classes', []))} classes), "
                   f"trained {card.get('date', '?')} on {_count(training.get('n'))} texts; data: {data}; "
                   f"hash {str(card.get('content_hash', ''))[:12]}")  # fmt: skip
        licence = card.get("data", {}).get("licence") if isinstance(card.get("data"), dict) else None
        if licence:
            click.echo(f"  licence: {licence}")
        for line in _validation_lines(card):
            click.echo(line)
    if refused:
        raise ModelError(f"{refused} of {len(targets)} model file(s) refused (listed above): do not use them")

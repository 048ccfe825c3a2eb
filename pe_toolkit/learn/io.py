"""Save and load :class:`~.model.TextModel` files, versioned and hashed.

A model file is a zip of numpy arrays (``.npy``, read without pickle) and
``card.json``. The card holds the format version, the feature settings,
the classes, what it was trained on (and under which licence), when, its
figures, and ``content_hash``: the SHA-256 of every array's bytes and of
the card without that field. :func:`load` refuses, with a clear
:class:`~pe_toolkit.errors.ModelError`, a file that is not a model, one
whose content does not match its hash (altered or truncated), one of
another format version, and one whose hash matches but whose content is
unusable (duplicate classes or ones differing only in case, non-finite weights, a malformed card field:
edited and re-hashed, or written by another tool).

Files are written bit for bit the same for the same model and card:
entries in a fixed order, fixed timestamps, sorted JSON; so ``make models``
can show that a shipped model is rebuilt exactly from its data. A card
without a date is dated on saving (today, UTC), and the date is part of
the hash: the recipes give theirs (``MODEL_DATE``) so that a rebuild on
another day matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..durable import fsync_dir, fsync_file, parent_problem, sweep, sweep_legacy_file, temp_name
from ..errors import InputError, ModelError
from .features import FeatureSpec, Featurizer
from .model import NO_THRESHOLD, TASKS, TextModel, case_clashes

FORMAT_VERSION = 1
_TMP_SUFFIX = ".tmp"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SUFFIX = ".pemodel"


def _arrays(model: TextModel) -> dict[str, np.ndarray]:
    out = {f"features/{k}": v for k, v in model.featurizer.state().items()}
    out["coef"] = model.coef.astype(np.float16)  # a few significant digits are all a linear text model needs
    out["intercept"] = model.intercept.astype(np.float64)
    out["thresholds"] = model.thresholds.astype(np.float64)
    return out


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def content_hash(arrays: dict[str, np.ndarray], card: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(_npy(arrays[name]))
    bare = {k: v for k, v in card.items() if k != "content_hash"}
    h.update(orjson.dumps(bare, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def _card(model: TextModel) -> dict[str, Any]:
    card = dict(model.card)
    card.update(
        {
            "format": FORMAT_VERSION,
            "name": model.name,
            "task": model.task,
            "classes": list(model.classes),
            "features": model.featurizer.spec.as_dict(),
            "constructs": list(model.featurizer.constructs),
            "rule_names": list(model.featurizer.rule_names),
        }
    )
    return card


def model_path(path: str | Path) -> Path:
    """The file :func:`save` writes for ``path``: ``.pemodel`` added when missing."""
    given = Path(path)
    return given if given.suffix == _SUFFIX else given.with_name(given.name + _SUFFIX)


def save(model: TextModel, path: str | Path, *, mode: int = 0o600) -> Path:
    """Write ``model`` to ``path`` (the suffix ``.pemodel`` is added when
    missing); returns the path. The card gains ``content_hash``, and
    ``date`` (today, UTC) when it has none. A path that is a folder, or
    that cannot be written (its folder missing: none is created, as for
    an export), raises :class:`~pe_toolkit.errors.ModelError`.

    The file is created readable by its owner only (``mode`` 600), like the
    cache and the exports: its vocabulary holds word n-grams of the
    training texts (every one found in ``min_df`` or more of them), so it
    is shared as the texts would be. The shipped models, trained on public
    data, are written with ``mode=0o644``."""
    given = Path(path)
    path = model_path(given)
    for p in dict.fromkeys((given, path)):
        if p.is_dir():
            raise ModelError(f"{p} is a folder; give the model file's path, such as {p / ('model' + _SUFFIX)}")
    arrays = _arrays(model)
    card = _card(model)
    # A card without a date cannot tell a reader which of two models is newer.
    card.setdefault("date", datetime.now(UTC).date().isoformat())
    card["content_hash"] = content_hash(arrays, card)
    # A fresh name each time (O_EXCL): the mode is given at creation, not
    # through the process umask (other threads share it) nor after the
    # bytes are written, and a stale file of an earlier crash keeps its own.
    tmp = temp_name(path, _TMP_SUFFIX)
    try:
        with (os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as f,
              zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z):  # fmt: skip
            for name in ["card.json", *sorted(arrays)]:
                info = zipfile.ZipInfo(name if name == "card.json" else f"{name}.npy", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                data = orjson.dumps(card, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) if name == "card.json" else _npy(arrays[name])
                z.writestr(info, data, compresslevel=9)
        # On disk before the rename and the rename after it, as exports are:
        # after a power cut the name must not point at bytes that never arrived.
        fsync_file(tmp)
        tmp.replace(path)  # a crash while writing leaves the old file, never half a model
        fsync_dir(path.parent)
        sweep(path, (_TMP_SUFFIX,))  # a killed save's copy holds the vocabulary: words of the training texts
        # Saves before 2026-12-06 (82ab36f) wrote NAME.pemodel.tmp, visible and readable by all.
        sweep_legacy_file(path.with_name(path.name + _TMP_SUFFIX), _a_killed_save)
    except BaseException as exc:
        # The half-written file goes on any failure, Ctrl-C included: it
        # holds the vocabulary, words of the training texts.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        # A missing folder is not created, as export does not create one: a
        # typo in the path fails here rather than making a folder.
        why = parent_problem(path) or exc.strerror or str(exc)
        raise ModelError(f"cannot write the model to {path}: {why}") from None
    model.card = card
    return path


def _a_killed_save(copy: Path) -> bool:
    """Whether ``copy`` is what a killed save left: save writes the zip
    entry card.json first, so the copy is empty or starts with that entry's
    local header (30 bytes, then its name), and it lacks the zip's closing
    directory (a complete model under that name may be someone's backup)."""
    with copy.open("rb") as f:
        head = f.read(64)
    if head == b"":
        return True
    return head[:4] == b"PK\x03\x04" and head[26:28] == b"\x09\x00" and head[30:39] == b"card.json" and not zipfile.is_zipfile(copy)


# What reading a damaged file can raise: a bad zip directory, a bad deflate
# stream (zlib.error, EOFError), a CRC mismatch (BadZipFile), a bad .npy
# header or JSON (ValueError), a renamed member (KeyError), a flag bit asking
# for an unsupported method (NotImplementedError) or a password (RuntimeError).
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OSError, NotImplementedError, RuntimeError)


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of a model file, without loading (or checking) its arrays."""
    try:
        with zipfile.ZipFile(path) as z:
            card = orjson.loads(z.read("card.json"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except _DAMAGE as exc:
        raise ModelError(f"{path} is not a pe_toolkit model file ({exc})") from None
    if not isinstance(card, dict):
        raise ModelError(f"{path} is not a pe_toolkit model file (its card.json is a JSON {type(card).__name__}, not an object)")
    return card


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _unusable(card: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[str, str] | None:
    """(field, what is wrong with it) for the first part of a model that the
    code after :func:`load` relies on without checking, or None. A matching
    content hash proves only that the file is what its writer sealed: a card
    edited and re-hashed by hand, or written by another tool, may hold
    duplicate classes, NaN weights or a ``training`` that is not an object,
    which would fail later (a traceback in ``learn list``, NaN probabilities,
    a class never labelled) far from the file."""
    if not isinstance(card.get("name"), str):
        return "name", "is not a string"
    if card.get("task") not in TASKS:
        return "task", f"is not one of {', '.join(TASKS)}"
    classes = card.get("classes")
    # Each class names a column and is found by name: an empty or repeated one cannot be told apart.
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c.strip() for c in classes):
        return "classes", "is not a non-empty list of non-empty strings"
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        return "classes", f"names {', '.join(map(repr, repeated))} more than once"
    # Each class also becomes a message column (<prefix>_p_<class>), and the
    # cache's column names ignore case: fit refuses such labels, and the
    # analyzer would refuse the model only when it first scores.
    clashes = [" and ".join(map(repr, names)) for names in case_clashes(classes)]
    if clashes:
        return "classes", (f"name {'; '.join(clashes)}, which differ only in case (each class becomes a column, "
                           "and the cache's column names ignore case)")  # fmt: skip
    for name in ("coef", "intercept", "thresholds"):
        if name not in arrays or arrays[name].dtype.kind not in "fiu":
            return name, "is missing or not numeric"
    for name, array in arrays.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            return name, "holds NaN or infinite values"
    n = len(classes)
    coef, thresholds = arrays["coef"], arrays["thresholds"]
    if coef.ndim != 2 or coef.shape[1] != n:
        return "classes", f"has {n} names for weights (coef) of shape {coef.shape}"
    for name in ("intercept", "thresholds"):
        if arrays[name].shape != (n,):
            return name, f"has shape {arrays[name].shape}, not one value per class ({n})"
    # Probabilities; a multi-class class without a threshold stores NO_THRESHOLD (see model._thresholds).
    unset = (thresholds == NO_THRESHOLD) & (card["task"] == "multiclass")
    if not (((thresholds >= 0) & (thresholds <= 1)) | unset).all():
        return "thresholds", "holds a value outside [0, 1]"
    shown = card.get("thresholds")  # the tuned thresholds as the card shows them (the shipped skills model's)
    if shown is not None and not (
        isinstance(shown, dict) and all(k in classes and _number(v) and 0 <= v <= 1 for k, v in shown.items())
    ):
        return "thresholds", "is not an object of the classes' thresholds, numbers in [0, 1]"
    if shown and any(not math.isclose(v, float(thresholds[classes.index(k)]), abs_tol=1e-9) for k, v in shown.items()):
        # The card's table of thresholds would tell its reader other ones than the model applies.
        return "thresholds", "differ from the thresholds the model applies"
    for name in ("constructs", "rule_names"):  # joined into messages and feature names
        names = card.get(name, [])
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            return name, "is not a list of strings"
    # Read with .get() by learn list and learn evaluate, and the levels are
    # compared as set members by the registry (a list there is a TypeError).
    training = card.get("training", {})
    if not isinstance(training, dict):
        return "training", "is not an object"
    if "n" in training and not (isinstance(training["n"], int) and not isinstance(training["n"], bool) and training["n"] >= 0):
        return "training.n", "is not a count of texts"
    for part in ("training", "data"):
        section = card.get(part)
        if isinstance(section, dict) and section.get("level") is not None and not isinstance(section["level"], str):
            return f"{part}.level", "is not a string"
    validation = card.get("validation")
    overall = validation.get("overall") if isinstance(validation, dict) else None
    # learn list prints each row of a list here as "metric value [low, high]" (indexed; numbers to 3 places).
    if isinstance(overall, list) and not all(
        isinstance(r, dict) and "metric" in r and all(k in r and (r[k] is None or _number(r[k])) for k in ("value", "low", "high"))
        for r in overall
    ):
        return "validation.overall", "holds a row that is not a metric with numbers value, low and high"
    combination = card.get("combination")  # the risk model's weights of risk_score (analysis.safety)
    if combination is not None and not (isinstance(combination, dict) and all(_number(v) for v in combination.values())):
        return "combination", "is not an object of numbers"
    return None


def load(path: str | Path) -> TextModel:
    """Read a model file, refusing one that was altered or is of another
    format version (see the module docstring)."""
    path = Path(path)
    card = read_card(path)
    version = card.get("format")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ModelError(f"{path} is a model of format {version}, written by a newer pe_toolkit; this one reads format "
                         f"{FORMAT_VERSION}: upgrade pe_toolkit to load it")  # fmt: skip
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{path} is a model of format {version!r}, this pe_toolkit reads format {FORMAT_VERSION}: "
            "retrain it (pe-toolkit learn fit, or make models for the shipped ones)"
        )
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith(".npy"):
                    arrays[name[: -len(".npy")]] = np.lib.format.read_array(io.BytesIO(z.read(name)), allow_pickle=False)
    except _DAMAGE as exc:
        raise ModelError(f"{path} is damaged: {exc}") from None
    expected = card.get("content_hash")
    if not expected or content_hash(arrays, card) != expected:
        raise ModelError(f"{path} does not match its content hash: the file was altered or is incomplete; retrain or reinstall it")
    problem = _unusable(card, arrays)
    if problem is not None:
        raise ModelError(f"{path} cannot be used: its {problem[0]} {problem[1]}; retrain or reinstall it")
    try:
        spec = FeatureSpec.from_dict(card["features"])
        features = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("features/")}
        featurizer = Featurizer.from_state(spec, features, card.get("constructs", []), card.get("rule_names", []))
        model = TextModel(
            name=card["name"],
            task=card["task"],
            classes=tuple(card["classes"]),
            featurizer=featurizer,
            coef=arrays["coef"].astype(np.float32),
            intercept=arrays["intercept"],
            thresholds=arrays["thresholds"],
            card=card,
        )
    except (KeyError, TypeError, ValueError, AttributeError, InputError) as exc:
        # A card whose settings are not what this version wrote (hash intact:
        # written by hand or by another tool): a bad model file, not a bug here.
        raise ModelError(f"{path} lacks part of a model or its card's settings are invalid ({type(exc).__name__}: {exc})") from None
    if model.coef.shape != (featurizer.n_features, len(model.classes)):
        raise ModelError(f"{path}: weights of shape {model.coef.shape} do not fit {featurizer.n_features} features x {len(model.classes)} classes")
    return model

"""Save and load :class:`~.model.TextModel` files, versioned and hashed.

A model file is a zip of numpy arrays (``.npy``, read without pickle) and
``card.json``. The card holds the format version, the feature settings,
the classes, what it was trained on (and under which licence), when, its
figures, and ``content_hash``: the SHA-256 of every array's bytes and of
the card without that field. :func:`load` refuses, with a clear
:class:`~pe_toolkit.errors.ModelError`, a file that is not a model, one
whose content does not match its hash (altered or truncated), and one of
another format version.

Files are written bit for bit the same for the same model: entries in a
fixed order, fixed timestamps, sorted JSON; so ``make models`` can show
that a shipped model is rebuilt exactly from its data.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import ModelError
from .features import FeatureSpec, Featurizer
from .model import TextModel

FORMAT_VERSION = 1
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


def save(model: TextModel, path: str | Path) -> Path:
    """Write ``model`` to ``path`` (the suffix ``.pemodel`` is added when
    missing); returns the path. The card gains ``content_hash``."""
    path = Path(path)
    if path.suffix != _SUFFIX:
        path = path.with_name(path.name + _SUFFIX)
    arrays = _arrays(model)
    card = _card(model)
    card["content_hash"] = content_hash(arrays, card)
    model.card = card
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in ["card.json", *sorted(arrays)]:
            info = zipfile.ZipInfo(name if name == "card.json" else f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            data = orjson.dumps(card, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) if name == "card.json" else _npy(arrays[name])
            z.writestr(info, data, compresslevel=9)
    tmp.replace(path)  # a crash while writing leaves the old file, never half a model
    return path


# What reading a damaged file can raise: a bad zip directory, a bad deflate
# stream (zlib.error, EOFError), a CRC mismatch (BadZipFile), a bad .npy
# header or JSON (ValueError), a renamed member (KeyError), a flag bit asking
# for an unsupported method (NotImplementedError) or a password (RuntimeError).
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OSError, NotImplementedError, RuntimeError)


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of a model file, without loading (or checking) its arrays."""
    try:
        with zipfile.ZipFile(path) as z:
            return orjson.loads(z.read("card.json"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except _DAMAGE as exc:
        raise ModelError(f"{path} is not a pe_toolkit model file ({exc})") from None


def load(path: str | Path) -> TextModel:
    """Read a model file, refusing one that was altered or is of another
    format version (see the module docstring)."""
    path = Path(path)
    card = read_card(path)
    version = card.get("format")
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
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{path} lacks part of a model ({exc})") from None
    if model.coef.shape != (featurizer.n_features, len(model.classes)):
        raise ModelError(f"{path}: weights of shape {model.coef.shape} do not fit {featurizer.n_features} features x {len(model.classes)} classes")
    return model

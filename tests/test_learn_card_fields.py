"""A model file whose content hash is intact but whose card or arrays
cannot be used (edited by hand and re-hashed, or written by another tool)
is refused by ``load`` with one ModelError line naming the file and the
field, and ``pe-toolkit learn list`` lists it as REFUSED and exits 1,
rather than loading it and failing later (a traceback in ``learn list``,
NaN probabilities, a class that is never labelled)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import ModelError
from pe_toolkit.learn import fit, load, save
from pe_toolkit.learn.features import FeatureSpec
from pe_toolkit.learn.io import content_hash

from .test_learn import toy


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real small model (classes glad, sad), saved by the project's save."""
    return save(fit(toy(), spec=FeatureSpec(min_df=1)), tmp_path_factory.mktemp("card") / "good")


def _resealed(src, dst, card_change=None, array_change=None):
    """``src`` with its card and arrays changed, and its content hash
    recomputed as the file format computes it: only a check of the content
    itself can refuse the copy."""
    with zipfile.ZipFile(src) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    card = orjson.loads(parts["card.json"])
    arrays = {n[: -len(".npy")]: np.lib.format.read_array(io.BytesIO(b)) for n, b in parts.items() if n.endswith(".npy")}
    if card_change is not None:
        card_change(card)
    if array_change is not None:
        array_change(arrays)
    card["content_hash"] = content_hash(arrays, card)
    parts = {"card.json": orjson.dumps(card, option=orjson.OPT_SORT_KEYS)}
    for name, array in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, array, allow_pickle=False)
        parts[f"{name}.npy"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in parts.items():
            z.writestr(n, data)
    return dst


def _set(key, value):
    def change(card):
        card[key] = value

    return change


def _array(name, make):
    def change(arrays):
        arrays[name] = make(arrays[name])

    return change


def _nan_at_first(a):
    out = a.copy()
    out.flat[0] = np.nan
    return out


TEXT_FIGURE = {"metric": "f1", "value": "high", "low": None, "high": None}

# (id, card change, array change, the field the message names)
BAD = [
    ("duplicate-classes", _set("classes", ["sad", "sad"]), None, "classes"),
    ("empty-class", _set("classes", ["glad", " "]), None, "classes"),
    ("classes-differ-in-case", _set("classes", ["Sad", "sad"]), None, "classes"),
    ("classes-not-strings", _set("classes", [1, 2]), None, "classes"),
    ("threshold-strings", _set("thresholds", {"glad": "0.5", "sad": "0.5"}), None, "thresholds"),
    ("threshold-above-1", _set("thresholds", {"glad": 1.5}), None, "thresholds"),
    ("threshold-unknown-class", _set("thresholds", {"happy": 0.5}), None, "thresholds"),
    ("thresholds-a-list", _set("thresholds", [0.5, 0.5]), None, "thresholds"),
    ("thresholds-not-the-models", _set("thresholds", {"glad": 0.4}), None, "thresholds"),
    ("threshold-array-nan", None, _array("thresholds", _nan_at_first), "thresholds"),
    ("threshold-array-length", None, _array("thresholds", lambda a: np.r_[a, 0.5]), "thresholds"),
    ("threshold-array-negative", None, _array("thresholds", lambda a: np.full_like(a, -0.5)), "thresholds"),
    ("coef-nan", None, _array("coef", _nan_at_first), "coef"),
    ("coef-inf", None, _array("coef", lambda a: np.where(a == a.max(), np.inf, a).astype(a.dtype)), "coef"),
    ("intercept-inf", None, _array("intercept", lambda a: np.full_like(a, -np.inf)), "intercept"),
    ("intercept-length", None, _array("intercept", lambda a: a[:1]), "intercept"),
    ("idf-nan", None, _array("features/idf", _nan_at_first), "features/idf"),
    ("training-list", _set("training", []), None, "training"),
    ("training-null", _set("training", None), None, "training"),
    ("training-n-text", lambda c: c["training"].update(n="many"), None, "training.n"),
    ("training-level-list", lambda c: c["training"].update(level=["message"]), None, "training.level"),
    ("data-level-list", _set("data", {"level": ["conversation"]}), None, "data.level"),
    ("task-unknown", _set("task", "binary"), None, "task"),
    ("name-not-text", _set("name", 7), None, "name"),
    ("validation-overall-text", _set("validation", {"overall": [TEXT_FIGURE]}), None, "validation.overall"),
    ("validation-overall-no-interval", _set("validation", {"overall": [{"metric": "f1", "value": 0.5}]}), None, "validation.overall"),
    ("combination-text", _set("combination", {"intercept": "-1.3"}), None, "combination"),
    ("rule-names-not-strings", _set("rule_names", [1]), None, "rule_names"),
]


@pytest.mark.parametrize(("card_change", "array_change", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_resealed_unusable_card_is_refused_naming_the_field(saved, tmp_path, card_change, array_change, field):
    bad = _resealed(saved, tmp_path / "bad.pemodel", card_change, array_change)
    with pytest.raises(ModelError) as info:
        load(bad)
    message = str(info.value)
    assert str(bad) in message and field in message and "\n" not in message, message
    assert "content hash" not in message, message  # the hash matches: the new checks refused it


def test_the_resealed_copy_of_a_good_file_loads(saved, tmp_path):
    # The helper itself leaves a good model loadable: the refusals above are the edits'.
    same = load(_resealed(saved, tmp_path / "same.pemodel"))
    assert same.classes == ("glad", "sad") and same.predict(["so sad"])["label"].to_list() == ["sad"]


def test_list_refuses_a_card_with_training_as_a_list_in_one_line(saved, tmp_path):
    bad = _resealed(saved, tmp_path / "tr.pemodel", _set("training", []))
    r = CliRunner().invoke(cli, ["learn", "list", str(saved), str(bad)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    refused = [line for line in r.stdout.splitlines() if line.startswith("tr.pemodel")]
    assert len(refused) == 1 and "REFUSED" in refused[0] and "training" in refused[0], r.stdout
    assert r.stderr == "pe-toolkit: error: 1 of 2 model file(s) refused (listed above): do not use them\n", r.stderr


def test_classes_differing_only_in_case_are_refused_at_load_and_by_the_cli_in_one_line(saved, tmp_path):
    # Each class becomes a message column, and the cache's column names
    # ignore case: the analyzer refused such a model only when it first scored.
    bad = _resealed(saved, tmp_path / "case.pemodel", _set("classes", ["Sad", "sad"]))
    with pytest.raises(ModelError, match="'Sad' and 'sad', which differ only in case"):
        load(bad)
    r = CliRunner().invoke(cli, ["learn", "list", str(bad)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    refused = [line for line in r.stdout.splitlines() if line.startswith("case.pemodel")]
    assert len(refused) == 1 and "REFUSED" in refused[0] and "differ only in case" in refused[0], r.stdout
    data = tmp_path / "labelled.csv"
    toy().write_csv(data)
    r = CliRunner().invoke(cli, ["learn", "evaluate", str(bad), "--data", str(data)])
    assert r.exit_code == 1 and r.stdout == "" and "Traceback" not in r.output, r.output
    assert r.stderr.startswith("pe-toolkit: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert str(bad) in r.stderr and "'Sad' and 'sad', which differ only in case" in r.stderr, r.stderr

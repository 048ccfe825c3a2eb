"""Every lexicon, model and package data an analyzer reads is part of its
version, so editing one makes the scores stored with the old one outdated
(issue 18, part 1). A lexicon is "edited" here by giving it another digest:
the version reads the digests, never the text."""

from __future__ import annotations

import dataclasses

import pytest

from pe_toolkit import synth
from pe_toolkit.analysis import analyze
from pe_toolkit.analysis.empathy import EMPATHY
from pe_toolkit.analysis.learned import RISK_MODEL, SKILLS_MODEL
from pe_toolkit.analysis.patterns import lexicon
from pe_toolkit.analysis.safety import SAFETY
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

READS = {"safety": {"crisis", "responses", "cues", "pii"}, "empathy": {"empathy", "skills", "responses"}}
ANALYZERS = {"safety": SAFETY, "empathy": EMPATHY}


def _edit(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = lexicon.load_lexicon

    def edited(which: str) -> lexicon.Lexicon:
        found = real(which)
        return dataclasses.replace(found, digest="edited" + found.digest[6:]) if which == name else found

    monkeypatch.setattr(lexicon, "load_lexicon", edited)


@pytest.mark.parametrize("name", ["crisis", "responses", "cues", "pii", "empathy", "skills"])
def test_an_edited_lexicon_changes_the_version_of_those_that_read_it(monkeypatch, name) -> None:
    before = {key: analyzer.version for key, analyzer in ANALYZERS.items()}
    _edit(monkeypatch, name)
    for key, analyzer in ANALYZERS.items():
        assert (analyzer.version != before[key]) == (name in READS[key]), (key, name)


def test_the_models_and_package_data_read_are_in_the_versions() -> None:
    from importlib.metadata import version

    assert f"+risk.{RISK_MODEL.version}+" in SAFETY.version
    assert EMPATHY.version.endswith(f"+skills.{SKILLS_MODEL.version}")
    assert f"+data.phonenumbers{version('phonenumbers')}+" in SAFETY.version
    # Faker's name lists serve redaction only (pii_spans(names=True)): a Faker
    # release must not make every stored safety score outdated.
    assert "faker" not in SAFETY.version


def test_analyze_scores_again_after_a_lexicon_edit(tmp_path, monkeypatch) -> None:
    corpus = tmp_path / "corpus.jsonl"
    synth.write(corpus, 40, seed=3, progress=False)
    with Store(tmp_path / "v.duckdb") as store:
        import_file(store, corpus, progress=False)
        analyze(store, progress=False)
        assert analyze(store, progress=False).scored == 0  # nothing changed: nothing to do
        _edit(monkeypatch, "crisis")
        again = analyze(store, progress=False)
        assert again.scored == store.count()
        versions = store.sql("SELECT DISTINCT analysis_version FROM current_conversation_scores")
        assert versions.height == 1 and versions.item() == again.analysis_version


@pytest.mark.parametrize("module", ["empathy", "safety"])
def test_the_module_docstring_names_the_analyzers_own_version(module) -> None:
    # The docstring said safety's version was 7 after v8 shipped: a reader
    # matching stored scores to the docs was told the wrong rules.
    import importlib
    import re

    mod = importlib.import_module(f"pe_toolkit.analysis.{module}")
    said = re.search(r"its version is ``(\w+)``", mod.__doc__ or "")
    assert said is not None and said.group(1) == mod.VERSION, (module, said and said.group(1), mod.VERSION)

"""Optional backend: person names from Presidio with a spaCy model, added to
the built-in name pass of the redaction path (``redact``, ``redact_frame``,
``find_pii``, ``export --redact``).

Used when ``presidio-analyzer`` and ``spacy`` are installed
(``pip install 'pe-toolkit[presidio]'``) and a spaCy model is there: the
one named by ``PE_PRESIDIO_MODEL`` (an installed package name or a model
folder), else the first installed of ``en_core_web_lg``, ``_md``, ``_sm``,
``_trf``. Nothing is ever downloaded: without a model the backend is off.
``PE_PRESIDIO_MODEL=off`` turns it off. Only Presidio's ``PERSON`` findings
are taken; its pattern recognizers (e-mail, phone, IBAN...) duplicate the
built-in ones.

Cost: spaCy runs once per message (``nlp.pipe`` in batches), milliseconds
per message with a statistical model: an export of a million messages takes
about as long as that model takes over them. The analysis path never runs it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import polars as pl

MODEL_ENV = "PE_PRESIDIO_MODEL"
DEFAULT_MODELS = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_trf")
MIN_SCORE = 0.5
SPANS_SCHEMA: dict[str, pl.DataType] = {"row": pl.UInt32(), "start": pl.Int32(), "end": pl.Int32()}


def model_name() -> str | None:
    """The spaCy model Presidio would use, or None when the backend is off
    (Presidio or spaCy missing, no model installed, or turned off)."""
    return _model_for(os.environ.get(MODEL_ENV, "").strip())


@functools.lru_cache(maxsize=8)
def _model_for(wanted: str) -> str | None:
    # Cached: redact() on one string at a time must not look up installed
    # packages on every call.
    if wanted.lower() in {"off", "none", "0"}:
        return None
    try:
        import presidio_analyzer  # noqa: F401
        import spacy
    except ImportError:
        return None
    for name in (wanted,) if wanted else DEFAULT_MODELS:
        if Path(name).is_dir() or spacy.util.is_package(name):
            return name
    return None


def backend() -> str:
    """``"builtin"``, or ``"builtin+presidio:<model>"`` when Presidio adds to it."""
    name = model_name()
    return "builtin" if name is None else f"builtin+presidio:{name}"


@functools.lru_cache(maxsize=4)
def _engine(name: str) -> Any:
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": name}]}
    nlp = NlpEngineProvider(nlp_configuration=config).create_engine()
    return BatchAnalyzerEngine(AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"]))


def person_spans(texts: pl.Series) -> pl.DataFrame:
    """Presidio's person names in ``texts`` (:data:`SPANS_SCHEMA`, character
    offsets); empty when the backend is off."""
    name = model_name()
    if name is None or not len(texts):
        return pl.DataFrame(schema=SPANS_SCHEMA)
    values = texts.cast(pl.String).fill_null("").to_list()
    results = _engine(name).analyze_iterator(values, language="en", entities=["PERSON"], batch_size=256)
    # Presidio answers per text (a list of results each): the loop is over
    # its answers, which the model produced one message at a time anyway.
    found = [
        (row, r.start, r.end)
        for row, per_text in enumerate(results)
        for r in per_text
        if r.entity_type == "PERSON" and r.score >= MIN_SCORE
    ]
    return pl.DataFrame(found, schema=SPANS_SCHEMA, orient="row")

"""Analyzers of conversations: sentiment, empathy, safety, quality, and
any a researcher registers.

Every analyzer is a pure function over a batch of messages (see
:mod:`pe_toolkit.analysis.base`); these entry points run them all:

- :func:`analyze` scores what is new or changed in a store and writes
  ``message_scores``, ``conversation_scores`` and ``evidence``;
- :func:`analyze_frame` scores a messages frame without a store;
- :func:`validate_conversation` scores one conversation (an API
  conversation dict) the way the API's validation route answers;
- :func:`evaluate` compares predictions with gold labels;
- :func:`redact` removes PII from a text (from :mod:`.pii`).

A researcher's analyzer joins them with :func:`analyzer` (a decorated
function over a polars frame, versioned by its code) or :func:`register`
(any object with ``name``, ``version`` and ``score(batch)``, such as a
:class:`ModelAnalyzer` over a model trained with ``pe_toolkit.learn``); see
``docs/analyzers.md``.

Names are imported on first use, so importing this package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "analyze": "pe_toolkit.analysis.pipeline",
    "AnalysisReport": "pe_toolkit.analysis.pipeline",
    "analyze_frame": "pe_toolkit.analysis.frames",
    "FrameScores": "pe_toolkit.analysis.frames",
    "validate_conversation": "pe_toolkit.analysis.validate",
    "evaluate": "pe_toolkit.analysis.evaluation",
    "Evaluation": "pe_toolkit.analysis.evaluation",
    "redact": "pe_toolkit.analysis.pii",
    "analyzers": "pe_toolkit.analysis.registry",
    "register": "pe_toolkit.analysis.registry",
    "unregister": "pe_toolkit.analysis.registry",
    "ANALYZER_MODULES": "pe_toolkit.analysis.registry",
    "analyzer": "pe_toolkit.analysis.custom",
    "FunctionAnalyzer": "pe_toolkit.analysis.custom",
    "ModelAnalyzer": "pe_toolkit.analysis.learned",
    "Scores": "pe_toolkit.analysis.base",
    "Batch": "pe_toolkit.analysis.base",
    "check_messages": "pe_toolkit.analysis.base",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pe_toolkit.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

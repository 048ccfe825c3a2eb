"""Learned analyzers: train text classifiers on human labels, evaluate them
with intervals, save and load them with their cards.

>>> from pe_toolkit import learn
>>> frame = learn.devdata.esconv().filter(pl.col("role") == "assistant")
>>> model = learn.fit(frame, text="text", label="strategy")
>>> report = learn.cross_validate(frame, text="text", label="strategy", group="dialogue")
>>> print(report)                                     # F1 per class with 95% intervals
>>> learn.save(model, "strategies.pemodel")
>>> learn.from_store(store, task="review")            # the review widget's labels, ready for fit()
>>> learn.from_metadata(store, "strategy", role="assistant")  # labels an import carried in

The shipped models (``skills``, ``risk``) run inside ``analyze()``; see
:mod:`pe_toolkit.analysis.learned` and ``docs/metric_cards_learned.md``.
Names are imported on first use (scikit-learn only when fitting).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "fit": "pe_toolkit.learn.model",
    "TextModel": "pe_toolkit.learn.model",
    "FeatureSpec": "pe_toolkit.learn.features",
    "Featurizer": "pe_toolkit.learn.features",
    "evaluate": "pe_toolkit.learn.validity",
    "cross_validate": "pe_toolkit.learn.validity",
    "Report": "pe_toolkit.learn.validity",
    "multilabel_report": "pe_toolkit.learn.validity",
    "save": "pe_toolkit.learn.io",
    "load": "pe_toolkit.learn.io",
    "read_card": "pe_toolkit.learn.io",
    "from_store": "pe_toolkit.learn.labels",
    "from_metadata": "pe_toolkit.learn.labels",
    "rename_labels": "pe_toolkit.learn.labels",
    "load_shipped": "pe_toolkit.learn.shipped",
    "devdata": "pe_toolkit.learn",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name == "devdata":
        return importlib.import_module("pe_toolkit.learn.devdata")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pe_toolkit.learn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

"""Which analyzers run, in the order one pass runs them.

The shipped analyzers come first, quality last among them because it reads
the others' scores from the batch; then the project's models
(``[[analysis.models]]`` in ``pe_toolkit.toml``, so the CLI, notebooks and
scripts of a project all run them); then the analyzers a researcher
registered in this process (:func:`register`, or the
:func:`~.custom.analyzer` decorator), in registration order, so they can
read every shipped result. A registered analyzer replaces a configured one
of the same name. Shipped modules are imported on first use:
``import pe_toolkit.analysis`` stays cheap.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from ..errors import AnalysisError
from .base import Analyzer

# (name, module, attribute), in run order.
ANALYZER_MODULES: tuple[tuple[str, str, str], ...] = (
    ("sentiment", "pe_toolkit.analysis.sentiment", "SENTIMENT"),
    # The learned models run before the rule analyzers that read them.
    ("skills_model", "pe_toolkit.analysis.learned", "SKILLS_MODEL"),
    ("risk_model", "pe_toolkit.analysis.learned", "RISK_MODEL"),
    ("empathy", "pe_toolkit.analysis.empathy", "EMPATHY"),
    ("safety", "pe_toolkit.analysis.safety", "SAFETY"),
    ("quality", "pe_toolkit.analysis.quality", "QUALITY"),
)
SHIPPED: frozenset[str] = frozenset(name for name, _, _ in ANALYZER_MODULES)

# Registered by researchers (this process only), by name, in order.
_registered: dict[str, Analyzer] = {}
_lock = threading.Lock()
# The configured models' analyzers, by entry and file state: a model file
# is read (and hashed) once, and again when it is replaced.
_configured: dict[object, tuple[tuple[int, int], Analyzer]] = {}


def version_of(analyzers: Sequence[Analyzer]) -> str:
    """The analysis version of a set of analyzers (stored with every score:
    any change makes ``analyze`` re-score)."""
    return ";".join(f"{a.name}={a.version}" for a in analyzers)


@dataclass(frozen=True)
class Registry:
    analyzers: tuple[Analyzer, ...]

    @property
    def version(self) -> str:
        return version_of(self.analyzers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.analyzers)


def shipped() -> tuple[Analyzer, ...]:
    """The analyzers pe_toolkit ships, in run order."""
    found: list[Analyzer] = []
    for name, module_name, attribute in ANALYZER_MODULES:
        analyzer = getattr(importlib.import_module(module_name), attribute, None)
        if analyzer is None:
            raise AnalysisError(f"{module_name} defines no {attribute}")
        if analyzer.name != name:
            raise AnalysisError(f"{module_name}.{attribute} is named {analyzer.name!r}, expected {name!r}")
        found.append(analyzer)
    return tuple(found)


def register(analyzer: Analyzer) -> Analyzer:
    """Run ``analyzer`` in every pass of this process (``analyze(store)``,
    ``analyze_frame``), after the shipped ones. Registering a name again
    replaces the earlier one (a notebook cell run twice); a shipped name
    cannot be taken. Returns the analyzer."""
    name = getattr(analyzer, "name", None)
    if not isinstance(name, str) or not name:
        raise AnalysisError(f"an analyzer needs a non-empty name, got {name!r}")
    if not isinstance(getattr(analyzer, "version", None), str) or not callable(getattr(analyzer, "score", None)):
        raise AnalysisError(f"analyzer {name!r} needs a version string and a score(batch) method")
    if name in SHIPPED:
        raise AnalysisError(f"{name!r} is a shipped analyzer; choose another name")
    with _lock:
        _registered.pop(name, None)
        _registered[name] = analyzer
    return analyzer


def unregister(name: str) -> None:
    """Stop running the registered analyzer ``name`` (no error if it is not)."""
    with _lock:
        _registered.pop(name, None)


def configured() -> tuple[Analyzer, ...]:
    """The project's models (``[[analysis.models]]`` in the config file), as
    analyzers."""
    from ..config import load_settings
    from ..errors import ConfigError

    found: list[Analyzer] = []
    for entry in load_settings().models:
        if entry.name in SHIPPED:
            raise ConfigError(f"analysis.models: {entry.name!r} is a shipped analyzer's name; choose another")
        try:
            stat = entry.path.stat()
        except OSError:
            raise ConfigError(f"analysis.models {entry.name!r}: no model file at {entry.path}") from None
        state = (stat.st_mtime_ns, stat.st_size)
        with _lock:
            known = _configured.get(entry)
            if known is not None and known[0] == state:
                analyzer = known[1]
            else:
                from .learned import ModelAnalyzer

                analyzer = cast(Analyzer, ModelAnalyzer(entry.path, name=entry.name, role=entry.role, prefix=entry.prefix))
                _configured[entry] = (state, analyzer)
        found.append(analyzer)
    return tuple(found)


def load() -> Registry:
    """The shipped analyzers, then the configured models, then the
    registered analyzers (one of those replaces a configured model of its
    name)."""
    with _lock:
        extra = tuple(_registered.values())
    project = tuple(a for a in configured() if a.name not in {e.name for e in extra})
    return Registry((*shipped(), *project, *extra))


def analyzers() -> tuple[Analyzer, ...]:
    """Every analyzer a pass runs by default, in run order."""
    return load().analyzers

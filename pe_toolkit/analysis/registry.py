"""Which analyzers exist, in the order one pass runs them.

Quality runs last because it reads the others' scores from ``context``.
Modules are imported on first use: ``import pe_toolkit.analysis`` stays
cheap, and an analyzer whose module is not installed yet (the empathy and
safety analyzers are developed separately) is reported as missing instead
of breaking the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Registry:
    analyzers: tuple[Analyzer, ...]
    missing: tuple[str, ...]  # names whose module is not there

    @property
    def version(self) -> str:
        """Stored with every score: any change makes ``analyze`` re-score."""
        return ";".join(f"{a.name}={a.version}" for a in self.analyzers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.analyzers)


def load(*, require_all: bool = False) -> Registry:
    """Import the analyzers. A module that does not exist is skipped (and
    named in ``missing``) unless ``require_all``; any other import error is
    a bug in that module and propagates."""
    found: list[Analyzer] = []
    missing: list[str] = []
    for name, module_name, attribute in ANALYZER_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            missing.append(name)
            continue
        analyzer = getattr(module, attribute, None)
        if analyzer is None:
            raise AnalysisError(f"{module_name} defines no {attribute}")
        if analyzer.name != name:
            raise AnalysisError(f"{module_name}.{attribute} is named {analyzer.name!r}, expected {name!r}")
        found.append(analyzer)
    if missing and require_all:
        raise AnalysisError(f"analyzers not available: {', '.join(missing)}")
    return Registry(tuple(found), tuple(missing))


def analyzers() -> tuple[Analyzer, ...]:
    """The available analyzers, in run order."""
    return load().analyzers

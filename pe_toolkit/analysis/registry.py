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
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..errors import AnalysisError
from .base import Analyzer

if TYPE_CHECKING:
    from ..config import ConfiguredModel

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
_configured: dict[ConfiguredModel, tuple[tuple[int, ...], Analyzer]] = {}


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
    analyzers, each over a model loaded (and its hash checked) here."""
    from ..config import load_settings
    from ..errors import ConfigError

    settings = load_settings()
    where = settings.sources.get("models", settings.config_file)  # the file that listed them (user or project)
    found: list[Analyzer] = []
    for entry in settings.models:
        label = f"{where}: analysis.models {entry.name!r}"
        if entry.name in SHIPPED:
            raise ConfigError(f"{label} is a shipped analyzer's name; choose another")
        with _lock:
            known = _configured.get(entry)
            state = _file_state(entry.path, label)
            if known is None or known[0] != state:
                known = _model_analyzer(entry, state, label)
                _configured[entry] = known
        found.append(known[1])
    with _lock:  # entries no longer configured are let go
        for gone in set(_configured) - set(settings.models):
            del _configured[gone]
    return tuple(found)


def _file_state(path: Path, label: str) -> tuple[int, ...]:
    """What tells a replaced file from the one read: ``save`` writes a new
    file and renames it over the old, so the inode changes even when size
    and modification time do not (``cp -p``, coarse timestamps)."""
    from ..errors import ConfigError

    try:
        st = path.stat()
    except OSError:
        raise ConfigError(f"{label}: no model file at {path}") from None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _model_analyzer(entry: ConfiguredModel, state: tuple[int, ...], label: str) -> tuple[tuple[int, ...], Analyzer]:
    """(the file's state, the analyzer over the model at ``entry.path``),
    loaded now (not on first use, when the file may have changed again) and
    read again if the file changed while it was read."""
    from ..errors import ConfigError, ModelError
    from ..learn.io import load as load_model
    from .learned import ModelAnalyzer, conversation_level_problem

    for _ in range(3):
        try:
            model = load_model(entry.path)
        except ModelError as exc:
            raise ModelError(f"{label}: {exc}") from None
        after = _file_state(entry.path, label)
        if after == state:
            break
        state = after
    else:
        raise ConfigError(f"{label}: {entry.path} keeps changing while it is read")
    problem = conversation_level_problem(model)
    if problem:
        raise ConfigError(f"{label}: {problem}")
    return state, cast(Analyzer, ModelAnalyzer(model, name=entry.name, role=entry.role, prefix=entry.prefix))


def load() -> Registry:
    """The shipped analyzers, then the configured models, then the
    registered analyzers (one of those replaces a configured model of its
    name)."""
    with _lock:
        extra = tuple(_registered.values())
    replaced = {a.name for a in extra}
    project = tuple(a for a in configured() if a.name not in replaced)
    return Registry((*shipped(), *project, *extra))


def analyzers() -> tuple[Analyzer, ...]:
    """Every analyzer a pass runs by default, in run order."""
    return load().analyzers

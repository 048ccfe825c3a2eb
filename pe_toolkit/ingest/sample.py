"""The embedded default: the bundled sample, loaded when the cache is empty."""

from __future__ import annotations

from ..config import load_settings
from ..errors import ConfigError
from ..store import Store
from .importer import ImportReport, import_file


def ensure_sample(store: Store, *, progress: bool = False) -> ImportReport | None:
    """Import the bundled sample if the cache holds no conversations yet.

    Returns the import report, or None when the cache already had data.
    """
    if store.count() > 0:
        return None
    sample = load_settings().sample_path
    if not sample.is_file():
        raise ConfigError(f"the bundled sample is missing: {sample}")
    return import_file(store, sample, progress=progress)

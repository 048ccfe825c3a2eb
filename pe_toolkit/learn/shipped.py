"""The models shipped in the package (``pe_toolkit/learn/models``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analysis.learned import MODELS_DIR
from ..errors import ModelError

NAMES: tuple[str, ...] = ("skills", "risk")


def path(name: str) -> Path:
    if name not in NAMES:
        raise ModelError(f"no shipped model {name!r}; the shipped models are {', '.join(NAMES)}")
    return MODELS_DIR / f"{name}.pemodel"


def load_shipped(name: str) -> Any:
    """Load a shipped model by name (``skills`` or ``risk``)."""
    from .io import load

    return load(path(name))

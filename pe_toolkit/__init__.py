"""pe_toolkit: a research toolkit for therapeutic and mental-health support conversations.

The public API is re-exported here; heavier parts are imported on first use
so that ``import pe_toolkit`` stays quick.

>>> import pe_toolkit as pe
>>> store = pe.open_store()                      # data/pe_cache.duckdb or $PE_CACHE
>>> pe.import_file(store, "data/sample.jsonl.gz")
>>> store.summary()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import Secret, Settings, load_settings
from .errors import PeToolkitError
from .events import Event, EventBus, bus

if TYPE_CHECKING:
    from .store import ConversationFilter as ConversationFilter, Store as Store, open_store as open_store

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily). The store too
# (DuckDB, polars: half a second): the CLI imports this package before it
# can catch anything, so Ctrl-C in that half second printed a traceback.
_LAZY: dict[str, str] = {
    "ConversationFilter": "pe_toolkit.store",
    "Store": "pe_toolkit.store",
    "open_store": "pe_toolkit.store",
    "import_file": "pe_toolkit.ingest",
    "import_frame": "pe_toolkit.ingest",
    "import_dataset": "pe_toolkit.ingest",
    "ColumnMap": "pe_toolkit.ingest",
    "ensure_sample": "pe_toolkit.ingest.sample",
    "analyze": "pe_toolkit.analysis",
    "validate_conversation": "pe_toolkit.analysis",
    "redact": "pe_toolkit.analysis",
    "Client": "pe_toolkit.client",
    "AsyncClient": "pe_toolkit.client",
    "PixelatedEmpathyAPI": "pe_toolkit.client",
    "sync": "pe_toolkit.apisync",
    "export": "pe_toolkit.exports",
    "features": "pe_toolkit.exports",
    "open_for_notebook": "pe_toolkit.session",
}

__all__ = [
    "Event",
    "EventBus",
    "PeToolkitError",
    "Secret",
    "Settings",
    "bus",
    "load_settings",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pe_toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

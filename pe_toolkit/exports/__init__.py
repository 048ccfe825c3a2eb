"""Exports and the warehouse load (the ETL pattern).

The package is ``exports`` so that ``pe_toolkit.export`` stays the function
(a package of the same name would replace it once imported).

- :func:`export`: the store (or a filtered part of it) to ``jsonl``,
  ``openai``, ``sharegpt``, ``csv``, ``parquet`` or ``huggingface``, streamed
  in batches and renamed into place only when complete;
- :func:`features`: the conversation- or message-level feature table as a
  polars frame;
- :mod:`pe_toolkit.exports.warehouse`: ``load(store, dsn)`` into PostgreSQL
  through ADBC, with upserts that write only what changed.

docs/export.md says what each format keeps.
"""

from .core import BATCH_ROWS, FORMATS, ExportReport, export
from .features import features
from .filters import ExportFilter

__all__ = ["BATCH_ROWS", "FORMATS", "ExportFilter", "ExportReport", "export", "features"]

"""Past one machine: the analysis on Ray Data (``pip install 'pe-toolkit[ray]'``).

:func:`analyze_dataset` scores a corpus of files into a partitioned Parquet
dataset; :func:`attach_scores` reads such a dataset back as the store's
tables and views (DuckDB over the Parquet files, nothing loaded). Ray is
imported only when a run starts. See docs/scale.md.
"""

from .attach import attach_scores
from .run import ScaleReport, analyze_dataset

__all__ = ["ScaleReport", "analyze_dataset", "attach_scores"]

"""Getting conversations in: file importers, the synthetic generator, the API sync."""

from .importer import FORMATS, ImportReport, detect_format, import_file
from .tabular import ColumnMap

__all__ = ["FORMATS", "ColumnMap", "ImportReport", "detect_format", "import_file"]

"""Getting conversations in: file importers, the synthetic generator, the API sync."""

from .columns import ColumnMap
from .frames import import_frame
from .hf import import_dataset
from .importer import FORMATS, ImportReport, detect_format, import_file

__all__ = ["FORMATS", "ColumnMap", "ImportReport", "detect_format", "import_dataset", "import_file", "import_frame"]

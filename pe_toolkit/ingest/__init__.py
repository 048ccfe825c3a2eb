"""Getting conversations in from files and frames: the importers (the generator is in ``synth``, the API sync in ``apisync``)."""

from .columns import ColumnMap
from .frames import import_frame
from .hf import import_dataset
from .importer import FORMATS, ImportReport, detect_format, import_file

__all__ = ["FORMATS", "ColumnMap", "ImportReport", "detect_format", "import_dataset", "import_file", "import_frame"]

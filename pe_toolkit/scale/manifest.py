"""``manifest.json`` of a distributed analysis output: what is in it and
which partitions are complete.

A partition (one input file) is complete when the manifest lists it with
the fingerprint of the file it was computed from, under the same analysis
version, and its folders are all there. A re-run recomputes exactly the
partitions that are not: new or changed files, a partition deleted by
hand, or everything after an analyzer changed. The manifest is rewritten
(temporary file, then rename) after every partition, so a killed run keeps
what it finished.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..exports.atomic import private_file
from .partition import PARTITION_TABLES, partition_dir

MANIFEST = "manifest.json"
FORMAT = 1


@dataclass
class Manifest:
    analysis_version: str = ""
    input: str = ""
    input_fingerprint: str = ""
    partitions: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> summary row
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows
    corpus_complete: bool = False  # conversation_scores holds the shares of the partitions listed
    format: int = FORMAT

    @classmethod
    def load(cls, output: str | os.PathLike[str]) -> Manifest:
        path = Path(output) / MANIFEST
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: json's decode error
            raise InputError(f"{path}: unreadable manifest ({exc}); delete the output folder to start over") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return cls()
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, output: str | os.PathLike[str]) -> None:
        path = Path(output) / MANIFEST
        tmp = path.with_suffix(".json.tmp")
        # The input's name, partition keys and counts of sensitive data:
        # mode 600 as every export (a killed run's leftover goes first, as
        # private_file creates the file anew).
        tmp.unlink(missing_ok=True)
        private_file(tmp).write_text(json.dumps(asdict(self), indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, path)

    def complete(self, output: str | os.PathLike[str], key: str, fingerprint: str) -> bool:
        entry = self.partitions.get(key)
        if entry is None or entry.get("fingerprint") != fingerprint:
            return False
        return all(partition_dir(output, table, key).is_dir() for table in PARTITION_TABLES)

"""``lexicons/<name>.toml`` read from the installed package: macros expanded,
every entry checked (fields present, category defined), file defaults
applied. Whether a pattern compiles is checked where the patterns are
compiled together (:func:`check_patterns`): compiling each entry once more
on its own at load cost 0.15 s at every start."""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ...errors import AnalysisError
from .translate import spaces_to_runs

_MACRO = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
_RESERVED = {"category", "pattern", "example"}
# Entry fields that hold patterns too (crisis.toml's filters): macros are
# expanded in them as in the pattern, so entries can share one list.
_PATTERN_FIELDS = {"requires", "requires_sentence", "requires_near", "excludes_sentence"}


@dataclass(frozen=True)
class Entry:
    """One lexicon entry. ``fields`` holds everything besides the pattern
    (level, severity, body, skill, scope, ...)."""

    lexicon: str
    index: int
    category: str
    pattern: str  # macros expanded, spaces still literal
    example: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


@dataclass(frozen=True)
class Lexicon:
    name: str
    version: int
    categories: Mapping[str, str]  # category -> definition
    entries: tuple[Entry, ...]
    tables: Mapping[str, Any]  # every other top-level table (generic_words, cues, subjects...)
    digest: str


def _expand(pattern: str, macros: Mapping[str, str], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in macros:
            raise AnalysisError(f"{where}: unknown macro {{{name}}}")
        return macros[name]

    # Macros may use macros; three rounds are plenty for our files.
    for _ in range(3):
        pattern = _MACRO.sub(sub, pattern)
    return pattern


def _entries(name: str, raw: list[dict[str, Any]], macros: Mapping[str, str], categories: Mapping[str, str],
             defaults: Mapping[str, Any]) -> tuple[Entry, ...]:  # fmt: skip
    out = []
    for i, item in enumerate(raw):
        where = f"lexicons/{name}.toml entry {i + 1}"
        missing = {"category", "pattern", "example"} - set(item)
        if missing:
            raise AnalysisError(f"{where}: missing {sorted(missing)}")
        if item["category"] not in categories:
            raise AnalysisError(f"{where}: category {item['category']!r} has no definition in [categories]")
        pattern = _expand(item["pattern"], macros, where)
        fields = {**defaults, **{k: v for k, v in item.items() if k not in _RESERVED}}
        for key in _PATTERN_FIELDS & fields.keys():
            fields[key] = _expand(fields[key], macros, f"{where} {key}")
        out.append(Entry(name, i, item["category"], pattern, item["example"], fields))
    return tuple(out)


def check_patterns(entries: Iterable[Entry]) -> None:
    """Raise :class:`AnalysisError` naming the first entry whose pattern does
    not compile (callers run this when their combined pattern fails)."""
    for e in entries:
        try:
            re.compile(spaces_to_runs(e.pattern))
        except re.error as exc:
            raise AnalysisError(f"lexicons/{e.lexicon}.toml entry {e.index + 1}: bad pattern: {exc}") from None


@functools.cache
def load_lexicon(name: str) -> Lexicon:
    """``lexicons/<name>.toml`` from the installed package, validated."""
    ref = resources.files("pe_toolkit.analysis").joinpath("lexicons", f"{name}.toml")
    try:
        data = ref.read_bytes()
    except OSError as exc:
        raise AnalysisError(f"lexicon {name!r} is missing from the package: {exc}") from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"lexicons/{name}.toml: {exc}") from None
    categories = {k: v["definition"] for k, v in doc.get("categories", {}).items()}
    macros = doc.get("macros", {})
    defaults = doc.get("defaults", {})
    entries = _entries(name, doc.get("entries", []), macros, categories, defaults)
    tables = {k: v for k, v in doc.items() if k not in {"entries", "categories", "macros", "defaults", "name", "version"}}
    for key, value in list(tables.items()):
        if isinstance(value, list) and value and isinstance(value[0], dict) and "pattern" in value[0]:
            # Secondary pattern lists (cues' [[subjects]]) get the same macro expansion.
            tables[key] = [{**v, "pattern": _expand(v["pattern"], macros, f"lexicons/{name}.toml {key}")} for v in value]
    return Lexicon(name, int(doc.get("version", 1)), categories, entries, tables, hashlib.sha256(data).hexdigest()[:12])


def lexicons_digest(*names: str) -> str:
    """One short digest of the named lexicon files. It goes into the version
    of every analyzer that reads them, so an edited lexicon makes the scores
    stored with the old one outdated and ``analyze`` scores again."""
    joined = "\0".join(f"{name}:{load_lexicon(name).digest}" for name in names)
    return hashlib.sha256(joined.encode()).hexdigest()[:10]

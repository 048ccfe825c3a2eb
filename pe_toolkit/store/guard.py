"""Check that a query only reads the store: one SELECT, no files, no environment.

A read-only store is sandboxed by DuckDB itself (see ``core._sandbox``). A
writable store cannot be: DuckDB holds one configuration per file and
process, so the notebook that labels (``04_safety``) runs its widgets on an
unsandboxed connection. SQL assembled from pieces that may come from
outside the code (notebook parameters, ``pe-toolkit report -p``) goes
through :meth:`Store.read`, which on such a store checks the parsed query
first: exactly one SELECT; table functions only from a short list that
touches no file and runs no nested SQL; no ``getenv``; every table named
exists in the database (a name like ``'x.csv'`` would otherwise be read
as a file).
"""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

from ..errors import StoreError

# Table functions that read nothing outside the database and run no SQL text.
SAFE_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "json_each", "json_tree",
    # the catalog: names and types of the database's own objects
    "duckdb_tables", "duckdb_views", "duckdb_columns", "duckdb_schemas", "duckdb_indexes",
    "duckdb_constraints", "pragma_table_info",
})  # fmt: skip
# Scalar functions that reach outside the database.
UNSAFE_FUNCTIONS = frozenset({"getenv"})


def check_select(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise :class:`StoreError` unless ``query`` is one SELECT that reads
    only the database's own tables and views."""
    try:
        parsed = orjson.loads(con.execute("SELECT json_serialize_sql(?::VARCHAR)", [query]).fetchall()[0][0])
    except duckdb.Error as exc:
        raise StoreError(f"query refused: {str(exc).splitlines()[0]}") from None
    if parsed.get("error"):
        raise StoreError(f"query refused: only one SELECT can run here ({parsed.get('error_message', 'not a SELECT')})")
    if len(parsed.get("statements", [])) != 1:
        raise StoreError("query refused: only one SELECT can run here")
    names: set[str] = set()
    tables: list[str] = []
    _walk(parsed["statements"][0], names, tables)
    known = {
        row[0].lower()
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()"
        ).fetchall()
    }
    for table in tables:
        if table.lower() not in known and table.lower() not in names:
            raise StoreError(f"query refused: no table or view named {table!r} (files are not read here)")


def _walk(node: Any, ctes: set[str], tables: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, tables)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "TABLE_FUNCTION":
        name = (node.get("function") or {}).get("function_name", "")
        if name.lower() not in SAFE_TABLE_FUNCTIONS:
            raise StoreError(f"query refused: table function {name}() is not allowed here")
    elif kind == "BASE_TABLE":
        tables.append(node.get("table_name", ""))
    if node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in UNSAFE_FUNCTIONS:
        raise StoreError(f"query refused: {node['function_name']}() is not allowed here")
    for entry in (node.get("cte_map") or {}).get("map", []):
        if isinstance(entry, dict) and "key" in entry:
            ctes.add(str(entry["key"]).lower())
    for value in node.values():
        _walk(value, ctes, tables)

"""The warehouse's tables: PostgreSQL types for DuckDB columns, and DDL.

Column types come from the DuckDB query that feeds a table (``DESCRIBE``),
so a new analysis column reaches the warehouse as a new column
(``ALTER TABLE ... ADD COLUMN``, issued only for a column the table lacks)
without a change here. Each
DuckDB type maps to the PostgreSQL type the ADBC driver writes for the
matching Arrow type, so batches can be copied (binary COPY) straight into
the table; values PostgreSQL cannot take as they are (structs, maps, JSON)
travel as JSON text into ``json`` columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# DuckDB type -> (PostgreSQL type, DuckDB type to send as). The send type is
# what ADBC maps to exactly that PostgreSQL type.
_SCALARS: dict[str, tuple[str, str]] = {
    "VARCHAR": ("text", "VARCHAR"),
    "DOUBLE": ("double precision", "DOUBLE"),
    "FLOAT": ("real", "FLOAT"),
    "BIGINT": ("bigint", "BIGINT"),
    "INTEGER": ("integer", "INTEGER"),
    "SMALLINT": ("smallint", "SMALLINT"),
    "TINYINT": ("smallint", "SMALLINT"),
    "UTINYINT": ("smallint", "SMALLINT"),
    "USMALLINT": ("integer", "INTEGER"),
    "UINTEGER": ("bigint", "BIGINT"),
    "BOOLEAN": ("boolean", "BOOLEAN"),
    "TIMESTAMP WITH TIME ZONE": ("timestamp with time zone", "TIMESTAMPTZ"),
    "DATE": ("date", "DATE"),
}
_DECIMAL = re.compile(r"^DECIMAL\(\d+,\d+\)$")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def text_without_nul(expr: str) -> str:
    """DuckDB SQL for the VARCHAR ``expr`` as PostgreSQL text can hold it:
    text cannot hold NUL, so U+FFFD marks where one was."""
    return f"CASE WHEN contains({expr}, chr(0)) THEN replace({expr}, chr(0), chr(65533)) ELSE {expr} END"


@dataclass(frozen=True)
class Column:
    name: str
    duck_type: str
    pg_type: str
    send: str  # DuckDB expression template over {col}: the value as sent
    json: bool = False  # sent as JSON text into a json column

    def send_expr(self, alias: str) -> str:
        return self.send.format(col=f'{alias}."{self.name}"') + f' AS "{self.name}"'

    def insert_expr(self, alias: str) -> str:
        col = f"{alias}.{quote_ident(self.name)}"
        return f"{col}::json" if self.json else col


def column_for(name: str, duck_type: str) -> Column:
    t = duck_type.upper()
    if t in _SCALARS:
        pg, send = _SCALARS[t]
        expr = "{col}" if send == t or t == "TIMESTAMP WITH TIME ZONE" else f"CAST({{col}} AS {send})"
        if t == "VARCHAR":
            expr = text_without_nul("{col}")
        return Column(name, duck_type, pg, expr)
    if t == "TIMESTAMP":
        # Naive timestamps are UTC in pe_toolkit (the session zone is UTC).
        return Column(name, duck_type, "timestamp with time zone", "CAST({col} AS TIMESTAMPTZ)")
    if _DECIMAL.match(t) or t in ("HUGEINT", "UBIGINT"):
        return Column(name, duck_type, "double precision", "CAST({col} AS DOUBLE)")
    if t.endswith("[]") and t[:-2] in _SCALARS and t[:-2] != "TIMESTAMP WITH TIME ZONE":
        pg, send = _SCALARS[t[:-2]]
        if t == "VARCHAR[]":
            # Each element is text too: one NUL would fail the whole COPY.
            return Column(name, duck_type, "text[]", f"list_transform({{col}}, lambda x: {text_without_nul('x')})")
        return Column(name, duck_type, f"{pg}[]", f"CAST({{col}} AS {send}[])")
    # JSON, STRUCT, MAP, nested lists, anything else: JSON text in a ``json``
    # column. json (not jsonb) because its binary COPY format is the text
    # itself, so rows go straight in, and it keeps the store's exact text;
    # cast to jsonb in a query or an expression index where needed.
    # The JSON escape for NUL is valid json but breaks every json operator.
    text = "CAST({col} AS VARCHAR)" if t == "JSON" else "CAST(to_json({col}) AS VARCHAR)"
    nul = "'\\u0000'"
    return Column(
        name, duck_type, "json",
        f"CASE WHEN contains({text}, {nul}) THEN replace({text}, {nul}, '\\ufffd') ELSE {text} END", json=True,
    )


@dataclass(frozen=True)
class TableSpec:
    """One warehouse table: its key, its columns, how changes are detected."""

    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    hash_column: str | None = None  # parent tables: the change hash stored per row
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def pk_name(self) -> str:
        return f"{self.name}_pkey"

    def index_names(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(f"{self.name}_{'_'.join(cols)}_idx", cols) for cols in self.indexes]

    def create_indexes(self, schema: str, *, with_key: bool) -> list[str]:
        table = f"{quote_ident(schema)}.{quote_ident(self.name)}"
        statements = []
        if with_key:
            statements.append(
                f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(self.pk_name)} "
                f"PRIMARY KEY ({', '.join(map(quote_ident, self.key))})"
            )
        for name, cols in self.index_names():
            statements.append(f"CREATE INDEX IF NOT EXISTS {quote_ident(name)} ON {table} ({', '.join(map(quote_ident, cols))})")
        return statements

    def drop_indexes(self, schema: str) -> list[str]:
        table = f"{quote_ident(schema)}.{quote_ident(self.name)}"
        return [f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {quote_ident(self.pk_name)}"] + [
            f"DROP INDEX IF EXISTS {quote_ident(schema)}.{quote_ident(name)}" for name, _ in self.index_names()
        ]

    def create_table(self, schema: str) -> list[str]:
        """The statements that create the table (which does not exist yet)."""
        table = f"{quote_ident(schema)}.{quote_ident(self.name)}"
        required = {*self.key, self.hash_column}
        cols = [f"{quote_ident(c.name)} {c.pg_type}" + (" NOT NULL" if c.name in required else "") for c in self.columns]
        cols.append("loaded_at timestamp with time zone NOT NULL DEFAULT now()")
        return [
            f"CREATE TABLE {table} ({', '.join(cols)}, "
            f"CONSTRAINT {quote_ident(self.pk_name)} PRIMARY KEY ({', '.join(map(quote_ident, self.key))}))"
        ]

    def add_column(self, schema: str, column: Column) -> str:
        return f"ALTER TABLE {quote_ident(schema)}.{quote_ident(self.name)} ADD COLUMN {quote_ident(column.name)} {column.pg_type}"


def spec_from_describe(
    name: str,
    described: list[tuple[str, str]],
    *,
    key: tuple[str, ...],
    hash_column: str | None = None,
    indexes: tuple[tuple[str, ...], ...] = (),
) -> TableSpec:
    columns = tuple(column_for(n, t) for n, t in described)
    present = {c.name for c in columns}
    return TableSpec(name, key, columns, hash_column, tuple(i for i in indexes if set(i) <= present))

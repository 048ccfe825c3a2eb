"""Read a distributed analysis output as the store's tables, without loading it.

:func:`attach_scores` returns a DuckDB connection whose views carry the
store's names over the output's Parquet files: ``conversations``,
``messages``, ``conversation_scores``, ``message_scores``, ``evidence``,
``dead_letters`` and the ``current_*`` views (every row of an output is
current: it was written by one analysis version from the conversations
beside it). Notebooks and widgets query it as they query a store
(``con.sql(...).pl()``); DuckDB reads only the columns and row groups a
query needs.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from ..errors import InputError
from ..schema import STORED_CONVERSATION_COLUMNS
from ..store.normalize import sql_str
from .manifest import MANIFEST, Manifest


def _files(root: Path, table: str) -> str:
    return (root / table / "*" / "*.parquet").as_posix()


def _source(root: Path, table: str) -> str:
    # hive_partitioning off: the partition key is bookkeeping, not a score column.
    return f"read_parquet({sql_str(_files(root, table))}, hive_partitioning = false, union_by_name = true)"


def attach_scores(output: str | os.PathLike[str], con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """Views over the output folder of :func:`~pe_toolkit.scale.analyze_dataset`
    in ``con`` (default: a new in-memory connection), which is returned."""
    root = Path(output).resolve()
    if not (root / MANIFEST).exists() or not (root / "conversation_scores").is_dir():
        raise InputError(f"{root}: not a complete analysis output (no {MANIFEST} or conversation_scores); run analyze --engine ray")
    if not Manifest.load(root).corpus_complete:
        # A run that stopped (killed, or a file failed) after rescoring some
        # partitions: conversation_scores still holds the previous run's rows
        # (old scores for changed files, shares of another corpus) beside the
        # new partitions. Attaching it would mix the two without a sign.
        raise InputError(f"{root}: an unfinished analysis output (the last run did not complete); run analyze --engine ray again")
    con = con or duckdb.connect()
    columns = ", ".join("metadata::JSON AS metadata" if c == "metadata" else c for c in STORED_CONVERSATION_COLUMNS)
    con.execute(f"CREATE OR REPLACE VIEW conversations AS SELECT {columns} FROM {_source(root, 'conversations')}")
    con.execute(
        "CREATE OR REPLACE VIEW messages AS SELECT id AS conversation_id, "
        "unnest(range(len(messages)))::INTEGER AS idx, unnest(messages).role AS role, "
        f"unnest(messages).content AS content, unnest(messages).timestamp AS timestamp FROM {_source(root, 'conversations')}"
    )
    con.execute(
        "CREATE OR REPLACE VIEW conversation_scores AS SELECT * FROM "
        f"read_parquet({sql_str(_files(root, 'conversation_scores'))}, hive_partitioning = false)"
    )
    for table in ("message_scores", "evidence", "dead_letters"):
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {_source(root, table)}")
    con.execute("CREATE OR REPLACE VIEW current_conversation_scores AS SELECT * FROM conversation_scores")
    con.execute("CREATE OR REPLACE VIEW current_message_scores AS SELECT * FROM message_scores")
    con.execute("CREATE OR REPLACE VIEW current_evidence AS SELECT * FROM evidence")
    return con

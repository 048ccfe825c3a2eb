"""A warehouse made by an older version (fewer columns) is brought up to date
(real PostgreSQL; see test_warehouse)."""

from __future__ import annotations

import pytest

from ._export_support import stand_in_scores
from .warehouse_support import execute, load, query

pytestmark = pytest.mark.postgres


def test_a_column_the_warehouse_lacks_is_added_and_filled(sample_store, schema):
    stand_in_scores(sample_store)
    load(sample_store, schema)
    # As an older pe_toolkit (or one before an analyzer gained a column)
    # would have left it: a parent's and a per-message table's column missing.
    execute(
        f'ALTER TABLE "{schema}".conversations DROP COLUMN source',
        f'ALTER TABLE "{schema}".message_scores DROP COLUMN sentiment',
    )
    report = load(sample_store, schema)
    assert report.tables["conversations"].updated == 2000
    assert report.tables["message_scores"].inserted == sample_store.scalar("SELECT count(*) FROM message_scores")
    assert "nothing changed" not in str(report)

    pg = query(f'SELECT id, source FROM "{schema}".conversations ORDER BY id')
    assert pg["source"].to_list() == sample_store.sql("SELECT source FROM conversations ORDER BY id")["source"].to_list()
    pg = query(f'SELECT sentiment FROM "{schema}".message_scores ORDER BY conversation_id, idx')
    duck = sample_store.sql("SELECT sentiment FROM message_scores ORDER BY conversation_id, idx")
    assert pg["sentiment"].to_list() == duck["sentiment"].to_list()
    assert None not in pg["sentiment"].to_list()
    # the families without a new column were left alone, and then all is current
    assert report.tables["conversation_features"].written == 0
    assert load(sample_store, schema).rows_written == 0

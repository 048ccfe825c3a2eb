"""open_for_notebook: the setup cell of notebooks 02-04, from each source
(a file, the bundled sample, the API served by a real mirror on loopback)."""

from __future__ import annotations

import pytest

from pe_toolkit import synth
from pe_toolkit.errors import InputError
from pe_toolkit.store import Store
from pe_toolkit.widgets import open_for_notebook

from ._widgets_support import build_store
from .server_support import KEYS, start_mirror


@pytest.fixture
def synthetic_file(tmp_path):
    path = tmp_path / "in.jsonl"
    synth.write(path, 30, seed=4, progress=False)
    return path


def test_file_source_then_incremental_reuse(tmp_path, synthetic_file, capsys):
    cache = tmp_path / "c.duckdb"
    store = open_for_notebook(cache, source="file", path=synthetic_file, progress=False)
    try:
        assert store.read_only
        assert store.count() == 30
        # The store's own views (migration 0009), no temporary ones shadowing them.
        views = store.sql("SELECT view_name, temporary FROM duckdb_views() WHERE view_name LIKE 'current_%' ORDER BY view_name")
        assert views["view_name"].to_list() == ["current_conversation_scores", "current_evidence", "current_message_scores"]
        assert not any(views["temporary"])
        assert store.scalar("SELECT count(*) FROM current_conversation_scores") == 30
    finally:
        store.close()
    first = capsys.readouterr().out
    assert "30 new" in first and "analysis: scored 30" in first
    with open_for_notebook(cache, source="file", path=synthetic_file, progress=False, writable=True) as again:
        assert not again.read_only
    second = capsys.readouterr().out
    assert "30 unchanged" in second and "scored 0 conversations" in second


def test_sample_source_fills_an_empty_cache_once(tmp_path, capsys):
    cache = tmp_path / "c.duckdb"
    with open_for_notebook(cache, analyze=False, progress=False) as store:
        n = store.count()
    assert n > 0 and "loaded the bundled sample" in capsys.readouterr().out
    with open_for_notebook(cache, analyze=False, progress=False) as store:
        assert store.count() == n
    assert "already in" in capsys.readouterr().out


def test_cache_source_and_bad_arguments(tmp_path):
    path = build_store(tmp_path / "s", n=10)
    with open_for_notebook(path, source="cache", analyze=False, progress=False) as store:
        assert store.count() == 10
        assert store.scalar("SELECT count(*) FROM current_conversation_scores") == 0  # not analyzed: empty views
    with pytest.raises(InputError, match="source must be one of"):
        open_for_notebook(path, source="web")
    with pytest.raises(InputError, match="path="):
        open_for_notebook(path, source="file")


def test_api_source_syncs_from_a_real_mirror(tmp_path, monkeypatch, capsys):
    served_db = build_store(tmp_path / "served", n=25, seed=8)
    with start_mirror(served_db) as served:
        monkeypatch.setenv("PE_API_URL", served.url)
        monkeypatch.setenv("PE_API_KEY", KEYS[0])
        with open_for_notebook(tmp_path / "c.duckdb", source="api", progress=False) as store:
            assert store.count() == 25
            assert store.scalar("SELECT count(*) FROM current_conversation_scores") == 25
    with Store(served_db, read_only=True) as original, Store(tmp_path / "c.duckdb", read_only=True) as copy:
        assert original.conversation("syn8_0000007") == copy.conversation("syn8_0000007")
    assert KEYS[0] not in capsys.readouterr().out


def test_one_session_helper_under_both_public_names():
    """It lives in pe_toolkit.session (above ingest, analysis and widgets);
    pe.open_for_notebook and the notebooks' pw.open_for_notebook are it."""
    import pe_toolkit as pe
    from pe_toolkit import session, widgets

    assert pe.open_for_notebook is widgets.open_for_notebook is session.open_for_notebook is open_for_notebook
    assert open_for_notebook.__module__ == "pe_toolkit.session"

"""Opening the default cache from outside the project says what it does
(issue 15, part 10): a script run elsewhere used to get a new empty cache
in ./data/ silently, while the CLI said "no cache at ..."."""

from __future__ import annotations

import warnings

import pytest

from pe_toolkit import open_store
from pe_toolkit.errors import StoreError
from pe_toolkit.store import NewCacheWarning, Store


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A folder with no pe_toolkit.toml above it, no PE_CACHE, no user config."""
    folder = tmp_path / "scripts"
    folder.mkdir()
    monkeypatch.delenv("PE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(folder)
    return folder


def test_a_new_default_cache_is_announced(elsewhere):
    with pytest.warns(NewCacheWarning, match="creating a new, empty cache at") as caught:
        store = open_store()
    try:
        message = str(caught[0].message)
        assert str(elsewhere / "data" / "pe_cache.duckdb") in message and "PE_CACHE" in message
        assert caught[0].filename == __file__  # points at the caller's line
        assert store.path == elsewhere / "data" / "pe_cache.duckdb" and store.count() == 0
    finally:
        store.close()
    # Once it exists, opening it again is quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Store().close()


def test_a_configured_or_named_cache_is_created_quietly(elsewhere, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Store(elsewhere / "named.duckdb").close()
        monkeypatch.setenv("PE_CACHE", str(elsewhere / "configured.duckdb"))
        open_store().close()
    assert (elsewhere / "named.duckdb").exists() and (elsewhere / "configured.duckdb").exists()


def test_read_only_default_cache_that_is_missing_is_an_error(elsewhere):
    with pytest.raises(StoreError, match="no cache at"):
        open_store(read_only=True)
    assert not (elsewhere / "data").exists()


def test_a_data_file_given_as_the_cache_is_refused_and_left_as_it_was(tmp_path):
    # DuckDB 2 opens a CSV, JSON or Parquet file as an in-memory database
    # with a view over it: `pe-toolkit --db corpus.csv import x.jsonl` then
    # reported "2 new" and stored nothing, `serve` served an empty memory
    # database, and the file's mode was narrowed to 600 as a cache's is.
    from click.testing import CliRunner

    from pe_toolkit.cli import cli

    data = tmp_path / "corpus.csv"
    data.write_text("subreddit,post\ndepression,I feel empty every day\n")
    data.chmod(0o644)
    posts = tmp_path / "posts.csv"
    posts.write_text("subreddit,post\nanxiety,I cannot breathe at night\n")
    for read_only in (False, True):
        with pytest.raises(StoreError, match=r"corpus\.csv.*not a DuckDB database"):
            Store(data, read_only=read_only)
    result = CliRunner().invoke(cli, ["--db", str(data), "import", str(posts), "--map", "user=post"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pe-toolkit: error:") and "not a DuckDB database" in lines[0], result.stderr
    assert data.read_text() == "subreddit,post\ndepression,I feel empty every day\n"
    assert data.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.csv", "posts.csv"]

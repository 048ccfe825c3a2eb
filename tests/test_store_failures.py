"""Opening the cache: failures are one clear line, with the right advice."""

from __future__ import annotations

import os
import subprocess
import sys

import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import ConfigError, InputError, SchemaVersionError, StoreError
from pe_toolkit.store import Store


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_analyze_of_a_missing_cache_creates_nothing(tmp_path):
    result = CliRunner().invoke(cli, ["analyze", "--db", str(tmp_path / "missing" / "x.duckdb")])
    assert "no cache at" in one_line(result)
    assert not (tmp_path / "missing").exists()


def test_a_cache_folder_that_cannot_be_made_is_a_store_error(tmp_path):
    locked = tmp_path / "a file"  # a folder cannot be made under a file, not even by root
    locked.write_text("x")
    with pytest.raises(StoreError, match="cannot create the folder"):
        Store(locked / "sub" / "c.duckdb")
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "messages": [{"role": "user", "content": "hi"}]}\n')
    result = CliRunner().invoke(cli, ["--db", str(locked / "sub" / "c.duckdb"), "import", str(data)])
    assert "cannot create the folder" in one_line(result)


def test_a_newer_cache_gets_the_same_advice_read_only(tmp_path):
    path = tmp_path / "future.duckdb"
    with Store(path) as store:
        store.connection.execute("INSERT INTO schema_version VALUES (999, 'future', now())")
    with pytest.raises(SchemaVersionError, match="upgrade pe_toolkit") as caught:
        Store(path, read_only=True)
    assert "open it once for writing" not in str(caught.value)


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_a_bad_pe_lock_wait_is_a_config_error_at_use(tmp_path, monkeypatch, value):
    monkeypatch.setenv("PE_LOCK_WAIT", value)
    env = {**os.environ, "PE_LOCK_WAIT": value}
    assert subprocess.run([sys.executable, "-c", "import pe_toolkit"], env=env, capture_output=True, timeout=120).returncode == 0
    from pe_toolkit.store.lease import lock_wait

    with pytest.raises(ConfigError, match="PE_LOCK_WAIT"):
        lock_wait()
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "c.duckdb"), "info"])
    assert "PE_LOCK_WAIT" in one_line(result)


def test_the_lock_holder_is_named_by_program_only(tmp_path):
    from pe_toolkit.store.core import _lock_holder

    code = "import time; print('ready', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code, "--api-key=sk-secret\nsecond line"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"  # its command line is its own by now
        holder = _lock_holder(child.pid)
    finally:
        child.kill()
        child.communicate()
    assert holder is not None and "secret" not in holder and "\n" not in holder and "sleep" not in holder


def test_api_urls_are_stored_without_credentials():
    from pe_toolkit.client.core import public_url

    assert public_url("http://user:KEY@host:8080/v1?api_key=K2&page=2") == "http://host:8080/v1?page=2"
    assert public_url("https://api.example/v1") == "https://api.example/v1"


def test_doctor_shows_api_urls_without_credentials(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pe_toolkit.cli import cli

    monkeypatch.setenv("PE_API_URL", "http://user:S3CRET@127.0.0.1:9/v1")
    monkeypatch.setenv("PE_API_KEY", "k")
    r = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.duckdb"), "doctor", "--online"])
    assert "127.0.0.1:9/v1" in r.output and "S3CRET" not in r.output, r.output


def test_an_empty_frame_is_an_input_error(tmp_path):
    import pe_toolkit as pe

    with Store(tmp_path / "c.duckdb") as store, pytest.raises(InputError, match="no columns"):
        pe.import_frame(store, pl.DataFrame())

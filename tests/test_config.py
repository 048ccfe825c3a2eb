
import pytest

from pe_toolkit.config import Secret, load_settings
from pe_toolkit.errors import ConfigError


def test_env_beats_config_file(tmp_path, monkeypatch):
    cfg = tmp_path / "pe_toolkit.toml"
    cfg.write_text('[cache]\npath = "sub/c.duckdb"\n[api]\nurl = "https://file.example/v1"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PE_CACHE")
    settings = load_settings()
    assert settings.cache_path == tmp_path / "sub" / "c.duckdb"
    assert settings.api_urls == ("https://file.example/v1",)
    monkeypatch.setenv("PE_API_URL", "https://a.example/v1/, https://b.example/v1")
    monkeypatch.setenv("PE_CACHE", "other.duckdb")
    settings = load_settings()
    assert settings.api_urls == ("https://a.example/v1", "https://b.example/v1")
    assert settings.cache_path == tmp_path / "other.duckdb"


def test_config_found_from_a_subfolder(tmp_path, monkeypatch):
    (tmp_path / "pe_toolkit.toml").write_text('[cache]\npath = "data/x.duckdb"\n')
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("PE_CACHE")
    assert load_settings().cache_path == tmp_path / "data" / "x.duckdb"


def test_secret_never_shows_itself():
    secret = Secret("sk-live-123")
    assert "sk-live-123" not in repr(secret) and "sk-live-123" not in str(secret)
    assert "sk-live-123" not in repr(load_settings(api_key="sk-live-123"))
    assert secret.reveal() == "sk-live-123"


def test_bad_numbers_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PE_RATE_LIMIT", "lots")
    with pytest.raises(ConfigError, match=r"^PE_RATE_LIMIT must be an integer, got 'lots'$"):
        load_settings()
    monkeypatch.delenv("PE_RATE_LIMIT")
    monkeypatch.setenv("PE_API_DEADLINE", "soon")  # was "must be a float", and "a int" above
    with pytest.raises(ConfigError, match=r"^PE_API_DEADLINE / \[api\] deadline must be a number, got 'soon'$"):
        load_settings()


def test_missing_pe_config_file(monkeypatch, tmp_path):
    monkeypatch.setenv("PE_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


def test_the_bundled_sample_is_found_from_any_folder(tmp_path, monkeypatch):
    # From a folder with no data/ of its own (a user's project, /tmp), the
    # default source is still the bundled sample, not a path that is missing.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PE_CONFIG", raising=False)
    assert load_settings().sample_path.is_file()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sample.jsonl.gz").write_bytes(b"")
    assert load_settings().sample_path == tmp_path / "data" / "sample.jsonl.gz"


def test_the_wheel_carries_the_sample():
    import tomllib
    from pathlib import Path

    root = Path(__file__).parent.parent
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert mapping == {"data/sample.jsonl.gz": "pe_toolkit/_data/sample.jsonl.gz"}
    assert (root / "data" / "sample.jsonl.gz").is_file()

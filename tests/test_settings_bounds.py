"""The client's per-request bounds and the mirror's analysis deadline and
export quotas are settings like the others: environment, pe_toolkit.toml,
`pe-toolkit serve` flags; a bad value is one line (issue 15)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.client import Client
from pe_toolkit.config import byte_size, load_settings
from pe_toolkit.errors import ConfigError
from pe_toolkit.server import ServerConfig

BOUNDS_ENV = (
    "PE_API_DEADLINE", "PE_API_MAX_RESPONSE_BYTES", "PE_ANALYSIS_DEADLINE",
    "PE_EXPORT_QUOTA_PER_KEY", "PE_EXPORT_QUOTA_TOTAL", "PE_EXPORT_MIN_FREE",
)  # fmt: skip


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PE_CONFIG", raising=False)
    for name in BOUNDS_ENV:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_byte_sizes_take_suffixes():
    assert byte_size("x", 1234) == 1234
    assert byte_size("x", "5G") == 5 * 1024**3
    assert byte_size("x", "512 MiB") == 512 * 1024**2
    assert byte_size("x", "2kb") == 2048
    assert byte_size("x", None) is None


def test_client_bounds_from_the_environment_reach_the_client(project, monkeypatch):
    monkeypatch.setenv("PE_API_DEADLINE", "3.5")
    monkeypatch.setenv("PE_API_MAX_RESPONSE_BYTES", "1M")
    with Client(base_url="http://127.0.0.1:9", api_key="k") as client:
        assert client.options.deadline == 3.5
        assert client.options.max_response_bytes == 1024**2
    # arguments still win
    with Client(base_url="http://127.0.0.1:9", api_key="k", deadline=2, max_response_bytes=10) as client:
        assert (client.options.deadline, client.options.max_response_bytes) == (2.0, 10)


def test_client_bounds_from_the_config_file(project):
    (project / "pe_toolkit.toml").write_text('[api]\ndeadline = 7\nmax_response_bytes = "2M"\n')
    with Client(base_url="http://127.0.0.1:9", api_key="k") as client:
        assert (client.options.deadline, client.options.max_response_bytes) == (7.0, 2 * 1024**2)


def test_unset_client_bounds_keep_their_defaults(project):
    with Client(base_url="http://127.0.0.1:9", api_key="k", timeout=12) as client:
        assert client.options.deadline == 12.0  # the timeout
        assert client.options.max_response_bytes == 64 * 1024**2


def test_server_bounds_from_the_config_file_and_environment(project, monkeypatch):
    (project / "pe_toolkit.toml").write_text(
        '[server]\nanalysis_deadline = 4\nexport_quota_per_key = "1G"\nexport_quota_total = 0\nexport_min_free_bytes = 4096\n'
    )
    config = ServerConfig.from_settings(load_settings(), db_path=project / "s.duckdb", keys=("k",))
    assert config.analysis_deadline == 4.0
    assert config.export_quota_per_key == 1024**3
    assert config.export_quota_total is None  # 0: no limit
    assert config.export_min_free_bytes == 4096
    monkeypatch.setenv("PE_EXPORT_QUOTA_TOTAL", "3G")
    monkeypatch.setenv("PE_ANALYSIS_DEADLINE", "2.5")
    config = ServerConfig.from_settings(load_settings(), db_path=project / "s.duckdb", keys=("k",))
    assert (config.export_quota_total, config.analysis_deadline) == (3 * 1024**3, 2.5)
    # keyword arguments (what `serve` flags become) win
    config = ServerConfig.from_settings(load_settings(), db_path=project / "s.duckdb", keys=("k",), export_quota_total=5)
    assert config.export_quota_total == 5


def test_unset_server_bounds_keep_their_defaults(project):
    config = ServerConfig.from_settings(load_settings(), db_path=project / "s.duckdb", keys=("k",))
    defaults = ServerConfig(db_path=project / "s.duckdb")
    for name in ("analysis_deadline", "export_quota_per_key", "export_quota_total", "export_min_free_bytes"):
        assert getattr(config, name) == getattr(defaults, name)


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("PE_API_DEADLINE", "soon", "PE_API_DEADLINE"),
        ("PE_API_DEADLINE", "-1", "positive"),
        ("PE_API_MAX_RESPONSE_BYTES", "0", "at least 1"),
        ("PE_EXPORT_QUOTA_PER_KEY", "lots", "byte size"),
        ("PE_EXPORT_QUOTA_TOTAL", "-5G", "byte size"),
        ("PE_EXPORT_MIN_FREE", "1.5G", "byte size"),
        ("PE_ANALYSIS_DEADLINE", "inf", "positive"),
    ],
)
def test_a_bad_value_is_one_clear_line(project, monkeypatch, variable, value, words):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "\n" not in str(info.value) and words in str(info.value) and variable in str(info.value)


def test_serve_flags_are_checked_in_one_line(project, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(cli, ["serve", "--db", str(project / "s.duckdb"), "--no-sample", "--export-quota-per-key", "5X"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--export-quota-per-key" in lines[0] and "byte size" in lines[0], result.output
    monkeypatch.setenv("PE_EXPORT_QUOTA_TOTAL", "nope")
    result = runner.invoke(cli, ["serve", "--db", str(project / "s.duckdb"), "--no-sample"])
    assert result.exit_code == 1 and "PE_EXPORT_QUOTA_TOTAL" in result.output.strip().splitlines()[-1]

"""Config files in layers, as git reads its own: the user-level file
beneath the project's (or $PE_CONFIG's), per key; environment variables
over both; explicit overrides over all. Real files in tmp_path; HOME, cwd
and the environment set per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.config import load_settings
from pe_toolkit.errors import ConfigError


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A home folder of its own, with the user-level config folder made."""
    home = tmp_path / "home"
    (home / ".config" / "pe_toolkit").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("PE_CACHE", raising=False)
    return home


def user_file(home: Path, text: str) -> Path:
    path = home / ".config" / "pe_toolkit" / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def project(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "pe_toolkit.toml").write_text(text)
    monkeypatch.chdir(root / "notebooks")  # found upward, as notebooks find it
    return root / "pe_toolkit.toml"


def test_a_key_in_the_user_file_is_seen_inside_a_project(home, tmp_path, monkeypatch):
    # The project file (committed) names the API; the key stays in the user's
    # file, which names the same API (its key goes nowhere else: below).
    user = user_file(home, '[api]\nkey = "sk-user-1"\nurl = ["https://user.example/v1", "https://proj.example"]\ntimeout = 7\n')
    proj = project(tmp_path, '[api]\nurl = "https://proj.example/v1/"\n', monkeypatch)
    settings = load_settings()
    assert settings.api_key is not None and settings.api_key.reveal() == "sk-user-1"
    assert settings.api_urls == ("https://proj.example/v1",)  # the project's key wins, per key
    assert settings.timeout == 7.0  # what the project leaves unset comes from the user's file
    assert settings.sources["key"] == str(user) and settings.sources["url"] == str(proj)
    assert settings.config_files == (user, proj)  # in the order read: later wins
    assert settings.config_file == proj
    assert "sk-user-1" not in repr(settings)

    monkeypatch.setenv("PE_API_KEY", "sk-env")  # the environment over both files
    assert load_settings().api_key.reveal() == "sk-env"
    assert load_settings(api_key="sk-arg").api_key.reveal() == "sk-arg"  # explicit over all


def test_relative_paths_stay_relative_to_the_file_that_names_them(home, tmp_path, monkeypatch):
    user = user_file(home, '[cache]\nsample = "mine.jsonl.gz"\n[[analysis.models]]\npath = "m.pemodel"\nname = "codes"\n')
    proj = project(tmp_path, '[cache]\npath = "data/c.duckdb"\n', monkeypatch)
    settings = load_settings()
    assert settings.cache_path == proj.parent / "data" / "c.duckdb"
    assert settings.sample_path == user.parent / "mine.jsonl.gz"
    assert [m.path for m in settings.models] == [user.parent / "m.pemodel"]


def test_pe_config_replaces_the_project_file_with_the_user_file_beneath(home, tmp_path, monkeypatch):
    user = user_file(home, '[api]\nkey = "sk-user-2"\n')
    project(tmp_path, '[api]\nurl = "https://proj.example/v1"\n', monkeypatch)
    other = tmp_path / "elsewhere" / "ci.toml"
    other.parent.mkdir()
    other.write_text('[api]\nurl = "https://ci.example/v1"\n')
    monkeypatch.setenv("PE_CONFIG", str(other))
    settings = load_settings()
    assert settings.api_urls == ("https://ci.example/v1",)
    assert settings.api_key.reveal() == "sk-user-2"
    assert settings.config_files == (user, other)
    # Its folder is the project root, as a project file's is.
    assert settings.cache_path == other.parent / "data" / "pe_cache.duckdb"
    # PE_CONFIG naming the user file itself: read once.
    monkeypatch.setenv("PE_CONFIG", str(user))
    assert load_settings().config_files == (user,)


def test_xdg_config_home_moves_the_user_file(home, tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    (xdg / "pe_toolkit").mkdir(parents=True)
    (xdg / "pe_toolkit" / "config.toml").write_text('[api]\nkey = "sk-xdg"\n')
    user_file(home, '[api]\nkey = "sk-home"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert load_settings().api_key.reveal() == "sk-xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the XDG rule: only an absolute path counts
    assert load_settings().api_key.reveal() == "sk-home"


def test_the_default_cache_is_where_the_user_works_not_in_the_user_config_folder(home, tmp_path, monkeypatch):
    user_file(home, '[api]\nkey = "sk-user-3"\n')
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    settings = load_settings()
    assert settings.cache_path == work / "data" / "pe_cache.duckdb"
    assert settings.sources["path"] == "default"
    # A cache path the user file names is relative to that file, as documented.
    user = user_file(home, '[cache]\npath = "store/c.duckdb"\n')
    assert load_settings().cache_path == user.parent / "store" / "c.duckdb"


def test_a_section_that_is_not_a_table_is_a_config_error(home, tmp_path, monkeypatch):
    user = user_file(home, 'api = "https://user.example/v1"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=rf"^{user}: \[api\] must be a table"):
        load_settings()


def test_doctor_lists_every_file_read_in_order_and_checks_the_one_holding_the_key(home, tmp_path, monkeypatch):
    user = user_file(home, '[api]\nkey = "sk-user-4"\nurl = "http://127.0.0.1:9/v1"\n')
    proj = project(tmp_path, '[api]\nurl = "http://127.0.0.1:9/v1"\n', monkeypatch)
    cache = str(tmp_path / "none.duckdb")
    result = CliRunner().invoke(cli, ["--db", cache, "doctor"])
    assert "sk-user-4" not in result.output
    config_line = next(line for line in result.output.splitlines() if " config: " in line)
    assert config_line == f"[ok  ] config: {user} (user), then {proj} (project); later files win per key"
    assert "config permissions: owner-only" in result.output
    monkeypatch.setenv("PE_CONFIG", str(user))  # named by PE_CONFIG, the user file is read once, as its
    result = CliRunner().invoke(cli, ["--db", cache, "doctor"])
    assert f"[ok  ] config: {user} ($PE_CONFIG)\n" in result.output
    monkeypatch.delenv("PE_CONFIG")
    user.chmod(0o644)
    result = CliRunner().invoke(cli, ["--db", cache, "doctor"])
    assert f"[FAIL] config permissions: {user} holds an API key and is readable by others: chmod 600 it" in result.output
    assert result.exit_code == 1


def test_pe_cache_naming_a_folder_is_one_error_line_naming_pe_cache(tmp_path, monkeypatch):
    folder = tmp_path / "caches"
    folder.mkdir()
    monkeypatch.setenv("PE_CACHE", str(folder))
    for args in (["info"], ["sql", "SELECT 1"], ["doctor"], ["export", "--format", "jsonl", str(tmp_path / "o.jsonl")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output == (f"pe-toolkit: error: PE_CACHE names a folder, not a cache file: {folder} "
                                 f"(name a file, e.g. {folder / 'pe_cache.duckdb'})\n")  # fmt: skip
    # Refused where the cache is opened, not when parsing: help still shows.
    assert CliRunner().invoke(cli, ["info", "--help"]).exit_code == 0
    assert not any(folder.iterdir())


@pytest.mark.parametrize("args", [["--db", "{f}", "info"], ["info", "--db", "{f}"], ["--db={f}", "info"], ["serve", "--db", "{f}"]])
def test_db_naming_a_folder_is_one_error_line_naming_db(tmp_path, monkeypatch, args):
    folder = tmp_path / "caches"
    folder.mkdir()
    monkeypatch.setenv("PE_CACHE", str(tmp_path / "fine.duckdb"))  # the command line wins, and is what is named
    result = CliRunner().invoke(cli, [a.format(f=folder) for a in args])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"pe-toolkit: error: --db names a folder, not a cache file: {folder} ")
    assert len(result.output.splitlines()) == 1


def test_serve_own_db_wins_over_a_pe_cache_folder(tmp_path, monkeypatch):
    # PE_CACHE is not used when serve is given its own --db: not refused for it.
    folder = tmp_path / "caches"
    folder.mkdir()
    monkeypatch.setenv("PE_CACHE", str(folder))
    # A bad quota stops serve after the cache is chosen, before anything is served.
    result = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "c.duckdb"), "--export-quota-total", "lots"])
    assert result.exit_code == 1
    assert result.output.startswith("pe-toolkit: error: --export-quota-total must be a byte size"), result.output


def test_the_notebooks_are_looked_for_beside_the_project_not_the_user_file(home, tmp_path, monkeypatch):
    from pe_toolkit.report import notebooks_dir

    user_file(home, '[api]\nkey = "sk-user-1"\n')
    (home / ".config" / "pe_toolkit" / "notebooks").mkdir()  # not the project's
    work = tmp_path / "work"
    (work / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(work)
    assert notebooks_dir() == work / "notebooks"


def test_a_model_listed_in_the_user_file_is_named_by_that_file_in_errors(home, tmp_path, monkeypatch):
    from pe_toolkit.analysis import registry

    user = user_file(home, '[[analysis.models]]\nname = "mine"\npath = "missing.pemodel"\n')
    project(tmp_path, '[api]\nurl = "https://proj.example/v1"\n', monkeypatch)
    with pytest.raises(ConfigError) as err:
        registry.configured()
    assert str(err.value).startswith(f"{user}: analysis.models 'mine'")


def test_the_user_files_key_is_never_sent_where_only_a_project_file_points(home, tmp_path, monkeypatch):
    # A project's file comes with its repository: a cloned one naming its own
    # server got the key the user keeps in ~/.config (a review of the layers).
    from pe_toolkit.client import Client

    user = user_file(home, '[api]\nkey = "sk-user-5"\nurl = "https://api.real.example/v1"\n')
    proj = project(tmp_path, '[api]\nurl = "https://collector.example"\n', monkeypatch)
    settings = load_settings()
    assert settings.api_key is None and settings.api_urls == ("https://collector.example",)
    assert settings.api_key_withheld.startswith(f"the API key in {user} is not sent to https://collector.example, which {proj} names")
    with pytest.raises(ConfigError, match=r"is not sent to https://collector\.example"):
        Client()
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.duckdb"), "doctor"])
    assert "key MISSING: the API key in" in result.output and "sk-user-5" not in result.output
    # The user's own choices still send it: $PE_API_URL, $PE_CONFIG, or the
    # project naming a URL the user file names too.
    monkeypatch.setenv("PE_API_URL", "https://collector.example")
    assert load_settings().api_key.reveal() == "sk-user-5"
    monkeypatch.delenv("PE_API_URL")
    monkeypatch.setenv("PE_CONFIG", str(proj))
    assert load_settings().api_key.reveal() == "sk-user-5"
    monkeypatch.delenv("PE_CONFIG")
    proj.write_text('[api]\nurl = ["https://api.real.example/v1", "https://collector.example"]\n')
    assert load_settings().api_key is None  # one foreign URL of two is enough to withhold it
    proj.write_text('[api]\nurl = "https://api.real.example/v1/"\n')
    assert load_settings().api_key.reveal() == "sk-user-5"

"""Settings: explicit overrides > environment variables > config files > defaults.

Config files are read in layers, as git reads its own, each key from the
last file that sets it: first the user-level file
(``$XDG_CONFIG_HOME/pe_toolkit/config.toml``, else
``~/.config/pe_toolkit/config.toml``), where a user keeps what is theirs
(the API key) out of any repository; then the project's file over it:
``$PE_CONFIG`` when set, else ``pe_toolkit.toml`` in the current directory
or any parent (so notebooks run from ``notebooks/`` find the same cache as
the CLI run from the root). Relative paths in a file are relative to that
file's folder. The project root (the default cache ``data/pe_cache.duckdb``
and sample are under it) is the project file's folder, else the current
directory: never the user-level file's folder.

Environment variables: ``PE_CACHE``, ``PE_API_URL`` (one URL or several,
comma-separated, for failover), ``PE_API_KEY``, ``PE_SERVER_KEYS``
(comma-separated), ``PE_RATE_LIMIT`` (requests per key per hour served by
the mirror; unset: none on loopback, 1000 elsewhere), ``PE_API_DEADLINE``
and ``PE_API_MAX_RESPONSE_BYTES`` (the client's bounds per request),
``PE_ANALYSIS_DEADLINE``, ``PE_EXPORT_QUOTA_PER_KEY``,
``PE_EXPORT_QUOTA_TOTAL`` and ``PE_EXPORT_MIN_FREE`` (the mirror's; byte
sizes take K/M/G/T suffixes, powers of 1024, and a quota of 0 means no
limit), ``PE_CONFIG``.

Secrets (API keys) are held in :class:`Secret`, whose ``repr``/``str`` never
show the value, so they cannot leak into logs, tracebacks or notebook
outputs by accident.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG_NAME = "pe_toolkit.toml"
DEFAULT_CACHE = Path("data") / "pe_cache.duckdb"
SAMPLE_NAME = "sample.jsonl.gz"


class Secret:
    """A string that does not show itself: ``repr`` and ``str`` are masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class ConfiguredModel:
    """A model trained with ``pe_toolkit.learn`` that every pass of the
    project runs (``[[analysis.models]]`` in the config file)."""

    path: Path
    name: str
    role: str = "assistant"
    prefix: str | None = None


@dataclass(frozen=True)
class Settings:
    cache_path: Path
    sample_path: Path
    api_urls: tuple[str, ...] = ()
    api_key: Secret | None = None
    timeout: float = 30.0
    max_retries: int = 5
    server_keys: tuple[Secret, ...] = ()
    rate_limit: int | None = None  # None: the mirror decides (no limit on loopback)
    alert_threshold: float = 0.8
    # None: the component's own default (client: deadline = timeout, 64 MiB;
    # mirror: ServerConfig's). A quota of 0 means no limit.
    api_deadline: float | None = None
    api_max_response_bytes: int | None = None
    analysis_deadline: float | None = None
    export_quota_per_key: int | None = None
    export_quota_total: int | None = None
    export_min_free_bytes: int | None = None
    models: tuple[ConfiguredModel, ...] = ()
    config_file: Path | None = None  # the last file read: the project's when there is one
    config_files: tuple[Path, ...] = ()  # every file read, in order (a later one wins, per key)
    # Per key, where its value came from: "$ENV", a config file's path, or "default".
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    # Why the user-level file's API key is not in force (_withheld_key), for
    # the client's and doctor's error line; None when it is, or there is none.
    api_key_withheld: str | None = None

    @property
    def api_configured(self) -> bool:
        return bool(self.api_urls)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def user_config_file() -> Path:
    """The user-level file: ``$XDG_CONFIG_HOME/pe_toolkit/config.toml``, else
    ``~/.config/pe_toolkit/config.toml`` (the XDG rule: a relative
    ``XDG_CONFIG_HOME`` is ignored). It may not exist."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "pe_toolkit" / "config.toml"


def find_project_file(start: Path | None = None) -> Path | None:
    """The project's file: ``$PE_CONFIG``, else ``pe_toolkit.toml`` in
    ``start`` (the current directory) or a parent."""
    env = os.environ.get("PE_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"PE_CONFIG points to {path}, which is not a file")
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def find_config_files(start: Path | None = None) -> tuple[Path, ...]:
    """Every config file to read, in order: the user-level file (when
    there is one), then the project's over it."""
    return _layered(find_project_file(start))


def _layered(project: Path | None) -> tuple[Path, ...]:
    """One file named twice (``$PE_CONFIG`` pointing at the user file) is
    read once, as the project's."""
    user = user_config_file()
    files = [user] if user.is_file() and not (project and project.resolve() == user.resolve()) else []
    return (*files, *([project] if project else []))


def find_config_file(start: Path | None = None) -> Path | None:
    """The last config file read (the one that wins where several set a key)."""
    files = find_config_files(start)
    return files[-1] if files else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _number(name: str, raw: Any, kind: type) -> Any:
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None


def _optional_int(name: str, raw: Any) -> int | None:
    return None if raw is None else _number(name, raw, int)


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def byte_size(name: str, raw: Any, *, minimum: int = 0) -> int | None:
    """A byte size: an integer, or a string such as ``"5G"`` or ``"512 MiB"``."""
    if raw is None:
        return None
    match = _SIZE.match(str(raw)) if not isinstance(raw, bool) else None
    if match is None or isinstance(raw, float):
        raise ConfigError(f"{name} must be a byte size such as 1073741824 or 1G, got {raw!r}")
    value = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _optional_seconds(name: str, raw: Any) -> float | None:
    if raw is None:
        return None
    value = _number(name, raw, float)
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw!r}")
    return float(value)


_MODEL_KEYS = {"path", "name", "role", "prefix"}


def _models(raw: Any, root: Path, where: Path | None) -> tuple[ConfiguredModel, ...]:
    """``[[analysis.models]]``: tables with ``path`` and ``name`` (and
    optionally ``role``, ``prefix``); paths relative to the config file."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        raise ConfigError(f"{where}: analysis.models must be a list of tables ([[analysis.models]]), got {raw!r}")
    found: list[ConfiguredModel] = []
    for n, entry in enumerate(raw, 1):
        label = f"{where}: [[analysis.models]] #{n}"
        unknown = set(entry) - _MODEL_KEYS
        if unknown:
            raise ConfigError(f"{label}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_MODEL_KEYS))}")
        for key in ("path", "name"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigError(f"{label}: needs {key} = \"...\"")
        role = entry.get("role", "assistant")
        if role not in ("user", "assistant"):
            raise ConfigError(f"{label}: role must be \"user\" or \"assistant\", got {role!r}")
        prefix = entry.get("prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix.strip()):
            raise ConfigError(f"{label}: prefix must be a non-empty string, got {prefix!r}")
        path = Path(entry["path"]).expanduser()
        found.append(ConfiguredModel(path if path.is_absolute() else root / path, entry["name"].strip(), role,
                                     prefix.strip() if prefix else None))  # fmt: skip
    names = [m.name for m in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{where}: analysis.models names must differ; repeated: {', '.join(twice)}")
    return tuple(found)


def _section(doc: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    section = doc.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [{name}] must be a table (a [{name}] header with keys under it), got {section!r}")
    return section


def _default_sample(root: Path) -> Path:
    package = Path(__file__).parent
    # The project's own data/ first (a user may replace the sample there);
    # then the copy a wheel carries (pyproject maps data/ into _data/); then
    # the checkout the package was installed from in editable mode, so the
    # sample is found from any working directory.
    candidates = (root / "data" / SAMPLE_NAME, package / "_data" / SAMPLE_NAME, package.parent / "data" / SAMPLE_NAME)
    return next((c for c in candidates if c.is_file()), candidates[1])


def _same_url(url: str) -> str:
    from .client.core import normalize_base_url  # here: the client imports this module

    try:
        return normalize_base_url(url)
    except ValueError:
        return url.strip().rstrip("/")


def _withheld_key(key: Any, urls: tuple[str, ...], sources: dict[str, str], docs: dict[Path, dict[str, Any]],
                  project: Path | None) -> str | None:  # fmt: skip
    """Why the user-level file's API key must not go to the URLs in force,
    or None. A project's ``pe_toolkit.toml`` comes with the repository (a
    clone of someone else's too): were the user's key sent wherever it
    points, a cloned project could collect it. So a key from the user file
    goes only to URLs that file names itself (or ``$PE_API_URL``, or an
    argument: the user's own choices); ``$PE_CONFIG`` is the user's choice
    too."""
    user = user_config_file()
    if not key or sources.get("key") != str(user) or project is None or os.environ.get("PE_CONFIG"):
        return None
    if sources.get("url") != str(project):
        return None
    own = _section(docs.get(user, {}), "api", user).get("url") or ()
    own = _split(own) if isinstance(own, str) else tuple(own)
    foreign = [u for u in urls if _same_url(u) not in {_same_url(o) for o in own}]
    if not foreign:
        return None
    return (f"the API key in {user} is not sent to {', '.join(foreign)}, which {project} names (a project's file "
            f"cannot send your key elsewhere): list the URL under [api] url in {user} too, or set PE_API_KEY")  # fmt: skip


def load_settings(**overrides: Any) -> Settings:
    """Resolve settings; keyword overrides win over everything else."""
    project = find_project_file()
    files = _layered(project)
    layers = [(path, _read_toml(path)) for path in files]
    # The project root: the project file's folder, else where the user works
    # (a user-level file holds the user's settings, not their project).
    root = project.parent if project else Path.cwd()
    sources: dict[str, str] = {}
    origin: dict[str, Path] = {}  # key -> the folder its file's relative paths start from

    def pick(env: str, section: str, key: str, default: Any) -> Any:
        if env and os.environ.get(env):
            sources[key] = f"${env}"
            origin[key] = Path.cwd()
            return os.environ[env]
        for path, doc in reversed(layers):  # the last file read wins
            value = _section(doc, section, path).get(key)
            if value is not None:
                sources[key] = str(path)
                origin[key] = path.parent
                return value
        sources[key] = "default"
        origin[key] = root
        return default

    cache = Path(pick("PE_CACHE", "cache", "path", str(DEFAULT_CACHE))).expanduser()
    cache = cache if cache.is_absolute() else origin["path"] / cache
    sample = pick("", "cache", "sample", None)
    sample_path = (origin["sample"] / Path(sample).expanduser()) if sample else _default_sample(root)
    models = pick("", "analysis", "models", None)
    models_file = Path(sources["models"]) if models is not None else None

    urls = pick("PE_API_URL", "api", "url", ())
    urls = _split(urls) if isinstance(urls, str) else tuple(urls)
    key = pick("PE_API_KEY", "api", "key", None)
    withheld = _withheld_key(key, urls, sources, dict(layers), project) if "api_key" not in overrides else None
    key = None if withheld else key
    server_keys = pick("PE_SERVER_KEYS", "server", "keys", ())
    server_keys = _split(server_keys) if isinstance(server_keys, str) else tuple(server_keys)

    settings = Settings(
        cache_path=cache,
        sample_path=sample_path,
        api_urls=tuple(u.rstrip("/") for u in urls),
        api_key=Secret(key) if key else None,
        timeout=_number("api.timeout", pick("", "api", "timeout", 30.0), float),
        max_retries=_number("api.max_retries", pick("", "api", "max_retries", 5), int),
        server_keys=tuple(Secret(k) for k in server_keys),
        rate_limit=_optional_int("PE_RATE_LIMIT", pick("PE_RATE_LIMIT", "server", "rate_limit", None)),
        alert_threshold=_number(
            "analysis.alert_threshold", pick("", "analysis", "alert_threshold", 0.8), float
        ),
        api_deadline=_optional_seconds("PE_API_DEADLINE / [api] deadline", pick("PE_API_DEADLINE", "api", "deadline", None)),
        api_max_response_bytes=byte_size(
            "PE_API_MAX_RESPONSE_BYTES / [api] max_response_bytes",
            pick("PE_API_MAX_RESPONSE_BYTES", "api", "max_response_bytes", None),
            minimum=1,
        ),
        analysis_deadline=_optional_seconds(
            "PE_ANALYSIS_DEADLINE / [server] analysis_deadline", pick("PE_ANALYSIS_DEADLINE", "server", "analysis_deadline", None)
        ),
        export_quota_per_key=byte_size(
            "PE_EXPORT_QUOTA_PER_KEY / [server] export_quota_per_key",
            pick("PE_EXPORT_QUOTA_PER_KEY", "server", "export_quota_per_key", None),
        ),
        export_quota_total=byte_size(
            "PE_EXPORT_QUOTA_TOTAL / [server] export_quota_total",
            pick("PE_EXPORT_QUOTA_TOTAL", "server", "export_quota_total", None),
        ),
        export_min_free_bytes=byte_size(
            "PE_EXPORT_MIN_FREE / [server] export_min_free_bytes",
            pick("PE_EXPORT_MIN_FREE", "server", "export_min_free_bytes", None),
        ),
        models=_models(models, origin["models"], models_file),
        config_file=files[-1] if files else None,
        config_files=files,
        sources=sources,
        api_key_withheld=withheld,
    )
    if overrides:
        if "cache_path" in overrides and overrides["cache_path"] is not None:
            overrides["cache_path"] = Path(overrides["cache_path"]).expanduser()
        if isinstance(overrides.get("api_key"), str):
            overrides["api_key"] = Secret(overrides["api_key"])
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if not 0.0 <= settings.alert_threshold <= 1.0:
        raise ConfigError(f"alert_threshold must be in [0, 1], got {settings.alert_threshold}")
    return settings

"""Health checks behind ``pe-toolkit doctor``: each says what it found."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Settings, load_settings, user_config_file
from .errors import PeToolkitError, StoreLockedError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


_MALFORMED = "(a malformed URL, not shown)"


def _shown(url: str) -> str:
    """``url`` as doctor prints it: without credentials, and without failing
    on a URL too malformed to split (doctor reports it, it does not crash)."""
    from .client.core import public_url

    try:
        return public_url(url)
    except ValueError:
        return _MALFORMED


def _key_problem(key: str) -> str | None:
    """Why the key cannot go into an HTTP header (as the client judges it), or None."""
    from .client.options import key_problem

    return key_problem(key.strip())


def _scrub(text: str, key: str) -> str:
    """``text`` without the key, raw or as an escaped repr shows it: a
    message from the HTTP layer may quote the header it refused. A short
    key only where it stands as a token (pe_toolkit.masking): "k" masked
    everywhere made "key accepted" read "********ey accepted"."""
    from .masking import mask_secrets

    return mask_secrets(text, {key, repr(key)[1:-1], key.strip()}, "********")


def check_online(settings: Settings) -> Check:
    """One authenticated request to each configured API URL (its dataset
    list): reachable, and the key accepted? Few retries, a short deadline,
    so a down server is reported in seconds, not after a sync's patience."""
    from .client import Client
    from .client.retry import RetryPolicy
    from .errors import AuthenticationError, PermissionDeniedError

    key = settings.api_key.reveal() if settings.api_key else ""
    problem = _key_problem(key)
    if problem:
        return Check("api online", False, f"{problem}; nothing was sent")
    found: list[str] = []
    ok = True
    for url in settings.api_urls:
        try:
            with Client(base_url=url, settings=settings, retry=RetryPolicy(max_attempts=2, max_elapsed=10.0), timeout=10.0) as client:
                count = len(client.list_datasets().items)
            found.append(f"{_shown(url)}: reachable, key accepted ({count} dataset(s))")
        except (AuthenticationError, PermissionDeniedError) as exc:
            ok = False
            found.append(f"{_shown(url)}: the key was refused (HTTP {exc.status}); check PE_API_KEY")
        except PeToolkitError as exc:  # ApiError, or a URL or setting the client refuses
            ok = False
            found.append(f"{_shown(url)}: {exc}")
    return Check("api online", ok, _scrub("; ".join(found), key))


def check_models() -> tuple[Check, list[str]]:
    """The project's models (``[[analysis.models]]``) load, as ``analyze``
    would load them: file there, content hash and format checked. Also
    their ``name=version`` parts of an analysis version."""
    from .analysis.registry import configured, version_of

    found: list[str] = []
    versions: list[str] = []
    try:
        for analyzer in configured():
            model = analyzer.model  # type: ignore[attr-defined]  # a ModelAnalyzer: configured() makes only those
            found.append(f"{analyzer.name}: {len(model.classes)} classes, hash {analyzer.version}")
            versions.append(version_of((analyzer,)))
    except PeToolkitError as exc:
        return Check("models", False, "; ".join([*found, str(exc)])), []
    return Check("models", True, "; ".join(found)), versions


def check_model_scores(store: Any, versions: list[str]) -> Check | None:
    """Whether the scores in force were computed by the configured models as
    they are now: a model file replaced (or added) since the latest
    ``analyze`` leaves the old scores current until the next run."""
    latest = store.sql("SELECT analysis_version, status FROM analysis_runs ORDER BY started_at DESC LIMIT 1")
    if latest.is_empty():
        return None
    in_force, status = latest.row(0)
    if status != "completed":  # check_analysis says so
        return None
    missing = [v.split("=", 1)[0] for v in versions if v not in str(in_force).split(";")]
    if not missing:
        return Check("model scores", True, "the latest analysis ran with the configured models as they are")
    return Check("model scores", False, f"{', '.join(missing)}: not what the latest analysis ran with (a model "
                 "added or replaced since): run pe-toolkit analyze")  # fmt: skip


def check_analysis(store: Any) -> Check | None:
    """Whether the latest ``analyze`` completed. Its version is in force as
    soon as it wrote a batch, so one that failed or was killed partway
    leaves the conversations it did not reach without current scores."""
    latest = store.sql("SELECT status FROM analysis_runs ORDER BY started_at DESC LIMIT 1")
    if latest.is_empty():
        return None
    status = latest.item()
    if status == "completed":
        return Check("analysis", True, "the latest analysis completed")
    return Check("analysis", False, f"the latest analysis is {status}, not completed: run pe-toolkit analyze")


def config_files(settings: Settings) -> str:
    """Every config file read, in order, each with its part: the user's
    beneath the project's (or $PE_CONFIG's)."""
    if not settings.config_files:
        return "no config file (defaults and environment)"
    pe_config = bool(os.environ.get("PE_CONFIG"))  # then the last file is its (even the user file)
    last = len(settings.config_files) - 1
    named = [f"{path} ({'user' if path == user_config_file() and not (pe_config and i == last) else '$PE_CONFIG' if pe_config else 'project'})"
             for i, path in enumerate(settings.config_files)]  # fmt: skip
    return ", then ".join(named) + ("; later files win per key" if len(named) > 1 else "")


def diagnose(cache: Path | None = None, *, online: bool = False) -> list[Check]:
    checks: list[Check] = []
    try:
        settings = load_settings(cache_path=cache)
    except PeToolkitError as exc:
        return [Check("config", False, str(exc))]
    checks.append(Check("config", True, config_files(settings)))
    # The file the API key in force came from (not from $PE_API_KEY or an argument).
    key_file = next((f for f in settings.config_files if str(f) == settings.sources.get("key")), None) if settings.api_key else None
    if key_file is not None:
        mode = key_file.stat().st_mode
        private = not mode & (stat.S_IRWXG | stat.S_IRWXO)
        checks.append(Check("config permissions", private, "owner-only" if private else f"{key_file} holds an API key and is readable by others: chmod 600 it"))
    checks.append(Check("sample", settings.sample_path.is_file(), str(settings.sample_path)))
    model_versions: list[str] = []
    if settings.models:
        models_check, model_versions = check_models()
        checks.append(models_check)
    api = "not configured (offline: the bundled sample is the default source)"
    key_problem = _key_problem(settings.api_key.reveal()) if settings.api_key else None
    urls = [_shown(u) for u in settings.api_urls]
    if settings.api_configured:
        api = f"{', '.join(urls)}; key {'set' if settings.api_key else 'MISSING'}"
        api += f": {key_problem}" if key_problem else f": {settings.api_key_withheld}" if settings.api_key_withheld else ""
    usable = bool(settings.api_key) and not key_problem and _MALFORMED not in urls
    checks.append(Check("api", not settings.api_configured or usable, api))
    if online:
        checks.append(check_online(settings) if settings.api_configured and settings.api_key
                      else Check("api online", False, "no API URL and key to try (PE_API_URL, PE_API_KEY)"))  # fmt: skip
    path = settings.cache_path
    if not path.exists():
        checks.append(Check("cache", True, f"{path} (not created yet)"))
        return checks
    mode = path.stat().st_mode
    private = not mode & (stat.S_IRWXG | stat.S_IRWXO)
    checks.append(Check("cache permissions", private, f"{path} mode {stat.filemode(mode)}" + ("" if private else ": holds sensitive conversations, chmod 600 it")))
    from .store import Store
    from .store.migrate import latest_version

    try:
        with Store(path, read_only=True) as store:
            version = store.schema_version
            checks.append(Check("schema", version == latest_version(), f"version {version} (this pe_toolkit: {latest_version()})"))
            checks.append(Check("lock", True, "no other process holds the cache"))
            summary = store.summary()
            checks.append(Check("contents", True, f"{summary.conversations:,} conversations, {summary.messages:,} messages"))
            dupes = store.scalar("SELECT count(*) - count(DISTINCT id) FROM conversations")
            checks.append(Check("unique ids", dupes == 0, "every conversation id once" if dupes == 0 else f"{dupes} duplicate ids"))
            analysis_check = check_analysis(store)
            if analysis_check is not None:
                checks.append(analysis_check)
            scores_check = check_model_scores(store, model_versions) if model_versions else None
            if scores_check is not None:
                checks.append(scores_check)
            if summary.open_dead_letters:
                checks.append(Check("dead letters", True, f"{summary.open_dead_letters:,} invalid records kept in dead_letters (pe-toolkit sql \"SELECT * FROM dead_letters\")"))
    except StoreLockedError as exc:
        checks.append(Check("lock", False, f"held by process {exc.pid}" + (f" ({exc.holder})" if exc.holder else "")))
    except PeToolkitError as exc:
        checks.append(Check("cache", False, str(exc)))
    return checks

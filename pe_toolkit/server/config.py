"""What the mirror needs to know to run: store, address, keys, limits.

Built from :class:`pe_toolkit.config.Settings` (``PE_SERVER_KEYS``,
``PE_RATE_LIMIT``, the config file's ``[server]`` section) and the
``pe-toolkit serve`` options. Keys stay :class:`~pe_toolkit.config.Secret`
objects from end to end, so no repr, log line or error shows them.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import Secret, Settings, load_settings
from ..errors import ConfigError

# The upstream research tier's budget (API_CONTRACT.md), served by default
# on any address but loopback.
UPSTREAM_RATE_LIMIT = 1000
# Beyond loopback a key is all that stands between the network and the
# conversations: one shorter than this could be guessed.
MIN_KEY_LENGTH = 16
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def generate_key() -> Secret:
    """A random key for one run of a loopback server with no keys configured."""
    return Secret("pe_local_" + secrets.token_urlsafe(24))


@dataclass(frozen=True)
class ServerConfig:
    """Everything :func:`pe_toolkit.server.create_app` needs.

    ``rate_limit`` requests per key per ``rate_window`` seconds (the
    contract's unit is an hour). Left as None, a loopback server has no
    limit (a lab's own mirror should not throttle its own users: a
    "list, then get each" pull of 1,200 conversations would sit paced for
    most of an hour) and any other address the upstream 1,000. ``state_dir`` holds the exports and the
    served-object snapshot; by default it sits beside the cache as
    ``<cache>.server/`` (mode 700: it holds conversations).
    ``download_hold``: how long a download of an export still being
    written waits for it before answering 202 (0: answer at once).
    ``export_quota_per_key`` / ``export_quota_total``: bytes of live
    exports (not yet expired) one key / all keys may hold (None: no
    limit); ``export_min_free_bytes``: free space an export must leave on
    the disk of the exports folder (server/exports.py).
    ``analysis_deadline``: seconds a request-time analysis (validate, the
    WebSocket's analyze/suggest) may run before it answers 504 and its
    worker is stopped; ``analysis_workers`` processes run them
    (server/analysis_pool.py).
    """

    db_path: Path
    keys: tuple[Secret, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    rate_limit: int | None = None
    rate_window: float = 3600.0
    max_body_bytes: int = 2 * 1024 * 1024
    export_ttl: float = 24 * 3600.0
    download_hold: float = 2.0
    export_quota_per_key: int | None = 5 * 1024**3
    export_quota_total: int | None = 20 * 1024**3
    export_min_free_bytes: int = 1024**3
    analysis_deadline: float = 10.0
    analysis_workers: int = 2
    poll_interval: float = 1.0
    heartbeat: float = 15.0
    job_workers: int = 1
    state_dir: Path | None = None
    access_log: bool = False
    generated_key: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "db_path", Path(self.db_path))
        if self.rate_limit is None and not is_loopback(self.host):
            object.__setattr__(self, "rate_limit", UPSTREAM_RATE_LIMIT)
        if self.state_dir is None:
            object.__setattr__(self, "state_dir", Path(f"{self.db_path}.server"))
        else:
            object.__setattr__(self, "state_dir", Path(self.state_dir))
        for number, key in enumerate(self.keys, 1):
            if not isinstance(key, Secret):
                raise ConfigError("server keys must be pe_toolkit.config.Secret values")
            if not key.reveal().strip():
                raise ConfigError("a server key is empty")
            if not is_loopback(self.host) and len(key.reveal()) < MIN_KEY_LENGTH:
                raise ConfigError(
                    f"refusing to serve on {self.host}: server key {number} of {len(self.keys)} has "
                    f"{len(key.reveal())} characters; beyond loopback every key needs at least {MIN_KEY_LENGTH} "
                    "(set longer keys in PE_SERVER_KEYS or [server] keys)"
                )
        checks = (
            ("rate_limit", self.rate_limit is None or self.rate_limit >= 1),
            ("rate_window", self.rate_window > 0),
            ("max_body_bytes", self.max_body_bytes >= 1024),
            ("export_ttl", self.export_ttl > 0),
            ("download_hold", 0 <= self.download_hold <= 30),
            ("export_quota_per_key", self.export_quota_per_key is None or self.export_quota_per_key > 0),
            ("export_quota_total", self.export_quota_total is None or self.export_quota_total > 0),
            ("export_min_free_bytes", self.export_min_free_bytes >= 0),
            ("analysis_deadline", 0 < self.analysis_deadline <= 3600),
            ("analysis_workers", 1 <= self.analysis_workers <= 64),
            ("poll_interval", self.poll_interval > 0),
            ("heartbeat", self.heartbeat > 0),
            ("job_workers", self.job_workers >= 1),
            ("port", 0 <= self.port <= 65535),
        )
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"server setting {name} is out of range: {getattr(self, name)!r}")

    @property
    def exports_dir(self) -> Path:
        assert self.state_dir is not None
        return self.state_dir / "exports"

    @property
    def objects_dir(self) -> Path:
        assert self.state_dir is not None
        return self.state_dir / "objects"

    def with_(self, **changes: Any) -> ServerConfig:
        return replace(self, **changes)

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        db_path: str | Path | None = None,
        keys: tuple[str | Secret, ...] | None = None,
        generate_missing_key: bool = False,
        **overrides: Any,
    ) -> ServerConfig:
        """Resolve keys and limits from settings; keyword arguments win.

        With no key configured, a loopback server gets a generated one-time
        key when ``generate_missing_key`` (what ``pe-toolkit serve`` does);
        any other host is refused, since an open mirror would hand sensitive
        conversations to anyone on the network.
        """
        settings = settings or load_settings()
        resolved = tuple(k if isinstance(k, Secret) else Secret(k) for k in keys) if keys else settings.server_keys
        host = overrides.get("host", "127.0.0.1")
        generated = False
        if not resolved:
            if not is_loopback(host):
                raise ConfigError(
                    f"refusing to serve on {host} without API keys: set PE_SERVER_KEYS "
                    "or [server] keys in the config file"
                )
            if not generate_missing_key:
                raise ConfigError("no server keys configured: set PE_SERVER_KEYS or [server] keys")
            resolved = (generate_key(),)
            generated = True
        if overrides.get("rate_limit") is None:
            overrides["rate_limit"] = settings.rate_limit
        # A setting left unset keeps the field's default; a quota of 0 means none.
        for name in ("analysis_deadline", "export_quota_per_key", "export_quota_total", "export_min_free_bytes"):
            if name not in overrides:
                if getattr(settings, name) is None:
                    continue
                overrides[name] = getattr(settings, name)
            if name.startswith("export_quota_") and overrides[name] == 0:
                overrides[name] = None
        return cls(
            db_path=Path(db_path) if db_path is not None else settings.cache_path,
            keys=resolved,
            generated_key=generated,
            **overrides,
        )

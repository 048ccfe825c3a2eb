"""``pe-toolkit serve``: the offline mirror (docs/server.md)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click


@click.command("serve")
@click.option("--db", "db", type=click.Path(), help="Cache file to serve (default: the global --db, $PE_CACHE, config).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; anything but loopback needs configured keys of 16+ characters.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@click.option(
    "--rate-limit", type=click.IntRange(min=1),
    help="Requests per key per window, as upstream's 1000/hour (default: $PE_RATE_LIMIT, [server] rate_limit; "
    "else none on a loopback address, 1000 on any other).",
)
@click.option("--rate-window", type=click.FloatRange(min=1), default=3600.0, show_default=True, help="Rate-limit window in seconds.")
@click.option("--max-body", type=click.IntRange(min=1024), default=2 * 1024 * 1024, show_default=True, help="Largest request body (and WebSocket message) in bytes.")
@click.option("--export-ttl", type=click.FloatRange(min=1), default=86400.0, show_default=True, help="Seconds an export stays downloadable.")
@click.option("--analysis-deadline", type=click.FloatRange(min=0.01, max=3600), help="Seconds a request-time analysis (validate, WebSocket analyze) may run before answering 504 (default: $PE_ANALYSIS_DEADLINE, [server] analysis_deadline, else 10).")
@click.option("--export-quota-per-key", metavar="BYTES", help="Bytes of live exports one key may hold, e.g. 5G; 0: no limit (default: $PE_EXPORT_QUOTA_PER_KEY, [server] export_quota_per_key, else 5 GiB).")
@click.option("--export-quota-total", metavar="BYTES", help="Bytes of live exports all keys may hold; 0: no limit (default: $PE_EXPORT_QUOTA_TOTAL, [server] export_quota_total, else 20 GiB).")
@click.option("--export-min-free", metavar="BYTES", help="Free disk space an export must leave (default: $PE_EXPORT_MIN_FREE, [server] export_min_free_bytes, else 1 GiB).")
@click.option("--access-log", is_flag=True, help="Log every request line (off by default: paths name conversations).")
@click.option("--no-sample", is_flag=True, help="Serve an empty cache as it is instead of loading the bundled sample.")
@click.pass_context
def serve_cmd(
    ctx: click.Context,
    db: str | None,
    host: str,
    port: int,
    rate_limit: int | None,
    rate_window: float,
    max_body: int,
    export_ttl: float,
    analysis_deadline: float | None,
    export_quota_per_key: str | None,
    export_quota_total: str | None,
    export_min_free: str | None,
    access_log: bool,
    no_sample: bool,
) -> None:
    """Serve the cache as the Pixelated Empathy API v1 (the offline mirror).

    Every route of the API contract, with Bearer keys from $PE_SERVER_KEYS
    (comma-separated) or [server] keys in the config file. On loopback with
    no key configured, a one-time key is generated and printed; any other
    host refuses to start without keys, or with a key shorter than 16
    characters. A key in a request's query string (``?api_key=``) is
    masked in every log line. Stop with Ctrl-C.
    """
    from ..config import byte_size, load_settings
    from ..errors import ConfigError
    from ..ingest.sample import ensure_sample
    from ..server import ServerConfig, create_app, serve
    from ..store import Store
    from ._common import cache_option, not_a_folder

    # Its own --db first; PE_CACHE (read into the global --db) is not looked at then.
    settings = load_settings(cache_path=not_a_folder(db, "--db") if db else cache_option(ctx))
    overrides: dict[str, Any] = {"host": host, "port": port, "rate_window": rate_window, "max_body_bytes": max_body, "export_ttl": export_ttl, "access_log": access_log}
    if rate_limit is not None:
        overrides["rate_limit"] = rate_limit
    if analysis_deadline is not None:
        overrides["analysis_deadline"] = analysis_deadline
    for name, raw in (("export_quota_per_key", export_quota_per_key), ("export_quota_total", export_quota_total),
                      ("export_min_free_bytes", export_min_free)):  # fmt: skip
        if raw is not None:
            overrides[name] = byte_size(f"--{name.replace('_', '-').replace('-bytes', '')}", raw)
    config = ServerConfig.from_settings(settings, generate_missing_key=True, **overrides)
    if not no_sample:
        with Store(config.db_path) as store:
            try:
                report = ensure_sample(store)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (pass --no-sample to serve the empty cache)") from None
        if report is not None:
            click.echo(f"loaded the bundled sample into the empty cache: {report}", err=True)
    app = create_app(config)

    limit = (
        f"{config.rate_limit} requests per key per {config.rate_window:g} s"
        if config.rate_limit is not None
        else "no rate limit on loopback; --rate-limit 1000 for the upstream's"
    )

    def announce(url: str) -> None:
        # The one-time key once the port is bound: a run that fails to start
        # (the port in use) printed a key that nothing accepts.
        if config.generated_key:
            click.echo(
                "pe-toolkit: no server keys configured; this run accepts the one-time key\n"
                f"    {config.keys[0].reveal()}\n"
                "(set PE_SERVER_KEYS to choose your own)",
                err=True,
            )
        click.echo(
            f"serving {config.db_path} at {url}/v1 "
            f"({len(config.keys)} key(s), {limit})",
            err=True,
        )

    # uvicorn shuts down gracefully on SIGTERM and then lets it end the
    # process: the default handler, not the other commands' interrupt
    # (which the command group installs from the main thread only).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        serve(app, host=host, port=port, max_body_bytes=max_body, access_log=access_log, announce=announce)
    finally:
        app.state.mirror.stop()  # a no-op after a normal shutdown; closes the cache if uvicorn never started

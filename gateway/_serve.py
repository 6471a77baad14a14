"""Running the app with uvicorn: the bind check, one process or several workers."""

from __future__ import annotations

import ipaddress
import os

from gateway.config import Config


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def refuse_open_bind(config: Config, host: str, insecure: bool) -> str | None:
    """Why binding ``host`` without any key configured is refused, or None."""
    if config.server.has_auth or insecure or is_loopback(host):
        return None
    return (
        f"refusing to serve on {host} with no key configured: anyone who can reach it could "
        "spend your provider credits. Set [server] master_key (or DISPATCHLINE_MASTER_KEY), "
        "bind to 127.0.0.1, or pass --insecure."
    )


def run(
    config: Config, *, host: str, port: int, workers: int, access_log: bool, log_level: str
) -> None:
    """Serve until SIGTERM/SIGINT: stop accepting, let requests in flight finish
    (up to ``[server] graceful_timeout``), then close the pipeline."""
    import uvicorn

    from gateway.app import CONFIG_ENV, create_app

    options = {
        "host": host,
        "port": port,
        "lifespan": "on",
        "timeout_graceful_shutdown": int(config.server.graceful_timeout),
        "access_log": access_log,
        "log_level": log_level,
        "server_header": False,
    }
    if workers == 1:
        uvicorn.run(create_app(config=config, watch_sighup=True), **options)  # type: ignore[arg-type]
        return
    # Each worker builds its own app from the file (uvicorn needs an import string);
    # SIGHUP to the supervisor restarts the workers, each gracefully.
    if config.source is not None:
        os.environ[CONFIG_ENV] = str(config.source.resolve())
    uvicorn.run("gateway.app:from_environment", factory=True, workers=workers, **options)  # type: ignore[arg-type]

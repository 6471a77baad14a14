"""The gateway's config file: TOML (or JSON), read strictly, turned into a Pipeline.

::

    [server]
    host = "127.0.0.1"              # --host wins
    port = 4000                     # --port wins
    master_key = "${DISPATCHLINE_MASTER_KEY}"
    keys_file = "keys.toml"         # virtual keys, beside this file unless absolute
    graceful_timeout = 30           # seconds in-flight requests get at shutdown or reload
    ping_interval = 15              # seconds of silence before an SSE comment ping
    max_body_bytes = 67108864       # a larger request body is refused with 413 (64 MiB)

    [providers.openai]              # a registered provider: its settings
    api_key = "${OPENAI_API_KEY}"
    api_base = "https://my-proxy.example/v1"
    timeout = 60

    [providers.acme]                # a new name: a new OpenAI-compatible provider
    api_base = "https://api.acme.ai/v1"
    api_key = "${ACME_API_KEY}"
    endpoints = ["chat", "embedding"]
    models = ["acme-large"]

    [redis]                         # state shared by every worker: see gateway/_redis.py
    url = "redis://127.0.0.1:6379/0"
    password = "${REDIS_PASSWORD}"

    [router]                        # routing groups: see gateway/_routing.py
    strategy = "weighted"

    [[router.groups.chat-fast]]
    target = "openai/gpt-4o-mini"
    weight = 3

    [middlewares]
    logging = true                  # or { log_content = true }, or false
    cache = { max_entries = 10000, ttl = 3600 }   # true (default), false, or options
    retry = { attempts = 3, deadline = 60 }       # true (default), false, or options
    fallbacks = ["anthropic/claude-3-5-haiku-latest"]
    stats = true                    # /api/v1/stats and /metrics
    costs = true                    # on by itself when a budget counts costs
    telemetry = true                # the globally configured OpenTelemetry providers

    [[middlewares.budgets]]         # see gateway/_usage.py
    limit_usd = 25.0
    period = "day"
    scope = "provider"

Every string may use ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``). A key that
is not known here, or a value of the wrong type or range, is an error naming
the file, the line and the key; nothing falls back silently.

Sections are read by the functions in :data:`SECTIONS`, each adding keyword
arguments for ``Pipeline.default``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import attrs

from gateway._auth import VirtualKey, read_keys
from gateway._build import (
    ProviderSettings,
    build_pipeline,
    configured_registry,
    read_middlewares,
    read_providers,
)
from gateway._reader import ConfigError, Locator, Table
from gateway._redis import RedisLink, read_redis
from gateway._routing import read_router
from pipeline import Pipeline, Secret

__all__ = ["MASTER_KEY_ENV", "Config", "ConfigError", "ServerConfig", "load_config", "parse_config"]

MASTER_KEY_ENV = "DISPATCHLINE_MASTER_KEY"  # the master key when the file names none
# The largest request body the gateway reads: OpenAI's own limits (a 25 MB audio
# upload, 50 MB of images in one chat request) with room for their encoding.
MAX_BODY_BYTES = 64 * 1024 * 1024


@attrs.frozen(kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 4000
    master_key: Secret | None = attrs.field(default=None, repr=False)
    keys: tuple[VirtualKey, ...] = ()
    graceful_timeout: float = 30.0
    ping_interval: float = 15.0
    max_body_bytes: int = MAX_BODY_BYTES

    @property
    def has_auth(self) -> bool:
        return self.master_key is not None or bool(self.keys)


@attrs.frozen(kw_only=True)
class Config:
    """A loaded config file: server settings, provider settings, pipeline options."""

    source: Path | None = None
    server: ServerConfig = ServerConfig()
    providers: tuple[ProviderSettings, ...] = ()
    options: Mapping[str, Any] = attrs.field(factory=dict)  # keyword arguments for Pipeline.default
    redis: RedisLink | None = None  # [redis]: the state every worker shares

    def build_pipeline(self, kept: dict[Hashable, Any] | None = None) -> Pipeline:
        """A new pipeline with these providers and middlewares (no I/O). With
        ``kept``, the statistics and budgets of the last pipeline built with it
        (and its Redis connections) carry on where their settings are unchanged
        (a reload)."""
        return build_pipeline(self.providers, self.options, kept, self.redis)


Section = Callable[[Table, "Context"], Mapping[str, Any]]


@attrs.define
class Context:
    """What section readers share: the file's folder, and what they found."""

    folder: Path
    server: ServerConfig = ServerConfig()
    providers: tuple[ProviderSettings, ...] = ()
    redis: RedisLink | None = None


def _read_server(table: Table, context: Context) -> Mapping[str, Any]:
    master = table.secret("master_key", None) or _env_secret(MASTER_KEY_ENV)
    keys = list(read_keys(table.tables("keys")))
    keys_file = table.text("keys_file", None)
    if keys_file is not None:
        keys += read_keys(_load_keys_file(context.folder / keys_file, table))
    names = [key.name for key in keys]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise table.error("keys", f"two virtual keys are named {duplicates[0]!r}")
    context.server = ServerConfig(
        host=table.text("host", "127.0.0.1"),
        port=table.integer("port", 4000, low=1, high=65535),
        master_key=master,
        keys=tuple(keys),
        graceful_timeout=table.number("graceful_timeout", 30.0),
        ping_interval=table.number("ping_interval", 15.0),
        max_body_bytes=table.integer("max_body_bytes", MAX_BODY_BYTES),
    )
    table.done()
    return {}


def _env_secret(name: str) -> Secret | None:
    value = os.environ.get(name)
    return Secret(value) if value else None


def _load_keys_file(path: Path, table: Table) -> list[Table]:
    try:
        data, text = _parse(path)
    except OSError as exc:
        raise table.error("keys_file", f"cannot read {path}: {exc.strerror}") from exc
    keys = Table(data, "", Locator(path, text))
    found = keys.tables("keys")
    keys.done()
    return found


def _read_providers(table: Table, context: Context) -> Mapping[str, Any]:
    context.providers = tuple(read_providers(table))
    return {}


def _read_redis(table: Table, context: Context) -> Mapping[str, Any]:
    context.redis = read_redis(table)
    return {}


def _read_router(table: Table, context: Context) -> Mapping[str, Any]:
    providers = configured_registry(context.providers).adapters
    return read_router(table, providers, context.redis)


def _read_middlewares(table: Table, context: Context) -> Mapping[str, Any]:
    budgeted = [key.name for key in context.server.keys if key.budget is not None]
    return read_middlewares(table, budgeted, context.redis)


# Each top-level table of the file, read in this order. A reader returns
# keyword arguments for Pipeline.default.
SECTIONS: dict[str, Section] = {
    "server": _read_server,
    "providers": _read_providers,
    "redis": _read_redis,
    "router": _read_router,
    "middlewares": _read_middlewares,
}


def _parse(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text(encoding="utf-8")

    def once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:  # TOML refuses these itself
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise ConfigError(f"{path}: {key!r} is given twice in one object", file=str(path))
            found[key] = value
        return found

    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text, object_pairs_hook=once)
        else:
            data = tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}: not valid JSON: {exc.msg}", file=str(path)
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", file=str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table (a JSON object)", file=str(path))
    return data, text


def parse_config(data: Mapping[str, Any], *, source: Path | None = None, text: str = "") -> Config:
    """A :class:`Config` from already parsed data (what :func:`load_config` does after reading)."""
    root = Table(data, "", Locator(source, text))
    context = Context(folder=source.parent if source is not None else Path.cwd())
    options: dict[str, Any] = {}
    for name, read in SECTIONS.items():
        options.update(read(root.table(name, Table({}, name, Locator(source, text))), context))
    root.done()
    config = Config(
        source=source,
        server=context.server,
        providers=context.providers,
        options=options,
        redis=context.redis,
    )
    try:
        config.build_pipeline()  # provider and middleware values the classes themselves refuse
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source or 'config'}: {exc}", file=str(source)) from exc
    return config


def load_config(path: str | Path) -> Config:
    """Read, check and return the config at ``path`` (``.json`` is JSON, anything else TOML).

    Raises :class:`ConfigError` naming the file, line and key of the first problem.
    """
    path = Path(path)
    try:
        data, text = _parse(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    return parse_config(data, source=path, text=text)

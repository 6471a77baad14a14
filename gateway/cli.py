"""The ``dispatchline`` command (click): serve, chat, providers, models, health, check-config.

``chat`` calls providers through a pipeline in this process, or, with
``--url``, a running gateway (through the same pipeline machinery, with the
gateway as an OpenAI-compatible provider). Exit status: 0 on success, 1 when
the call or check failed, 2 for a usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import click
import httpx

from gateway._reader import ConfigError
from gateway._redis import RedisLink
from gateway.config import Config, load_config, parse_config
from pipeline import Pipeline, errors

URL_ENV = "DISPATCHLINE_URL"
KEY_ENV = "DISPATCHLINE_API_KEY"
DEFAULT_URL = "http://127.0.0.1:4000"

config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A gateway config file (TOML or JSON): its providers and middlewares.",
)
url_option = click.option(
    "--url", envvar=URL_ENV, help=f"A running gateway, e.g. {DEFAULT_URL} (or ${URL_ENV})."
)
key_option = click.option("--key", envvar=KEY_ENV, help=f"The gateway key to send (or ${KEY_ENV}).")


def _config(path: Path | None) -> Config:
    try:
        return load_config(path) if path is not None else parse_config({})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def configure_logging(level: str) -> None:
    """structlog as a service logs: JSON lines on stderr, filtered at ``level``."""
    import logging

    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """dispatchline: one call, any LLM provider; an OpenAI-compatible gateway."""


@cli.command()
@config_option
@click.option("--host", help="Address to bind (default: [server] host, else 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: [server] port, 4000).")
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Worker processes (each loads the config itself).",
)
@click.option(
    "--insecure", is_flag=True, help="Allow binding beyond loopback with no key configured."
)
@click.option("--access-log", is_flag=True, help="Also log one line per HTTP request.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    workers: int,
    insecure: bool,
    access_log: bool,
    log_level: str,
) -> None:
    """Serve the OpenAI-compatible gateway (uvicorn). SIGHUP reloads the config."""
    from gateway._serve import refuse_open_bind, run

    config = _config(config_path)
    host = host or config.server.host
    port = config.server.port if port is None else port
    problem = refuse_open_bind(config, host, insecure)
    if problem:
        raise click.UsageError(problem)
    configure_logging(log_level)
    run(config, host=host, port=port, workers=workers, access_log=access_log, log_level=log_level)


def _gateway_pipeline(url: str, key: str | None) -> Pipeline:
    from middlewares import ErrorMapping
    from pipeline import Secret
    from providers import OpenAICompatible, ProviderRegistry
    from providers.openai_compatible import ALL_ENDPOINTS

    gateway = OpenAICompatible(
        name="gateway",
        base_url=url.rstrip("/") + "/v1",
        api_key=Secret(key) if key else None,
        endpoints=ALL_ENDPOINTS,
        stream_usage=False,
    )
    return Pipeline([ErrorMapping()], registry=ProviderRegistry([gateway]))


async def _chat(
    pipe: Pipeline, model: str, messages: list[dict[str, str]], stream: bool, as_json: bool
) -> None:
    async with pipe:
        if as_json or not stream:
            response = await pipe.acompletion(model, messages)
            if as_json:
                click.echo(json.dumps(response.to_dict(), indent=2))
            else:
                click.echo(response.choices[0].message.content or "" if response.choices else "")
            return
        async with await pipe.acompletion(model, messages, stream=True) as chunks:
            async for chunk in chunks:
                for choice in chunk.choices:
                    if choice.delta.content:
                        click.echo(choice.delta.content, nl=False)
                        sys.stdout.flush()
        click.echo()


@cli.command()
@click.option("-m", "--model", required=True, help="provider/model, a bare model, or a group.")
@click.option("-s", "--system", help="A system message.")
@click.option("--no-stream", is_flag=True, help="Wait for the whole reply.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole response as JSON.")
@url_option
@key_option
@config_option
@click.argument("prompt", nargs=-1)
def chat(
    model: str,
    system: str | None,
    no_stream: bool,
    as_json: bool,
    url: str | None,
    key: str | None,
    config_path: Path | None,
    prompt: tuple[str, ...],
) -> None:
    """Send PROMPT (or standard input) to MODEL and print the reply as it streams."""
    text = " ".join(prompt)
    if not text and not sys.stdin.isatty():
        text = sys.stdin.read().strip()
    if not text:
        raise click.UsageError("give a prompt, or pipe one on standard input")
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    configure_logging("warning")
    if url:
        pipe = _gateway_pipeline(url, key)
        model = f"gateway/{model}"
    else:
        pipe = _config(config_path).build_pipeline()
    try:
        anyio.run(_chat, pipe, model, messages, not no_stream, as_json)
    except errors.DispatchError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@config_option
def providers(config_path: Path | None) -> None:
    """The providers and the endpoints each offers (Markdown)."""
    from providers.__main__ import capability_table

    registry = _config(config_path).build_pipeline().registry
    click.echo(capability_table({n: frozenset(a.endpoints) for n, a in registry.adapters.items()}))


def _get(url: str, path: str, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        return httpx.get(url.rstrip("/") + path, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"{url} is unreachable: {exc}") from exc


@cli.command()
@url_option
@key_option
@config_option
def models(url: str | None, key: str | None, config_path: Path | None) -> None:
    """The models a gateway (--url) or this config offers: router groups and declared models."""
    from gateway._openai import model_ids

    if url:
        response = _get(url, "/v1/models", key)
        if response.status_code != 200:
            raise click.ClickException(f"{url} answered {response.status_code}: {response.text}")
        ids: list[Any] = [m["id"] for m in response.json()["data"]]
    else:
        ids = list(model_ids(_config(config_path).build_pipeline()))
    for model_id in ids:
        click.echo(model_id)


@cli.command()
@url_option
def health(url: str | None) -> None:
    """Is the gateway at --url ready? Prints its providers; exit 1 when not."""
    url = url or DEFAULT_URL
    ready = _get(url, "/health/readiness", None)
    click.echo(f"{url}: {ready.json().get('status', ready.status_code)}")
    detail = _get(url, "/api/v1/health", None)
    if detail.status_code == 200:
        enabled = [v["name"] for v in detail.json()["vendors"] if v["enabled"]]
        click.echo(f"providers with credentials: {', '.join(enabled) or 'none'}")
    if ready.status_code != 200:
        raise SystemExit(1)


@cli.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check_config(file: Path) -> None:
    """Load FILE as the gateway would; print what it sets up, or the first problem."""
    config = _config(file)
    server = config.server
    click.echo(f"{file}: ok")
    click.echo(f"  listen: {server.host}:{server.port}")
    master = "set" if server.master_key is not None else "not set"
    click.echo(f"  master key: {master}; virtual keys: {len(server.keys)}")
    click.echo(f"  providers configured: {', '.join(p.name for p in config.providers) or 'none'}")
    if config.redis is not None:
        click.echo(f"  redis: {_redis_check(config.redis)}")
    pipeline = config.build_pipeline()
    for group, deployments in _router_groups(pipeline).items():
        click.echo(f"  group {group}: {', '.join(deployments)}")
    click.echo(f"  pipeline: {pipeline!r}")


def _redis_check(link: RedisLink) -> str:
    """What [redis] sets up, and whether that Redis answers now (a PING)."""
    from middlewares.shared import RedisUnavailable

    redis, settings = link.redis, link.settings
    shown = f"{redis.url} (prefix {settings.prefix!r}) for {', '.join(sorted(settings.share))}"
    user = redis.user("check-config", fallback="nothing")

    async def ping() -> None:
        try:
            await user.run(lambda client: client.ping())
        finally:
            await redis.aclose()

    try:
        anyio.run(ping)
    except RedisUnavailable as exc:
        return f"{shown}; not answering now ({exc}): workers would start on local state"
    return f"{shown}; answers"


def _router_groups(pipeline: Pipeline) -> dict[str, list[str]]:
    """Each routing group's deployments, by name (with weight and priority when set)."""
    from middlewares import Router

    groups: dict[str, list[str]] = {}
    for layer in pipeline.middlewares:
        if isinstance(layer, Router):
            for name, d in layer.snapshot().deployments.items():
                shown = name if name == d.target else f"{name} ({d.target})"
                shown += f" weight {d.weight:g}" if d.weight != 1 else ""
                shown += f" priority {d.priority}" if d.priority else ""
                for group in d.groups:
                    groups.setdefault(group, []).append(shown)
    return groups


@cli.command("hash-key")
@click.argument("key", required=False)
def hash_key(key: str | None) -> None:
    """Print a [[server.keys]] entry for KEY (a new random key when none is given)."""
    import hashlib
    import secrets

    if key is None:
        key = "sk-dl-" + secrets.token_urlsafe(24)
        click.echo(f"# the key (give it to its user; it is not stored): {key}")
    digest = hashlib.sha256(key.encode()).hexdigest()
    click.echo(f'[[server.keys]]\nname = "NAME"\nsha256 = "{digest}"')

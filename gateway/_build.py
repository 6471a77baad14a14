"""From config sections to a Pipeline: provider settings and middleware options.

Providers: ``[providers.NAME]`` for a registered provider sets fields of its
adapter (``attrs.evolve``: no adapter is changed in place, and no branch
names a provider); for a new name it makes an OpenAI-compatible provider.
Middlewares: ``[middlewares]`` gives the options of ``Pipeline.default``
(the usage layers' part is read in :mod:`gateway._usage`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import attrs

from gateway._reader import Table
from gateway._redis import RedisLink
from gateway._usage import Fresh, Kept, read_usage
from pipeline import Pipeline
from pipeline.adapter import ENDPOINTS

# Config key -> the adapter field it sets. A key the adapter has no field for
# is an error naming what that provider does take.
_FIELDS = {
    "api_base": "base_url",
    "api_key": "api_key",
    "api_key_env": "key_env",
    "api_version": "api_version",
    "headers": "headers",
    "timeout": "timeout",
    "models": "models",
    "endpoints": "endpoints",
}


@attrs.frozen
class ProviderSettings:
    """One ``[providers.NAME]`` table, checked: adapter field -> value."""

    name: str
    fields: Mapping[str, Any] = attrs.field(repr=lambda f: repr(sorted(f)))


def _read_provider(name: str, table: Table) -> ProviderSettings:
    if "/" in name or not name:
        raise table.error("", "a provider name must be non-empty and without '/'")
    values: dict[str, Any] = {}
    for key, value in (
        ("api_base", table.text("api_base", None)),
        ("api_key", table.secret("api_key", None)),
        ("api_key_env", table.text("api_key_env", None)),
        ("api_version", table.text("api_version", None)),
        ("headers", table.string_map("headers", None)),
        ("timeout", table.number("timeout", None)),
        ("models", table.strings("models", None)),
        ("endpoints", table.strings("endpoints", None)),
    ):
        if value is not None:
            values[key] = value
    table.done()
    unknown = [e for e in values.get("endpoints", ()) if e not in ENDPOINTS]
    if unknown:
        raise table.error("endpoints", f"{unknown[0]!r} is not one of {', '.join(ENDPOINTS)}")
    fields: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("models", "endpoints"):
            value = frozenset(value)
        fields[_FIELDS[key]] = value
    return ProviderSettings(name, fields)


def read_providers(table: Table) -> Iterator[ProviderSettings]:
    """Every ``[providers.NAME]``, checked against the adapter it configures."""
    from providers import OpenAICompatible, default_registry

    known = default_registry()
    for name, section in table.items():
        settings = _read_provider(name, section)
        adapter = known.get(name)
        if adapter is None:
            if "base_url" not in settings.fields:
                raise section.error(
                    "api_base",
                    f"is required: {name!r} is not a registered provider, so this table "
                    "defines a new OpenAI-compatible one",
                )
            adapter = OpenAICompatible(name=name, base_url=settings.fields["base_url"])
        if not attrs.has(type(adapter)):
            raise section.error("", f"the {name} adapter cannot be configured from a file")
        takes = attrs.fields_dict(type(adapter))  # type: ignore[arg-type]
        for key, field in _FIELDS.items():
            if field in settings.fields and field not in takes:
                offered = ", ".join(k for k, f in _FIELDS.items() if f in takes)
                raise section.error(key, f"{name} does not take {key} (it takes: {offered})")
        yield settings


def configured_registry(settings: Sequence[ProviderSettings]) -> Any:
    """The default registry with each configured provider set or added."""
    from providers import OpenAICompatible, default_registry

    registry = default_registry()
    for item in settings:
        adapter = registry.get(item.name)
        if adapter is None:
            registry.register(OpenAICompatible(name=item.name, **item.fields))
        else:
            registry.register(attrs.evolve(adapter, **item.fields), replace=True)  # type: ignore[misc]
    return registry


@attrs.frozen
class Renewed:
    """An option built anew for every pipeline from what the last one left
    under ``key``: ``factory(left) -> (option, to_leave)``, ``left`` being None
    the first time (the Router: a new one, on the old one's state)."""

    key: Hashable
    factory: Callable[[Any], tuple[Any, Any]]


# -- [middlewares] -----------------------------------------------------------


def toggle(table: Table, key: str, read: Callable[[Table], Callable[[], Any]]) -> Any:
    """``key = true | false | { options }``: the standard middleware, none, or one with options."""
    value = table.raw(key, True)
    if isinstance(value, bool):
        return value
    if not isinstance(value, dict):
        raise table.error(key, f"expected true, false or a table of options, got {value!r}")
    options = table.table(key)
    factory = read(options)
    options.done()
    try:
        factory()  # the middleware's own checks, reported against this table
    except (TypeError, ValueError) as exc:
        raise options.error("", str(exc)) from exc
    return Fresh(factory)


def _cache(table: Table, redis: RedisLink | None = None) -> Callable[[], Any]:
    from middlewares import Cache, MemoryCache

    ttl = table.number("ttl", None)
    namespace = table.text("namespace", None)
    lifetime = {} if ttl is None else {"ttl": ttl}  # unset: the backend's default (an hour)
    if redis is not None and redis.shares("cache"):
        for key in ("max_entries", "max_bytes"):
            if key in table:
                raise table.error(
                    key, "bounds the in-memory cache: a cache in Redis is bounded by its maxmemory"
                )
        return _redis_cache(redis, lifetime, namespace)
    max_entries = table.integer("max_entries", 1024)
    max_bytes = table.integer("max_bytes", None)
    return lambda: Cache(
        MemoryCache(max_entries, max_bytes=max_bytes, **lifetime), namespace=namespace
    )


def _redis_cache(
    redis: RedisLink, lifetime: Mapping[str, float], namespace: str | None = None
) -> Callable[[], Any]:
    from middlewares import Cache
    from middlewares.cache import RedisCache

    prefix = redis.settings.prefix
    return lambda: Cache(RedisCache(redis.redis, prefix=prefix, **lifetime), namespace=namespace)


def _retry(table: Table) -> Callable[[], Any]:
    from middlewares import Retry

    keys = (
        ("attempts", table.integer("attempts", None)),
        ("deadline", table.number("deadline", None)),
        ("base_delay", table.number("base_delay", None, positive=False)),
        ("max_delay", table.number("max_delay", None)),
    )
    given = {k: v for k, v in keys if v is not None}
    return lambda: Retry(**given)


def _logging(table: Table) -> Callable[[], Any]:
    from middlewares import Logging

    log_content = table.flag("log_content", False)
    return lambda: Logging(log_content=log_content)


def read_middlewares(
    table: Table, budgeted_keys: Sequence[str] = (), redis: RedisLink | None = None
) -> Mapping[str, Any]:
    """``[middlewares]`` -> keyword arguments for ``Pipeline.default``.

    ``budgeted_keys`` names the virtual keys with a budget: they count the
    cost the pipeline reports, so they need Costs as much as budgets do.
    ``redis`` (``[redis]``) holds the cache, budgets and statistics it shares.
    """
    cache = toggle(table, "cache", partial(_cache, redis=redis))
    if cache is True and redis is not None and redis.shares("cache"):
        cache = Fresh(_redis_cache(redis, {}))
    options = {
        "logging": toggle(table, "logging", _logging),
        "cache": cache,
        "retry": toggle(table, "retry", _retry),
    }
    fallbacks = table.strings("fallbacks", ())
    if fallbacks:
        options["fallbacks"] = list(fallbacks)
    options.update(read_usage(table, budgeted_keys, redis))
    table.done()
    return options


def build_pipeline(
    settings: Sequence[ProviderSettings],
    options: Mapping[str, Any],
    kept: dict[Hashable, Any] | None = None,
    redis: RedisLink | None = None,
) -> Pipeline:
    """A new pipeline. ``kept`` holds what the last one built with it left: its
    :class:`Kept` instances, used again where their config is unchanged, what
    its :class:`Renewed` options carried on, and its Redis connections (``kept``
    then holds this pipeline's)."""
    before = {} if kept is None else kept
    now: dict[Hashable, Any] = {}
    if redis is not None:
        redis.adopt(before, now)

    def make(value: Any) -> Any:
        if isinstance(value, Fresh):
            return value.factory()
        if isinstance(value, Renewed):
            made, now[value.key] = value.factory(before.get(value.key))
            return made
        if isinstance(value, Kept):
            found = before.get(value.key)
            now[value.key] = found = value.factory() if found is None else found
            return found
        if isinstance(value, list):
            return [make(item) for item in value]
        return value

    made = {k: make(v) for k, v in options.items()}
    pipeline = Pipeline.default(registry=configured_registry(settings), **made)
    if kept is not None:
        kept.clear()
        kept.update(now)
    return pipeline

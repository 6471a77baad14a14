"""``[redis]``: one Redis for the cache, the router's state, budgets and statistics.

::

    [redis]
    url = "redis://redis.internal:6379/0"   # redis://, rediss:// (TLS) or unix://
    password = "${REDIS_PASSWORD}"           # or in the URL; never shown in an error or log
    prefix = "dispatchline"                  # every key starts with it
    timeout = 0.5                            # seconds any one Redis operation may take
    retry_interval = 1.0                     # seconds Redis is left alone after a failure
    max_connections = 16                     # per event loop
    share = ["cache", "router", "budgets", "stats"]   # what lives in Redis (default: all)

With it, every worker and host that reads the same section shares one cache
(``RedisCache``), one set of rate limits, breakers and latencies
(``RedisState`` under ``[router]``), one spend per budget scope
(``[[middlewares.budgets]]``) and one set of statistics (``/api/v1/stats`` and
``/metrics`` show every worker's counts). Redis down or slow: each worker goes
on with its own state, with one warning per layer (see ``middlewares.shared``).

A reload keeps the same connections while this section is unchanged; a
changed section opens new ones, and the old ones close with the last
pipeline that used them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import attrs

from gateway._reader import Table
from middlewares.shared import SharedRedis
from pipeline import Secret

__all__ = ["SHARES", "RedisLink", "RedisSettings", "read_redis"]

SHARES = ("cache", "router", "budgets", "stats")


@attrs.frozen(kw_only=True)
class RedisSettings:
    """``[redis]``, checked. ``url`` holds the password, if any: a Secret."""

    url: Secret = attrs.field(repr=False)
    prefix: str = "dispatchline"
    timeout: float = 0.5
    retry_interval: float = 1.0
    max_connections: int = 16
    share: frozenset[str] = frozenset(SHARES)

    def connect(self) -> SharedRedis:
        """A new :class:`SharedRedis` (no I/O: it connects on first use)."""
        return SharedRedis(
            self.url.reveal(),
            timeout=self.timeout,
            retry_interval=self.retry_interval,
            max_connections=self.max_connections,
        )


class RedisLink:
    """The :class:`SharedRedis` of the pipelines built from one config: the layers'
    factories ask :attr:`redis` when a pipeline is built. Across a reload the new
    config's link :meth:`adopt` s the last one's while the settings are the same."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._redis: SharedRedis | None = None

    def __repr__(self) -> str:
        return f"RedisLink({self.redis!r}, prefix={self.settings.prefix!r})"

    @property
    def key(self) -> Hashable:
        return ("redis", self.settings)

    @property
    def redis(self) -> SharedRedis:
        if self._redis is None:
            self._redis = self.settings.connect()
        return self._redis

    def shares(self, what: str) -> bool:
        return what in self.settings.share

    def adopt(self, before: Mapping[Hashable, Any], now: dict[Hashable, Any]) -> None:
        """Use the SharedRedis the last build left under the same settings, if any
        (``before``), and leave this one for the next (``now``)."""
        found = before.get(self.key)
        if isinstance(found, SharedRedis):
            self._redis = found
        now[self.key] = self.redis


def _with_password(url: str, password: Secret | None, table: Table) -> str:
    if password is None:
        return url
    parts = urlsplit(url)
    if parts.password is not None:
        raise table.error("password", "is given twice: in url and here")
    host = parts.netloc.rpartition("@")[2]
    user = quote(parts.username, safe="") if parts.username else ""
    netloc = f"{user}:{quote(password.reveal(), safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def read_redis(table: Table) -> RedisLink | None:
    """``[redis]`` -> the link every Redis-backed layer uses (None when absent)."""
    if not table.keys():
        return None
    url: Secret = table.secret("url")
    password: Secret | None = table.secret("password", None)
    share = table.strings("share", SHARES)
    unknown = [s for s in share if s not in SHARES]
    if unknown:
        raise table.error("share", f"{unknown[0]!r} is not one of {', '.join(SHARES)}")
    settings = RedisSettings(
        url=Secret(_with_password(url.reveal(), password, table)),
        prefix=table.text("prefix", "dispatchline"),
        timeout=table.number("timeout", 0.5),
        retry_interval=table.number("retry_interval", 1.0),
        max_connections=table.integer("max_connections", 16),
        share=frozenset(share),
    )
    table.done()
    try:  # what SharedRedis refuses (a URL's scheme, a missing extra), its password hidden
        settings.connect()
    except (ImportError, ValueError) as exc:
        raise table.error("url", str(exc)) from exc
    if any(c.isspace() for c in settings.prefix):
        raise table.error("prefix", "must not contain spaces")
    return RedisLink(settings)

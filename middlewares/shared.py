"""One Redis shared by this process's layers: pools, timeouts, degradation.

:class:`~middlewares.cache.RedisCache` and :class:`~middlewares.state.RedisState`
(and any other layer that keeps shared state) reach Redis through one
:class:`SharedRedis`::

    redis = SharedRedis("redis://127.0.0.1:6379/0")
    cache = Cache(RedisCache(redis))
    router = Router(groups, state=RedisState(redis))

For a new layer (budgets, statistics...): subclass :class:`RedisBacked` (a
URL or a shared :class:`SharedRedis`, a key prefix, ``aclose``), keep each
operation one command or one Lua :func:`script` run with
``await self._user.eval(SCRIPT, keys, args)`` or ``await self._user.run(lambda
client: client.get(key))``, and catch :class:`RedisUnavailable` to fall back.

What it promises:

- **One pool per event loop.** The client (coredis, on anyio: asyncio and
  trio) keeps its connections in a pool that lives in a task of the loop that
  opened it; a :class:`SharedRedis` opens one per event loop it is used from
  (a pipeline may be used from several, its sync facade's included), on first
  use, and :meth:`SharedRedis.aclose` closes them. A pool also ends with its
  loop, and when its SharedRedis is garbage (say, a pipeline rebuilt on a
  reload and dropped without closing).
- **Every operation is bounded** by ``timeout`` seconds (connecting
  included). One that fails or runs out raises :class:`RedisUnavailable`, and
  the caller falls back (the cache to a miss, the router to this process's
  own state). Nothing waits longer than ``timeout`` on Redis.
- **A Redis that failed is left alone** for ``retry_interval`` seconds: every
  operation meanwhile raises :class:`RedisUnavailable` at once, without I/O.
  Then one operation probes it; when that succeeds, everyone uses Redis again
  (``redis.recovered`` is logged once).
- **One warning per layer**: each :class:`RedisUser` (a layer's handle, see
  :meth:`SharedRedis.user`) logs ``redis.unavailable`` (structlog, with what
  it falls back to) at most once per ``warn_interval`` seconds while Redis is
  out, and again at the next outage after a recovery.
- The URL's password never appears in a repr or a log line.
"""

from __future__ import annotations

import hashlib
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio

from middlewares._log import logger
from middlewares._redis_pool import Pool, close_pools
from middlewares._tasks import spawn
from pipeline._loops import running_loop

if TYPE_CHECKING:
    import coredis

__all__ = [
    "LuaScript",
    "RedisBacked",
    "RedisUnavailable",
    "RedisUser",
    "SharedRedis",
    "script",
    "spawn",
]

T = TypeVar("T")
_SCHEMES = ("redis", "rediss", "unix")


class RedisUnavailable(Exception):
    """Redis did not answer in time, could not be reached, or failed: fall back."""


def _shown(url: str) -> str:
    """``url`` with its password (and user name) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class SharedRedis:
    """A Redis URL as this process uses it; see :mod:`middlewares.shared`.

    - ``timeout``: seconds any one operation may take, connecting included;
    - ``retry_interval``: seconds Redis is left alone after a failure;
    - ``warn_interval``: seconds between two ``redis.unavailable`` warnings
      of the same layer during one outage;
    - ``max_connections``: per event loop (commands are pipelined over few);
    - ``clock``: monotonic seconds, injectable for tests.

    Needs the ``[redis]`` extra (coredis).
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_down_until",
        "_failing",
        "_max_connections",
        "_pools",
        "_probing",
        "_retry_interval",
        "_shown",
        "_timeout",
        "_url",
        "_warn_interval",
        "_warned",
    )

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.5,
        retry_interval: float = 1.0,
        warn_interval: float = 60.0,
        max_connections: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            import coredis  # noqa: F401
        except ImportError:  # pragma: no cover - the extra is installed wherever tests run
            raise ImportError(
                "shared state on Redis needs the [redis] extra: pip install 'dispatchline[redis]'"
            ) from None
        if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
            raise ValueError(
                f"url must be a redis://, rediss:// or unix:// URL, got {_shown(str(url))!r}"
            )
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ValueError(f"max_connections must be an int >= 1, got {max_connections!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be an int >= 1, got {max_connections!r}")
        self._url = url
        self._shown = _shown(url)
        self._timeout = _positive(timeout, "timeout")
        self._retry_interval = _positive(retry_interval, "retry_interval")
        self._warn_interval = _positive(warn_interval, "warn_interval")
        self._max_connections = max_connections
        self._clock = clock
        self._pools: dict[object, Pool] = {}
        # Dropped without aclose() (a pipeline rebuilt and forgotten): its pools close.
        weakref.finalize(self, close_pools, self._pools)
        self._failing = False  # the last operation failed: Redis is out
        self._down_until = 0.0  # while failing: no operation before this
        self._probing = False  # while failing: one operation is finding out
        self._warned: dict[str, float] = {}  # layer -> when it last warned

    def __repr__(self) -> str:
        return f"SharedRedis({self._shown!r}, timeout={self._timeout})"

    @property
    def url(self) -> str:
        """The URL, its password hidden."""
        return self._shown

    @property
    def available(self) -> bool:
        """False while Redis is out and not due for another try."""
        return not self._failing or self._clock() >= self._down_until

    def user(self, name: str, *, fallback: str) -> RedisUser:
        """A layer's handle: its operations, and its own warning when Redis is out.

        ``name`` says which layer (``"cache"``, ``"state"``...) and ``fallback``
        what it does meanwhile (``"a miss"``...), both for the log line.
        """
        return RedisUser(self, name, fallback)

    # -- operations ---------------------------------------------------------------

    async def run(
        self, user: RedisUser, operation: Callable[[coredis.Redis[bytes]], Awaitable[T]]
    ) -> T:
        """``await operation(client)`` within the timeout, or :class:`RedisUnavailable`."""
        probe = False
        if self._failing:
            if self._probing or self._clock() < self._down_until:
                self._warn(user, "out since an earlier failure")
                raise RedisUnavailable(f"Redis at {self._shown} is out; next try soon")
            self._probing = probe = True
        try:
            with anyio.fail_after(self._timeout):
                client = await self._client()
                result = await operation(client)
        except Exception as exc:
            self._failed(user, exc)
            raise RedisUnavailable(f"Redis at {self._shown} failed: {type(exc).__name__}") from exc
        finally:
            if probe:
                self._probing = False
        if self._failing:
            self._failing = False
            self._warned.clear()
            logger().info("redis.recovered", redis=self._shown)
        return result

    def _failed(self, user: RedisUser, exc: Exception) -> None:
        self._failing = True
        self._down_until = self._clock() + self._retry_interval
        self._warn(user, type(exc).__name__)

    def _warn(self, user: RedisUser, error: str) -> None:
        now = self._clock()
        last = self._warned.get(user.name)
        if last is None or now - last >= self._warn_interval:
            self._warned[user.name] = now
            logger().warning(
                "redis.unavailable",
                layer=user.name,
                fallback=user.fallback,
                redis=self._shown,
                error=error,
                retry_in=self._retry_interval,
            )

    async def _client(self) -> Any:
        loop = running_loop()
        pool = self._pools.get(loop)
        if pool is None or pool.closed.is_set():
            pool = self._pools[loop] = Pool(self._new_client(), loop, self._pools)
            pool.start()
        if not pool.ready.is_set():
            await pool.ready.wait()
        if pool.closed.is_set():
            raise RedisUnavailable("the connection pool could not be opened")
        return pool.client

    def _new_client(self) -> Any:
        import coredis

        return coredis.Redis.from_url(
            self._url,
            stream_timeout=self._timeout,
            connect_timeout=self._timeout,
            max_connections=self._max_connections,
            client_name="dispatchline",
        )

    async def aclose(self) -> None:
        """Close every pool this object opened (each on its own loop); the next
        operation opens a new one."""
        pools = list(self._pools.values())
        self._pools.clear()
        here = running_loop()
        for pool in pools:
            pool.close_soon()
        for pool in pools:
            if pool.loop is here:
                await pool.closed.wait()


class RedisUser:
    """One layer's way to Redis (see :meth:`SharedRedis.user`)."""

    __slots__ = ("fallback", "name", "redis")

    def __init__(self, redis: SharedRedis, name: str, fallback: str) -> None:
        self.redis = redis
        self.name = name
        self.fallback = fallback

    def __repr__(self) -> str:
        return f"RedisUser({self.name!r}, {self.redis!r})"

    async def run(self, operation: Callable[[coredis.Redis[bytes]], Awaitable[T]]) -> T:
        """``await operation(client)`` (a ``coredis.Redis``), or :class:`RedisUnavailable`."""
        return await self.redis.run(self, operation)

    async def eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script: EVALSHA, one round trip (loaded first when the server
        lacks it: a restarted Redis has forgotten every script)."""

        async def evalsha(client: coredis.Redis[bytes]) -> Any:
            from coredis.exceptions import NoScriptError

            try:
                return await client.evalsha(script.sha, keys=keys, args=args)
            except NoScriptError:
                await client.script_load(script.source)
                return await client.evalsha(script.sha, keys=keys, args=args)

        return await self.redis.run(self, evalsha)


class LuaScript:
    """A Lua script and the SHA1 digest Redis knows it by (``EVALSHA``).

    Made at import time by the modules that use Redis, so it needs nothing
    from coredis: ``import middlewares`` works without the ``[redis]`` extra.
    """

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __repr__(self) -> str:
        return f"LuaScript(sha={self.sha!r})"


def script(source: str) -> LuaScript:
    """A Lua script, for :meth:`RedisUser.eval` (sent as EVALSHA by its digest)."""
    return LuaScript(source)


class RedisBacked:
    """The base of a layer that keeps its state in Redis (RedisCache, RedisState).

    ``url`` is a Redis URL (the layer opens, and :meth:`aclose` closes, a
    :class:`SharedRedis` of its own) or a :class:`SharedRedis` to share.
    ``prefix`` starts every key the layer writes; ``layer`` and ``fallback``
    name it and what it does while Redis is out, for the warning.
    """

    __slots__ = ("_owned", "_prefix", "_redis", "_user")

    def __init__(self, url: str | SharedRedis, *, prefix: str, layer: str, fallback: str) -> None:
        if isinstance(url, SharedRedis):
            self._redis, self._owned = url, False
        elif isinstance(url, str):
            self._redis, self._owned = SharedRedis(url), True
        else:
            raise TypeError(f"url must be a Redis URL or a SharedRedis, got {url!r}")
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"prefix must be a non-empty string without spaces, got {prefix!r}")
        self._prefix = prefix
        self._user = self._redis.user(layer, fallback=fallback)

    @property
    def redis(self) -> SharedRedis:
        return self._redis

    async def aclose(self) -> None:
        """Close the connection pools, if this layer opened them (made from a URL)."""
        if self._owned:
            await self._redis.aclose()

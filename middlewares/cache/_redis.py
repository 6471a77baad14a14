"""The shared backend: :class:`RedisCache`, one cache for every process."""

from __future__ import annotations

import contextlib
import math
import secrets
from typing import Any

import anyio

from middlewares._log import logger
from middlewares.cache._codec import decode, encode
from middlewares.cache._memory import DEFAULT_TTL, Claim, check_ttl
from middlewares.shared import RedisBacked, RedisUnavailable, SharedRedis, script

__all__ = ["RedisCache"]

# KEYS: entry, lock. ARGV: token, lock ms. -> {1, entry} | {2} (lead) | {0} (another leads)
_CLAIM = script(
    """
local entry = redis.call('GET', KEYS[1])
if entry then return {1, entry} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {0}
"""
)
# KEYS: entry, lock. -> {1, entry} | {0} (still led) | {3} (the lock is gone, no entry)
_LOOK = script(
    """
local entry = redis.call('GET', KEYS[1])
if entry then return {1, entry} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {0} end
return {3}
"""
)
# KEYS: entry, lock. ARGV: token, entry ('' for none), ttl ms ('0' for none).
_SETTLE = script(
    """
if ARGV[2] ~= '' then
  if ARGV[3] ~= '0' then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""
)

_FIRST_POLL = 0.005
_MAX_POLL = 0.05


def _ms(seconds: float | None) -> str:
    return "0" if seconds is None else str(max(math.ceil(seconds * 1000), 1))


class RedisCache(RedisBacked):
    """A :class:`~middlewares.cache.CacheBackend` in Redis, shared by every process.

    >>> cache = Cache(RedisCache("redis://127.0.0.1:6379/0", ttl=3600))

    - ``url``: a Redis URL, or a :class:`~middlewares.shared.SharedRedis` to
      share one pool (and its timeouts) with other layers;
    - ``ttl``: default seconds an entry lives (an hour; ``None``: until Redis
      evicts it);
    - ``prefix``: every key is ``<prefix>:cache:<namespace>:<digest>`` (the
      namespace is the API key's one-way fingerprint unless the Cache says
      otherwise: never the key itself);
    - ``lock_timeout``: seconds one process may lead identical misses of other
      processes (the lock's lifetime) and so the longest another waits for it.

    Entries are JSON (:mod:`middlewares.cache._codec`), never pickle. Redis
    down or slow: ``get`` is a miss, ``set`` stores nothing, a waiter calls
    upstream itself; one warning (see :mod:`middlewares.shared`).
    """

    __slots__ = ("_lock_timeout", "_ttl")

    def __init__(
        self,
        url: str | SharedRedis,
        *,
        ttl: float | None = DEFAULT_TTL,
        prefix: str = "dispatchline",
        lock_timeout: float = 10.0,
    ) -> None:
        super().__init__(url, prefix=prefix, layer="cache", fallback="a miss (nothing stored)")
        self._ttl = check_ttl(ttl)
        lock = check_ttl(lock_timeout, "lock_timeout")
        if lock is None:
            raise ValueError("lock_timeout must be a positive number of seconds, got None")
        self._lock_timeout = lock

    def __repr__(self) -> str:
        return f"RedisCache({self._redis.url!r}, ttl={self._ttl}, prefix={self._prefix!r})"

    def _keys(self, key: str) -> list[str]:
        return [f"{self._prefix}:cache:{key}", f"{self._prefix}:cache-lock:{key}"]

    def _entry(self, data: Any) -> Any | None:
        try:
            return decode(data)
        except ValueError as exc:
            logger().warning("cache.unreadable_entry", error=str(exc))
            return None

    # -- CacheBackend -------------------------------------------------------------

    async def get(self, key: str) -> Any | None:
        entry = self._keys(key)[0]
        try:
            data = await self._user.run(lambda client: client.get(entry))
        except RedisUnavailable:
            return None
        return None if data is None else self._entry(data)

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        data = encode(value)
        ttl = self._ttl if ttl is None else check_ttl(ttl)
        entry = self._keys(key)[0]
        ms = None if ttl is None else int(_ms(ttl))
        with contextlib.suppress(RedisUnavailable):
            await self._user.run(lambda client: client.set(entry, data, px=ms))

    async def delete(self, key: str) -> None:
        entry = self._keys(key)[0]
        with contextlib.suppress(RedisUnavailable):
            await self._user.run(lambda client: client.delete([entry]))

    # -- SharedFlights ------------------------------------------------------------

    async def claim(self, key: str) -> Claim:
        keys = self._keys(key)
        token = secrets.token_hex(8)
        try:
            found = await self._user.eval(_CLAIM, keys, [token, _ms(self._lock_timeout)])
            if found[0] == 2:
                return Claim(token=token)
            wait, deadline = _FIRST_POLL, anyio.current_time() + self._lock_timeout
            while found[0] == 0 and anyio.current_time() < deadline:
                await anyio.sleep(wait)
                wait = min(wait * 2, _MAX_POLL)
                found = await self._user.eval(_LOOK, keys, [])
        except RedisUnavailable:
            return Claim()
        if found[0] == 1:
            return Claim(value=self._entry(found[1]))
        logger().debug("cache.flight_abandoned", reason="the leader ended without an entry")
        return Claim()

    async def settle(
        self, key: str, claim: Claim, value: Any | None, *, ttl: float | None = None
    ) -> None:
        if claim.token is None:
            if value is not None:
                await self.set(key, value, ttl=ttl)
            return
        data = b"" if value is None else encode(value)
        ttl = self._ttl if ttl is None else check_ttl(ttl)
        with contextlib.suppress(RedisUnavailable):
            await self._user.eval(_SETTLE, self._keys(key), [claim.token, data, _ms(ttl)])

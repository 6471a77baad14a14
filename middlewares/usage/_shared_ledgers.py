"""A Budget's spend in Redis: one ledger per scope for every process.

Keys, under ``<prefix>:budget:<period>:`` (``hour``, ``day``, ``month``, or
``<seconds>s`` for a rolling window):

- a calendar period keeps each scope's spend in a window as one number,
  ``{<scope>}:<window start>`` (INCRBYFLOAT), which expires a minute after
  its window ends: a new window is a new key, starting from zero;
- a rolling period keeps a hash per scope, ``{<scope>}``, of the same 60
  slots a local ledger keeps (slot number -> spend, HINCRBYFLOAT); slots
  past the window are deleted as new spend arrives, and the hash expires
  once nothing in it can count any more;
- ``scopes``: a hash naming every scope that has spent (for ``asnapshot``).

Each operation is one Lua script (one round trip): it adds what is to be
added, then reads what is to be read. A spend that cannot reach Redis is
kept and added with this process's next operation that does, as long as its
window can still count it (a spend sent again after a timeout that Redis had
in fact applied counts twice: a budget errs towards refusing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from middlewares.shared import RedisBacked, RedisUnavailable, SharedRedis, script
from middlewares.usage._periods import CALENDAR, CalendarLedger, Ledger, Period, RollingLedger

__all__ = ["SharedLedgers"]

_MARGIN = 60.0  # seconds a key outlives the last moment it can count

# KEYS: the keys to add to, the scopes index, the keys to read.
# ARGV: 'c' (calendar) or 'r' (rolling), how many adds, the index's ttl ms, the lowest
# live slot (rolling), then per add: slot, amount, ttl ms, scope.
# -> per key read: its spend ('' for none) or its slots as a flat list
_ACCOUNT = script(
    """
local rolling, adds = ARGV[1] == 'r', tonumber(ARGV[2])
local index, low, at = KEYS[adds + 1], tonumber(ARGV[4]), 5
for k = 1, adds do
  local key = KEYS[k]
  if rolling then
    redis.call('HINCRBYFLOAT', key, ARGV[at], ARGV[at + 1])
    local stale = {}
    for _, slot in ipairs(redis.call('HKEYS', key)) do
      if tonumber(slot) < low then stale[#stale + 1] = slot end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  else
    redis.call('INCRBYFLOAT', key, ARGV[at + 1])
  end
  redis.call('PEXPIRE', key, ARGV[at + 2])
  redis.call('HSET', index, ARGV[at + 3], '1')
  at = at + 4
end
if adds > 0 then redis.call('PEXPIRE', index, ARGV[3]) end
local out = {}
for k = adds + 2, #KEYS do
  if rolling then
    out[#out + 1] = redis.call('HGETALL', KEYS[k])
  else
    out[#out + 1] = redis.call('GET', KEYS[k]) or ''
  end
end
return out
"""
)

Bucket = tuple[str, int]  # scope, window start (calendar) or slot number (rolling)


def _label(period: Period) -> str:
    return period if isinstance(period, str) else f"{period:g}s"


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


class SharedLedgers(RedisBacked):
    """A :class:`Budget`'s ledgers in Redis; see the module docstring."""

    __slots__ = ("_base", "_bounds", "_index_ttl", "_rolling", "_seconds", "_unsent")

    def __init__(self, redis: str | SharedRedis, *, prefix: str, period: Period) -> None:
        super().__init__(redis, prefix=prefix, layer="budget", fallback="this process's own spend")
        self._base = f"{self._prefix}:budget:{_label(period)}:"
        self._bounds = CALENDAR[period] if isinstance(period, str) else CALENDAR["day"]
        self._seconds = None if isinstance(period, str) else float(period)
        self._rolling = None if self._seconds is None else RollingLedger(self._seconds)
        longest = 31 * 86_400.0 if self._seconds is None else self._seconds * 61 / 60
        self._index_ttl = _ms(longest + _MARGIN)
        self._unsent: dict[Bucket, float] = {}

    def _bucket(self, scope: str, now: float) -> Bucket:
        if self._rolling is not None:
            return scope, self._rolling.slot(now)
        return scope, int(self._bounds(now)[0])

    def _key(self, bucket: Bucket) -> str:
        scope, number = bucket
        if self._rolling is not None:
            return f"{self._base}{{{scope}}}"
        return f"{self._base}{{{scope}}}:{number}"

    def _lasts(self, bucket: Bucket, now: float) -> float:
        """Seconds a spend in ``bucket`` still counts after ``now`` (<= 0: no more)."""
        seconds = self._seconds
        if seconds is None:
            return self._bounds(float(bucket[1]))[1] - now
        return (bucket[1] + 1) * seconds / RollingLedger.SLOTS + seconds - now

    async def _account(
        self, add: dict[Bucket, float], read: Sequence[str], now: float
    ) -> list[Any]:
        """One round trip: add ``add`` (plus any unsent spend), read ``read``'s ledgers."""
        for bucket, amount in self._unsent.items():
            add[bucket] = add.get(bucket, 0.0) + amount
        self._unsent = {}
        live = {b: a for b, a in add.items() if self._lasts(b, now) > 0}
        low = (self._rolling.slot(now) - RollingLedger.SLOTS - 1) if self._rolling else 0
        args: list[Any] = ["r" if self._rolling else "c", len(live), self._index_ttl, low]
        for bucket, amount in live.items():
            args += [bucket[1], repr(float(amount)), _ms(self._lasts(bucket, now) + _MARGIN)]
            args.append(bucket[0])
        keys = [self._key(b) for b in live]
        keys.append(f"{self._base}scopes")
        keys += [self._key(self._bucket(scope, now)) for scope in read]
        try:
            reply: list[Any] = await self._user.eval(_ACCOUNT, keys, args)
        except RedisUnavailable:
            for bucket, amount in live.items():  # kept for the next round trip
                self._unsent[bucket] = self._unsent.get(bucket, 0.0) + amount
            raise
        return reply

    async def ledgers(self, scopes: Sequence[str], now: float) -> list[Ledger]:
        """Each scope's ledger as Redis holds it now (every process's spend).

        Raises :class:`RedisUnavailable` when Redis is out."""
        reply = await self._account({}, scopes, now)
        return [self._ledger(value, now) for value in reply]

    def _ledger(self, value: Any, now: float) -> Ledger:
        if self._seconds is None:
            spent = float(value) if value not in (b"", "", None) else 0.0
            return CalendarLedger.holding(self._bounds, now, spent)
        pairs = zip(value[::2], value[1::2], strict=True)
        return RollingLedger.holding(self._seconds, ((int(s), float(a)) for s, a in pairs))

    async def add(self, scopes: Sequence[str], now: float, amount: float) -> None:
        """Add ``amount`` to each scope's spend; kept for later while Redis is out."""
        spend = {self._bucket(scope, now): amount for scope in scopes}
        with contextlib.suppress(RedisUnavailable):
            await self._account(spend, (), now)

    async def scopes(self) -> list[str]:
        """Every scope that has spent in a window that can still count."""
        index = f"{self._base}scopes"
        found = await self._user.run(lambda client: client.hkeys(index))
        return sorted(scope.decode() for scope in found)

"""Stats across processes: each process adds what it counted to one set of totals in Redis.

Per target (``t``) and deployment (``d``), one Redis hash holds the sums of
every process's counts: ``successes``, ``cancelled``, ``cache_hits``, the
token sums, ``cost``, ``f:<ErrorClass>`` per failure class, and each
sketch's bins (``l:<key>`` latency, ``c:<key>`` first chunk, with ``lz`` /
``cz`` for values at zero and ``ls`` / ``cs`` their sums). A DDSketch's bins
add up exactly across processes, so quantiles of the sum are within the
sketch's 1% like any one process's.

Nothing is sent on a request's path. A request that ends starts (if none
runs) a background task on its event loop that, every ``interval`` seconds
while there is something new, sends what changed since the last send: this
process's running tallies minus what Redis already has from it, as one Lua
script (one round trip, however many targets). A send that fails is kept
and sent again, with the same sequence number: the script applies each
process's numbers once, so a send that timed out after Redis applied it is
not counted twice. Counts made while Redis is out are sent when it is back.
``flush()`` sends at once (``asnapshot`` does, before reading).

Values are numbers and names (provider, model, deployment, error class):
JSON-free plain strings, never pickle, nothing from a request.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from middlewares._log import logger
from middlewares.shared import RedisBacked, RedisUnavailable, SharedRedis, script, spawn

if TYPE_CHECKING:
    from middlewares.usage._tally import Tally

__all__ = ["SharedStats", "Totals"]

_COUNTS = (
    "successes",
    "cancelled",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
)
_FLOATS = frozenset({"cost", "ls", "cs"})  # the rest are whole counts
_SEQUENCE_TTL_MS = 86_400_000

# KEYS: this process's sequence key, the index, then one hash per target/deployment.
# ARGV: sequence, its ttl ms, then per hash: provider, model, index field, n, n (field, delta).
# Numbers with a '.' or an exponent are added as floats.  -> 1 applied, 0 already applied
_FLUSH = script(
    """
local sequence = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') >= sequence then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local at = 3
for k = 3, #KEYS do
  local key = KEYS[k]
  redis.call('HSET', KEYS[2], ARGV[at + 2], '1')
  redis.call('HSET', key, 'provider', ARGV[at], 'model', ARGV[at + 1])
  local n = tonumber(ARGV[at + 3])
  at = at + 4
  for i = at, at + 2 * n - 1, 2 do
    if string.find(ARGV[i + 1], '[.eE]') then
      redis.call('HINCRBYFLOAT', key, ARGV[i], ARGV[i + 1])
    else
      redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
    end
  end
  at = at + 2 * n
end
return 1
"""
)
# KEYS: the index. ARGV: the hashes' key prefix. -> {field, {hash...}, ...}
_READ = script(
    """
local out = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  out[#out + 1] = field
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. field)
end
return out
"""
)

Item = tuple[str, str]  # ("t" | "d", name)
Numbers = dict[str, float]


def numbers(tally: Tally) -> Numbers:
    """A tally as the flat numbers Redis keeps (see the module docstring)."""
    out: Numbers = {name: getattr(tally, name) for name in _COUNTS}
    for error, failed in tally.failures.items():
        out[f"f:{error}"] = failed
    if tally.cost is not None:
        out["cost"] = float(tally.cost)
    for tag, sketch in (("l", tally.latency), ("c", tally.first_chunk)):
        for key, count in sketch.bins().items():
            out[f"{tag}:{key}"] = count
        if sketch.zeros:
            out[f"{tag}z"] = sketch.zeros
        if sketch.count:
            out[f"{tag}s"] = float(sketch.sum)
    return out


def _delta(now: Numbers, sent: Numbers) -> list[str]:
    """``field, change`` pairs (as Redis takes them) for what changed since ``sent``."""
    out = []
    for field in now.keys() | sent.keys():
        change = now.get(field, 0) - sent.get(field, 0)
        first_price = field == "cost" and field not in sent  # a cost of 0.0 is still a price
        if change or first_price:
            value = repr(float(change)) if field in _FLOATS else str(round(change))
            out += [field, value]
    return out


def tally_of(fields: Mapping[bytes, bytes]) -> Tally:
    """A tally rebuilt from its Redis hash."""
    from middlewares.usage._sketch import Sketch
    from middlewares.usage._tally import Tally

    text = {k.decode(): v.decode() for k, v in fields.items()}
    tally = Tally(text.pop("provider", ""), text.pop("model", ""), Sketch)
    bins: dict[str, dict[int, float]] = {"l": {}, "c": {}}
    for field, value in text.items():
        head, _, key = field.partition(":")
        if head == "f" and key:
            if int(value) > 0:
                tally.failures[key] = int(value)
        elif head in bins and key:
            bins[head][int(key)] = float(value)
        elif field in _COUNTS:
            setattr(tally, field, int(value))
        elif field == "cost":
            tally.cost = float(value)
    for tag in bins:
        zeros, total = float(text.get(f"{tag}z", 0)), float(text.get(f"{tag}s", 0))
        setattr(
            tally,
            "latency" if tag == "l" else "first_chunk",
            Sketch.of(bins[tag], zeros, total),
        )
    return tally


@attrs.frozen
class Totals:
    """Every process's counts, summed: per target and per deployment."""

    targets: dict[str, Tally]
    deployments: dict[str, Tally]


@attrs.frozen
class _Batch:
    """Numbers to add in Redis, and what this process will have sent once they are."""

    sequence: int
    generation: int
    keys: list[str]
    args: list[Any]
    sent: dict[Item, Numbers]


class SharedStats(RedisBacked):
    """A :class:`Stats`' totals in Redis; see the module docstring.

    ``lock`` is the Stats' own (its tallies change under it); ``tallies``,
    called under it, gives every running tally by item.
    """

    __slots__ = (
        "_base",
        "_beat",
        "_generation",
        "_interval",
        "_lock",
        "_pending",
        "_process",
        "_running",
        "_sent",
        "_sequence",
        "_tallies",
    )

    def __init__(
        self,
        redis: str | SharedRedis,
        *,
        prefix: str,
        interval: float,
        lock: threading.Lock,
        tallies: Any,
    ) -> None:
        fallback = "this process's own counts (sent later)"
        super().__init__(redis, prefix=prefix, layer="stats", fallback=fallback)
        self._base = f"{prefix}:stats:"
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ValueError(
                f"flush_interval must be a positive number of seconds, got {interval!r}"
            )
        self._interval = float(interval)
        self._lock = lock
        self._tallies = tallies
        self._process = secrets.token_hex(6)
        self._sequence = 0
        self._generation = 0  # reset() starts a new one
        self._sent: dict[Item, Numbers] = {}  # what Redis has from this process
        self._pending: _Batch | None = None  # sent, not yet known to have arrived
        self._running = False  # a background sender is on its way
        self._beat = 0.0  # when it last went round

    @property
    def prefix(self) -> str:
        return self._prefix

    # -- sending ---------------------------------------------------------------

    def kick(self) -> None:
        """Something was counted (called under the lock, on an event loop): make
        sure a background sender will send it."""
        if self._running and time.monotonic() - self._beat < 4 * self._interval + 5:
            return  # (one that stopped beating died with its event loop)
        self._running = True
        self._beat = time.monotonic()
        try:
            spawn(self._send_while_busy, "dispatchline-stats")
        except RuntimeError:  # no event loop runs here: the next request, or flush()
            self._running = False

    async def _send_while_busy(self) -> None:
        try:
            while True:
                await anyio.sleep(self._interval)
                self._beat = time.monotonic()
                with self._lock:
                    batch = self._take()
                    if batch is None:
                        self._running = False
                        return
                await self._send(batch)
        except Exception as exc:  # never raise in a system task; the next request starts anew
            logger().warning("stats.sender_failed", error=type(exc).__name__)
        finally:
            self._running = False

    def _take(self) -> _Batch | None:
        """Under the lock: the batch to send (the pending one first), or None."""
        if self._pending is not None:
            return self._pending
        keys = [f"{self._base}seq:{self._process}", f"{self._base}index"]
        args: list[Any] = [self._sequence + 1, _SEQUENCE_TTL_MS]
        now: dict[Item, Numbers] = {}
        for item, tally in self._tallies().items():
            now[item] = counted = numbers(tally)
            changes = _delta(counted, self._sent.get(item, {}))
            if changes:
                field = f"{item[0]}:{item[1]}"
                keys.append(self._base + field)
                args += [tally.provider, tally.model, field, len(changes) // 2, *changes]
        if len(keys) == 2:
            return None
        self._sequence += 1
        self._pending = _Batch(self._sequence, self._generation, keys, args, now)
        return self._pending

    async def _send(self, batch: _Batch) -> bool:
        try:
            await self._user.eval(_FLUSH, batch.keys, batch.args)
        except RedisUnavailable:
            return False  # kept: sent again (the same numbers, the same sequence) next time
        with self._lock:
            if self._pending is batch:
                self._pending = None
                if batch.generation == self._generation:
                    self._sent = batch.sent
        return True

    async def flush(self) -> bool:
        """Send what this process counted and Redis has not yet; False while Redis is out."""
        for _ in range(2):  # a pending batch first, then what came after it
            with self._lock:
                batch = self._take()
            if batch is None:
                return True
            if not await self._send(batch):
                return False
        return True

    def forget(self) -> None:
        """Under the lock, when the tallies start from zero: Redis keeps what it has."""
        self._generation += 1
        self._sent = {}

    # -- reading ---------------------------------------------------------------

    async def totals(self) -> Totals | None:
        """Every process's counts (this one's sent first); None while Redis is out."""
        if not await self.flush():
            return None
        try:
            reply = await self._user.eval(_READ, [f"{self._base}index"], [self._base])
        except RedisUnavailable:
            return None
        found: dict[str, dict[str, Tally]] = {"t": {}, "d": {}}
        for field, flat in zip(reply[::2], reply[1::2], strict=True):
            kind, _, name = field.decode().partition(":")
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            if kind in found and fields:
                found[kind][name] = tally_of(fields)
        return Totals(found["t"], found["d"])

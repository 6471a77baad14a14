"""Stats: per target and deployment, how many calls, how they ended, how slow, what they used.

>>> from middlewares import Stats
>>> stats = Stats()
>>> pipe = Pipeline.default(stats=stats)
>>> stats.snapshot().to_dict()   # {"targets": {"openai/gpt-4o-mini": {...}}, "deployments": {}}
>>> print(stats.prometheus())    # Prometheus text, with the [prometheus] extra

What a user relies on:

- **One request, one outcome.** Placed outside Fallback, Router and Retry
  (as ``Pipeline.default`` does), a retried or failed-over request counts
  once, under the target that answered it last: the last try its
  ``attempts`` record (``provider/model`` as that try asked for it, so a
  provider's dated model names do not split a target), and the deployment
  that try went to, when routed. Without any try recorded, the request's
  own target.
- **Outcomes.** A reply is a success; a raised error is a failure, counted
  by error class (the last try's, so a failed-over request shows why its
  last target failed); a cancelled request, or a stream closed before its
  end, is ``cancelled``. A stream is counted when it ends. ``requests`` is
  the sum of the three.
- **Latency** (p50/p95/p99, ms) covers successes not served from the cache:
  to the reply, or to a stream's last chunk. **First chunk** (p50/p95)
  covers those successes that were streams. Percentiles come from a DDSketch (the ``[stats]`` extra)
  with 1% relative accuracy: each is within 1% of the exact value at the
  same rank. Memory per target is bounded (at most 2048 bins per sketch),
  however many requests.
- **Tokens and cost** sum the successes' usage and ``cost`` (from a
  :class:`Costs` layer inside). Cache hits count as successes and in
  ``cache_hits`` but add no latency, tokens or cost: nothing was sent.
- Nothing from a request's content or credentials is kept: only provider,
  model and deployment names, error class names and numbers.
- ``snapshot()`` is this process's view; ``await asnapshot()`` the shared
  view (the same without ``redis``); ``reset()`` starts this process's
  view again from zero. Safe to read from another thread. ``clock``
  (seconds, ``time.perf_counter`` by default) is injectable for tests.
- ``prometheus()`` renders this process's view in the Prometheus text
  format through ``prometheus_client`` (the ``[prometheus]`` extra; without
  it, :class:`MissingExtraError`), ``await aprometheus()`` the shared view.
  ``collector()`` gives a collector (this process's view) to register in
  your own ``prometheus_client`` registry instead.
- **Across processes** (``redis=``, a URL or a
  :class:`~middlewares.shared.SharedRedis`; the ``[redis]`` extra): every
  process adds its counts and latency sketches to one set of totals in
  Redis, under ``<prefix>:stats:``, and ``asnapshot()`` / ``aprometheus()``
  show those totals. Counts are sent in the background, at most every
  ``flush_interval`` seconds while requests end (no request waits on
  Redis); ``await stats.aflush()`` sends at once (call it before a process
  exits: what it counted since its last send is lost otherwise). While
  Redis is out, counting goes on here and is sent once Redis is back; the
  shared view falls back to this process's view, with one warning. See
  :mod:`middlewares.usage._shared_stats`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from middlewares.shared import SharedRedis
from middlewares.usage._extras import require
from middlewares.usage._routed import served_by
from middlewares.usage._snapshot import StatsSnapshot
from middlewares.usage._tally import Sketch, Tally
from pipeline import ChatChunk, Handler, Request, Result, Stream, Usage, observe

if TYPE_CHECKING:
    from middlewares.usage._shared_stats import SharedStats, Totals

__all__ = ["Stats", "Tally"]

T = TypeVar("T")


Record = Callable[[Tally], None]


class Stats:
    """The statistics middleware; see the module docstring.

    Raises :class:`MissingExtraError` when ddsketch (the ``[stats]`` extra)
    is not installed.
    """

    __slots__ = (
        "_clock",
        "_deployments",
        "_lock",
        "_prometheus",
        "_shared",
        "_sketch",
        "_targets",
    )

    def __init__(
        self,
        *,
        redis: str | SharedRedis | None = None,
        prefix: str = "dispatchline",
        flush_interval: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        require("ddsketch", "stats", "Stats")
        from middlewares.usage._sketch import Sketch

        self._sketch: Callable[[], Sketch] = Sketch
        self._clock = clock
        self._lock = threading.Lock()
        self._targets: dict[str, Tally] = {}
        self._deployments: dict[str, Tally] = {}
        self._prometheus: Any = None
        self._shared: SharedStats | None = None
        if redis is not None:
            from middlewares.usage._shared_stats import SharedStats

            self._shared = SharedStats(
                redis, prefix=prefix, interval=flush_interval, lock=self._lock, tallies=self._items
            )

    def __repr__(self) -> str:
        shared = self._shared
        if shared is None:
            return "Stats()"
        return f"Stats(redis={shared.redis.url!r}, prefix={shared.prefix!r})"

    @property
    def redis(self) -> SharedRedis | None:
        """The Redis the totals are kept in, or None (this process only)."""
        return None if self._shared is None else self._shared.redis

    # -- reading --------------------------------------------------------------------

    def snapshot(self) -> StatsSnapshot:
        """This process's counts, per target and per deployment."""
        with self._lock:
            return StatsSnapshot(
                {key: tally.view() for key, tally in self._targets.items()},
                {key: tally.view() for key, tally in self._deployments.items()},
            )

    async def asnapshot(self) -> StatsSnapshot:
        """The shared view: every process's counts (``redis=``); without Redis, or
        while it is out, the same as :meth:`snapshot`."""
        totals = await self._totals()
        if totals is None:
            return self.snapshot()
        return StatsSnapshot(
            {key: tally.view() for key, tally in totals.targets.items()},
            {key: tally.view() for key, tally in totals.deployments.items()},
        )

    async def aflush(self) -> None:
        """Send this process's counts to Redis now (``redis=``; else nothing to do)."""
        if self._shared is not None:
            await self._shared.flush()

    async def aclose(self) -> None:
        """Send what is left (:meth:`aflush`), then close the Redis connections this
        Stats opened (``redis=`` a URL)."""
        if self._shared is not None:
            await self._shared.flush()
            await self._shared.aclose()

    async def _totals(self) -> Totals | None:
        return None if self._shared is None else await self._shared.totals()

    def reset(self) -> None:
        """Forget everything this process counted so far (totals in Redis stay)."""
        with self._lock:
            self._targets = {}
            self._deployments = {}
            if self._shared is not None:
                self._shared.forget()

    def _items(self) -> dict[tuple[str, str], Tally]:
        """Every running tally, by kind and name (under the lock)."""
        found = {("t", key): tally for key, tally in self._targets.items()}
        found.update({("d", key): tally for key, tally in self._deployments.items()})
        return found

    def export(self, build: Callable[[list[Tally], list[tuple[str, Tally]]], T]) -> T:
        """``build(targets, deployments)`` over the running tallies, while no
        request can change them (for exporters; keep it short)."""
        with self._lock:
            return build(list(self._targets.values()), list(self._deployments.items()))

    def collector(self) -> Any:
        """A ``prometheus_client`` collector over these statistics (the ``[prometheus]`` extra)."""
        from middlewares.usage._prometheus import StatsCollector

        return StatsCollector(self)

    def prometheus(self) -> str:
        """This process's statistics in the Prometheus text format (the ``[prometheus]`` extra)."""
        from middlewares.usage._prometheus import Exposition

        if self._prometheus is None:
            self._prometheus = Exposition(self)
        return str(self._prometheus.text())

    async def aprometheus(self) -> str:
        """The shared view (see :meth:`asnapshot`) in the Prometheus text format."""
        totals = await self._totals()
        if totals is None:
            return self.prometheus()
        from middlewares.usage._prometheus import render

        return render(list(totals.targets.values()), list(totals.deployments.items()))

    # -- recording -------------------------------------------------------------------

    def _record(self, request: Request, source: Any, record: Record) -> None:
        provider, model, deployment = served_by(request, source)
        with self._lock:
            key = f"{provider}/{model}"
            tally = self._targets.get(key)
            if tally is None:
                tally = self._targets[key] = Tally(provider, model, self._sketch)
            record(tally)
            if deployment is not None:
                tally = self._deployments.get(deployment)
                if tally is None:
                    tally = self._deployments[deployment] = Tally(provider, model, self._sketch)
                record(tally)
            if self._shared is not None:
                self._shared.kick()

    def _failed(self, request: Request, exc: BaseException, source: Any = None) -> None:
        """``exc`` ended the request; ``source`` (a stream) holds the path, else ``exc``."""
        source = exc if source is None else source
        if not isinstance(exc, Exception):
            self._record(request, source, _cancelled)
            return
        attempts = getattr(exc, "attempts", ())
        error = (attempts[-1].error if attempts else None) or type(exc).__name__
        self._record(request, source, lambda tally: tally.failure(error))

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        clock = self._clock
        start = clock()
        try:
            result = await call_next(request)
        except BaseException as exc:
            self._failed(request, exc)
            raise
        if isinstance(result, Stream):
            watch = _StreamStats(self, request, start, result)
            return observe(
                result, on_chunk=watch.on_chunk, on_end=watch.on_end, on_error=watch.on_error
            )
        latency = clock() - start
        usage = getattr(result, "usage", None)
        cost = result.cost
        cache_hit = result.cache_hit
        self._record(
            request, result, lambda tally: tally.success(cache_hit, latency, None, usage, cost)
        )
        return result


def _cancelled(tally: Tally) -> None:
    tally.cancelled += 1


class _StreamStats:
    """One stream: its time to first chunk and last usage, recorded when it ends."""

    __slots__ = ("_first_chunk", "_request", "_start", "_stats", "_stream", "_usage")

    def __init__(self, stats: Stats, request: Request, start: float, stream: Stream[Any]) -> None:
        self._stats = stats
        self._request = request
        self._start = start
        self._stream = stream
        self._first_chunk = stats._clock() - start  # the terminal waits for it
        self._usage: Usage | None = None

    def on_chunk(self, chunk: ChatChunk) -> None:
        if chunk.usage is not None:
            self._usage = chunk.usage

    def on_end(self, completed: bool) -> None:
        stream = self._stream
        if not completed:
            self._stats._record(self._request, stream, _cancelled)
            return
        latency = self._stats._clock() - self._start
        usage, cost, hit, first = self._usage, stream.cost, stream.cache_hit, self._first_chunk
        self._stats._record(
            self._request, stream, lambda tally: tally.success(hit, latency, first, usage, cost)
        )

    def on_error(self, exc: BaseException) -> None:
        self._stats._failed(self._request, exc, self._stream)

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
  view (the same, until statistics live in shared state); ``reset()``
  starts again from zero. Safe to read from another thread. ``clock``
  (seconds, ``time.perf_counter`` by default) is injectable for tests.
- ``prometheus()`` renders the Prometheus text format through
  ``prometheus_client`` (the ``[prometheus]`` extra; without it,
  :class:`MissingExtraError`). ``collector()`` gives a collector to register
  in your own ``prometheus_client`` registry instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from middlewares.usage._extras import require
from middlewares.usage._routed import served_by
from middlewares.usage._snapshot import FirstChunk, Latency, StatsSnapshot, TargetStats
from pipeline import ChatChunk, Handler, Request, Result, Stream, Usage, observe

__all__ = ["Stats", "Tally"]

T = TypeVar("T")

RELATIVE_ACCURACY = 0.01
BIN_LIMIT = 2048


class Sketch(Protocol):
    """The part of a DDSketch Stats uses."""

    def add(self, val: float, weight: float = ...) -> None: ...

    def get_quantile_value(self, quantile: float) -> float | None: ...

    @property
    def count(self) -> float: ...

    @property
    def sum(self) -> float: ...


def _ms(sketch: Sketch, quantile: float) -> float | None:
    value = sketch.get_quantile_value(quantile)
    return None if value is None else round(value * 1000.0, 3)


class Tally:
    """One target's (or deployment's) running counts."""

    __slots__ = (
        "cache_hits",
        "cached_tokens",
        "cancelled",
        "completion_tokens",
        "cost",
        "failures",
        "first_chunk",
        "latency",
        "model",
        "prompt_tokens",
        "provider",
        "reasoning_tokens",
        "successes",
    )

    def __init__(self, provider: str, model: str, sketch: Callable[[], Sketch]) -> None:
        self.provider = provider
        self.model = model
        self.successes = 0
        self.failures: dict[str, int] = {}
        self.cancelled = 0
        self.cache_hits = 0
        self.latency = sketch()
        self.first_chunk = sketch()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.cached_tokens = 0
        self.cost: float | None = None

    @property
    def requests(self) -> int:
        return self.successes + sum(self.failures.values()) + self.cancelled

    def success(
        self,
        cache_hit: bool,
        latency: float,
        first_chunk: float | None,
        usage: Usage | None,
        cost: float | None,
    ) -> None:
        self.successes += 1
        if cache_hit:
            self.cache_hits += 1
            return
        self.latency.add(latency)
        if first_chunk is not None:
            self.first_chunk.add(first_chunk)
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.reasoning_tokens += usage.reasoning_tokens or 0
            self.cached_tokens += usage.cached_tokens or 0
        if cost is not None:
            self.cost = cost if self.cost is None else self.cost + cost

    def failure(self, error: str) -> None:
        self.failures[error] = self.failures.get(error, 0) + 1

    def view(self) -> TargetStats:
        return TargetStats(
            requests=self.requests,
            successes=self.successes,
            failures=dict(self.failures),
            cancelled=self.cancelled,
            cache_hits=self.cache_hits,
            latency_ms=Latency(
                _ms(self.latency, 0.5), _ms(self.latency, 0.95), _ms(self.latency, 0.99)
            ),
            first_chunk_ms=FirstChunk(_ms(self.first_chunk, 0.5), _ms(self.first_chunk, 0.95)),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            reasoning_tokens=self.reasoning_tokens,
            cached_tokens=self.cached_tokens,
            cost=self.cost,
        )


Record = Callable[[Tally], None]


class Stats:
    """The statistics middleware; see the module docstring.

    Raises :class:`MissingExtraError` when ddsketch (the ``[stats]`` extra)
    is not installed.
    """

    __slots__ = ("_clock", "_deployments", "_lock", "_prometheus", "_sketch", "_targets")

    def __init__(self, *, clock: Callable[[], float] = time.perf_counter) -> None:
        ddsketch = require("ddsketch", "stats", "Stats")
        sketch = ddsketch.LogCollapsingLowestDenseDDSketch

        def new_sketch() -> Sketch:
            made: Sketch = sketch(relative_accuracy=RELATIVE_ACCURACY, bin_limit=BIN_LIMIT)
            return made

        self._sketch = new_sketch
        self._clock = clock
        self._lock = threading.Lock()
        self._targets: dict[str, Tally] = {}
        self._deployments: dict[str, Tally] = {}
        self._prometheus: Any = None

    def __repr__(self) -> str:
        return "Stats()"

    # -- reading --------------------------------------------------------------------

    def snapshot(self) -> StatsSnapshot:
        """This process's counts, per target and per deployment."""
        with self._lock:
            return StatsSnapshot(
                {key: tally.view() for key, tally in self._targets.items()},
                {key: tally.view() for key, tally in self._deployments.items()},
            )

    async def asnapshot(self) -> StatsSnapshot:
        """The shared view; with in-process state, the same as :meth:`snapshot`."""
        return self.snapshot()

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self._targets = {}
            self._deployments = {}

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
        """The statistics in the Prometheus text format (the ``[prometheus]`` extra)."""
        from middlewares.usage._prometheus import Exposition

        if self._prometheus is None:
            self._prometheus = Exposition(self)
        return str(self._prometheus.text())

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

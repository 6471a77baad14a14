"""Shared state on Redis: what a round trip to a loopback redis-server adds, and how
exactly four processes keep one limit.

- **added latency**, each the median over rounds of that round's difference of
  medians, variants interleaved, all on the in-process MockTransport and a
  redis-server of its own on loopback:

  - *RedisCache hit*: ``Pipeline([Cache(RedisCache)])`` answering from Redis
    against ``Pipeline([Cache(MemoryCache)])`` answering from memory;
  - *RedisCache miss*: a new question each time through
    ``Pipeline([Cache(RedisCache)])`` against ``Pipeline([])``;
  - *RedisState per request*: ``Router(state=RedisState)`` against
    ``Router()`` (MemoryState), a deployment with an rpm and a tpm;
  - *limit check*: ``RedisState.acquire`` alone (the check-and-count);
  - *Budget on Redis*: ``Budget(redis=)`` against ``Budget()``, each reply
    priced (the check before, the spend after: two round trips);
  - *Stats on Redis*: ``Stats(redis=)`` against ``Stats()`` (counts are sent
    in the background, about once a second: nothing on the request's path).

  Targets: one round trip each, at most 300 µs at the median. Round trips
  are the operations the client sent per request (each is one command or one
  script: one round trip).
- **global-limit accuracy**: four worker processes (two on asyncio, two on
  trio; the multi-process tests' worker, ``tests/_redis_worker.py``) ask for
  twice a deployment's rpm, and then its tpm; admitted within the window over
  the limit: never above 100%, at least 95%.

Skipped, with a note, without coredis or a redis-server.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import attrs

from benchmarks.overhead import Load, Tally, messages, sequential, sequential_rounds
from benchmarks.stats import Summary, summarize
from benchmarks.targets import API_KEY, MODEL, mock_target
from middlewares import Budget, Cache, Deployment, ErrorMapping, MemoryCache, Router, Stats
from pipeline import Pipeline

TARGET_US = 300.0
TARGET_ACCURACY = 0.95
GROUP = "g"
Call = Callable[[int], Awaitable[object]]


@attrs.frozen
class Added:
    name: str
    added_us: float  # median over rounds of (variant's median - baseline's median)
    variant_us: Summary
    baseline_us: Summary
    round_trips: float  # commands Redis served per request

    @property
    def met(self) -> bool:
        return self.added_us <= TARGET_US * max(self.round_trips, 1.0)


@attrs.frozen
class Accuracy:
    limit: str  # "rpm" or "tpm"
    allowed: int
    asked: int
    admitted: int  # requests (rpm) or tokens (tpm) admitted within the window

    @property
    def share(self) -> float:
        return self.admitted / self.allowed

    @property
    def met(self) -> bool:
        return TARGET_ACCURACY <= self.share <= 1.0


@attrs.frozen
class SharedStateResults:
    ping_us: Summary  # one PING through SharedRedis: the floor
    added: list[Added]
    accuracy: list[Accuracy]


# -- the variants ---------------------------------------------------------------------


def _router(**options: Any) -> Router:
    deployment = Deployment(MODEL, api_key=API_KEY, rpm=10**9, tpm=10**12)
    return Router({GROUP: [deployment]}, **options)


def _counting(url: str) -> Any:
    """A SharedRedis that counts the operations it sends (each is one round trip),
    by the layer that sent them."""
    from middlewares.shared import SharedRedis

    class Counting(SharedRedis):
        operations: Counter[str]

        async def run(self, user: Any, operation: Any) -> Any:
            self.operations[user.name] += 1
            return await super().run(user, operation)

    counting = Counting(url)
    counting.operations = Counter()
    return counting

    return Counting(url)


async def _variants(redis: Any, stack: AsyncExitStack) -> dict[str, Call]:
    from middlewares.cache import RedisCache
    from middlewares.state import RedisState

    stack.push_async_callback(redis.aclose)
    target = mock_target()
    registry, client = target.registry(), target.client()
    stack.push_async_callback(client.aclose)
    prefix = f"bench{time.time_ns()}"

    def pipe(*layers: Any) -> Pipeline:
        return Pipeline(list(layers), registry=registry, http_client=client)

    def asking(pipeline: Pipeline, model: str, same: bool) -> Call:
        key = API_KEY if model == MODEL else None  # a group's deployment carries its key

        async def call(i: int) -> object:
            question = messages(-1 if same else i)
            return await pipeline.acompletion(model, question, api_key=key, temperature=0)

        return call

    async def priced(request: Any, call_next: Any) -> Any:
        reply = await call_next(request)
        reply.cost = 1e-9  # what Costs would set: the budget spends it
        return reply

    def usage(layer: Any) -> Call:
        return asking(pipe(layer, priced), MODEL, same=False)

    redis_cache = Cache(RedisCache(redis, prefix=prefix, ttl=300))
    return {
        "Budget, memory": usage(Budget(1e9)),
        "Budget, Redis": usage(Budget(1e9, redis=redis, prefix=prefix)),
        "Stats, memory": usage(Stats()),
        "Stats, Redis": usage(Stats(redis=redis, prefix=prefix)),
        "no cache": asking(pipe(), MODEL, same=False),
        "MemoryCache hit": asking(pipe(Cache(MemoryCache())), MODEL, same=True),
        "RedisCache hit": asking(pipe(redis_cache), MODEL, same=True),
        "RedisCache miss": asking(pipe(redis_cache), MODEL, same=False),
        "Router, MemoryState": asking(pipe(_router(), ErrorMapping()), GROUP, same=False),
        "Router, RedisState": asking(
            pipe(_router(state=RedisState(redis, prefix=prefix)), ErrorMapping()), GROUP, False
        ),
    }


COMPARED = {  # what is reported: variant against baseline
    "RedisCache hit": "MemoryCache hit",
    "RedisCache miss": "no cache",
    "RedisState per request": "Router, MemoryState",
    "Budget on Redis per request": "Budget, memory",
    "Stats on Redis per request": "Stats, memory",
}
VARIANT = {
    "RedisState per request": "Router, RedisState",
    "Budget on Redis per request": "Budget, Redis",
    "Stats on Redis per request": "Stats, Redis",
}


# The layer whose operations each variant counts: the variants share one SharedRedis,
# and Stats pipelines still alive send their counts in the background meanwhile.
# Variants on memory send nothing: they count none.
_LAYER = {
    "RedisCache hit": "cache",
    "RedisCache miss": "cache",
    "Router, RedisState": "state",
    "Budget, Redis": "budget",
    "Stats, Redis": "stats",
}


async def _round_trips(redis: Any, name: str, call: Call, requests: int = 200) -> float:
    """Operations the variant's layer sent to Redis per request (each one command
    or one script)."""
    layer = _LAYER.get(name)
    before = redis.operations[layer]
    for i in range(requests):
        await call(10_000_000 + i)
    return float(redis.operations[layer] - before) / requests


async def _limit_check(url: str, load: Load) -> Tally:
    """``RedisState.acquire`` alone, each grant released untimed."""
    from middlewares.state import Policy, RedisState

    state = RedisState(url, prefix=f"bench-acquire{time.time_ns()}")
    policy = Policy(rpm=10**9, tpm=10**12, max_concurrency=1000)
    latencies: list[float] = []
    try:
        for i in range(max(load.sequential_requests, 50)):
            now = time.time()
            began = time.perf_counter_ns()
            grant = await state.acquire("d", policy, 10, now)
            latencies.append((time.perf_counter_ns() - began) / 1000)
            await state.release(grant, "success", now, tokens=i % 20)
    finally:
        await state.aclose()
    return Tally(latencies, 0.0)


async def _ping(url: str, requests: int) -> Summary:
    from middlewares.shared import SharedRedis

    redis = SharedRedis(url)
    user = redis.user("bench", fallback="none")
    latencies = []
    try:
        for _ in range(requests):
            began = time.perf_counter_ns()
            await user.run(lambda client: client.ping())
            latencies.append((time.perf_counter_ns() - began) / 1000)
    finally:
        await redis.aclose()
    return summarize(latencies)


async def _latencies(url: str, load: Load) -> tuple[Summary, list[Added]]:
    redis = _counting(url)
    async with AsyncExitStack() as stack:
        calls = await _variants(redis, stack)
        for call in calls.values():
            await sequential(call, 50, 0.0)  # warm up: connections, scripts loaded
        tallies = await sequential_rounds(calls, load)
        trips = {name: await _round_trips(redis, name, calls[name]) for name in calls}
        ping = await _ping(url, max(load.sequential_requests, 50))
    added = []
    for name, baseline in COMPARED.items():
        variant = VARIANT.get(name, name)
        diffs = [
            statistics.median(v.latencies) - statistics.median(b.latencies)
            for v, b in zip(tallies[variant], tallies[baseline], strict=True)
        ]
        added.append(
            Added(
                name,
                statistics.median(diffs),
                summarize(Tally.total(tallies[variant]).latencies),
                summarize(Tally.total(tallies[baseline]).latencies),
                trips[variant] - trips[baseline],
            )
        )
    check = await _limit_check(url, load)
    added.append(
        Added(
            "limit check (acquire)",
            summarize(check.latencies).median,
            summarize(check.latencies),
            ping,
            1.0,
        )
    )
    return ping, added


def _accuracy(url: str) -> list[Accuracy]:
    from tests._redis_worker import run_workers

    out = []
    rpm = run_workers(4, "limits", url, f"bench-rpm{time.time_ns()}", rpm=200, requests=100)
    out.append(Accuracy("rpm", 200, 400, sum(r["ok"] for r in rpm)))
    tpm = run_workers(
        4,
        "limits",
        url,
        f"bench-tpm{time.time_ns()}",
        tpm=5000,
        requests=250,
        max_tokens=20,
        usage=10,
    )
    out.append(Accuracy("tpm", 5000, 10_000, sum(r["tokens"] for r in tpm)))
    return out


def measure(load: Load) -> tuple[SharedStateResults | None, str | None]:
    """The results, or None and why they were skipped."""
    try:
        import coredis  # noqa: F401
    except ImportError:
        return None, "shared state: skipped, the [redis] extra (coredis) is not installed"
    from tests._redis import redis_program, started

    program = redis_program()
    if program is None:
        return None, "shared state: skipped, no redis-server (apt-get install redis-server)"
    with tempfile.TemporaryDirectory(prefix="dispatchline-bench-redis-") as folder:
        server = started(program, Path(folder))
        try:
            ping, added = anyio.run(_latencies, server.url, load, backend="asyncio")
            accuracy = _accuracy(server.url)
        finally:
            server.stop()
    return SharedStateResults(ping, added, accuracy), None


# -- the report -----------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def table(results: SharedStateResults) -> tuple[str, list[str], list[list[str]], list[str]]:
    """Title, columns, rows and notes of the report's section."""
    rows = [
        [
            row.name,
            f"{row.added_us:+.0f}",
            f"{row.round_trips:.1f}",
            f"{row.variant_us.median:.0f}",
            f"{row.baseline_us.median:.0f}",
            _verdict(row.met),
        ]
        for row in results.added
    ]
    notes = [
        f"A PING through SharedRedis (the floor, one round trip): {results.ping_us.median:.0f} "
        f"µs. Target: at most {TARGET_US:.0f} µs per round trip at the median; the hit and the "
        "limit check take one, a miss two (look up and lock, then store and unlock), a routed "
        "request two (acquire, release), a budgeted one two (check, spend); Stats sends its "
        "counts in the background (about once a second), none on the request's path.",
        *(
            f"Global {a.limit} over four processes (two asyncio, two trio), {a.asked} asked for, "
            f"{a.allowed} allowed: {a.admitted} admitted ({a.share:.1%}); target "
            f"{TARGET_ACCURACY:.0%} to 100%: {_verdict(a.met)}."
            for a in results.accuracy
        ),
    ]
    return (
        "Shared state on Redis (loopback): added latency per request (µs, median)",
        ["what", "added µs", "round trips", "µs", "baseline µs", "target"],
        rows,
        notes,
    )


def to_json(results: SharedStateResults) -> dict[str, Any]:
    return {
        "ping_us": results.ping_us.median,
        "target_us_per_round_trip": TARGET_US,
        "added": {
            row.name: {
                "added_us": row.added_us,
                "round_trips": row.round_trips,
                "met": row.met,
            }
            for row in results.added
        },
        "accuracy": {
            a.limit: {"allowed": a.allowed, "admitted": a.admitted, "share": a.share, "met": a.met}
            for a in results.accuracy
        },
    }

"""Per-request latency and throughput: raw httpx against the pipeline.

Every variant sends the same chat request (at ``temperature=0``: an answer the
default cache keeps) to the same target:

- ``raw httpx``: ``client.post(url, json=body)`` then ``response.json()``,
  what a user would write by hand;
- ``Pipeline([])``: ``acompletion`` through no middleware: resolve, validate,
  build, send, parse into response objects;
- ``Pipeline.default()``: every standard middleware; the message differs on
  every request, so the cache always misses;
- ``cache hit``: ``Pipeline.default()`` asked the same thing again;
- ``Pipeline.default(logging=False)`` and ``cache hit, logging=False``
  (in-process only): the same without the Logging layer, which shows what its
  one structlog event per request costs;
- ``aiohttp.ClientSession``: no httpx at all, over loopback only: the most
  this server and machine allow, so the others can be read against it.

Sequential: one request after another, each timed. Concurrent: 50 tasks
sending as fast as they can for a fixed time; throughput is requests
completed over the time taken. The variants of one target run interleaved
(:mod:`benchmarks.interleave`), so they are compared under the same noise.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import aiohttp
import anyio
import attrs

from benchmarks.interleave import interleaved
from benchmarks.stats import Summary, summarize
from benchmarks.targets import API_KEY, MODEL, MODEL_NAME, Target
from pipeline import Pipeline

Call = Callable[[int], Awaitable[object]]
Variant = Callable[[Target], AbstractAsyncContextManager[Call]]
Build = Callable[..., Pipeline]

_numbers = itertools.count()


class Skipped(Exception):
    """A variant that cannot be measured in this build; the message says why."""


PARAMS = {"temperature": 0}


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"benchmark request {i}"}]


@asynccontextmanager
async def pipeline_on(target: Target, build: Build) -> AsyncIterator[Pipeline]:
    """A pipeline sending to ``target``: on its client, or on its own when not injected."""
    if not target.inject:
        async with build(registry=target.registry()) as pipe:
            yield pipe
        return
    async with (
        target.client() as client,
        build(registry=target.registry(), http_client=client) as pipe,
    ):
        yield pipe


def bare_pipeline(**options: Any) -> Pipeline:
    return Pipeline([], **options)


@asynccontextmanager
async def raw_calls(target: Target) -> AsyncIterator[Call]:
    headers = {"authorization": f"Bearer {API_KEY}"}
    url = target.chat_url
    async with target.client() as client:

        async def call(i: int) -> object:
            response = await client.post(
                url, json={"model": MODEL_NAME, "messages": messages(i), **PARAMS}, headers=headers
            )
            response.raise_for_status()
            return response.json()

        yield call


@asynccontextmanager
async def session_calls(target: Target) -> AsyncIterator[Call]:
    """aiohttp's own client, no httpx at all: the ceiling the server and machine allow."""
    headers = {"authorization": f"Bearer {API_KEY}"}
    url = target.chat_url
    async with aiohttp.ClientSession() as session:

        async def call(i: int) -> object:
            body = {"model": MODEL_NAME, "messages": messages(i), **PARAMS}
            async with session.post(url, json=body, headers=headers) as response:
                response.raise_for_status()
                return await response.json()

        yield call


@asynccontextmanager
async def pipeline_calls(target: Target, build: Build) -> AsyncIterator[Call]:
    async with pipeline_on(target, build) as pipe:

        async def call(i: int) -> object:
            return await pipe.acompletion(MODEL, messages(i), api_key=API_KEY, temperature=0)

        yield call


@asynccontextmanager
async def cache_hit_calls(target: Target, build: Build = Pipeline.default) -> AsyncIterator[Call]:
    async with pipeline_on(target, build) as pipe:
        same = messages(-1)
        await pipe.acompletion(MODEL, same, api_key=API_KEY, temperature=0)
        again = await pipe.acompletion(MODEL, same, api_key=API_KEY, temperature=0)
        if not again.cache_hit:
            raise Skipped("Pipeline.default() did not answer a repeated request from its cache")

        async def call(i: int) -> object:
            return await pipe.acompletion(MODEL, same, api_key=API_KEY, temperature=0)

        yield call


RAW = "raw httpx"
DEFAULT = "Pipeline.default()"
SESSION = "aiohttp.ClientSession"
# The same stack without its Logging layer: what the one structlog event per request costs.
UNLOGGED = "Pipeline.default(logging=False)"
HIT = "cache hit"
UNLOGGED_HIT = "cache hit, logging=False"

_unlogged = partial(Pipeline.default, logging=False)

VARIANTS: dict[str, Variant] = {
    RAW: raw_calls,
    "Pipeline([])": partial(pipeline_calls, build=bare_pipeline),
    DEFAULT: partial(pipeline_calls, build=Pipeline.default),
    UNLOGGED: partial(pipeline_calls, build=_unlogged),
    HIT: cache_hit_calls,
    UNLOGGED_HIT: partial(cache_hit_calls, build=_unlogged),
    SESSION: session_calls,
}


@attrs.frozen
class Load:
    """How hard and how long to push each variant, in all, over ``rounds`` rounds."""

    sequential_requests: int
    sequential_seconds: float
    concurrent_seconds: float
    rounds: int = 1
    concurrency: int = 50


@attrs.frozen
class OverheadRow:
    target: str
    variant: str
    latency_us: Summary
    req_per_s: float
    concurrent_req_per_s: float
    concurrent_latency_us: Summary


@attrs.frozen
class Tally:
    """Microseconds per request, and the seconds the requests took in all."""

    latencies: list[float]
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    @classmethod
    def total(cls, tallies: list[Tally]) -> Tally:
        return cls([x for t in tallies for x in t.latencies], sum(t.seconds for t in tallies))


async def sequential(call: Call, requests: int, seconds: float) -> Tally:
    """One request at a time, until ``requests`` are done or ``seconds`` pass (at least 10)."""
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds
    while len(latencies) < requests and (len(latencies) < 10 or time.perf_counter() < deadline):
        began = time.perf_counter_ns()
        await call(next(_numbers))
        latencies.append((time.perf_counter_ns() - began) / 1000)
    return Tally(latencies, time.perf_counter() - start)


async def sequential_rounds(calls: Mapping[str, Call], load: Load) -> dict[str, list[Tally]]:
    """Each call's :func:`sequential` run, interleaved over ``load.rounds`` rounds."""
    rounds = load.rounds
    return await interleaved(
        calls,
        rounds,
        lambda call: sequential(
            call, -(-load.sequential_requests // rounds), load.sequential_seconds / rounds
        ),
    )


async def concurrent(call: Call, workers: int, seconds: float) -> Tally:
    """``workers`` tasks sending one request after another for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter_ns()
            await call(next(_numbers))
            latencies.append((time.perf_counter_ns() - began) / 1000)

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)
    return Tally(latencies, time.perf_counter() - start)


async def measure_target(
    target: Target, variants: Mapping[str, Variant], load: Load
) -> tuple[list[OverheadRow], list[str]]:
    """Every variant on one target, interleaved round by round; and what was skipped, why."""
    skipped: list[str] = []
    async with AsyncExitStack() as stack:
        calls: dict[str, Call] = {}
        for name, variant in variants.items():
            try:
                calls[name] = await stack.enter_async_context(variant(target))
            except Skipped as reason:
                skipped.append(f"{name} on {target.key}: {reason}")
        rounds = load.rounds
        for call in calls.values():
            await sequential(call, 20, 0.0)  # warm up: a connection, first-use costs
        alone = await sequential_rounds(calls, load)
        # Concurrent last: once a run has filled httpx's pool with idle
        # connections, every later request pays for checking them.
        for call in calls.values():
            await concurrent(call, load.concurrency, min(0.2, load.concurrent_seconds / 4))
        busy = await interleaved(
            calls,
            rounds,
            lambda call: concurrent(call, load.concurrency, load.concurrent_seconds / rounds),
        )
    rows = []
    for name in calls:
        one, many = Tally.total(alone[name]), Tally.total(busy[name])
        rows.append(
            OverheadRow(
                target.key,
                name,
                summarize(one.latencies),
                one.rate,
                many.rate,
                summarize(many.latencies),
            )
        )
    return rows, skipped

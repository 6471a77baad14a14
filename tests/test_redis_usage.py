"""Budgets and Stats over a real redis-server: two instances, each with its own
SharedRedis, behave as two processes do (one spend per scope, one set of totals);
a Redis that is out leaves each on its own counts, with one warning, until it is
back; nothing stored holds a key or a pickle. (Four real processes:
test_redis_processes.py.)"""

from __future__ import annotations

import ast
import itertools
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from middlewares import Budget, Cache, Costs, ErrorMapping, Stats
from middlewares.shared import SharedRedis
from middlewares.usage import StatsSnapshot
from middlewares.usage._sketch import Sketch
from pipeline import ChatResponse, Request, errors
from providers.mock import echo_handler
from tests._redis import RedisServer, stored
from tests._usage import KEY, FakeClock, after, chat_reply, mock_pipeline

pytestmark = pytest.mark.anyio

T = TypeVar("T")

PRICE = {"input_cost_per_token": 0.01, "output_cost_per_token": 0.0}
ONE_WORD = [{"role": "user", "content": "go"}]  # 1 prompt token: 0.01 USD at PRICE
TARGET = "openai/gpt-4o-mini"
START = 1_773_153_000.0  # 2026-03-10 14:30 UTC


def shared(url: str) -> SharedRedis:
    """One process's Redis (a generous timeout: a busy machine must not fall back by accident)."""
    return SharedRedis(url, timeout=5.0)


class Counting:
    """The mock provider, counting the requests that reached it."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.delay:
            await anyio.sleep(self.delay)
        return echo_handler(request)


async def spend(pipe: Any, n: int = 1, **params: Any) -> None:
    for _ in range(n):
        await pipe.acompletion(TARGET, ONE_WORD, metadata=PRICE, api_key=KEY, **params)


async def eventually(read: Callable[[], Awaitable[T]], ready: Callable[[T], Any] = bool) -> T:
    """``read()``'s first answer that is ``ready``, within five seconds (what another
    process, or a background task, writes)."""
    with anyio.fail_after(5.0):
        for _ in itertools.count():
            value = await read()
            if ready(value):
                return value
            await anyio.sleep(0.02)
    raise AssertionError("unreachable")


def counted(snapshot: StatsSnapshot) -> bool:
    return bool(snapshot.targets)


async def close(*layers: Budget | Stats) -> None:
    """Close the layers' SharedRedis pools (given to them, so not theirs to close)."""
    for layer in layers:
        assert layer.redis is not None
        await layer.redis.aclose()


async def assert_clean(url: str, prefix: str) -> None:
    values = await stored(url, prefix)
    assert values, "nothing was stored"
    for key, value in values.items():
        assert KEY.encode() not in key + value
        assert b"go" not in value.split(b"=")[-1]  # no message content
        assert not value.startswith(b"\x80")  # no pickle


# -- budgets ---------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["day", 600])
async def test_a_budget_holds_across_processes_and_resets_with_its_period(
    redis_url: str, redis_prefix: str, period: Any
) -> None:
    clock, upstream = FakeClock(START), Counting()
    budgets = [
        Budget(0.05, period, redis=shared(redis_url), prefix=redis_prefix, clock=clock)
        for _ in range(2)
    ]
    one, other = (mock_pipeline([b, Costs(), ErrorMapping()], upstream) for b in budgets)
    await spend(one, 3)
    await spend(other, 2)  # 0.05 spent in all: both refuse now, before any I/O
    for pipe in (one, other):
        with pytest.raises(errors.BudgetExceededError) as caught:
            await spend(pipe)
        assert caught.value.spent == pytest.approx(0.05)
    assert upstream.calls == 5
    assert budgets[0].spent("provider:openai") == pytest.approx(0.03)  # this process's own
    assert await budgets[0].aspent("provider:openai") == pytest.approx(0.05)
    assert (await budgets[1].asnapshot())["provider:openai"]["spent"] == pytest.approx(0.05)
    if period == "day":
        assert caught.value.resets_at == START - START % 86400 + 86400
        clock.now = caught.value.resets_at
    else:  # spend counts for 600 s (and at most a 60th longer)
        clock.advance(600 * 61 / 60)
    await spend(other)  # a new period: everyone may spend again
    assert await budgets[0].aspent("provider:openai") == pytest.approx(0.01)
    await assert_clean(redis_url, redis_prefix)
    await close(*budgets)


async def test_concurrent_requests_in_two_processes_overshoot_by_at_most_those_in_flight(
    redis_url: str, redis_prefix: str
) -> None:
    """60 requests, 6 at a time in each of two processes: once the shared spend has
    crossed the limit, the rest are refused; the overshoot is what was in flight."""
    limit, cost, width = 0.155, 0.01, 6
    upstream = Counting(delay=0.005)
    budgets = [Budget(limit, redis=shared(redis_url), prefix=redis_prefix) for _ in range(2)]
    pipes = [mock_pipeline([b, Costs(), ErrorMapping()], upstream) for b in budgets]
    refused = 0

    async def worker(pipe: Any, n: int) -> None:
        nonlocal refused
        for _ in range(n):
            try:
                await spend(pipe)
            except errors.BudgetExceededError:
                refused += 1

    async with anyio.create_task_group() as group:
        for i in range(2 * width):
            group.start_soon(worker, pipes[i % 2], 5)
    spent = await budgets[0].aspent("provider:openai")
    assert upstream.calls + refused == 60 and refused > 0
    assert spent == pytest.approx(upstream.calls * cost)
    assert limit <= spent < limit + 2 * width * cost  # crossed, by at most those in flight
    await close(*budgets)


async def test_a_stream_spends_in_redis_once_it_ends(redis_url: str, redis_prefix: str) -> None:
    budget = Budget(1.0, redis=shared(redis_url), prefix=redis_prefix)
    async with mock_pipeline([budget, Costs(), ErrorMapping()]) as pipe:
        stream = await pipe.acompletion(TARGET, ONE_WORD, metadata=PRICE, stream=True)
        assert await budget.aspent("provider:openai") == 0.0
        async for _ in stream:
            pass
        spent = await eventually(lambda: budget.aspent("provider:openai"))  # in the background
    assert spent == pytest.approx(0.01)
    await close(budget)


async def test_with_redis_out_a_budget_counts_locally_then_shares_what_it_spent(
    own_redis: RedisServer, redis_prefix: str
) -> None:
    redis = SharedRedis(own_redis.url, timeout=2.0, retry_interval=0.05)
    budget = Budget(0.03, redis=redis, prefix=redis_prefix)
    async with mock_pipeline([budget, Costs(), ErrorMapping()]) as pipe:
        await spend(pipe)
        own_redis.stop()
        with capture_logs() as logs:
            await spend(pipe)  # no request fails because Redis is out
            await anyio.sleep(0.06)
            await spend(pipe)
            with pytest.raises(errors.BudgetExceededError):  # this process's own spend
                await spend(pipe)
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [(e["event"], e["layer"]) for e in warnings] == [("redis.unavailable", "budget")]
        own_redis.start()  # empty: nothing is saved
        await anyio.sleep(0.06)
        # The first round trip after the outage brings what was spent meanwhile.
        assert await budget.aspent("provider:openai") == pytest.approx(0.02)
    await redis.aclose()


# -- stats ----------------------------------------------------------------------------


class Script:
    """Replies in order, whichever process asks."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)

    async def __call__(self, request: httpx.Request) -> Any:
        reply = self.replies.pop(0)
        return reply(request) if callable(reply) else reply


def failure(status: int) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": "no", "type": "x"}})


async def test_two_processes_add_up_to_what_one_would_have_counted(
    redis_url: str, redis_prefix: str
) -> None:
    """The same scripted requests, split over two processes: the shared view is
    what a single Stats that saw them all reports (latency bins add up exactly)."""
    clock = FakeClock(100.0)
    whole = Stats(clock=clock)
    parts = [Stats(redis=shared(redis_url), prefix=redis_prefix, clock=clock) for _ in range(2)]
    script = Script(
        after(clock, 0.100, chat_reply(prompt=10, completion=5)),
        after(clock, 0.050, failure(429)),
        after(clock, 0.300, chat_reply(prompt=20, completion=7, reasoning=3, cached=4)),
        failure(401),
        echo_handler,  # a stream closed after its first chunk
        after(clock, 0.200, echo_handler),  # a stream read to its end
    )
    cache = Cache(sampled=True)  # one cache, as a shared one would be: a hit for the 2nd "go"
    pipes = [mock_pipeline([whole, part, cache, Costs(), ErrorMapping()], script) for part in parts]
    await pipes[0].acompletion(TARGET, ONE_WORD)
    with pytest.raises(errors.RateLimitError):
        await pipes[1].acompletion(TARGET, [{"role": "user", "content": "q2"}])
    await pipes[0].acompletion(TARGET, [{"role": "user", "content": "q3"}])
    with pytest.raises(errors.AuthenticationError):
        await pipes[1].acompletion(TARGET, [{"role": "user", "content": "q4"}])
    assert (await pipes[1].acompletion(TARGET, ONE_WORD)).cache_hit
    early = await pipes[0].acompletion(TARGET, [{"role": "user", "content": "q6"}], stream=True)
    await early.__anext__()
    await early.aclose()
    stream = await pipes[1].acompletion(TARGET, [{"role": "user", "content": "q7"}], stream=True)
    async for _ in stream:
        pass
    expected = whole.snapshot().to_dict()
    await parts[1].aflush()  # (by itself, within a second)
    got = (await parts[0].asnapshot()).to_dict()
    assert (await parts[1].asnapshot()).to_dict() == got
    cost = got["targets"][TARGET].pop("cost")  # added in another order: approx
    assert cost == pytest.approx(expected["targets"][TARGET].pop("cost")) and cost > 0
    assert got == expected  # counts, failures by class, tokens, latency and first chunk
    assert got["targets"][TARGET]["requests"] == 7
    assert [p.snapshot().targets[TARGET].requests for p in parts] == [3, 4]  # their own
    await assert_clean(redis_url, redis_prefix)
    await close(*parts)


async def test_shared_percentiles_are_within_the_sketchs_error_of_all_latencies(
    redis_url: str, redis_prefix: str
) -> None:
    rng = random.Random(5)
    spreads = [(0.2, 0.5), (0.9, 0.3), (0.05, 1.0)]  # three processes, three distributions
    seen: list[float] = []
    clock = FakeClock()
    request = Request(endpoint="chat", provider="openai", model="gpt-4o-mini", messages=ONE_WORD)
    processes = []
    for median, sigma in spreads:
        stats = Stats(redis=shared(redis_url), prefix=redis_prefix, clock=clock)
        for _ in range(1000):
            seconds = rng.lognormvariate(math.log(median), sigma)
            seen.append(seconds)

            async def reply(request: Request, seconds: float = seconds) -> Any:
                clock.advance(seconds)
                return ChatResponse(provider="openai", model="gpt-4o-mini")

            await stats(request, reply)
        await stats.aflush()
        processes.append(stats)
    got = (await processes[0].asnapshot()).targets[TARGET]
    assert got.requests == 3000
    ordered = sorted(seen)
    for quantile, value in ((0.5, got.latency_ms.p50), (0.95, got.latency_ms.p95)):
        exact = ordered[math.floor(quantile * (len(ordered) - 1))] * 1000.0
        assert value is not None and abs(value - exact) <= 0.01 * exact + 0.001, quantile
    text = await processes[0].aprometheus()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    duration = families["dispatchline_request_duration_seconds"]
    count = next(s for s in duration.samples if s.name.endswith("_count"))
    assert count.value == 3000  # the shared view, where prometheus() shows one process's
    assert "dispatchline_request_duration_seconds_count" in processes[0].prometheus()
    assert processes[0].snapshot().targets[TARGET].requests == 1000
    await close(*processes)


async def test_counts_reach_redis_in_the_background(redis_url: str, redis_prefix: str) -> None:
    writer = Stats(redis=shared(redis_url), prefix=redis_prefix, flush_interval=0.05)
    reader = Stats(redis=shared(redis_url), prefix=redis_prefix)
    async with mock_pipeline([writer, ErrorMapping()]) as pipe:
        for _ in range(3):
            await pipe.acompletion(TARGET, ONE_WORD)
        seen = await eventually(
            reader.asnapshot, counted
        )  # no aflush(): the writer sends by itself
    assert seen.targets[TARGET].successes == 3
    await close(writer, reader)


async def test_with_redis_out_stats_count_locally_and_send_it_when_back(
    own_redis: RedisServer, redis_prefix: str
) -> None:
    redis = SharedRedis(own_redis.url, timeout=2.0, retry_interval=0.05)
    stats = Stats(redis=redis, prefix=redis_prefix, flush_interval=0.05)
    async with mock_pipeline([stats, ErrorMapping()]) as pipe:
        await pipe.acompletion(TARGET, ONE_WORD)
        await stats.aflush()
        own_redis.stop()
        with capture_logs() as logs:
            for _ in range(2):
                await pipe.acompletion(TARGET, ONE_WORD)
            view = await stats.asnapshot()  # this process's, meanwhile
            await anyio.sleep(0.2)  # the background sender keeps failing, quietly
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [(e["event"], e["layer"]) for e in warnings] == [("redis.unavailable", "stats")]
        assert view.targets[TARGET].successes == 3
        own_redis.start()  # empty: what Redis had is gone, what it had not arrives
        await anyio.sleep(0.06)
        await pipe.acompletion(TARGET, ONE_WORD)
        seen = await eventually(stats.asnapshot, counted)
    assert seen.targets[TARGET].successes == 3  # the two made while out, and one after
    await redis.aclose()


async def test_reset_starts_this_process_again_and_leaves_the_totals(
    redis_url: str, redis_prefix: str
) -> None:
    stats = Stats(redis=shared(redis_url), prefix=redis_prefix)
    async with mock_pipeline([stats, ErrorMapping()]) as pipe:
        await pipe.acompletion(TARGET, ONE_WORD)
        await stats.aflush()
        stats.reset()
        assert stats.snapshot().targets == {}
        await pipe.acompletion(TARGET, ONE_WORD)
    assert (await stats.asnapshot()).targets[TARGET].successes == 2
    await close(stats)


def test_a_sketch_rebuilt_from_its_bins_answers_the_same() -> None:
    rng = random.Random(2)
    sketch = Sketch()
    for _ in range(500):
        sketch.add(rng.expovariate(3.0))
    sketch.add(0.0)
    again = Sketch.of(sketch.bins(), sketch.zeros, sketch.sum)
    assert again.count == sketch.count and again.sum == sketch.sum
    for quantile in (0.0, 0.01, 0.5, 0.9, 0.99, 1.0):
        assert again.get_quantile_value(quantile) == sketch.get_quantile_value(quantile)


@pytest.mark.parametrize(
    ("layer", "options", "message"),
    [
        (Stats, {"redis": 42}, "a Redis URL or a SharedRedis"),
        (Stats, {"redis": "redis://x", "prefix": "a b"}, "prefix"),
        (Stats, {"redis": "redis://x", "flush_interval": 0}, "flush_interval"),
        (Budget, {"redis": "http://x"}, "redis://"),
        (Budget, {"redis": "redis://x", "prefix": ""}, "prefix"),
    ],
)
def test_bad_redis_options_are_refused_at_construction(
    layer: Any, options: dict[str, Any], message: str
) -> None:
    args = (1.0,) if layer is Budget else ()
    with pytest.raises((TypeError, ValueError), match=message):
        layer(*args, **options)


async def test_the_readme_example_shares_budgets_and_statistics(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_redis_readme import WRITTEN, examples

    source = next(e for e in examples() if "Stats(redis=" in e).replace(WRITTEN, redis_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    namespace: dict[str, Any] = {}
    code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    await eval(code, namespace)
    stats, shared = namespace["stats"], namespace["shared"]
    budget = next(m for m in namespace["pipe"].middlewares if isinstance(m, Budget))
    assert budget.redis is stats.redis is namespace["redis"]
    assert shared == stats.snapshot()  # no request yet: nothing anywhere
    await stats.aclose()

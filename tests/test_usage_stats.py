"""Stats: exact counts for scripted sequences, percentiles within DDSketch's error, Prometheus."""

from __future__ import annotations

import json
import math
import random
import sys
import tracemalloc
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from middlewares import Cache, Costs, ErrorMapping, Fallback, Stats
from middlewares.usage import MissingExtraError
from pipeline import ChatResponse, Pipeline, Request, Usage, errors
from providers import ProviderRegistry, Script, mock_provider
from providers.mock import echo_handler
from tests._scripted_replies import failure
from tests._usage import (
    FakeClock,
    FakeDeployment,
    after,
    chat_reply,
    library_price,
    mock_pipeline,
    route_to,
)

pytestmark = pytest.mark.anyio

TARGET = "openai/gpt-4o-mini"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_a_scripted_sequence_gives_exact_counts_errors_tokens_and_cost() -> None:
    clock = FakeClock(100.0)
    stats = Stats(clock=clock)
    script = Script(
        after(clock, 0.100, chat_reply(prompt=10, completion=5)),
        after(clock, 0.050, failure(429)),
        after(clock, 0.300, chat_reply(prompt=20, completion=7, reasoning=3, cached=4)),
        failure(401),
        failure(429),
        echo_handler,  # a stream closed after its first chunk
        after(clock, 0.200, echo_handler),  # a stream read to its end
    )
    layers = [stats, Cache(sampled=True), Costs(), ErrorMapping()]
    async with mock_pipeline(layers, script) as pipe:
        first = await pipe.acompletion(TARGET, ask("q1"))
        with pytest.raises(errors.RateLimitError):
            await pipe.acompletion(TARGET, ask("q2"))
        third = await pipe.acompletion(TARGET, ask("q3"))
        with pytest.raises(errors.AuthenticationError):
            await pipe.acompletion(TARGET, ask("q4"))
        with pytest.raises(errors.RateLimitError):
            await pipe.acompletion(TARGET, ask("q5"))
        hit = await pipe.acompletion(TARGET, ask("q1"))
        early = await pipe.acompletion(TARGET, ask("q7 and more words"), stream=True)
        await early.__anext__()
        await early.aclose()
        whole = await pipe.acompletion(TARGET, ask("q8 streamed"), stream=True)
        usage = None
        async for chunk in whole:
            usage = chunk.usage or usage
    assert hit.cache_hit and usage is not None
    assert first.cost is not None and third.cost is not None and whole.cost is not None
    snapshot = stats.snapshot()
    assert list(snapshot.targets) == [TARGET] and snapshot.deployments == {}
    got = snapshot.targets[TARGET]
    assert (got.requests, got.successes, got.cancelled, got.cache_hits) == (8, 4, 1, 1)
    assert got.failures == {"RateLimitError": 2, "AuthenticationError": 1}
    assert got.prompt_tokens == 10 + 20 + usage.prompt_tokens
    assert got.completion_tokens == 5 + 7 + usage.completion_tokens
    assert (got.reasoning_tokens, got.cached_tokens) == (3, 4)
    assert got.cost == pytest.approx(first.cost + third.cost + whole.cost)
    assert third.cost == library_price(
        "gpt-4o-mini", "openai", input_tokens=20, cache_read_tokens=4, output_tokens=7,
        output_reasoning_tokens=3,
    )  # fmt: skip
    # Latencies 100, 300 and 200 ms (the stream's first chunk came at 200 ms too); the
    # q-quantile is the value at rank floor(q * (n - 1)): 200 ms for all three here.
    assert got.latency_ms.to_dict() == pytest.approx({"p50": 200, "p95": 200, "p99": 200}, rel=0.01)
    assert got.first_chunk_ms.p50 == pytest.approx(200.0, rel=0.01)


async def test_to_dict_is_json_in_the_documented_shape() -> None:
    stats = Stats()
    async with mock_pipeline([stats, route_to(FakeDeployment("east")), Costs()]) as pipe:
        await pipe.acompletion(TARGET, ask("hello"))
    data = json.loads(json.dumps(stats.snapshot().to_dict()))
    assert set(data) == {"targets", "deployments"}
    for group in ("targets", "deployments"):
        entry = next(iter(data[group].values()))
        assert set(entry) == {
            "requests",
            "successes",
            "failures",
            "cancelled",
            "cache_hits",
            "latency_ms",
            "first_chunk_ms",
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "cached_tokens",
            "cost",
        }
        assert set(entry["latency_ms"]) == {"p50", "p95", "p99"}
        assert set(entry["first_chunk_ms"]) == {"p50", "p95"}
    assert list(data["deployments"]) == ["east"]
    assert data["deployments"]["east"] == data["targets"][TARGET]


def two_providers(openai: Script, other: Script, *layers: Any) -> Pipeline:
    registry = ProviderRegistry([mock_provider("openai", openai), mock_provider("other", other)])
    return Pipeline(list(layers), registry=registry)


async def test_a_failed_over_request_counts_once_under_the_target_that_answered() -> None:
    stats = Stats()
    layers = [stats, Fallback(["other/gpt-4o-mini"]), Costs(), ErrorMapping()]
    async with two_providers(Script(failure(429)), Script(chat_reply()), *layers) as pipe:
        response = await pipe.acompletion(TARGET, ask("hello"))
    assert response.provider == "other"
    targets = stats.snapshot().targets
    assert list(targets) == ["other/gpt-4o-mini"]
    assert targets["other/gpt-4o-mini"].successes == 1


async def test_a_request_failing_everywhere_counts_the_last_tries_error_class() -> None:
    stats = Stats()
    layers = [stats, Fallback(["other/gpt-4o-mini"]), ErrorMapping()]
    async with two_providers(Script(failure(429)), Script(failure(503)), *layers) as pipe:
        with pytest.raises(errors.FallbackError):
            await pipe.acompletion(TARGET, ask("hello"))
    targets = stats.snapshot().targets
    assert list(targets) == ["other/gpt-4o-mini"]
    assert targets["other/gpt-4o-mini"].failures == {"ServiceUnavailableError": 1}


async def test_deployments_come_from_the_last_try() -> None:
    stats = Stats()
    script = Script(chat_reply(prompt=3, completion=2), failure(500))
    layers = [stats, route_to(FakeDeployment("west")), Costs(), ErrorMapping()]
    async with mock_pipeline(layers, script) as pipe:
        await pipe.acompletion(TARGET, ask("a"))
        with pytest.raises(errors.InternalServerError):
            await pipe.acompletion(TARGET, ask("b"))
    west = stats.snapshot().deployments["west"]
    assert (west.requests, west.successes, west.failures) == (2, 1, {"InternalServerError": 1})
    assert (west.prompt_tokens, west.completion_tokens) == (3, 2)


async def test_cancelled_requests_and_broken_streams() -> None:
    stats = Stats()

    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(10)
        raise AssertionError("cancelled before this")

    async with mock_pipeline([stats, ErrorMapping()], slow) as pipe:
        with anyio.move_on_after(0.01):
            await pipe.acompletion(TARGET, ask("never answered"))
    got = stats.snapshot().targets[TARGET]
    assert (got.requests, got.cancelled, got.successes, got.failures) == (1, 1, 0, {})
    assert got.latency_ms.p50 is None


async def test_percentiles_are_within_the_sketchs_stated_error() -> None:
    rng = random.Random(11)
    latencies = [rng.lognormvariate(math.log(0.4), 0.8) for _ in range(3000)]
    clock = FakeClock()
    stats = Stats(clock=clock)
    request = Request(endpoint="chat", provider="openai", model="gpt-4o-mini", messages=ask("x"))
    for seconds in latencies:

        async def reply(request: Request, seconds: float = seconds) -> Any:
            clock.advance(seconds)
            return ChatResponse(provider="openai", model="gpt-4o-mini")

        await stats(request, reply)
    got = stats.snapshot().targets[TARGET].latency_ms
    ordered = sorted(latencies)
    for quantile, value in ((0.5, got.p50), (0.95, got.p95), (0.99, got.p99)):
        exact = ordered[math.floor(quantile * (len(ordered) - 1))] * 1000.0
        assert value is not None
        assert abs(value - exact) <= 0.01 * exact + 0.001, (quantile, value, exact)


async def test_memory_per_target_stays_bounded() -> None:
    rng = random.Random(3)
    clock = FakeClock()
    stats = Stats(clock=clock)
    request = Request(endpoint="chat", provider="openai", model="gpt-4o-mini", messages=ask("x"))
    usage = Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)

    async def reply(request: Request) -> Any:
        clock.advance(rng.uniform(0.001, 30.0))
        return ChatResponse(provider="openai", model="gpt-4o-mini", usage=usage, cost=1e-6)

    async def run(n: int) -> None:
        for _ in range(n):
            await stats(request, reply)

    await run(2000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await run(20000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert stats.snapshot().targets[TARGET].requests == 22000
    assert grown < 32 * 1024, f"{grown} bytes for 20000 more requests"


async def test_prometheus_text_parses_and_matches_the_snapshot() -> None:
    stats = Stats()
    script = Script(
        chat_reply(prompt=10, completion=5), failure(429), chat_reply(prompt=1, completion=1)
    )
    layers = [stats, route_to(FakeDeployment("east")), Costs(), ErrorMapping()]
    async with mock_pipeline(layers, script) as pipe:
        await pipe.acompletion(TARGET, ask("a"))
        with pytest.raises(errors.RateLimitError):
            await pipe.acompletion(TARGET, ask("b"))
        await pipe.acompletion(TARGET, ask("c"))
    got = stats.snapshot().targets[TARGET]
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(stats.prometheus()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(name: str, **labels: str) -> float:
        return samples[
            (name, frozenset({"provider": "openai", "model": "gpt-4o-mini", **labels}.items()))
        ]

    assert value("dispatchline_requests_total", outcome="success") == 2
    assert value("dispatchline_requests_total", outcome="failure") == 1
    assert value("dispatchline_requests_total", outcome="cancelled") == 0
    assert value("dispatchline_failures_total", error="RateLimitError") == 1
    assert value("dispatchline_tokens_total", type="prompt") == 11
    assert value("dispatchline_tokens_total", type="completion") == 6
    assert value("dispatchline_cost_usd_total") == pytest.approx(got.cost)
    assert value("dispatchline_request_duration_seconds_count") == 2
    assert value("dispatchline_request_duration_seconds", quantile="0.5") * 1000 == pytest.approx(
        got.latency_ms.p50, abs=0.001
    )
    assert (
        samples[
            (
                "dispatchline_deployment_requests_total",
                frozenset({("deployment", "east"), ("outcome", "success")}),
            )
        ]
        == 2
    )


async def test_reset_and_asnapshot() -> None:
    stats = Stats()
    async with mock_pipeline([stats]) as pipe:
        await pipe.acompletion(TARGET, ask("a"))
    assert (await stats.asnapshot()) == stats.snapshot()
    assert stats.snapshot().targets[TARGET].requests == 1
    stats.reset()
    assert stats.snapshot().targets == {}
    async with mock_pipeline([stats]) as pipe:
        await pipe.acompletion(TARGET, ask("a"))
    assert stats.snapshot().targets[TARGET].requests == 1


async def test_without_ddsketch_stats_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ddsketch", None)
    with pytest.raises(MissingExtraError, match=r"dispatchline\[stats\]"):
        Stats()


async def test_without_prometheus_client_the_text_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stats = Stats()
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "middlewares.usage._prometheus", raising=False)
    with pytest.raises(MissingExtraError, match=r"dispatchline\[prometheus\]"):
        stats.prometheus()
    assert stats.snapshot().targets == {}  # the rest of Stats works without it
